"""The ``vm-deploy`` unit kind: one VM from the golden disk to running (VmDeployWorkflow).

Disk (copy or differencing), New-VM, NICs (legacy where asked, static MACs), start. The undo
(turn off, remove the VM, delete its disk) is registered before the first change, so a failure
or a cancellation at any step leaves the host as it was. vm.create marks the VM it creates as
this lab's in its Notes (``hvlab: created-by=<lab>; disk=hvlab|adopted``): ``hvlab down``
removes only marked VMs (:mod:`activities.marks`). A guest hvlab does not configure (Linux:
its golden image or DHCP gives its addresses) is waited for until each NIC reports the lab's
address through KVP (``guest.wait_address``, patch ``guest-address``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities import guest
    from activities import vm as commands
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
    from hvlab.plan import PlanStep, PlanUnit
    from hvlab.spec import LabSpec, OsFamily, Vm
    from workflows.kind import Emitted, Parts, StepName, Undo, UnitKind, plan_step, steps_of
    from workflows.options import COMPENSATION
    from workflows.progress import Progress, Tracker
    from workflows.saga import Saga
    from workflows.steps import A, ActivityMethod, step


class Step(StepName):
    DISK = "disk"
    CREATE = "create"
    NIC = "nic"
    OFFLINE_CONFIG = "offline-config"
    FIRMWARE = "firmware"
    START = "start"
    GUEST_ADDRESS = "guest-address"
    GUEST_READY = "guest-ready"
    GUEST_IP = "guest-ip"
    TELNET = "telnet"
    RDP = "rdp"


def _share_units(spec: LabSpec, vm: Vm) -> list[str]:
    paths = [p for p in (vm.path, vm.disk.path) if p and p.startswith("\\\\")]
    units = []
    for share in spec.shares:
        prefix = f"\\\\{share.host}\\{share.name}".lower()
        if any(p.lower().startswith(prefix) for p in paths):
            units.append(f"shared-storage:{share.host}/{share.name}")
    return units


def _vm_steps(spec: LabSpec, vm: Vm) -> list[PlanStep]:
    h, disk = vm.host, spec.vm_disk_path(vm)
    verb = "differencing disk on" if vm.disk.mode == "differencing" else "copy of"
    steps = [
        plan_step(Step.DISK, f"{disk} as {verb} {vm.disk.golden}", h),
        plan_step(Step.CREATE, f"New-VM generation {vm.generation}, {vm.memory // 1024**2} MB",
                  h),
    ]
    steps += [plan_step(Step.NIC.of(n.name), f"NIC {n.name} on {n.switch}" + (
        " (legacy)" if n.legacy else ""), h) for n in vm.nics]
    if vm.guest.os is OsFamily.windows_legacy:
        steps.append(plan_step(Step.OFFLINE_CONFIG, "first-boot configuration written into the "
                                                    "disk (no PowerShell Direct on this guest)", h))
    if vm.firmware is not None:
        on, template = vm.firmware
        steps.append(plan_step(Step.FIRMWARE, f"Secure Boot {template}" if on
                               else "Secure Boot off", h))
    if vm.start:
        steps.append(plan_step(Step.START, "start", h))
    source = vm.guest.addresses_from.value
    steps += [plan_step(Step.GUEST_ADDRESS.of(n.name), f"wait for {n.ipv4 or 'an address'} on "
                        f"{n.name} ({source}: reported by the guest's KVP daemon)", h)
              for n in vm.verified_nics]
    if vm.start and vm.guest.os is OsFamily.windows:
        steps.append(plan_step(Step.GUEST_READY, "wait until PowerShell Direct answers", h))
        steps += [plan_step(Step.GUEST_IP.of(n.name), f"guest IPv4 {n.ipv4} on {n.name}", h)
                  for n in vm.nics if n.ipv4]
        if vm.guest.telnet:
            users = ", ".join(u.name for u in vm.guest.telnet.users)
            steps.append(plan_step(Step.TELNET, f"Telnet server, users {users} in "
                                                f"{vm.guest.telnet.group}", h))
        if vm.guest.rdp:
            steps.append(plan_step(Step.RDP, f"RDP on port {vm.guest.rdp.port}", h))
    return steps


def plan(spec: LabSpec, before: list[PlanUnit]) -> Iterable[PlanUnit]:
    for vm in spec.vms:
        deps = [f"host-prep:{vm.host}", *_share_units(spec, vm)]
        if _share_units(spec, vm):
            deps += [f"delegation:{d.host}" for d in spec.delegation
                     if d.host.lower() == vm.host.lower()]
        yield PlanUnit(id=f"vm-deploy:{vm.name}", kind="vm-deploy", target=vm.name, phase=3,
                       hosts=[vm.host], depends_on=deps, steps=_vm_steps(spec, vm))


def step_commands(spec: LabSpec, unit: PlanUnit, step: PlanStep) -> list[Emitted]:
    v = spec.vm(unit.target)
    name, arg = Step.parse(step.name)
    if name is Step.DISK:
        disk = VmDiskInput.from_spec(spec, v)
        if disk.mode == "copy":
            return [commands.copy_disk_command(disk), commands.rename_disk_command(disk)]
        return [commands.differencing_disk_command(disk)]
    if name is Step.CREATE:
        create = VmCreateInput.from_spec(spec, v)
        return [commands.new_vm_command(create), commands.set_processor_command(create)]
    if name is Step.NIC:
        nic = next(n for n in v.nics if n.name == arg)
        return [commands.add_nic_command(VmNicInput.from_spec(v, nic))]
    if name is Step.OFFLINE_CONFIG:
        return [guest.offline_config_script(OfflineGuestConfigInput.from_spec(spec, v))]
    if name is Step.FIRMWARE:
        firmware = VmFirmwareInput.from_spec(v)
        return [commands.set_firmware_command(firmware)] if firmware else []
    if name is Step.START:
        return [commands.start_vm_command(v.name)]
    if name is Step.GUEST_READY:
        return [guest.probe_script(GuestWaitInput.from_spec(v))]
    if name is Step.GUEST_IP:
        nic = next(n for n in v.nics if n.name == arg)
        request = GuestIpv4Input.from_spec(v, nic)
        return [guest.set_ipv4_script(request, request.nic.mac)]
    if name is Step.TELNET:
        return list(guest.telnet_scripts(GuestTelnetInput.from_spec(v)))
    if name is Step.RDP:
        return [guest.rdp_script(GuestRdpInput.from_spec(v))]
    return []  # guest-address: a read-only wait


def undo(spec: LabSpec, unit: PlanUnit) -> list[Undo]:
    vm = spec.vm(unit.target)
    return [(VmActivities.remove, VmRemoveInput(lab=spec.lab, host=vm.host, vm=vm.name,
                                                disk_path=spec.vm_disk_path(vm)), (vm.host,))]


def on_hosts(undos: list[Undo], hosts: list[str]) -> list[Undo]:
    """The VM removed on the hosts named (where it was created), not wherever it is now."""
    return [(activity, arg.model_copy(update={"host": host}), (host,))
            for activity, arg, _ in undos for host in hosts]


def changed(spec: LabSpec, unit: PlanUnit, result: Any) -> Parts:
    """A cancelled build removes the VM with its disk when this run created it (a VM that was
    there before is not touched), on the host it created it on."""
    fields: dict[str, Any] = result if isinstance(result, dict) else {}
    if not fields.get("created"):
        return None, []
    return [str(fields.get("host") or spec.vm(unit.target).host)], []


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
        self._tracker.plan(*steps_of(plan(spec, []), f"vm-deploy:{vm.name}"))
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
            first = await self._step(Step.DISK, "disk from the golden image",
                                     VmActivities.disk, disk)
        else:  # its disk is attached (and may have moved with the VM): no new copy
            self._tracker.skip(Step.DISK, "disk from the golden image", "the VM exists already")
            first = StepResult(changed=False)
        # the VM's Notes mark records whether this build copied its disk (hvlab down)
        created = await self._step(Step.CREATE, "New-VM", VmActivities.create,
                                   VmCreateInput.from_spec(spec, vm).model_copy(
                                       update={"lab": lab, "disk_created": first.changed}))
        for nic in vm.nics:
            await self._step(Step.NIC.of(nic.name), f"NIC {nic.name} on {nic.switch}",
                             VmActivities.nic, VmNicInput.from_spec(vm, nic).model_copy(
                                 update={"lab": lab}))
        if vm.guest.os is OsFamily.windows_legacy:
            await self._step(Step.OFFLINE_CONFIG, "first-boot guest configuration",
                             GuestActivities.offline_config, OfflineGuestConfigInput.from_spec(
                                 spec, vm).model_copy(update={"lab": lab}))
        firmware = VmFirmwareInput.from_spec(vm)
        # histories recorded before the firmware step went straight to start
        if firmware is not None and workflow.patched("vm-firmware"):
            await self._step(Step.FIRMWARE, "Secure Boot", VmActivities.firmware,
                             firmware.model_copy(update={"lab": lab}))
        if vm.start:
            await self._step(Step.START, "start", VmActivities.start,
                             VmInput(lab=lab, host=vm.host, vm=vm.name))
            if vm.guest.os is OsFamily.windows:
                await self._guest(spec, vm)
            # histories recorded before a Linux guest's address was verified end at start
            if vm.verified_nics and workflow.patched("guest-address"):
                for nic in vm.verified_nics:
                    await self._step(Step.GUEST_ADDRESS.of(nic.name), f"address on {nic.name}",
                                     GuestActivities.wait_address, GuestAddressInput.from_spec(
                                         spec, vm, nic).model_copy(update={"lab": lab}))
        return first.changed or created.changed

    async def _guest(self, spec: LabSpec, vm: Vm) -> None:
        """PowerShell Direct configuration of a Windows Server 2016+ guest."""
        lab = spec.lab
        await self._step(Step.GUEST_READY, "wait for PowerShell Direct", GuestActivities.wait_ready,
                         GuestWaitInput.from_spec(vm).model_copy(update={"lab": lab}))
        for nic in vm.nics:
            if nic.ipv4 is not None:
                await self._step(Step.GUEST_IP.of(nic.name), f"guest IPv4 on {nic.name}",
                                 GuestActivities.set_ipv4,
                                 GuestIpv4Input.from_spec(vm, nic).model_copy(update={"lab": lab}))
        if vm.guest.telnet:
            await self._step(Step.TELNET, "Telnet server", GuestActivities.telnet,
                             GuestTelnetInput.from_spec(vm).model_copy(update={"lab": lab}))
        if vm.guest.rdp:
            await self._step(Step.RDP, "RDP port", GuestActivities.rdp,
                             GuestRdpInput.from_spec(vm).model_copy(update={"lab": lab}))


KIND = UnitKind(
    name="vm-deploy", workflow=VmDeployWorkflow, plan=plan,
    unit_input=lambda spec, unit, compensate: VmDeployInput(spec=spec, vm=unit.target,
                                                            compensate=compensate),
    commands=step_commands, undo=undo, parts=on_hosts, changed=changed)
