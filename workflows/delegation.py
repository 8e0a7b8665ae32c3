"""DelegationWorkflow: Kerberos constrained delegation for one host, then a ticket purge.

Adds only the missing msDS-AllowedToDelegateTo entries (short and FQDN forms) on the host's AD
object and turns on protocol transition, then purges the host's machine tickets so the change
takes effect. On failure or cancel exactly the entries this run added are removed again.
"""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.directory import DirectoryActivities
    from activities.models import DelegationInput, HostInput, RemoveDelegationInput
    from hvlab.plan import prefixed, unit_steps
    from hvlab.spec import LabSpec
    from workflows.options import COMPENSATION
    from workflows.progress import Progress, Tracker
    from workflows.saga import Saga
    from workflows.steps import step, tracked


class DelegationWorkflowInput(BaseModel):
    spec: LabSpec
    host: str
    compensate: bool = True


@workflow.defn(name="DelegationWorkflow")
class DelegationWorkflow:
    def __init__(self) -> None:
        self._tracker = Tracker("Delegation")

    @workflow.query
    def progress(self) -> Progress:
        return self._tracker.progress

    @workflow.run
    async def run(self, request: DelegationWorkflowInput) -> Progress:
        """KCD entries + protocol transition on the DC, ticket purge on the host."""
        spec, lab = request.spec, request.spec.lab
        entry = next(d for d in spec.delegation if d.host.lower() == request.host.lower())
        self._tracker = Tracker("Delegation", entry.host)
        planned = unit_steps(spec, f"delegation:{entry.host}")
        self._tracker.plan(*planned)
        saga = Saga(f"Delegation {entry.host}", enabled=request.compensate)
        kcd = DelegationInput.from_spec(spec, entry).model_copy(update={"lab": lab})
        try:
            entries = prefixed(planned, "kcd", "protocol-transition")
            result = await tracked(self._tracker, entries, f"{entry.host}$ may delegate",
                                   DirectoryActivities.delegation, kcd)
            undo = RemoveDelegationInput.from_step(kcd, result)
            if undo.spns or undo.restore_transition:
                saga.add("remove delegation", lambda: step(
                    DirectoryActivities.remove_delegation, undo, options=COMPENSATION))
            await tracked(self._tracker, "purge-tickets", "purge machine tickets",
                          DirectoryActivities.purge_tickets, HostInput(lab=lab, host=entry.host))
        except BaseException:
            await saga.compensate()
            raise
        self._tracker.finish()
        return self._tracker.progress
