"""Workflow-level metrics, recorded through the Temporal SDK's workflow metric meter.

What a migration's outcome was, how long it took, and which undo steps a saga ran are facts of
the workflow, not of one activity, so they are recorded here. ``workflow.metric_meter()`` is
replay-safe (nothing is recorded while a worker replays history) and goes to the SDK runtime's
Prometheus exporter, which the worker's ``/metrics`` endpoint serves together with hvlab's
activity metrics (:mod:`hvlab.metrics`). The SDK adds the labels ``namespace``,
``task_queue``, ``workflow_type`` and ``service_name``; hvlab's own labels are the ones in the
table of :mod:`hvlab.metrics`. No ids or messages go into labels. Histogram buckets are set
on the runtime (:data:`hvlab.temporal.WORKFLOW_HISTOGRAM_BUCKETS`).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

MIGRATIONS_TOTAL = "hvlab_migrations_total"
MIGRATION_DURATION = "hvlab_migration_duration_seconds"
COMPENSATIONS_TOTAL = "hvlab_compensations_total"


def _workflow_name() -> str:
    return workflow.info().workflow_type


def compensations_seen() -> None:
    """Publish ``hvlab_compensations_total{workflow}`` at 0 so ``rate()`` works from the start."""
    counter = workflow.metric_meter().create_counter(
        COMPENSATIONS_TOTAL, "Compensation (undo) steps run, by the workflow that ran them.")
    counter.add(0, {"workflow": _workflow_name()})


def compensation_ran() -> None:
    """Count one undo step run by the current workflow."""
    counter = workflow.metric_meter().create_counter(
        COMPENSATIONS_TOTAL, "Compensation (undo) steps run, by the workflow that ran them.")
    counter.add(1, {"workflow": _workflow_name()})


def migration_finished(mode: str, outcome: str, took: timedelta | None) -> None:
    """Count a migration by mode and outcome (``ok``, ``noop``, ``failed``, ``cancelled``);
    ``took`` (workflow time from start to verified location) goes into the duration histogram
    for moves that happened."""
    meter = workflow.metric_meter()
    meter.create_counter(
        MIGRATIONS_TOTAL,
        "Live and storage migrations by mode (shared-nothing, smb, storage) and outcome.",
    ).add(1, {"mode": mode, "outcome": outcome})
    if took is not None:
        meter.create_histogram_float(
            MIGRATION_DURATION, "Wall time of a migration from start to verified completion.",
            "s",
        ).record(took.total_seconds(), {"mode": mode})
