"""DoctorWorkflow: one round trip through Temporal and a worker.

Pure orchestration: it runs the ``doctor_probe`` activity once and returns what the worker
reported, plus the workflow's own id and start time.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.doctor import DoctorActivities, DoctorProbeInput, DoctorProbeResult

DOCTOR_PROBE = workflow.ActivityConfig(
    start_to_close_timeout=timedelta(seconds=10),
    retry_policy=RetryPolicy(maximum_attempts=3, initial_interval=timedelta(milliseconds=200)),
)


class DoctorInput(BaseModel):
    """What ``hvlab doctor`` sends; ``nonce`` comes back in the result."""

    nonce: str = ""


class DoctorResult(BaseModel):
    """The probe's answer and the workflow's own view."""

    workflow_id: str
    started_at: datetime
    probe: DoctorProbeResult


@workflow.defn(name="DoctorWorkflow")
class DoctorWorkflow:
    """Run the doctor probe activity once and return its answer."""

    @workflow.run
    async def run(self, request: DoctorInput) -> DoctorResult:
        """Probe a worker through an activity."""
        started = workflow.now()
        workflow.logger.info("doctor round trip started")
        probe = await workflow.execute_activity_method(
            DoctorActivities.probe, DoctorProbeInput(nonce=request.nonce), **DOCTOR_PROBE
        )
        workflow_id = workflow.info().workflow_id
        return DoctorResult(workflow_id=workflow_id, started_at=started, probe=probe)
