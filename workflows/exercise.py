"""ExerciseWorkflow: one run of a lab file's exercise, each step a child workflow.

A class's exercise (``exercises:`` in the lab file) runs as one durable parent workflow
(``<lab>-exercise-<name>``): it lives in Temporal, not in the CLI that started it, so it goes on
when the terminal closes, a worker is killed or the server restarts. Each step is the workflow
that does that operation anyway (``<parent>/<step>``: LabBuild, LiveMigration, Replication,
PlannedFailover, Checkpoint, LabReset, LabConverge, LabTeardown), started with the lab file's
spec: every one of them observes the lab first, so a step starts from where the VMs run now.
Two kinds run in the parent itself: ``verify`` (``guest.check_connectivity`` on the NAT port
forwards, where the VMs run now) and ``approval`` (waits for the ``approve`` Update, as
``hvlab approve <id>`` sends it).

Steps are destination-idempotent, so an exercise can be run again on a lab a previous lesson
changed: a move to where the VM runs is a no-op (LiveMigration), and a failover or failback
whose VM is primary on the target host already is left alone (``unchanged``).

``start_at`` (``hvlab run --from STEP``) skips the steps before it. A failing step stops the
run (the step's own workflow undid its partial changes); cancelled, the running step's
workflow compensates itself, the completed steps stay, and the memo (:mod:`workflows.outcome`)
says so and which steps remain, with the command that resumes the exercise.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from functools import partial
from typing import Any

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    ChildWorkflowError,
)

with workflow.unsafe.imports_passed_through():
    from activities.checkpoint import CheckpointActivities
    from activities.guest import GuestActivities
    from activities.models import CheckpointInput, ConnectivityInput, split_forward
    from hvlab.exercises import failover_target, step_title, step_workflow_id
    from hvlab.spec import Exercise, ExerciseStep, LabSpec
    from workflows.checkpoint import (
        CheckpointWorkflowInput,
        CheckpointWorkflowResult,
        checkpoint_vms,
    )
    from workflows.converge import LabConvergeInput, LabConvergeResult
    from workflows.failover import Approval, PlannedFailoverInput, PlannedFailoverResult
    from workflows.lab_build import LabBuildInput, LabBuildResult
    from workflows.migration import LiveMigrationInput, LiveMigrationResult
    from workflows.observed import observe, placed
    from workflows.options import COMPENSATION, REMOTE_STEP
    from workflows.outcome import Compensation, record
    from workflows.progress import Progress, Tracker
    from workflows.replication import ReplicationWorkflowInput, ReplicationWorkflowResult
    from workflows.reset import LabResetInput, LabResetResult, reset_checkpoint
    from workflows.steps import step as run_activity
    from workflows.teardown import LabTeardownInput, LabTeardownResult

CHILD_TIMEOUT = timedelta(hours=12)


class ExerciseInput(BaseModel):
    spec: LabSpec
    exercise: str = Field(default="", description="exercise name (empty: the first)")
    start_at: str = Field(default="", description="step to start at (--from); empty: first")
    compensate: bool = True
    resume_hint: str = Field(default="", description=(
        "the command that runs this exercise, for the account of a cancelled or failed run "
        "(e.g. 'hvlab run lab.yaml seed --sim')"))
    poll_seconds: float = Field(default=1.0, gt=0, description="migration job poll interval")


class StepOutcome(BaseModel):
    name: str
    kind: str
    title: str
    state: str = "pending"
    workflow_id: str = ""
    detail: str = ""


class ExerciseResult(BaseModel):
    lab: str
    exercise: str
    steps: list[StepOutcome]
    progress: Progress


class _Done(BaseModel):
    """What a step did: changed or not, and one line about it."""

    changed: bool
    detail: str = ""


class _ExerciseTracker(Tracker):
    """The tracker whose Web UI details list every step with its state."""

    MARKS = {"pending": " ", "running": ">", "done": "+", "unchanged": "=", "skipped": "-",
             "failed": "!"}

    def _refresh(self) -> None:
        super()._refresh()
        lines = [f"{self.progress.workflow} {self.progress.target}: {self.progress.percent}%"]
        lines += [f"[{self.MARKS.get(s.state, '?')}] {s.name}: {s.title}"
                  + (f" ({s.detail})" if s.detail else "") for s in self.progress.steps]
        workflow.set_current_details("\n".join(lines))


def invalid(message: str) -> ApplicationError:
    return ApplicationError(message, type="InvalidInput", non_retryable=True)


@workflow.defn(name="ExerciseWorkflow")
class ExerciseWorkflow:
    def __init__(self) -> None:
        self._tracker: Tracker = _ExerciseTracker("Exercise")
        self._waiting = False
        self._approval: Approval | None = None
        self._outcomes: list[StepOutcome] = []

    @workflow.query
    def progress(self) -> Progress:
        return self._tracker.progress

    @workflow.update
    async def approve(self, approval: Approval) -> str:
        """The teacher's go for a waiting ``approval`` step."""
        self._approval = approval
        return f"approved{' by ' + approval.by if approval.by else ''}"

    @approve.validator
    def _only_while_waiting(self, approval: Approval) -> None:
        if not self._waiting:
            raise ValueError("this exercise is not waiting for an approval")

    @workflow.run
    async def run(self, request: ExerciseInput) -> ExerciseResult:
        """Run the exercise's steps in order, from ``start_at``."""
        spec = request.spec
        try:
            exercise = spec.exercise(request.exercise)
        except KeyError:
            known = ", ".join(e.name for e in spec.exercises) or "none"
            raise invalid(f"lab {spec.lab} has no exercise {request.exercise!r} "
                          f"(known: {known})") from None
        first = self._first(exercise, request.start_at)
        self._tracker = _ExerciseTracker("Exercise", f"{spec.lab} {exercise.name}")
        self._tracker.plan(*((s.key, step_title(spec, s)) for s in exercise.steps))
        parent = workflow.info().workflow_id
        self._outcomes = [StepOutcome(name=s.key, kind=s.kind, title=step_title(spec, s),
                                      workflow_id=step_workflow_id(parent, s)
                                      if s.kind not in ("verify", "approval") else "")
                          for s in exercise.steps]
        for index, step in enumerate(exercise.steps):
            outcome = self._outcomes[index]
            if index < first:
                self._tracker.skip(step.key, outcome.title,
                                   f"before {exercise.steps[first].key} (--from)")
                outcome.state = "skipped"
                continue
            try:
                done = await self._tracker.run(
                    step.key, outcome.title, partial(self._step, request, step),
                    lambda d: d.changed)
            except BaseException as exc:
                outcome.state, outcome.detail = "failed", _cause(exc)
                self._detail(step.key, outcome.detail)
                self._account(request, exercise, index, exc)
                raise
            outcome.state = "done" if done.changed else "unchanged"
            outcome.detail = done.detail
            self._detail(step.key, done.detail)
        self._tracker.finish()
        return ExerciseResult(lab=spec.lab, exercise=exercise.name, steps=self._outcomes,
                              progress=self._tracker.progress)

    @staticmethod
    def _first(exercise: Exercise, start_at: str) -> int:
        if not start_at:
            return 0
        try:
            return exercise.index(start_at)
        except KeyError:
            known = ", ".join(s.key for s in exercise.steps)
            raise invalid(f"exercise {exercise.name} has no step {start_at!r} "
                          f"(steps: {known})") from None

    def _detail(self, name: str, detail: str) -> None:
        for progress in self._tracker.progress.steps:
            if progress.name == name:
                progress.detail = detail
        self._tracker._refresh()

    def _account(self, request: ExerciseInput, exercise: Exercise, index: int,
                 exc: BaseException) -> None:
        """The memo of a stopped run: what the running step did about itself, what the
        completed steps changed (kept), what remains and how to resume."""
        cancelled = workflow.cancellation_reason() is not None or _cancelled(exc)
        step, outcome = exercise.steps[index], self._outcomes[index]
        summary = Compensation()
        where = f" (hvlab watch {outcome.workflow_id})" if outcome.workflow_id else ""
        what = "cancelled" if cancelled else f"failed ({_cause(exc)})"
        undid = (f"its workflow undid its own changes{where}" if outcome.workflow_id
                 else "it changes nothing itself")
        summary.undone.append(f"step {step.key} ({outcome.title}) {what}: {undid}")
        summary.kept += [f"step {o.name} ({o.title}): {o.state}" for o in self._outcomes[:index]
                         if o.state in ("done", "unchanged")]
        remaining = [s.key for s in exercise.steps[index:]]
        hint = request.resume_hint or f"hvlab run FILE {exercise.name}"
        summary.next = (f"not run: {', '.join(remaining)}; resume with: {hint} --from "
                        f"{step.key}")
        record(summary)
        self._tracker.finish("cancelled" if cancelled else "failed")
        self._tracker.progress.error = "; ".join(summary.lines())

    # ------------------------------------------------------------------------- the steps

    async def _step(self, request: ExerciseInput, step: ExerciseStep) -> _Done:
        handlers: dict[str, Any] = {
            "build": self._build, "migrate": self._migrate, "replicate": self._replicate,
            "failover": self._failover, "failback": self._failover,
            "checkpoint": self._checkpoint, "reset": self._reset, "verify": self._verify,
            "approval": self._wait_approval, "converge": self._converge, "down": self._down,
        }
        done: _Done = await handlers[step.kind](request, step)
        return done

    async def _child(self, workflow_type: str, arg: BaseModel, step: ExerciseStep,
                     result_type: type[Any], summary: str) -> Any:
        return await workflow.execute_child_workflow(
            workflow_type, arg, id=step_workflow_id(workflow.info().workflow_id, step),
            result_type=result_type, static_summary=summary,
            execution_timeout=CHILD_TIMEOUT)

    async def _build(self, request: ExerciseInput, step: ExerciseStep) -> _Done:
        s = step.settings
        result: LabBuildResult = await self._child(
            "LabBuildWorkflow", LabBuildInput(spec=request.spec, compensate=request.compensate,
                                              only=list(s.only)),
            step, LabBuildResult, step_title(request.spec, step))
        return _Done(changed=True, detail=f"{len(result.units)} units converged")

    async def _migrate(self, request: ExerciseInput, step: ExerciseStep) -> _Done:
        s = step.settings
        storage = s.mode == "storage"
        arg = LiveMigrationInput(
            spec=request.spec, vm=s.vm, mode=s.mode, storage_path=s.storage_path,
            destination=None if storage else s.to, source=s.to if storage else None,
            compensate=request.compensate, poll_seconds=request.poll_seconds,
            progress_seconds=max(request.poll_seconds, 1.0))
        result: LiveMigrationResult = await self._child(
            "LiveMigrationWorkflow", arg, step, LiveMigrationResult,
            step_title(request.spec, step))
        where = f"{result.vm} runs on {result.host}" + (f" ({result.path})" if result.path
                                                         else "")
        if not result.moved:
            return _Done(changed=False, detail=f"already there: {where}")
        downtime = (f", downtime {result.downtime_seconds:.1f} s"
                    if result.downtime_seconds is not None else "")
        return _Done(changed=True, detail=f"{where}{downtime}")

    async def _replicate(self, request: ExerciseInput, step: ExerciseStep) -> _Done:
        s = step.settings
        result: ReplicationWorkflowResult = await self._child(
            "ReplicationWorkflow", ReplicationWorkflowInput(
                spec=request.spec, vm=s.vm, replica=s.to, compensate=request.compensate),
            step, ReplicationWorkflowResult, step_title(request.spec, step))
        return _Done(changed=bool(result.changed),
                     detail=f"{result.primary} -> {result.replica}: {result.state}/"
                            f"{result.health}")

    async def _failover(self, request: ExerciseInput, step: ExerciseStep) -> _Done:
        s = step.settings
        spec = request.spec
        test = step.kind == "failover" and bool(s.test)
        target = failover_target(spec, step)
        if not test:
            state = await observe(spec, [s.vm])
            primary = next((c for c in state.of(s.vm) if c.mode == "Primary"), None)
            if primary is not None and primary.host.lower() == target.lower():
                return _Done(changed=False, detail=f"{s.vm} is primary on {primary.host} "
                             "already")
        approval = step.kind == "failover" and bool(s.approval)
        if approval:
            child = step_workflow_id(workflow.info().workflow_id, step)
            self._detail(step.key, f"approve with: hvlab approve {child}")
        arg = PlannedFailoverInput(
            spec=spec, vm=s.vm, test=test, reverse=bool(s.reverse),
            replica=None if test else target,
            approval_timeout=float(s.approval_timeout) if approval else None,
            compensate=request.compensate)
        result: PlannedFailoverResult = await self._child(
            "PlannedFailoverWorkflow", arg, step, PlannedFailoverResult,
            step_title(spec, step))
        if test:
            return _Done(changed=True, detail=f"test failover on {result.replica} done and "
                         "removed")
        return _Done(changed=True, detail=f"primary now {result.primary}, replica "
                     f"{result.replica}")

    async def _checkpoint(self, request: ExerciseInput, step: ExerciseStep) -> _Done:
        s = step.settings
        removed: list[str] = []
        if s.replace:
            removed = await self._remove_checkpoint(request.spec, s.name)
        result: CheckpointWorkflowResult = await self._child(
            "CheckpointWorkflow", CheckpointWorkflowInput(
                spec=request.spec, checkpoint=s.name, compensate=request.compensate),
            step, CheckpointWorkflowResult, step_title(request.spec, step))
        detail = f"{s.name}: taken on {', '.join(result.created) or 'no VM (all had it)'}"
        if removed:
            detail += f"; removed first on {', '.join(removed)}"
        return _Done(changed=bool(result.created), detail=detail)

    @staticmethod
    async def _remove_checkpoint(spec: LabSpec, name: str) -> list[str]:
        """Remove checkpoint ``name`` of its VMs where they run now, so it is taken again."""
        try:
            vms = checkpoint_vms(spec, name)
        except ValueError as exc:
            raise invalid(str(exc)) from None
        state = await observe(spec, vms)
        removed: list[str] = []
        for vm in vms:
            copy = state.working(vm, spec.vm(vm).host)
            if copy is None or name not in copy.checkpoints:
                continue
            await run_activity(CheckpointActivities.remove, CheckpointInput(
                lab=spec.lab, host=copy.host, vm=vm, name=name),
                summary=f"remove checkpoint {name} of {vm} (replace)", options=COMPENSATION)
            removed.append(vm)
        return removed

    async def _reset(self, request: ExerciseInput, step: ExerciseStep) -> _Done:
        try:
            checkpoint = reset_checkpoint(request.spec, step.settings.checkpoint)
        except ValueError as exc:
            raise invalid(str(exc)) from None
        result: LabResetResult = await self._child(
            "LabResetWorkflow", LabResetInput(spec=request.spec, checkpoint=checkpoint),
            step, LabResetResult, step_title(request.spec, step))
        detail = f"restored {len(result.restored)} VMs to {checkpoint}"
        if result.not_restored:
            detail += f"; not restored: {', '.join(sorted(result.not_restored))}"
        return _Done(changed=True, detail=detail)

    async def _converge(self, request: ExerciseInput, step: ExerciseStep) -> _Done:
        result: LabConvergeResult = await self._child(
            "LabConvergeWorkflow", LabConvergeInput(spec=request.spec,
                                                    compensate=request.compensate),
            step, LabConvergeResult, step_title(request.spec, step))
        moved = [f"{vm} {where}" for vm, where in result.moved.items()]
        detail = "; ".join([*moved, *(f"{vm} failed back" for vm in result.failed_back)])
        return _Done(changed=bool(result.moved or result.failed_back),
                     detail=detail or "everything was where the lab file says")

    async def _down(self, request: ExerciseInput, step: ExerciseStep) -> _Done:
        result: LabTeardownResult = await self._child(
            "LabTeardownWorkflow", LabTeardownInput(spec=request.spec), step,
            LabTeardownResult, step_title(request.spec, step))
        return _Done(changed=bool(result.removed),
                     detail=f"{len(result.removed)} units removed")

    @staticmethod
    async def _verify(request: ExerciseInput, step: ExerciseStep) -> _Done:
        spec = request.spec
        now = placed(spec, await observe(spec))
        wait = step.verify.timeout if step.verify is not None else 900.0
        checks = ConnectivityInput.from_spec(now).model_copy(
            update={"lab": spec.lab, "timeout_seconds": wait})
        skipped = [f"{nat.name} tcp {f.external_port}" for nat in now.nat for f in nat.forwards
                   if split_forward(now, nat, f)]
        if checks.checks:
            # it polls until its deadline, heartbeating: a remote step's options, not a probe's
            await run_activity(GuestActivities.check_connectivity, checks,
                               summary=step_title(spec, step), options=REMOTE_STEP)
        detail = f"{len(checks.checks)} checks passed"
        if skipped:
            detail += f"; not checked (router and server on different hosts): " \
                      f"{', '.join(skipped)}"
        return _Done(changed=False, detail=detail)

    async def _wait_approval(self, request: ExerciseInput, step: ExerciseStep) -> _Done:
        s = step.settings
        parent = workflow.info().workflow_id
        self._detail(step.key, f"approve with: hvlab approve {parent}")
        self._approval = None
        self._waiting = True
        try:
            await workflow.wait_condition(
                lambda: self._approval is not None,
                timeout=timedelta(seconds=s.timeout) if s.timeout else None)
        except TimeoutError:
            raise ApplicationError(
                f"no approval for step {step.key} within {s.timeout:g} s", type="ApprovalTimeout",
                non_retryable=True) from None
        finally:
            self._waiting = False
        assert self._approval is not None
        by = f" by {self._approval.by}" if self._approval.by else ""
        return _Done(changed=False, detail=f"approved{by}")


def _cause(exc: BaseException) -> str:
    """The innermost error of a failed step (the host's or the workflow's own message)."""
    cause: BaseException = exc
    while isinstance(cause, ChildWorkflowError | ActivityError) and cause.cause is not None:
        cause = cause.cause
    if isinstance(cause, ApplicationError) and cause.type:
        return f"{cause.type}: {cause.message}"
    return str(cause) or type(cause).__name__


def _cancelled(exc: BaseException) -> bool:
    return isinstance(exc, asyncio.CancelledError) or (
        isinstance(exc, ChildWorkflowError) and isinstance(exc.cause, CancelledError))
