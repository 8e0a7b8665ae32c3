"""HostPrepWorkflow: one Hyper-V host from bare Windows Server to ready for VMs.

DNS at the DC, domain join (+ reboot and wait), Hyper-V role (+ reboot and wait for vmms),
folders, default paths, switches. Reboots are steps of their own. On failure or cancellation
the switches this run created are removed again (unless compensation is off).
"""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
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
    from hvlab.plan import prefixed, unit_steps
    from hvlab.spec import LabSpec
    from workflows.options import COMPENSATION, REBOOT_WAIT
    from workflows.progress import Progress, Tracker
    from workflows.saga import Saga
    from workflows.steps import A, ActivityMethod, step


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
        self._planned = unit_steps(spec, f"host-prep:{host.name}")
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
            await self._step("dns", "point DNS at the DC", HostActivities.dns,
                             DnsInput.from_spec(spec, host.name).model_copy(update={"lab": lab}))
            joined = await self._step(
                "domain-join", "join the domain", HostActivities.domain_join,
                DomainJoinInput.from_spec(spec, host.name).model_copy(update={"lab": lab}))
            if joined.observed.get("restart_needed"):
                changed.append("domain-join")
                await self._reboot("reboot-join", None)
            else:
                self._tracker.skip("reboot-join", "reboot", "no restart pending")
        role = await self._step("hyperv-role", "install Hyper-V", HostActivities.hyperv_role,
                                HyperVRoleInput(lab=lab, host=host.name))
        if role.observed.get("restart_needed"):
            changed.append("hyperv-role")
            await self._reboot("reboot-role", "vmms")
        else:
            self._tracker.skip("reboot-role", "reboot", "no restart pending")
        if host.folders:
            await self._step(prefixed(self._planned, "folder"), "create folders",
                             HostActivities.folders,
                             FoldersInput.from_spec(host).model_copy(update={"lab": lab}))
        if host.paths.virtual_machines or host.paths.virtual_hard_disks:
            await self._step("default-paths", "set default paths", HostActivities.default_paths,
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

        result = await self._step(f"switch:{request.name}", f"switch {request.name}",
                                  HostActivities.switch, request)
        if result.changed:
            saga.add(f"remove switch {request.name}", remove)
            changed.append(f"switch:{request.name}")
