"""LabResetWorkflow: put the whole lab back to one named checkpoint, then re-converge it.

Reference §14: every VM of the checkpoint is turned off first (no VM keeps running against
peers that are being rolled back), then each one's checkpoint is applied, then the VMs start in
dependency order: the domain controller when it is a VM of the lab (waited for until it
answers), the NAT router VMs, then the rest in file order. Last, the lab file's build runs again
as a child LabBuildWorkflow, so what a rollback lost (AD objects and delegation after a DC
rollback, share grants) comes back; every build step probes first, so converged parts cost
only their probes. There is no compensation: the reset is itself the repair, and running it
again is the way out of a failed one. A reset that stops before every VM is restored and
started fails as ResetIncomplete, naming the cause and the state each VM is left in.
Cancelled, its memo says which VMs it had turned off, restored and not started again
(:mod:`workflows.outcome`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import timedelta

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.checkpoint import CheckpointActivities
    from activities.guest import GuestActivities
    from activities.models import CheckpointInput, GuestWaitInput, StepResult, VmInput, VmStopInput
    from activities.vm import VmActivities
    from hvlab.spec import LabSpec, OsFamily
    from workflows.checkpoint import checkpoint_vms, invalid_input
    from workflows.kinds import build_plan, kind
    from workflows.lab_build import LabBuildInput, LabBuildResult
    from workflows.observed import LabState, observe, placed
    from workflows.options import REBOOT_WAIT
    from workflows.outcome import Compensation, record
    from workflows.progress import Progress, Tracker
    from workflows.steps import A, ActivityMethod, step


class LabResetInput(BaseModel):
    spec: LabSpec
    checkpoint: str = Field(default="", description="empty: the lab file's reset.checkpoint")
    compensate: bool = Field(default=False, description="passed to the re-converging build")
    only: list[str] = Field(default_factory=list, description=(
        "unit kinds to re-converge; empty: every kind of the plan that has a workflow"))


class LabResetResult(BaseModel):
    lab: str
    checkpoint: str
    restored: list[str]
    started: list[str]
    converged: dict[str, str] = Field(default_factory=dict, description="build unit states")
    not_converged: list[str] = Field(default_factory=list, description=(
        "unit kinds of the plan that no workflow builds yet, so the reset did not re-run them"))
    not_restored: dict[str, str] = Field(default_factory=dict, description=(
        "VMs left as they are, with the reason (e.g. their checkpoint is on the Replica side "
        "since a planned failover)"))
    progress: Progress


def reset_checkpoint(spec: LabSpec, name: str = "") -> str:
    """The checkpoint a reset restores: ``name``, else the lab file's ``reset.checkpoint``, else
    its only checkpoint; ValueError when none or unknown."""
    chosen = name or (spec.reset.checkpoint if spec.reset else "")
    if not chosen and len(spec.checkpoints) == 1:
        chosen = spec.checkpoints[0].name
    if not chosen:
        raise ValueError(f"lab {spec.lab}: name the checkpoint to restore (the lab file has "
                         f"{len(spec.checkpoints)} checkpoints and no reset.checkpoint)")
    checkpoint_vms(spec, chosen)
    return chosen


def start_order(spec: LabSpec, vms: list[str]) -> list[str]:
    """``vms`` in the order a reset starts them: the DC (when it is one of them), the NAT
    router VMs, then the others in lab-file order."""
    position = {v.name.lower(): i for i, v in enumerate(spec.vms)}
    ordered = sorted(vms, key=lambda n: position.get(n.lower(), len(position)))
    dc = [n for n in ordered if n.lower() == spec.domain.dc.lower()]
    routers = {(nat.vm or "").lower() for nat in spec.nat}
    first = dc + [n for n in ordered if n.lower() in routers and n not in dc]
    return first + [n for n in ordered if n not in first]


def restorable(spec: LabSpec, state: LabState, vms: list[str],
               checkpoint: str) -> tuple[LabSpec, dict[str, str]]:
    """The lab placed as observed, and the VMs whose checkpoint cannot be applied where they
    run now (with the reason). A VM runs where its copy is not a Replica; after a planned
    failover the checkpoint stays with the old primary's copy, which is the Replica now, and
    applying it there would not change the running VM."""
    kept: dict[str, str] = {}
    missing: list[str] = []
    for vm in vms:
        copy = state.working(vm, spec.vm(vm).host)
        if copy is not None and checkpoint in copy.checkpoints:
            continue
        elsewhere = [c.host for c in state.of(vm) if checkpoint in c.checkpoints]
        if copy is not None and elsewhere:
            kept[vm] = (f"checkpoint {checkpoint!r} is on {', '.join(elsewhere)} (the Replica "
                        f"side since a failover); {vm} runs on {copy.host}: fail it back to "
                        "restore it, or take the checkpoint again there")
        else:
            missing.append(vm)
    if missing:
        raise invalid_input(f"no Hyper-V host has checkpoint {checkpoint!r} of "
                            f"{', '.join(missing)}")
    return placed(spec, state), kept


def converge_kinds(spec: LabSpec, only: list[str]) -> tuple[list[str], list[str]]:
    """(kinds the reset re-runs, plan kinds it leaves out because no workflow builds them)."""
    kinds = list(dict.fromkeys(u.kind for u in build_plan(spec).order()))
    if only:
        return [k for k in kinds if k in only], []
    # What a rollback loses lives in AD and on the hosts (computer objects, KCD, share ACLs,
    # migration settings). VMs were just restored as they were at the checkpoint: redeploying
    # them, re-checking NAT paths or re-enabling replication would undo the class's moves.
    wanted = [k for k in kinds if kind(k).reconverge]
    return wanted, [k for k in kinds if k not in wanted]


def _changed(result: StepResult) -> bool:
    return result.changed


@workflow.defn(name="LabResetWorkflow")
class LabResetWorkflow:
    def __init__(self) -> None:
        self._tracker = Tracker("LabReset")

    @workflow.query
    def progress(self) -> Progress:
        return self._tracker.progress

    @workflow.run
    async def run(self, request: LabResetInput) -> LabResetResult:
        """Reset the lab; cancelled, record what the reset left as it was at the cancel."""
        try:
            return await self._reset(request)
        except BaseException:
            if workflow.cancellation_reason() is not None:
                self._cancelled()
            raise

    def _cancelled(self) -> None:
        steps = self._tracker.progress.steps
        done = [s.title for s in steps if s.state in ("done", "unchanged")
                and not s.name.startswith("start:")]
        unstarted = [s.name.split(":", 1)[1] for s in steps
                     if s.name.startswith("start:") and s.state not in ("done", "unchanged")]
        kept = [*done, *([f"not started again: {', '.join(unstarted)}"] if unstarted else [])]
        record(Compensation(kept=kept, next="a reset has no undo; run `hvlab reset FILE` "
                                             "again to finish it"))

    async def _reset(self, request: LabResetInput) -> LabResetResult:
        """Stop all, restore all, start in order, re-converge."""
        spec = request.spec
        try:
            name = reset_checkpoint(spec, request.checkpoint)
        except ValueError as exc:
            raise invalid_input(str(exc)) from None
        vms = checkpoint_vms(spec, name)
        kept: dict[str, str] = {}
        if workflow.patched("observe-lab"):
            state = await observe(spec, vms)
            spec, kept = restorable(spec, state, vms, name)
            vms = [v for v in vms if v not in kept]
        else:
            spec = await self._locate(spec, vms, name)
        kinds, left_out = converge_kinds(spec, request.only)
        order = start_order(spec, vms + list(kept))
        self._tracker = Tracker("LabReset", f"{spec.lab} to {name}")
        self._tracker.plan(*[(f"stop:{v}", f"turn off {v}") for v in vms],
                           *[(f"restore:{v}", f"restore {name} on {v}") for v in vms],
                           *[(f"start:{v}", f"start {v}") for v in order],
                           ("converge", "re-converge the lab file"))
        try:
            await self._all([self._vm_step(
                f"stop:{v}", f"turn off {v}", VmActivities.stop,
                VmStopInput(lab=spec.lab, host=spec.vm(v).host, vm=v))
                             for v in vms])
            restored = await self._all([self._restore(v, name, spec) for v in vms])
            started = await self._start(spec, order)
        except ActivityError as error:
            if not workflow.patched("reset-reports-vm-states"):
                raise
            raise await self._halted(spec, vms, name, error) from error
        build = await self._converge(spec, request.compensate, kinds, left_out)
        self._tracker.finish()
        return LabResetResult(
            lab=spec.lab, checkpoint=name, restored=[v for v, r in zip(vms, restored, strict=True)
                                                     if r.changed],
            started=started, converged=build.units if build else {}, not_converged=left_out,
            not_restored=kept, progress=self._tracker.progress)

    async def _locate(self, spec: LabSpec, vms: list[str], checkpoint: str) -> LabSpec:
        """The lab with each VM placed on the host that holds its checkpoint: VMs move (live
        migration, failover), and the checkpoint travels with the VM."""
        hosts = [h.name for h in spec.hyperv_hosts]
        probes = [(vm, host) for vm in vms for host in hosts]
        found = await self._all([step(CheckpointActivities.find, CheckpointInput(
            lab=spec.lab, host=host, vm=vm, name=checkpoint), summary=f"find {vm} on {host}")
            for vm, host in probes])
        placed: dict[str, str] = {}
        for (vm, host), result in zip(probes, found, strict=True):
            if result.observed.get("exists") and (vm not in placed or host == spec.vm(vm).host):
                placed[vm] = host
        missing = [vm for vm in vms if vm not in placed]
        if missing:
            raise invalid_input(f"no Hyper-V host has checkpoint {checkpoint!r} of "
                                f"{', '.join(missing)}")
        moved = [v.model_copy(update={"host": placed.get(v.name, v.host)}) for v in spec.vms]
        return spec.model_copy(update={"vms": moved})

    async def _halted(self, spec: LabSpec, vms: list[str], checkpoint: str,
                      error: ActivityError) -> ApplicationError:
        """The failure of a reset that stopped before every VM was restored and started: the
        cause, and the state each VM is left in (read-only probes where the reset put it)."""
        probes = await asyncio.gather(*[step(VmActivities.exists, VmInput(
            lab=spec.lab, host=spec.vm(v).host, vm=v), summary=f"state of {v}") for v in vms],
            return_exceptions=True)
        states: dict[str, str] = {}
        for vm, probe in zip(vms, probes, strict=True):
            host = spec.vm(vm).host
            if isinstance(probe, StepResult):
                state = probe.observed.get("state") if probe.observed.get("exists") else "absent"
                states[vm] = f"{state} on {host}"
            else:
                states[vm] = f"unknown on {host} ({probe})"
        cause = error.cause if error.cause is not None else error
        left = "; ".join(f"{vm} {where}" for vm, where in states.items())
        return ApplicationError(
            f"reset of {spec.lab} to {checkpoint!r} stopped: {cause}. VMs now: {left}. "
            f"Run the reset again once the cause is fixed.",
            {"states": states}, type="ResetIncomplete", non_retryable=True)

    @staticmethod
    async def _all(steps: list[Awaitable[StepResult]]) -> list[StepResult]:
        """Run the steps at once; wait for all of them, then raise the first failure."""
        outcomes = await asyncio.gather(*steps, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return [o for o in outcomes if isinstance(o, StepResult)]

    async def _vm_step(self, name: str, title: str, activity: ActivityMethod[A],
                       arg: A) -> StepResult:
        async def work() -> StepResult:
            return await step(activity, arg, summary=title)

        return await self._tracker.run(name, title, work, _changed)

    async def _restore(self, vm: str, checkpoint: str, spec: LabSpec) -> StepResult:
        arg = CheckpointInput(lab=spec.lab, host=spec.vm(vm).host, vm=vm, name=checkpoint)
        title = f"restore {checkpoint} on {vm}"

        async def work() -> StepResult:
            return await step(CheckpointActivities.restore, arg, summary=title)

        return await self._tracker.run(f"restore:{vm}", title, work, _changed)

    async def _start(self, spec: LabSpec, order: list[str]) -> list[str]:
        started: list[str] = []
        for name in order:
            vm = spec.vm(name)
            if not vm.start:
                self._tracker.skip(f"start:{name}", f"start {name}", "start: false in the lab file")
                continue
            await self._vm_step(f"start:{name}", f"start {name}", VmActivities.start,
                                VmInput(lab=spec.lab, host=vm.host, vm=name))
            started.append(name)
            if name.lower() == spec.domain.dc.lower() and vm.guest.os is OsFamily.windows:
                await self._wait_dc(spec, name)
        return started

    async def _wait_dc(self, spec: LabSpec, name: str) -> None:
        """The DC answers before the members start (they need it for Kerberos and DNS)."""
        arg = GuestWaitInput.from_spec(spec.vm(name)).model_copy(update={"lab": spec.lab})

        async def work() -> StepResult:
            return await step(GuestActivities.wait_ready, arg, summary=f"wait for {name}",
                              options=REBOOT_WAIT)

        await self._tracker.run(f"ready:{name}", f"wait until {name} answers", work)

    async def _converge(self, spec: LabSpec, compensate: bool, kinds: list[str],
                        left_out: list[str]) -> LabBuildResult | None:
        title = "re-converge the lab file"
        if not kinds:
            self._tracker.skip("converge", title, "no unit kind to re-run")
            return None
        if left_out:
            workflow.logger.warning("reset of %s: no workflow re-converges %s", spec.lab,
                                    ", ".join(left_out))

        async def work() -> LabBuildResult:
            result = await workflow.execute_child_workflow(
                "LabBuildWorkflow", LabBuildInput(spec=spec, compensate=compensate, only=kinds),
                id=f"{workflow.info().workflow_id}/converge", result_type=LabBuildResult,
                static_summary=f"re-converge {spec.lab}", execution_timeout=timedelta(hours=12))
            assert isinstance(result, LabBuildResult)
            return result

        return await self._tracker.run("converge", title, work)
