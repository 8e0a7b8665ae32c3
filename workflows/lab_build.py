"""LabBuildWorkflow: the lab file's build plan as a DAG of child workflows.

Each unit of :func:`workflows.kinds.build_plan` becomes one child workflow (id
``<build id>/<unit>``, e.g. ``<lab>-build/<unit>``) started as soon as the units it depends on
have finished, with at most ``per_host_limit`` units at a time touching the same host. When a
unit fails no new unit starts, the running ones are cancelled (each compensates its own
changes) and the build fails with the first error; the units it completed stay, so running it
again continues. Re-running the build on a built lab changes nothing: every step probes first.

Cancelled, the build also undoes what the units it completed changed, newest first, and puts
an account of what it undid and kept into its memo (:mod:`workflows.build_compensation`).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.exceptions import ApplicationError, CancelledError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from hvlab.plan import BuildPlan, PlanUnit
    from hvlab.spec import LabSpec
    from workflows.build_compensation import PATCH, BuildCompensation
    from workflows.host_prep import HostPrepInput
    from workflows.kinds import BY_NAME, build_plan
    from workflows.observed import no_duplicates, observe, placed
    from workflows.outcome import record
    from workflows.progress import Progress, Tracker
    from workflows.vm_deploy import VmDeployInput

__all__ = ["HostPrepInput", "LabBuildInput", "LabBuildResult", "LabBuildWorkflow",
           "VmDeployInput"]


class LabBuildInput(BaseModel):
    spec: LabSpec
    compensate: bool = True
    per_host_limit: int = Field(default=2, ge=1)
    only: list[str] = Field(default_factory=list, description="unit kinds to run (all if empty)")


class LabBuildResult(BaseModel):
    lab: str
    units: dict[str, str]
    progress: Progress


@workflow.defn(name="LabBuildWorkflow")
class LabBuildWorkflow:
    def __init__(self) -> None:
        self._tracker = Tracker("LabBuild")

    @workflow.query
    def progress(self) -> Progress:
        return self._tracker.progress

    @workflow.run
    async def run(self, request: LabBuildInput) -> LabBuildResult:
        """Run every unit of the plan in dependency order, from the lab's observed state."""
        if workflow.patched("observe-lab"):
            request = await self._observed(request)
        spec = request.spec
        plan = self._plan(request)
        self._tracker = Tracker("LabBuild", spec.lab)
        self._tracker.plan(*((u.id, f"{u.kind} {u.target}") for u in plan.order()))
        self._limits = {h.name.lower(): asyncio.Semaphore(request.per_host_limit)
                        for h in spec.hosts}
        self._done: dict[str, asyncio.Event] = {u.id: asyncio.Event() for u in plan.units}
        self._failed: list[BaseException] = []
        self._compensation = BuildCompensation(spec)
        states: dict[str, str] = {}
        tasks = [asyncio.ensure_future(self._unit(request, unit, states)) for unit in plan.order()]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if workflow.cancellation_reason() is not None:  # the build itself was cancelled
                await self._cancelled(request)
            raise
        self._tracker.finish()
        return LabBuildResult(lab=spec.lab, units=states, progress=self._tracker.progress)

    async def _cancelled(self, request: LabBuildInput) -> None:
        """Undo what the completed units changed and record the account (histories recorded
        before this left the completed units as they were)."""
        if not workflow.patched(PATCH):
            return
        self._tracker.finish("cancelled: undoing what this build created")
        summary = await self._compensation.run(request.compensate)
        record(summary)
        self._tracker.finish("cancelled")
        self._tracker.progress.error = "; ".join(summary.lines())

    @staticmethod
    async def _observed(request: LabBuildInput) -> LabBuildInput:
        """The request with each VM where it runs now (a moved VM is never created again on
        the lab file's host) and each replication with its current primary."""
        state = await observe(request.spec)
        no_duplicates(request.spec.lab, state)
        return request.model_copy(update={"spec": placed(request.spec, state)})

    @staticmethod
    def _plan(request: LabBuildInput) -> BuildPlan:
        plan = build_plan(request.spec)
        if not request.only:
            return plan
        units = [u for u in plan.units if u.kind in request.only]
        keep = {u.id for u in units}
        units = [u.model_copy(update={"depends_on": [d for d in u.depends_on if d in keep]})
                 for u in units]
        return BuildPlan(lab=plan.lab, units=units)

    async def _unit(self, request: LabBuildInput, unit: PlanUnit, states: dict[str, str]) -> None:
        for dependency in unit.depends_on:
            await self._done[dependency].wait()
        if self._failed:
            states[unit.id] = "not started"
            return
        limits = [self._limits[h.lower()] for h in sorted(set(unit.hosts)) if h.lower() in
                  self._limits]
        for limit in limits:
            await limit.acquire()
        try:
            result = await self._tracker.run(unit.id, f"{unit.kind} {unit.target}",
                                             lambda: self._child(request, unit))
            states[unit.id] = "done"
            self._compensation.completed_unit(unit, result)
        except BaseException as exc:
            states[unit.id] = "failed"
            if isinstance(exc, asyncio.CancelledError) or _cancelled_child(exc):
                self._compensation.interrupted_unit(unit)
            self._failed.append(exc)
            raise
        finally:
            for limit in reversed(limits):
                limit.release()
            self._done[unit.id].set()

    async def _child(self, request: LabBuildInput, unit: PlanUnit) -> object:
        unit_kind = BY_NAME.get(unit.kind)
        if unit_kind is None:
            raise ApplicationError(f"no workflow builds units of kind {unit.kind!r}",
                                   type="NotImplemented", non_retryable=True)
        # under this build's own id, so a reset's or a converge's build never meets a build of
        # the same lab (runs recorded before the patch used "<lab>-build/<unit>" everywhere)
        parent = workflow.info().workflow_id if workflow.patched("unit-ids-from-parent") \
            else f"{request.spec.lab}-build"
        return await workflow.execute_child_workflow(
            unit_kind.workflow_name,
            unit_kind.unit_input(request.spec, unit, request.compensate),
            id=f"{parent}/{unit.id}",
            static_summary=f"{unit.kind} {unit.target}",
            execution_timeout=timedelta(hours=12),
        )


def _cancelled_child(exc: BaseException) -> bool:
    """The child failed because it was cancelled (the build's cancel reached it)."""
    return isinstance(exc, ChildWorkflowError) and isinstance(exc.cause, CancelledError)
