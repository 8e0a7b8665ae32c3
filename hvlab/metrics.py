"""hvlab's own Prometheus metrics.

The worker serves every one of them on its ``/metrics`` endpoint (see
:func:`hvlab.telemetry.start_metrics_server`), together with the Temporal SDK's. They come
from two places:

- **activity metrics** live in this module's :data:`REGISTRY`; activities (and the session
  pool) record into them directly. They exist only in the worker process: nothing here may be
  used from workflow code.
- **workflow metrics** (:data:`WORKFLOW_METRICS`) are recorded by workflow code through the
  SDK's replay-safe ``workflow.metric_meter()`` (:mod:`workflows.metrics`) and exported by the
  SDK runtime, which adds ``namespace``, ``task_queue``, ``workflow_type`` and
  ``service_name`` labels.

| metric | type | labels | from |
|---|---|---|---|
| ``hvlab_step_duration_seconds`` | histogram | step, host, outcome (ok, error) | activity |
| ``hvlab_migrations_total`` | counter | mode, outcome (ok, noop, failed, cancelled) | workflow |
| ``hvlab_migration_duration_seconds`` | histogram | mode | workflow |
| ``hvlab_migration_downtime_seconds`` | histogram | mode | activity |
| ``hvlab_compensations_total`` | counter | workflow | workflow |
| ``hvlab_replication_health`` | gauge (0 normal, 1 warning, 2 critical) | vm | activity |
| ``hvlab_winrm_sessions_open`` | gauge | host | activity |
| ``hvlab_winrm_requests_total`` | counter | host, outcome (ok, error, transient) | activity |
| ``hvlab_worker_info`` | info (always 1) | version | worker |

Label values are lab names (hosts, VMs, step kinds), modes and outcomes: bounded, never ids,
messages or secrets.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

REGISTRY = CollectorRegistry(auto_describe=True)

STEP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
DOWNTIME_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)

STEP_DURATION = Histogram(
    "hvlab_step_duration_seconds",
    "Duration of one remote step (activity), by step kind, host and outcome.",
    ["step", "host", "outcome"],
    buckets=STEP_BUCKETS,
    registry=REGISTRY,
)
MIGRATION_DOWNTIME = Histogram(
    "hvlab_migration_downtime_seconds",
    "Blackout time of the VM during the final switch-over of a migration.",
    ["mode"],
    buckets=DOWNTIME_BUCKETS,
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

#: Metrics recorded by workflow code through the SDK meter (see :mod:`workflows.metrics`).
WORKFLOW_METRICS: dict[str, str] = {
    "hvlab_migrations_total": "counter",
    "hvlab_migration_duration_seconds": "histogram",
    "hvlab_compensations_total": "counter",
}

REPLICATION_HEALTH_VALUES = {"Normal": 0, "Warning": 1, "Critical": 2}


def set_worker_info(version: str) -> None:
    """Publish ``hvlab_worker_info{version=...} 1``."""
    WORKER_INFO.info({"version": version})


def set_replication_health(vm: str, health: str) -> None:
    """Record a Hyper-V ``ReplicationHealth`` value (unknown names count as critical)."""
    REPLICATION_HEALTH.labels(vm=vm).set(REPLICATION_HEALTH_VALUES.get(health, 2))


def forget_replication(vm: str) -> None:
    """Drop the VM's health series once its replication is removed."""
    with contextlib.suppress(KeyError):
        REPLICATION_HEALTH.remove(vm)


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
