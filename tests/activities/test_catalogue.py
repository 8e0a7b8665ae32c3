"""Every command the host and VM activities can emit binds against the cmdlet catalogue."""

from __future__ import annotations

from typing import Any

import pytest

from activities import host as h
from activities import vm as v
from activities.models import (
    DefaultPathsInput,
    DomainJoinInput,
    FoldersInput,
    HyperVRoleInput,
    SwitchInput,
    VmCreateInput,
    VmDiskInput,
    VmNicInput,
)
from hvlab.powershell.catalog import Catalog
from hvlab.powershell.command import Command, CredentialRef, Switch
from hvlab.spec import LabSpec
from hvlab.specfile import load_lab
from tests.sim.conftest import SEED


def host_commands(spec: LabSpec) -> list[Command]:
    out = [h.computer_system_command(), h.operating_system_command(), h.restart_command(),
           h.service_command("vmms"), h.get_vmhost_command()]
    out += [h.get_feature_command(HyperVRoleInput(host="SVR1")),
            h.install_feature_command(HyperVRoleInput(host="SVR1"))]
    for host in spec.hyperv_hosts:
        out.append(h.add_computer_command(DomainJoinInput.from_spec(spec, host.name)))
        folders = FoldersInput.from_spec(host).paths
        out += [h.path_exists_command(folders), h.new_folders_command(folders)]
        paths = DefaultPathsInput.from_spec(host)
        out.append(h.set_vmhost_command(paths.virtual_machines, paths.virtual_hard_disks))
        out.append(h.set_vmhost_command(None, paths.virtual_hard_disks))
        for switch in host.switches:
            request = SwitchInput.from_spec(host.name, switch)
            out += [h.get_switch_command(switch.name), h.new_switch_command(request),
                    h.remove_switch_command(switch.name)]
    return out


def vm_commands(spec: LabSpec) -> list[Command]:
    out: list[Command] = []
    for vm in spec.vms:
        disk = VmDiskInput.from_spec(spec, vm)
        create = VmCreateInput.from_spec(spec, vm).model_copy(update={"processors": 2})
        out += [v.copy_disk_command(disk), v.differencing_disk_command(disk),
                v.get_vhd_command(disk.path), v.get_vm_command(vm.name),
                v.new_vm_command(create), v.set_processor_command(create),
                v.get_nic_command(vm.name), v.get_nic_command(vm.name, v.DEFAULT_NIC),
                v.remove_nic_command(vm.name, v.DEFAULT_NIC), v.start_vm_command(vm.name),
                v.stop_vm_command(vm.name), v.stop_vm_command(vm.name, turn_off=True),
                v.remove_vm_command(vm.name), v.remove_file_command(disk.path)]
        for nic in vm.nics:
            request = VmNicInput.from_spec(vm, nic, "00155D010203" if nic.legacy else None)
            out += [v.add_nic_command(request), v.connect_nic_command(request)]
    return out


def as_bound(value: Any) -> Any:
    """A parameter value as the binder sees it (switches as pypsrp sends them)."""
    if isinstance(value, Switch):
        return None if value.value else False
    if isinstance(value, CredentialRef):
        from psrpcore.types import PSCredential, PSSecureString

        return PSCredential(UserName="KOSA\\Administrator", Password=PSSecureString("x"))
    return value


SPEC = load_lab(SEED)
COMMANDS = host_commands(SPEC) + vm_commands(SPEC)


@pytest.mark.parametrize("command", COMMANDS, ids=[c.describe()[:60] for c in COMMANDS])
def test_command_binds(command: Command) -> None:
    """The cmdlet exists and its parameters bind to one parameter set."""
    params = {k: as_bound(x) for k, x in command.parameters.items()}
    Catalog.load().bind(command.cmdlet, params)


def test_every_emitted_cmdlet_is_covered() -> None:
    """The sample covers every cmdlet the two modules build."""
    cmdlets = {c.cmdlet for c in COMMANDS}
    assert {"Add-Computer", "Install-WindowsFeature", "New-VMSwitch", "New-VM", "New-VHD",
            "Copy-Item", "Add-VMNetworkAdapter", "Connect-VMNetworkAdapter", "Start-VM",
            "Stop-VM", "Remove-VM", "Remove-VMSwitch", "Set-VMHost", "New-Item"} <= cmdlets


def test_memory_is_declared_int64() -> None:
    """New-VM -MemoryStartupBytes is Int64 in the catalogue, so 4 GB goes out as <I64>."""
    info = Catalog.load().cmdlet("New-VM").match("MemoryStartupBytes")
    assert info is not None and info.type.element.endswith("Int64")
