"""PlannedFailoverWorkflow: planned failover of a replicated VM (reference §13.3).

Stop the primary (the guest is shut down, Stop-VM without -TurnOff, and turned off only when
it is not off after ``shutdown_seconds``: patch ``graceful-stop``), prepare on the primary
(Start-VMFailover -Prepare), optionally wait for an operator's approval (the ``approve``
Update, with a timeout), fail over on the replica, complete (Complete-VMFailover), reverse the
replication, connect the NICs and start the VM on the new primary, and wait until the
reversed replication is Replicating/Normal.

Until the failover is completed (or reversed) a failure or cancel is undone on the right side:
``replica.stop_failover`` runs Stop-VMFailover on the replica when it failed over, then on the
primary when it is prepared; then the original primary is started again. An approval that does
not come in time cancels the prepared failover the same way and fails the workflow. After
completion nothing can be cancelled: fail back with another planned failover.

``test=True``: a test failover on the replica instead ("<vm> - Test", not connected), started,
kept until approved when an approval step is asked for (or its timeout), then removed with
Stop-VMFailover. The primary keeps running throughout.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.models import (
        ReplicationInput,
        ReplicaVmInput,
        ReplicaWaitInput,
        StepResult,
        VmInput,
        VmNicInput,
        VmStopInput,
    )
    from activities.replica import ReplicaActivities
    from activities.vm import VmActivities
    from hvlab.spec import LabSpec
    from workflows.observed import observe
    from workflows.options import COMPENSATION, LONG_JOB, PROBE
    from workflows.progress import Progress, Tracker
    from workflows.replication import known_vm, replication_input
    from workflows.saga import Saga
    from workflows.steps import step, tracked


class PlannedFailoverInput(BaseModel):
    spec: LabSpec
    vm: str
    primary: str | None = Field(default=None, description="primary host (else the lab file's)")
    replica: str | None = Field(default=None, description="replica host (else the lab file's)")
    test: bool = False
    reverse: bool = True
    complete: bool = True
    approval_timeout: float | None = Field(
        default=None, gt=0, description="seconds to wait for `approve`; None: no approval step")
    compensate: bool = True
    poll_seconds: float = Field(default=5.0, gt=0)
    shutdown_seconds: int = Field(
        default=300, ge=0, le=1200,
        description="seconds the primary's guest gets to shut down before it is turned off")


class Approval(BaseModel):
    by: str = ""
    note: str = ""


class PlannedFailoverResult(BaseModel):
    vm: str
    primary: str = Field(description="the primary after this run")
    replica: str
    test: bool
    approved_by: str | None = None
    state: str | None = None
    progress: Progress


def failover_id(lab: str, vm: str, test: bool = False) -> str:
    return f"{lab}-failover-test-{vm}" if test else f"{lab}-failover-{vm}"


def approval_expired(rep: ReplicationInput, seconds: float) -> ApplicationError:
    return ApplicationError(
        f"no approval for the failover of {rep.vm} within {seconds:g} s: the prepared failover "
        f"was cancelled on {rep.primary} (Stop-VMFailover) and {rep.vm} runs there again",
        {"vm": rep.vm, "primary": rep.primary, "timeout_seconds": seconds},
        type="ApprovalTimeout", non_retryable=True)


@workflow.defn(name="PlannedFailoverWorkflow")
class PlannedFailoverWorkflow:
    def __init__(self) -> None:
        self._tracker = Tracker("PlannedFailover")
        self._waiting = False
        self._was_running = False
        self._approval: Approval | None = None

    @workflow.query
    def progress(self) -> Progress:
        return self._tracker.progress

    @workflow.update
    async def approve(self, approval: Approval) -> str:
        """Let a waiting failover go on."""
        self._approval = approval
        return f"approved{' by ' + approval.by if approval.by else ''}"

    @approve.validator
    def _only_while_waiting(self, approval: Approval) -> None:
        if not self._waiting:
            raise ValueError("this failover is not waiting for an approval")

    @workflow.run
    async def run(self, request: PlannedFailoverInput) -> PlannedFailoverResult:
        """Fail the VM over (or test it); undo on failure or cancel until completion."""
        if workflow.patched("observe-lab"):
            request = await self._observed(request)
        rep = replication_input(request.spec, request.vm, request.replica, request.primary)
        self._request, self._rep = request, rep
        self._tracker = Tracker("PlannedFailover", f"{rep.vm} {rep.primary} -> {rep.replica}")
        self._tracker.plan(*(self._test_steps() if request.test else self._steps()))
        saga = Saga(f"PlannedFailover {rep.vm}", enabled=request.compensate)
        try:
            if request.test:
                result = await self._test(saga)
            else:
                result = await self._failover(saga)
        except BaseException:
            await saga.compensate()
            raise
        self._tracker.finish()
        return result

    @staticmethod
    async def _observed(request: PlannedFailoverInput) -> PlannedFailoverInput:
        """Primary and replica as they are now: after a failover the roles are reversed, so
        the next failover of the same VM is the failback."""
        if request.primary is not None and request.replica is not None:
            return request
        known_vm(request.spec, request.vm)
        state = await observe(request.spec, [request.vm])
        primary = next((c for c in state.of(request.vm) if c.mode == "Primary"), None)
        replica = state.replica(request.vm)
        if primary is None or replica is None:
            found = ", ".join(f"{c.host}: {c.mode or 'not replicated'}"
                              for c in state.of(request.vm)) or "no host holds it"
            raise ApplicationError(
                f"{request.vm} is not a replicated VM with a primary and a replica ({found}); "
                f"replicate it first (hvlab replicate)", {"copies": found},
                type="PreconditionFailed", non_retryable=True)
        if request.replica is not None and request.replica.lower() == primary.host.lower():
            raise ApplicationError(
                f"{request.vm} runs on {primary.host} already (its replica is {replica.host})",
                type="PreconditionFailed", non_retryable=True)
        if request.replica is not None and request.replica.lower() != replica.host.lower():
            raise ApplicationError(
                f"{request.vm} replicates to {replica.host}, not {request.replica}",
                type="InvalidParameter", non_retryable=True)
        return request.model_copy(update={"primary": primary.host, "replica": replica.host})

    def _steps(self) -> list[tuple[str, str]]:
        request, rep = self._request, self._rep
        steps = [("stop", f"stop {rep.vm} on {rep.primary}"),
                 ("prepare", f"prepare on {rep.primary}")]
        if request.approval_timeout is not None:
            steps.append(("approval", "wait for approval"))
        steps.append(("failover", f"fail over on {rep.replica}"))
        if request.complete:
            steps.append(("complete", "complete the failover"))
        if request.reverse:
            steps.append(("reverse", f"reverse replication to {rep.primary}"))
        steps += [("nics", "connect NICs"), ("start", f"start {rep.vm} on {rep.replica}")]
        if request.reverse:
            steps.append(("wait-normal", "wait Replicating / Normal"))
        return steps

    def _test_steps(self) -> list[tuple[str, str]]:
        steps = [("test-failover", f"test failover on {self._rep.replica}"),
                 ("start-test", "start the test VM")]
        if self._request.approval_timeout is not None:
            steps.append(("approval", "wait for approval"))
        return [*steps, ("cleanup", "remove the test VM")]

    # -- planned failover ----------------------------------------------------------------
    def _vm(self, host: str, vm: str | None = None) -> VmInput:
        return VmInput(lab=self._rep.lab, host=host, vm=vm or self._rep.vm)

    async def _failover(self, saga: Saga) -> PlannedFailoverResult:
        request, rep = self._request, self._rep
        before = await step(VmActivities.exists, self._vm(rep.primary), options=PROBE,
                            summary=f"is {rep.vm} running on {rep.primary}?")
        self._was_running = before.observed.get("state") == "Running"
        saga.add(f"start {rep.vm} on {rep.primary}", self._restart_primary)
        saga.add("Stop-VMFailover", self._stop_failover)
        stop = VmStopInput(lab=rep.lab, host=rep.primary, vm=rep.vm)  # turned off at once
        if workflow.patched("graceful-stop"):  # shut the guest down, turn off after a timeout
            stop = stop.model_copy(update={"shutdown_seconds": request.shutdown_seconds})
        await tracked(self._tracker, "stop", f"stop {rep.vm} on {rep.primary}", VmActivities.stop,
                      stop)
        await tracked(self._tracker, "prepare", f"prepare on {rep.primary}",
                      ReplicaActivities.prepare_failover, ReplicaVmInput(
                          lab=rep.lab, host=rep.primary, vm=rep.vm))
        if request.approval_timeout is not None:
            await self._approval_gate(request.approval_timeout, saga, expire=True)
        await tracked(self._tracker, "failover", f"fail over on {rep.replica}",
                      ReplicaActivities.failover, rep)
        if request.complete:
            await tracked(self._tracker, "complete", "complete the failover",
                          ReplicaActivities.complete, ReplicaVmInput(lab=rep.lab, host=rep.replica,
                                                             vm=rep.vm))
            saga.commit(f"{rep.vm} failed over to {rep.replica} and completed "  # no undo
                        "(Complete-VMFailover cannot be undone; `hvlab failover` back)")
        state = await self._reverse(saga) if request.reverse else None
        await self._connect_nics()
        await tracked(self._tracker, "start", f"start {rep.vm} on {rep.replica}",
                      VmActivities.start, self._vm(rep.replica))
        if request.reverse:
            state = await self._wait_normal()
        return PlannedFailoverResult(
            vm=rep.vm, primary=rep.replica, replica=rep.primary, test=False,
            approved_by=self._approval.by if self._approval else None, state=state,
            progress=self._tracker.progress)

    async def _reverse(self, saga: Saga) -> str:
        rep = self._rep
        reversed_ = await tracked(self._tracker, "reverse", f"reverse replication to "
                                  f"{rep.primary}", ReplicaActivities.reverse, rep)
        saga.commit(f"replication of {rep.vm} reversed: {rep.replica} is its primary now")
        if reversed_.observed.get("initial_replication_needed"):
            back = rep.model_copy(update={
                "primary": rep.replica, "replica": rep.primary,
                "replica_server": rep.primary_server, "primary_server": rep.replica_server})
            await step(ReplicaActivities.start_initial, back, summary="initial replication back")
        return f"{reversed_.observed.get('state')}/{reversed_.observed.get('health')}"

    async def _wait_normal(self) -> str:
        """The reversed replication, seen from the new primary, is Replicating/Normal."""
        rep = self._rep
        wait = ReplicaWaitInput(lab=rep.lab, host=rep.replica, vm=rep.vm,
                                interval_seconds=self._request.poll_seconds)
        done = await tracked(self._tracker, "wait-normal", "wait Replicating / Normal",
                             ReplicaActivities.wait_state, wait, options=LONG_JOB)
        return f"{done.observed.get('state')}/{done.observed.get('health')}"

    async def _connect_nics(self) -> None:
        """The replica's NICs are not connected after failover: connect the lab file's."""
        request, rep = self._request, self._rep
        vm = request.spec.vm(rep.vm)

        async def connect() -> list[StepResult]:
            return [await step(VmActivities.nic, VmNicInput.from_spec(vm, nic).model_copy(
                update={"lab": rep.lab, "host": rep.replica, "vm": rep.vm}),
                summary=f"connect {nic.name} to {nic.switch}") for nic in vm.nics]

        await self._tracker.run("nics", "connect NICs", connect,
                                lambda results: any(r.changed for r in results))

    # -- approval ------------------------------------------------------------------------
    async def _approval_gate(self, seconds: float, saga: Saga, expire: bool) -> bool:
        """Wait for ``approve``; on timeout cancel the prepared failover and fail (``expire``)
        or just go on (test failover). True when approved."""
        self._waiting, workflow_id = True, workflow.info().workflow_id

        async def wait() -> bool:
            self._tracker.progress.phase = f"waiting for approval: hvlab approve {workflow_id}"
            try:
                await workflow.wait_condition(lambda: self._approval is not None,
                                              timeout=timedelta(seconds=seconds),
                                              timeout_summary="approval")
                return True
            except TimeoutError:
                return False
            finally:
                self._waiting = False

        approved = await self._tracker.run("approval", "wait for approval", wait)
        if approved or not expire:
            return approved
        await self._stop_failover()
        await self._restart_primary()
        saga.undos.clear()
        raise approval_expired(self._rep, seconds)

    # -- undo ----------------------------------------------------------------------------
    async def _stop_failover(self) -> None:
        await step(ReplicaActivities.stop_failover, self._rep, options=COMPENSATION,
                   summary=f"undo: Stop-VMFailover for {self._rep.vm}")

    async def _restart_primary(self) -> None:
        """Start the original primary again (when it ran before this run stopped it)."""
        if not self._was_running:
            return
        await step(VmActivities.start, self._vm(self._rep.primary), options=COMPENSATION,
                   summary=f"undo: start {self._rep.vm} on {self._rep.primary}")

    # -- test failover -------------------------------------------------------------------
    async def _test(self, saga: Saga) -> PlannedFailoverResult:
        request, rep = self._request, self._rep
        replica = ReplicaVmInput(lab=rep.lab, host=rep.replica, vm=rep.vm)

        async def cleanup() -> StepResult:
            return await step(ReplicaActivities.cleanup_test_failover, replica,
                              options=COMPENSATION, summary=f"undo: remove the test VM of {rep.vm}")

        saga.add("remove the test VM", cleanup)
        started = await tracked(self._tracker, "test-failover",
                                f"test failover on {rep.replica}", ReplicaActivities.test_failover,
                                replica)
        test_vm = str(started.observed.get("test_vm") or f"{rep.vm} - Test")
        await tracked(self._tracker, "start-test", "start the test VM", VmActivities.start,
                      self._vm(rep.replica, test_vm))
        if request.approval_timeout is not None:
            await self._approval_gate(request.approval_timeout, saga, expire=False)
        saga.undos.clear()
        await tracked(self._tracker, "cleanup", "remove the test VM",
                      ReplicaActivities.cleanup_test_failover, replica)
        return PlannedFailoverResult(
            vm=rep.vm, primary=rep.primary, replica=rep.replica, test=True,
            approved_by=self._approval.by if self._approval else None,
            state=f"test VM {test_vm} removed", progress=self._tracker.progress)
