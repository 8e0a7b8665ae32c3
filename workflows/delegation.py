"""The ``delegation`` unit kind: Kerberos constrained delegation for one host, then a ticket
purge (DelegationWorkflow).

Adds only the missing msDS-AllowedToDelegateTo entries (short and FQDN forms) on the host's AD
object and turns on protocol transition, then purges the host's machine tickets so the change
takes effect. On failure or cancel exactly the entries this run added are removed again.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities import directory
    from activities.directory import DirectoryActivities
    from activities.models import (
        DelegationInput,
        HostInput,
        RemoveDelegationInput,
        delegation_spns,
    )
    from hvlab.plan import PlanStep, PlanUnit
    from hvlab.spec import LabSpec
    from workflows.kind import (
        Emitted,
        Parts,
        StepName,
        Undo,
        UnitKind,
        done_steps,
        joined,
        plan_step,
        prefixed,
        steps_of,
    )
    from workflows.options import COMPENSATION
    from workflows.progress import Progress, Tracker
    from workflows.saga import Saga
    from workflows.steps import step, tracked


class Step(StepName):
    KCD = "kcd"
    PROTOCOL_TRANSITION = "protocol-transition"
    PURGE_TICKETS = "purge-tickets"


def plan(spec: LabSpec, before: list[PlanUnit]) -> Iterable[PlanUnit]:
    dc = spec.domain.dc
    for entry in spec.delegation:
        steps = []
        for target in entry.to:
            for service in target.services:
                steps.append(plan_step(Step.KCD.of(f"{service}/{target.target}"),
                                       f"{entry.host}$ may delegate {service}/{target.target}",
                                       dc))
        if entry.protocol_transition:
            steps.append(plan_step(Step.PROTOCOL_TRANSITION, "use any authentication protocol",
                                   dc))
        steps.append(plan_step(Step.PURGE_TICKETS, "purge machine tickets (klist -li 0x3e7)",
                               entry.host))
        targets = [entry.host, *(t.target for t in entry.to)]
        yield PlanUnit(id=f"delegation:{entry.host}", kind="delegation", target=entry.host,
                       phase=2, hosts=[dc, entry.host], depends_on=joined(spec, targets),
                       steps=steps)


def step_commands(spec: LabSpec, unit: PlanUnit, step: PlanStep) -> list[Emitted]:
    entry = next(d for d in spec.delegation if d.host == unit.target)
    request = DelegationInput.from_spec(spec, entry)
    name, arg = Step.parse(step.name)
    if name is Step.KCD:
        service, _, target = arg.rpartition("/")
        spns = [s for s in delegation_spns(spec, entry)
                if s.lower() in (arg.lower(), f"{service}/{target}.{spec.domain.fqdn}".lower())]
        return [directory.add_delegation_command(request.computer, spns)]
    if name is Step.PROTOCOL_TRANSITION:
        return [directory.account_control_command(request.computer, True)]
    return [directory.purge_tickets_script()]


def undo(spec: LabSpec, unit: PlanUnit) -> list[Undo]:
    entry = next(d for d in spec.delegation if d.host.lower() == unit.target.lower())
    return [(DirectoryActivities.remove_delegation, RemoveDelegationInput(
        lab=spec.lab, dc=spec.domain.dc, computer=entry.host, spns=delegation_spns(spec, entry),
        restore_transition=entry.protocol_transition), ())]


def changed(spec: LabSpec, unit: PlanUnit, result: Any) -> Parts:
    """Undone as ``hvlab down`` does when an entry changed (a ticket purge changes nothing)."""
    return (["all"] if done_steps(result) - {Step.PURGE_TICKETS} else None), []


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
        planned = steps_of(plan(spec, []), f"delegation:{entry.host}")
        self._tracker.plan(*planned)
        saga = Saga(f"Delegation {entry.host}", enabled=request.compensate)
        kcd = DelegationInput.from_spec(spec, entry).model_copy(update={"lab": lab})
        try:
            entries = prefixed(planned, Step.KCD, Step.PROTOCOL_TRANSITION)
            result = await tracked(self._tracker, entries, f"{entry.host}$ may delegate",
                                   DirectoryActivities.delegation, kcd)
            undo = RemoveDelegationInput.from_step(kcd, result)
            if undo.spns or undo.restore_transition:
                saga.add("remove delegation", lambda: step(
                    DirectoryActivities.remove_delegation, undo, options=COMPENSATION))
            await tracked(self._tracker, Step.PURGE_TICKETS, "purge machine tickets",
                          DirectoryActivities.purge_tickets, HostInput(lab=lab, host=entry.host))
        except BaseException:
            await saga.compensate()
            raise
        self._tracker.finish()
        return self._tracker.progress


KIND = UnitKind(
    name="delegation", workflow=DelegationWorkflow, plan=plan,
    unit_input=lambda spec, unit, compensate: DelegationWorkflowInput(
        spec=spec, host=unit.target, compensate=compensate),
    commands=step_commands, undo=undo, changed=changed, reconverge=True)
