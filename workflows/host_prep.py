"""The ``host-prep`` unit kind: one Hyper-V host from bare Windows Server to ready for VMs.

HostPrepWorkflow: DNS at the DC, domain join (+ reboot and wait), Hyper-V role (+ reboot and
wait for vmms), folders, default paths, switches. Reboots are steps of their own. On failure or
cancellation the switches this run created are removed again (unless compensation is off).
``hvlab down`` removes the switches; domain membership, the role, folders and default paths stay.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities import host as commands
    from activities.host import HostActivities
    from activities.models import (
        DefaultPathsInput,
        DnsInput,
        DomainJoinInput,
        FoldersInput,
        HostInput,
        HyperVRoleInput,
        RemoveSwitchInput,
        StepResult,
        SwitchInput,
        WaitReadyInput,
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
        plan_step,
        prefixed,
        steps_of,
    )
    from workflows.options import COMPENSATION, REBOOT_WAIT
    from workflows.progress import Progress, Tracker
    from workflows.saga import Saga
    from workflows.steps import A, ActivityMethod, step


class Step(StepName):
    DNS = "dns"
    DOMAIN_JOIN = "domain-join"
    REBOOT_JOIN = "reboot-join"
    HYPERV_ROLE = "hyperv-role"
    REBOOT_ROLE = "reboot-role"
    FOLDER = "folder"
    DEFAULT_PATHS = "default-paths"
    SWITCH = "switch"


def plan(spec: LabSpec, before: list[PlanUnit]) -> Iterable[PlanUnit]:
    for host in spec.hyperv_hosts:
        h = host.name
        steps = []
        if host.join_domain:
            steps += [
                plan_step(Step.DNS, f"point DNS at {spec.domain.dc}", h),
                plan_step(Step.DOMAIN_JOIN, f"join {spec.domain.fqdn} (no -Restart)", h),
                plan_step(Step.REBOOT_JOIN, "reboot and wait until WinRM answers", h),
            ]
        steps += [
            plan_step(Step.HYPERV_ROLE, "install Hyper-V with management tools", h),
            plan_step(Step.REBOOT_ROLE, "reboot and wait until vmms answers", h),
        ]
        steps += [plan_step(Step.FOLDER.of(f), f"folder {f}", h) for f in host.folders]
        if host.paths.virtual_machines or host.paths.virtual_hard_disks:
            steps.append(plan_step(Step.DEFAULT_PATHS, "host default VM and VHD paths", h))
        steps += [plan_step(Step.SWITCH.of(s.name), f"{s.type} switch {s.name}", h)
                  for s in host.switches]
        yield PlanUnit(id=f"host-prep:{h}", kind="host-prep", target=h, phase=1, hosts=[h],
                       depends_on=[], steps=steps)


def step_commands(spec: LabSpec, unit: PlanUnit, step: PlanStep) -> list[Emitted]:
    h = spec.host(unit.target)
    name, arg = Step.parse(step.name)
    if name is Step.DNS:
        dc = spec.host(spec.domain.dc).connection.address
        return [commands.ip_address_command(h.connection.address),
                commands.set_dns_command(f"<adapter of {h.connection.address}>", [dc])]
    if name is Step.DOMAIN_JOIN:
        return [commands.add_computer_command(DomainJoinInput.from_spec(spec, h.name))]
    if name in (Step.REBOOT_JOIN, Step.REBOOT_ROLE):
        return [commands.restart_command()]
    if name is Step.HYPERV_ROLE:
        return [commands.install_feature_command(HyperVRoleInput(host=h.name))]
    if name is Step.FOLDER:
        return [commands.new_folders_command([arg])]
    if name is Step.DEFAULT_PATHS:
        return [commands.set_vmhost_command(h.paths.virtual_machines,
                                            h.paths.virtual_hard_disks)]
    switch = next(s for s in h.switches if s.name == arg)
    return [commands.new_switch_command(SwitchInput.from_spec(h.name, switch))]


def undo(spec: LabSpec, unit: PlanUnit) -> list[Undo]:
    """The host's switches, newest first."""
    host = spec.host(unit.target)
    return [(HostActivities.remove_switch, RemoveSwitchInput(
        lab=spec.lab, host=host.name, name=s.name, management_address=host.connection.address),
        (host.name,)) for s in reversed(host.switches)]


def switches(undos: list[Undo], parts: list[str]) -> list[Undo]:
    """The named switches' undo steps (parts are switch names)."""
    named = {p.lower() for p in parts}
    return [u for u in undos if isinstance(u[1], RemoveSwitchInput) and u[1].name.lower() in named]


_KEPT = {Step.DNS: "DNS client pointed at the DC", Step.DOMAIN_JOIN: "domain membership (reboot)",
         Step.HYPERV_ROLE: "Hyper-V role (reboot)", Step.DEFAULT_PATHS: "default paths"}


def changed(spec: LabSpec, unit: PlanUnit, result: Any) -> Parts:
    """A cancelled build removes the switches this run created; the DNS setting, domain
    membership, Hyper-V role, folders and default paths stay (undoing the first three needs
    reboots, and the next build needs them again), and the account says so."""
    done = done_steps(result)
    fields: dict[str, Any] = result if isinstance(result, dict) else {}
    created = [c.split(":", 1)[1] for c in fields.get("changed", [])
               if str(c).startswith(f"{Step.SWITCH}:")]
    kept = [what for step, what in _KEPT.items() if step in done]
    kept += ["folders"] if any(n.startswith(Step.FOLDER) for n in done) else []
    stays = [f"{unit.target}: {', '.join(kept)} (`hvlab down` leaves it too)"] if kept else []
    return created or None, stays


class HostPrepInput(BaseModel):
    spec: LabSpec
    host: str
    compensate: bool = True


class HostPrepResult(BaseModel):
    host: str
    changed: list[str]
    progress: Progress


def _changed(result: StepResult) -> bool:
    return result.changed


@workflow.defn(name="HostPrepWorkflow")
class HostPrepWorkflow:
    def __init__(self) -> None:
        self._tracker = Tracker("HostPrep")

    @workflow.query
    def progress(self) -> Progress:
        return self._tracker.progress

    @workflow.run
    async def run(self, request: HostPrepInput) -> HostPrepResult:
        """Prepare the host; undo created switches on failure."""
        spec, host = request.spec, request.spec.host(request.host)
        self._tracker = Tracker("HostPrep", host.name)
        self._lab, self._host = spec.lab, host.name
        self._planned = steps_of(plan(spec, []), f"host-prep:{host.name}")
        self._tracker.plan(*self._planned)
        saga = Saga(f"HostPrep {host.name}", enabled=request.compensate)
        changed: list[str] = []
        try:
            await self._prepare(request, saga, changed)
        except BaseException:
            await saga.compensate()
            raise
        self._tracker.finish()
        return HostPrepResult(host=host.name, changed=changed, progress=self._tracker.progress)

    async def _step(self, name: str | list[str], title: str, activity: ActivityMethod[A],
                    arg: A) -> StepResult:
        async def work() -> StepResult:
            return await step(activity, arg, summary=f"{self._host}: {title}")

        return await self._tracker.run(name, title, work, _changed)

    async def _reboot(self, name: str, service: str | None) -> None:
        lab, host = self._lab, self._host

        async def work() -> StepResult:
            rebooted = await step(
                HostActivities.reboot, HostInput(lab=lab, host=host),
                summary=f"{host}: reboot",
            )
            before = rebooted.observed.get("last_boot_before") or None
            wait = WaitReadyInput(lab=lab, host=host, service=service, interval_seconds=1.0)
            if workflow.patched("wait-for-new-boot"):  # histories before it waited without it
                wait = wait.model_copy(update={"booted_before": before})
            return await step(HostActivities.wait_ready, wait, summary=f"{host}: wait until ready",
                              options=REBOOT_WAIT)

        await self._tracker.run(name, "reboot and wait until ready", work)

    async def _prepare(self, request: HostPrepInput, saga: Saga, changed: list[str]) -> None:
        spec, host, lab = request.spec, request.spec.host(request.host), request.spec.lab
        if host.join_domain:
            await self._step(Step.DNS, "point DNS at the DC", HostActivities.dns,
                             DnsInput.from_spec(spec, host.name).model_copy(update={"lab": lab}))
            joined = await self._step(
                Step.DOMAIN_JOIN, "join the domain", HostActivities.domain_join,
                DomainJoinInput.from_spec(spec, host.name).model_copy(update={"lab": lab}))
            if joined.observed.get("restart_needed"):
                changed.append(Step.DOMAIN_JOIN)
                await self._reboot(Step.REBOOT_JOIN, None)
            else:
                self._tracker.skip(Step.REBOOT_JOIN, "reboot", "no restart pending")
        role = await self._step(Step.HYPERV_ROLE, "install Hyper-V", HostActivities.hyperv_role,
                                HyperVRoleInput(lab=lab, host=host.name))
        if role.observed.get("restart_needed"):
            changed.append(Step.HYPERV_ROLE)
            await self._reboot(Step.REBOOT_ROLE, "vmms")
        else:
            self._tracker.skip(Step.REBOOT_ROLE, "reboot", "no restart pending")
        if host.folders:
            await self._step(prefixed(self._planned, Step.FOLDER), "create folders",
                             HostActivities.folders,
                             FoldersInput.from_spec(host).model_copy(update={"lab": lab}))
        if host.paths.virtual_machines or host.paths.virtual_hard_disks:
            await self._step(Step.DEFAULT_PATHS, "set default paths", HostActivities.default_paths,
                             DefaultPathsInput.from_spec(host).model_copy(update={"lab": lab}))
        for switch in host.switches:
            await self._switch(SwitchInput.from_spec(host.name, switch).model_copy(
                update={"lab": lab}), saga, changed)

    async def _switch(self, request: SwitchInput, saga: Saga, changed: list[str]) -> None:
        undo = RemoveSwitchInput(lab=request.lab, host=request.host, name=request.name)

        async def remove() -> object:
            return await step(
                HostActivities.remove_switch, undo, summary=f"undo switch {request.name}",
                options=COMPENSATION,
            )

        result = await self._step(Step.SWITCH.of(request.name), f"switch {request.name}",
                                  HostActivities.switch, request)
        if result.changed:
            saga.add(f"remove switch {request.name}", remove)
            changed.append(Step.SWITCH.of(request.name))


KIND = UnitKind(
    name="host-prep", workflow=HostPrepWorkflow, plan=plan,
    unit_input=lambda spec, unit, compensate: HostPrepInput(spec=spec, host=unit.target,
                                                            compensate=compensate),
    commands=step_commands, undo=undo, parts=switches, changed=changed,
    left_in_place="domain membership, Hyper-V role, folders and default paths stay",
    reconverge=True)
