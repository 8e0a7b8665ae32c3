"""hvlab's own Prometheus metrics, in a dedicated registry (:data:`REGISTRY`).

The worker serves them on the same ``/metrics`` endpoint as the Temporal SDK metrics (see
:func:`hvlab.telemetry.start_metrics_server`). Activities record into them directly; they
live in the worker process, so nothing here may be used from workflow code.

| metric | type | labels |
|---|---|---|
| ``hvlab_step_duration_seconds`` | histogram | step, host, outcome |
| ``hvlab_migrations_total`` | counter | mode, outcome |
| ``hvlab_migration_duration_seconds`` | histogram | mode |
| ``hvlab_migration_downtime_seconds`` | histogram | mode |
| ``hvlab_compensations_total`` | counter | workflow |
| ``hvlab_replication_health`` | gauge (0 normal, 1 warning, 2 critical) | vm |
| ``hvlab_winrm_sessions_open`` | gauge | host |
| ``hvlab_winrm_requests_total`` | counter | host, outcome |
| ``hvlab_worker_info`` | info (always 1) | version |
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

REGISTRY = CollectorRegistry(auto_describe=True)

STEP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
MIGRATION_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
DOWNTIME_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)

STEP_DURATION = Histogram(
    "hvlab_step_duration_seconds",
    "Duration of one remote step (activity), by step kind, host and outcome.",
    ["step", "host", "outcome"],
    buckets=STEP_BUCKETS,
    registry=REGISTRY,
)
MIGRATIONS = Counter(
    "hvlab_migrations_total",
    "Live and storage migrations by mode (shared-nothing, smb, storage) and outcome.",
    ["mode", "outcome"],
    registry=REGISTRY,
)
MIGRATION_DURATION = Histogram(
    "hvlab_migration_duration_seconds",
    "Wall time of a migration job from start to verified completion.",
    ["mode"],
    buckets=MIGRATION_BUCKETS,
    registry=REGISTRY,
)
MIGRATION_DOWNTIME = Histogram(
    "hvlab_migration_downtime_seconds",
    "Blackout time of the VM during the final switch-over of a migration.",
    ["mode"],
    buckets=DOWNTIME_BUCKETS,
    registry=REGISTRY,
)
COMPENSATIONS = Counter(
    "hvlab_compensations_total",
    "Compensation (undo) steps run, by the workflow that ran them.",
    ["workflow"],
    registry=REGISTRY,
)
REPLICATION_HEALTH = Gauge(
    "hvlab_replication_health",
    "Hyper-V Replica health per VM: 0 normal, 1 warning, 2 critical.",
    ["vm"],
    registry=REGISTRY,
)
WINRM_SESSIONS_OPEN = Gauge(
    "hvlab_winrm_sessions_open",
    "Open WinRM/PSRP sessions (runspace pools) per host.",
    ["host"],
    registry=REGISTRY,
)
WINRM_REQUESTS = Counter(
    "hvlab_winrm_requests_total",
    "WinRM/PSRP pipelines sent, by host and outcome (ok, error, transient).",
    ["host", "outcome"],
    registry=REGISTRY,
)
WORKER_INFO = Info("hvlab_worker", "The hvlab worker process (always 1).", registry=REGISTRY)

REPLICATION_HEALTH_VALUES = {"Normal": 0, "Warning": 1, "Critical": 2}


def set_worker_info(version: str) -> None:
    """Publish ``hvlab_worker_info{version=...} 1``."""
    WORKER_INFO.info({"version": version})


def set_replication_health(vm: str, health: str) -> None:
    """Record a Hyper-V ``ReplicationHealth`` value (unknown names count as critical)."""
    REPLICATION_HEALTH.labels(vm=vm).set(REPLICATION_HEALTH_VALUES.get(health, 2))


@contextmanager
def timed_step(step: str, host: str) -> Iterator[None]:
    """Observe ``hvlab_step_duration_seconds`` around a block; outcome ``ok`` or ``error``.

    Cancellation and other ``BaseException`` count as ``error`` and are re-raised.
    """
    started = time.monotonic()
    outcome = "error"
    try:
        yield
        outcome = "ok"
    finally:
        STEP_DURATION.labels(step=step, host=host, outcome=outcome).observe(
            time.monotonic() - started
        )
