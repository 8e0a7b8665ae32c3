"""The ``checkpoint`` unit kind, CheckpointWorkflow: one named checkpoint of the lab file on
every VM it lists.

The plan's ``checkpoint`` units (``checkpoint:<name>``, after every other unit) run it. The VMs
are checkpointed at the same time so the lab's checkpoint is as close to one instant as the
hosts allow; a checkpoint that exists already is left alone (reference §14), unless the run
``replace`` is set (``hvlab checkpoint --replace``): then it is removed and taken again. On
failure or cancellation the checkpoints this run created are removed again (unless compensation
is off); a retaken one is kept (the old one cannot come back).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.checkpoint import CheckpointActivities, create_checkpoint_command
    from activities.models import CheckpointInput, StepResult
    from hvlab.plan import PlanStep, PlanUnit
    from hvlab.spec import LabSpec
    from workflows.kind import Emitted, Parts, StepName, Undo, UnitKind, plan_step
    from workflows.observed import observe, placed
    from workflows.options import COMPENSATION
    from workflows.progress import Progress, Tracker
    from workflows.saga import Saga
    from workflows.steps import step


class Step(StepName):
    CHECKPOINT = "checkpoint"


def plan(spec: LabSpec, before: list[PlanUnit]) -> Iterable[PlanUnit]:
    """One unit per checkpoint of the lab file, after every other unit."""
    for checkpoint in spec.checkpoints:
        names = [v.name for v in spec.vms] if checkpoint.vms == "all" else checkpoint.vms
        steps = [plan_step(Step.CHECKPOINT.of(n), f"checkpoint {checkpoint.name} of {n}",
                           spec.vm(n).host) for n in names]
        hosts = sorted({spec.vm(n).host for n in names})
        yield PlanUnit(id=f"checkpoint:{checkpoint.name}", kind="checkpoint",
                       target=checkpoint.name, phase=5, hosts=hosts,
                       depends_on=[u.id for u in before], steps=steps)


def step_commands(spec: LabSpec, unit: PlanUnit, step: PlanStep) -> list[Emitted]:
    return [create_checkpoint_command(Step.parse(step.name)[1], unit.target)]


def undo(spec: LabSpec, unit: PlanUnit) -> list[Undo]:
    return [(CheckpointActivities.remove, CheckpointInput(
        lab=spec.lab, host=spec.vm(vm).host, vm=vm, name=unit.target), (spec.vm(vm).host,))
            for vm in checkpoint_vms(spec, unit.target)]


def of_vms(undos: list[Undo], vms: list[str]) -> list[Undo]:
    """The checkpoints of the VMs named (parts are VM names)."""
    named = {v.lower() for v in vms}
    return [u for u in undos if isinstance(u[1], CheckpointInput) and u[1].vm.lower() in named]


def changed(spec: LabSpec, unit: PlanUnit, result: Any) -> Parts:
    """A cancelled build removes the checkpoints this run created."""
    fields: dict[str, Any] = result if isinstance(result, dict) else {}
    return [str(v) for v in fields.get("created", [])] or None, []


class CheckpointWorkflowInput(BaseModel):
    spec: LabSpec
    checkpoint: str
    compensate: bool = True
    replace: bool = Field(default=False, description="remove an existing checkpoint of that "
                          "name first, then take it again")


class CheckpointWorkflowResult(BaseModel):
    checkpoint: str
    vms: list[str]
    created: list[str]
    progress: Progress
    replaced: list[str] = Field(default_factory=list, description="VMs whose checkpoint of "
                                "that name was removed and taken again")


def checkpoint_vms(spec: LabSpec, name: str) -> list[str]:
    """The VMs of the lab file's checkpoint ``name``, in file order; ValueError if unknown."""
    entry = next((c for c in spec.checkpoints if c.name == name), None)
    if entry is None:
        known = ", ".join(c.name for c in spec.checkpoints) or "none"
        raise ValueError(f"lab {spec.lab} has no checkpoint {name!r} (known: {known})")
    if entry.vms == "all":
        return [v.name for v in spec.vms]
    listed = {n.lower() for n in entry.vms}
    return [v.name for v in spec.vms if v.name.lower() in listed]


def invalid_input(message: str) -> ApplicationError:
    return ApplicationError(message, type="InvalidInput", non_retryable=True)


@workflow.defn(name="CheckpointWorkflow")
class CheckpointWorkflow:
    def __init__(self) -> None:
        self._tracker = Tracker("Checkpoint")

    @workflow.query
    def progress(self) -> Progress:
        return self._tracker.progress

    @workflow.run
    async def run(self, request: CheckpointWorkflowInput) -> CheckpointWorkflowResult:
        """Checkpoint every listed VM; remove the ones this run created on failure."""
        try:
            vms = checkpoint_vms(request.spec, request.checkpoint)
        except ValueError as exc:
            raise invalid_input(str(exc)) from None
        if workflow.patched("observe-lab"):  # each VM where it runs now, not the file's host
            state = await observe(request.spec, vms)
            request = request.model_copy(update={"spec": placed(request.spec, state)})
        self._tracker = Tracker("Checkpoint", request.checkpoint)
        self._tracker.plan(*((Step.CHECKPOINT.of(vm), f"checkpoint {request.checkpoint} of {vm}")
                             for vm in vms))
        saga = Saga(f"Checkpoint {request.checkpoint}", enabled=request.compensate)
        # runs recorded before --replace never set it; the marker keeps such runs apart
        replace = request.replace and workflow.patched("checkpoint-replace")
        created: list[str] = []
        replaced: list[str] = []
        try:
            outcomes = await asyncio.gather(
                *(self._create(request, vm, saga, created, replaced if replace else None)
                  for vm in vms),
                return_exceptions=True)
            failures = [o for o in outcomes if isinstance(o, BaseException)]
            if failures:
                raise failures[0]
        except BaseException:
            await saga.compensate()
            raise
        self._tracker.finish()
        return CheckpointWorkflowResult(checkpoint=request.checkpoint, vms=vms, created=created,
                                        replaced=replaced, progress=self._tracker.progress)

    async def _create(self, request: CheckpointWorkflowInput, name: str, saga: Saga,
                      created: list[str], replaced: list[str] | None) -> None:
        """Take the checkpoint of VM ``name``; with ``replaced`` (a list to note it in) remove
        one of that name first."""
        spec = request.spec
        arg = CheckpointInput(lab=spec.lab, host=spec.vm(name).host, vm=name,
                              name=request.checkpoint)
        title = f"checkpoint {request.checkpoint} of {name}"
        removed = False

        async def work() -> StepResult:
            nonlocal removed
            if replaced is not None:
                gone = await step(CheckpointActivities.remove, arg,
                                  summary=f"remove the old {request.checkpoint} of {name}")
                removed = gone.changed
                if removed:  # whatever happens next, the old one cannot come back
                    saga.kept.append(f"checkpoint {request.checkpoint} of {name} removed to "
                                     "be retaken")
            return await step(CheckpointActivities.create, arg, summary=title)

        result = await self._tracker.run(Step.CHECKPOINT.of(name), title, work, _changed)
        if removed and replaced is not None:
            replaced.append(name)
        elif result.changed:
            created.append(name)
            saga.add(f"remove checkpoint of {name}", lambda: step(
                CheckpointActivities.remove, arg, summary=f"undo {title}", options=COMPENSATION))


def _changed(result: StepResult) -> bool:
    return result.changed


KIND = UnitKind(
    name="checkpoint", workflow=CheckpointWorkflow, plan=plan,
    unit_input=lambda spec, unit, compensate: CheckpointWorkflowInput(
        spec=spec, checkpoint=unit.target, compensate=compensate),
    commands=step_commands, undo=undo, parts=of_vms, changed=changed)
