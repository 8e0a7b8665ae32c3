"""MigrationReadinessWorkflow: live migration settings of one Hyper-V host.

Enable-VMMigration, authentication (Kerberos), performance option, simultaneous migrations,
migration networks. On failure or cancel the previous settings are put back and only the
networks this run added are removed.
"""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.migration import MigrationActivities
    from activities.models import MigrationReadinessInput, MigrationRestoreInput
    from hvlab.plan import unit_steps
    from hvlab.spec import LabSpec
    from workflows.options import COMPENSATION
    from workflows.progress import Progress, Tracker
    from workflows.saga import Saga
    from workflows.steps import step, tracked


class ReadinessWorkflowInput(BaseModel):
    spec: LabSpec
    host: str
    compensate: bool = True


@workflow.defn(name="MigrationReadinessWorkflow")
class MigrationReadinessWorkflow:
    def __init__(self) -> None:
        self._tracker = Tracker("MigrationReadiness")

    @workflow.query
    def progress(self) -> Progress:
        return self._tracker.progress

    @workflow.run
    async def run(self, request: ReadinessWorkflowInput) -> Progress:
        """Apply the host's migration settings; restore the previous ones on failure."""
        host = request.spec.host(request.host)
        self._tracker = Tracker("MigrationReadiness", host.name)
        planned = unit_steps(request.spec, f"migration-readiness:{host.name}")
        self._tracker.plan(*planned)
        saga = Saga(f"MigrationReadiness {host.name}", enabled=request.compensate)
        settings = MigrationReadinessInput.from_spec(host).model_copy(
            update={"lab": request.spec.lab})
        try:
            result = await tracked(self._tracker, [n for n, _ in planned],
                                   "live migration settings", MigrationActivities.readiness,
                                   settings)
            if result.changed and "previous" in result.observed:
                undo = MigrationRestoreInput.from_readiness(settings, result)
                saga.add("restore migration settings", lambda: step(
                    MigrationActivities.restore_readiness, undo, options=COMPENSATION))
        except BaseException:
            await saga.compensate()
            raise
        self._tracker.finish()
        return self._tracker.progress
