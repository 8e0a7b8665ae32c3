"""VmDeployWorkflow: one VM from the golden disk to running.

Disk (copy or differencing), New-VM, NICs (legacy where asked, static MACs), start. The undo
(turn off, remove the VM, delete its disk) is registered before the first change, so a failure
or a cancellation at any step leaves the host as it was. vm.create marks the VM it creates as
this lab's in its Notes (``hvlab: created-by=<lab>; disk=hvlab|adopted``): ``hvlab down``
removes only marked VMs (:mod:`activities.marks`). A guest hvlab does not configure (Linux:
its golden image or DHCP gives its addresses) is waited for until each NIC reports the lab's
address through KVP (``guest.wait_address``, patch ``guest-address``).
"""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.guest import GuestActivities
    from activities.models import (
        GuestAddressInput,
        GuestIpv4Input,
        GuestRdpInput,
        GuestTelnetInput,
        GuestWaitInput,
        OfflineGuestConfigInput,
        StepResult,
        VmCreateInput,
        VmDiskInput,
        VmFirmwareInput,
        VmInput,
        VmNicInput,
        VmRemoveInput,
    )
    from activities.vm import VmActivities
    from hvlab.plan import unit_steps
    from hvlab.spec import LabSpec, OsFamily, Vm
    from workflows.options import COMPENSATION
    from workflows.progress import Progress, Tracker
    from workflows.saga import Saga
    from workflows.steps import A, ActivityMethod, step


class VmDeployInput(BaseModel):
    spec: LabSpec
    vm: str
    compensate: bool = True


class VmDeployResult(BaseModel):
    vm: str
    host: str
    created: bool
    progress: Progress


def _changed(result: StepResult) -> bool:
    return result.changed


@workflow.defn(name="VmDeployWorkflow")
class VmDeployWorkflow:
    def __init__(self) -> None:
        self._tracker = Tracker("VmDeploy")

    @workflow.query
    def progress(self) -> Progress:
        return self._tracker.progress

    @workflow.run
    async def run(self, request: VmDeployInput) -> VmDeployResult:
        """Deploy the VM; on failure or cancel remove what this run created."""
        spec, vm = request.spec, request.spec.vm(request.vm)
        self._tracker = Tracker("VmDeploy", vm.name)
        self._tracker.plan(*unit_steps(spec, f"vm-deploy:{vm.name}"))
        saga = Saga(f"VmDeploy {vm.name}", enabled=request.compensate)
        try:
            created = await self._deploy(spec, request.vm, saga)
        except BaseException:
            await saga.compensate()
            raise
        self._tracker.finish()
        return VmDeployResult(vm=vm.name, host=vm.host, created=created,
                              progress=self._tracker.progress)

    async def _step(self, name: str, title: str, activity: ActivityMethod[A],
                    arg: A) -> StepResult:
        async def work() -> StepResult:
            return await step(activity, arg, summary=title)

        return await self._tracker.run(name, title, work, _changed)

    async def _deploy(self, spec: LabSpec, name: str, saga: Saga) -> bool:
        vm, lab = spec.vm(name), spec.lab
        disk = VmDiskInput.from_spec(spec, vm).model_copy(update={"lab": lab})
        undo = VmRemoveInput(lab=lab, host=vm.host, vm=vm.name, disk_path=disk.path)
        probe = await step(
            VmActivities.exists, VmInput(lab=lab, host=vm.host, vm=vm.name),
            summary=f"is {vm.name} there already?",
        )
        exists = bool(probe.observed.get("exists"))
        if not exists:
            saga.add(f"remove {vm.name}", lambda: step(
                VmActivities.remove, undo, summary=f"undo {vm.name}", options=COMPENSATION))
            first = await self._step("disk", "disk from the golden image", VmActivities.disk, disk)
        else:  # its disk is attached (and may have moved with the VM): no new copy
            self._tracker.skip("disk", "disk from the golden image", "the VM exists already")
            first = StepResult(changed=False)
        # the VM's Notes mark records whether this build copied its disk (hvlab down)
        created = await self._step("create", "New-VM", VmActivities.create,
                                   VmCreateInput.from_spec(spec, vm).model_copy(
                                       update={"lab": lab, "disk_created": first.changed}))
        for nic in vm.nics:
            await self._step(f"nic:{nic.name}", f"NIC {nic.name} on {nic.switch}",
                             VmActivities.nic, VmNicInput.from_spec(vm, nic).model_copy(
                                 update={"lab": lab}))
        if vm.guest.os is OsFamily.windows_legacy:
            await self._step("offline-config", "first-boot guest configuration",
                             GuestActivities.offline_config, OfflineGuestConfigInput.from_spec(
                                 spec, vm).model_copy(update={"lab": lab}))
        firmware = VmFirmwareInput.from_spec(vm)
        # histories recorded before the firmware step went straight to start
        if firmware is not None and workflow.patched("vm-firmware"):
            await self._step("firmware", "Secure Boot", VmActivities.firmware,
                             firmware.model_copy(update={"lab": lab}))
        if vm.start:
            await self._step("start", "start", VmActivities.start,
                             VmInput(lab=lab, host=vm.host, vm=vm.name))
            if vm.guest.os is OsFamily.windows:
                await self._guest(spec, vm)
            # histories recorded before a Linux guest's address was verified end at start
            if vm.verified_nics and workflow.patched("guest-address"):
                for nic in vm.verified_nics:
                    await self._step(f"guest-address:{nic.name}", f"address on {nic.name}",
                                     GuestActivities.wait_address, GuestAddressInput.from_spec(
                                         spec, vm, nic).model_copy(update={"lab": lab}))
        return first.changed or created.changed

    async def _guest(self, spec: LabSpec, vm: Vm) -> None:
        """PowerShell Direct configuration of a Windows Server 2016+ guest."""
        lab = spec.lab
        await self._step("guest-ready", "wait for PowerShell Direct", GuestActivities.wait_ready,
                         GuestWaitInput.from_spec(vm).model_copy(update={"lab": lab}))
        for nic in vm.nics:
            if nic.ipv4 is not None:
                await self._step(f"guest-ip:{nic.name}", f"guest IPv4 on {nic.name}",
                                 GuestActivities.set_ipv4,
                                 GuestIpv4Input.from_spec(vm, nic).model_copy(update={"lab": lab}))
        if vm.guest.telnet:
            await self._step("telnet", "Telnet server", GuestActivities.telnet,
                             GuestTelnetInput.from_spec(vm).model_copy(update={"lab": lab}))
        if vm.guest.rdp:
            await self._step("rdp", "RDP port", GuestActivities.rdp,
                             GuestRdpInput.from_spec(vm).model_copy(update={"lab": lab}))
