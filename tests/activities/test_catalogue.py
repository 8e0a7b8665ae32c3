"""Every command the host and VM activities can emit binds against the cmdlet catalogue."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from activities import checkpoint as ck
from activities import directory as d
from activities import guest as g
from activities import host as h
from activities import migration as mg
from activities import network as n
from activities import observe as ob
from activities import replica as rp
from activities import storage as s
from activities import vm as v
from activities.models import (
    ConnectivityInput,
    DefaultPathsInput,
    DelegationInput,
    DomainJoinInput,
    FoldersInput,
    GuestIpv4Input,
    GuestNatInput,
    GuestRdpInput,
    GuestTelnetInput,
    GuestWaitInput,
    HostNatInput,
    HyperVRoleInput,
    MigrationHostSettings,
    MigrationReadinessInput,
    MoveInput,
    NtfsInput,
    OfflineGuestConfigInput,
    ReplicaServerInput,
    ReplicationInput,
    ShareInput,
    SwitchInput,
    VmCreateInput,
    VmDiskInput,
    VmFirmwareInput,
    VmNicInput,
)
from hvlab.powershell.catalog import Catalog
from hvlab.powershell.command import Command, CredentialRef, Script, Switch
from hvlab.powershell.scripts import bind_script_params, load_packaged_scripts
from hvlab.spec import LabSpec
from hvlab.specfile import load_lab
from simulator.core import Registry
from tests.sim.conftest import SEED


def host_commands(spec: LabSpec) -> list[Command]:
    out = [h.computer_system_command(), h.operating_system_command(), h.restart_command(),
           h.ip_address_command("192.168.1.110"), h.get_dns_command("Ethernet0"),
           h.set_dns_command("Ethernet0", ["192.168.1.100"]),
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
        out += [v.copy_disk_command(disk), v.rename_disk_command(disk),
                v.differencing_disk_command(disk),
                v.get_vhd_command(disk.path), v.get_vm_command(vm.name),
                v.new_vm_command(create), v.set_processor_command(create),
                v.get_nic_command(vm.name), v.get_nic_command(vm.name, v.DEFAULT_NIC),
                v.remove_nic_command(vm.name, v.DEFAULT_NIC), v.start_vm_command(vm.name),
                v.stop_vm_command(vm.name), v.stop_vm_command(vm.name, turn_off=True),
                v.remove_vm_command(vm.name), v.remove_file_command(disk.path),
                v.attached_disks_command(vm.name)]
        for nic in vm.nics:
            request = VmNicInput.from_spec(vm, nic, "00155D010203" if nic.legacy else None)
            out += [v.add_nic_command(request), v.connect_nic_command(request)]
        firmware = VmFirmwareInput.from_spec(vm)
        if firmware is not None:
            out += [v.get_firmware_command(vm.name), v.set_firmware_command(firmware),
                    v.set_firmware_command(firmware.model_copy(update={"secure_boot": False}))]
    # lab.observe: what a Hyper-V host holds now (every converging workflow asks first)
    out += [ob.list_vms_command(), ob.list_replications_command(),
            ob.list_checkpoints_command([vm.name for vm in spec.vms])]
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


# -- guest, storage, directory and network steps -------------------------------------------


def lab_commands(spec: LabSpec) -> list[Command]:
    """Every command the guest, storage, directory and network activities build."""
    out = [g.set_notes_command("win2003-1", "hvlab: rdp=abc")]
    out += [g.net_connection_command(c) for c in ConnectivityInput.from_spec(spec).checks]
    out.append(g.net_connection_command(ConnectivityInput.from_spec(spec).checks[0]
                                        .model_copy(update={"port": None})))
    for share in spec.shares:
        request = ShareInput.from_spec(share)
        out += [s.get_share_command(share.name), s.new_share_command(request),
                s.remove_share_command(share.name), s.get_share_access_command(share.name),
                s.grant_share_access_command(share.name, request.full_access, "Full"),
                s.revoke_share_access_command(share.name, request.full_access),
                s.get_acl_command(share.path)]
    for entry in spec.delegation:
        spns = DelegationInput.from_spec(spec, entry).spns
        out += [d.get_computer_command(entry.host), d.add_delegation_command(entry.host, spns),
                d.remove_delegation_command(entry.host, spns),
                d.account_control_command(entry.host, True),
                d.account_control_command(entry.host, False)]
    nat = HostNatInput(host="SVR1", name="LabNat", internal_prefix="10.10.10.0/24",
                       forwards=[{"external_port": 23, "internal_ip": "10.10.10.2",
                                  "internal_port": 23}])
    out += [n.get_nat_command(), n.get_nat_command("LabNat"), n.new_nat_command(nat),
            n.get_mappings_command("LabNat"), n.add_mapping_command("LabNat", nat.forwards[0]),
            n.remove_mappings_command("LabNat"), n.remove_nat_command("LabNat")]
    return out


def lab_scripts(spec: LabSpec) -> list[Script]:
    """Every packaged-script call the guest, storage and directory activities build."""
    out: list[Script] = [d.purge_tickets_script()]
    for vm in spec.vms:
        out.append(g.offline_config_script(OfflineGuestConfigInput.from_spec(spec, vm)))
        windows = {"os": "windows", "credential": "guest-admin"}
        out.append(g.probe_script(GuestWaitInput.from_spec(vm).model_copy(update=windows)))
        out.append(g.rdp_script(GuestRdpInput.from_spec(vm).model_copy(update=windows)))
        out += g.telnet_scripts(GuestTelnetInput.from_spec(vm).model_copy(update=windows))
        for nic in vm.nics:
            request = GuestIpv4Input.from_spec(vm, nic).model_copy(update=windows)
            out.append(g.set_ipv4_script(request, request.nic.mac))
    out += [g.rras_nat_script(GuestNatInput.from_spec(spec, nat)) for nat in spec.nat]
    for share in spec.shares:
        for grant in NtfsInput.from_spec(share).grants:
            out += [s.ntfs_grant_script(share.path, grant, True),
                    s.ntfs_grant_script(share.path, grant, False)]
    return out


LAB_COMMANDS = lab_commands(SPEC)
LAB_SCRIPTS = lab_scripts(SPEC)


@pytest.mark.parametrize("command", LAB_COMMANDS, ids=[c.describe()[:60] for c in LAB_COMMANDS])
def test_lab_command_binds(command: Command) -> None:
    """Guest, storage, directory and network commands bind to one parameter set."""
    params = {k: as_bound(x) for k, x in command.parameters.items()}
    Catalog.load().bind(command.cmdlet, params)


@pytest.mark.parametrize("script", LAB_SCRIPTS, ids=[c.describe()[:60] for c in LAB_SCRIPTS])
def test_lab_script_binds(script: Script) -> None:
    """The packaged script exists and its param block takes the parameters given."""
    info, _ = load_packaged_scripts()[script.name]
    bind_script_params(info, {k: as_bound(x) for k, x in script.parameters.items()})


def test_every_lab_cmdlet_and_script_is_covered() -> None:
    cmdlets = {c.cmdlet for c in LAB_COMMANDS}
    assert {"New-SmbShare", "Grant-SmbShareAccess", "Revoke-SmbShareAccess", "Remove-SmbShare",
            "Get-Acl", "Set-ADComputer", "Set-ADAccountControl", "New-NetNat",
            "Add-NetNatStaticMapping", "Remove-NetNat", "Test-NetConnection", "Set-VM"} <= cmdlets
    assert {x.name for x in LAB_SCRIPTS} == {
        "host/purge-tickets", "host/offline-guest-config", "guest/probe", "guest/rdp-port",
        "guest/telnet-server", "guest/set-ipv4", "guest/rras-nat", "host/ntfs-grant"}


# -- migration, replica and checkpoint steps -----------------------------------------------

JOB = "7506364C-35AC-4A14-B5FA-3EA8CB660B6B"


def migration_commands(spec: LabSpec) -> list[Command]:
    """Every command the migration activities build (all Set-VMHost settings at once)."""
    out = [mg.enable_migration_command(), mg.disable_migration_command(),
           mg.get_migration_networks_command(), mg.migration_jobs_command(),
           mg.migration_job_command(JOB), mg.cancel_job_command(JOB),
           mg.hard_disks_command("Linux01"), mg.receive_job_command(1)]
    other = MigrationHostSettings(enabled=False, authentication="CredSSP", performance="SMB",
                                  max_vm_migrations=9, max_storage_migrations=9,
                                  use_any_network=True)
    for host in spec.hyperv_hosts:
        ready = MigrationReadinessInput.from_spec(host)
        out.append(mg.set_migration_host_command(mg.setting_changes(ready.settings, other)))
        out += [mg.add_migration_network_command(net) for net in ready.networks]
        out += [mg.remove_migration_network_command(net.subnet) for net in ready.networks]
    for mode in ("shared-nothing", "smb", "storage"):
        move = MoveInput(host="SVR2", vm="Linux01", mode=mode, destination="SVR1",
                         destination_fqdn="svr1.kosa.vm",
                         destination_path=None if mode == "smb" else "C:\\Hyper-V\\Linux01")
        out += [mg.move_command(move)] + ([] if mode == "storage" else [mg.compare_vm_command(move)])
    return out


def replica_commands(spec: LabSpec) -> list[Command]:
    """Every command the replica activities build (the pipe's second command apart)."""
    out = [rp.get_server_command(), rp.disable_server_command(), rp.get_rule_command(),
           rp.enable_rule_command(), rp.disable_rule_command(), rp.replication_jobs_command()]
    for rep in spec.replication:
        request = ReplicationInput.from_spec(spec, rep.vm)
        out += [rp.set_server_command(ReplicaServerInput(host=rep.replica, port=rep.port,
                                                         storage=rep.storage)),
                rp.set_rule_port_command(rep.port), rp.test_connection_command(request),
                rp.get_replication_command(rep.vm), rp.enable_replication_command(request),
                rp.start_initial_command(rep.vm), rp.remove_replication_command(rep.vm),
                rp.prepare_failover_command(rep.vm), rp.failover_command(rep.vm),
                rp.test_failover_command(rep.vm), rp.stop_failover_command(rep.vm),
                rp.complete_failover_command(rep.vm), rp.reverse_command(request)]
    return out


def checkpoint_commands(spec: LabSpec) -> list[Command]:
    out: list[Command] = []
    for vm in spec.vms:
        for build in (ck.get_checkpoint_command, ck.create_checkpoint_command,
                      ck.restore_checkpoint_command, ck.remove_checkpoint_command):
            out += [build(vm.name, c.name) for c in spec.checkpoints]
    return out


OPS_COMMANDS = migration_commands(SPEC) + replica_commands(SPEC) + checkpoint_commands(SPEC)


@pytest.mark.parametrize("command", OPS_COMMANDS, ids=[c.describe()[:60] for c in OPS_COMMANDS])
def test_ops_command_binds(command: Command) -> None:
    """Migration, replica and checkpoint commands bind to one parameter set."""
    params = {k: as_bound(x) for k, x in command.parameters.items()}
    Catalog.load().bind(command.cmdlet, params)


def test_port_filter_binds_from_the_pipeline() -> None:
    """Get-NetFirewallRule ... | Get-NetFirewallPortFilter takes the rule from the pipe."""
    Catalog.load().bind(rp.get_port_filter_command().cmdlet, {}, pipeline_input=True)


def test_every_ops_cmdlet_is_covered() -> None:
    cmdlets = {c.cmdlet for c in OPS_COMMANDS}
    assert {"Enable-VMMigration", "Disable-VMMigration", "Set-VMHost", "Add-VMMigrationNetwork",
            "Remove-VMMigrationNetwork", "Compare-VM", "Move-VM", "Move-VMStorage",
            "Get-CimInstance", "Invoke-CimMethod", "Receive-Job", "Set-VMReplicationServer",
            "Enable-NetFirewallRule", "Disable-NetFirewallRule", "Set-NetFirewallRule",
            "Test-VMReplicationConnection", "Enable-VMReplication",
            "Start-VMInitialReplication", "Remove-VMReplication", "Start-VMFailover",
            "Stop-VMFailover", "Complete-VMFailover", "Set-VMReplication", "Checkpoint-VM",
            "Get-VMSnapshot", "Restore-VMSnapshot", "Remove-VMSnapshot"} <= cmdlets


# -- confirmation prompts ------------------------------------------------------------------


ALL_COMMANDS = COMMANDS + LAB_COMMANDS + OPS_COMMANDS


@functools.cache
def _fleet_registry() -> Registry:
    from simulator.cmdlets import build_registry

    return build_registry()


def prompt_of(command: Command) -> str | None:
    """What the host would ask before running ``command`` (the fleet's model, see
    docs/simulator-fidelity.md), None when it runs without asking."""
    key = Catalog.load().canonical(command.cmdlet)
    params = {k.lower(): v for k, v in command.parameters.items()}
    forced = isinstance(params.get("force"), Switch) and params["force"].value
    confirm = params.get("confirm")
    not_asked = isinstance(confirm, Switch) and not confirm.value
    if key is None:
        return None
    entry = _fleet_registry().cmdlets.get(key.lower())
    prompt = entry.prompt if entry else None
    if prompt and prompt.should_continue and not forced:
        return "ShouldContinue (only -Force answers it)"
    if isinstance(confirm, Switch) and confirm.value:
        return "-Confirm"
    if prompt and prompt.high_impact and not not_asked and not (prompt.force_skips and forced):
        return "ConfirmImpact High (-Confirm:$false answers it)"
    return None


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=[c.describe()[:60] for c in ALL_COMMANDS])
def test_no_command_waits_for_a_confirmation(command: Command) -> None:
    """A remote runspace cannot answer a prompt: every command that would ask carries -Force
    or -Confirm:$false."""
    assert prompt_of(command) is None


def test_the_prompting_cmdlets_are_covered() -> None:
    cmdlets = {c.cmdlet for c in ALL_COMMANDS}
    assert {"Remove-VM", "Remove-VMSwitch", "Restore-VMSnapshot", "Remove-SmbShare",
            "Grant-SmbShareAccess", "Revoke-SmbShareAccess"} <= cmdlets
    assert prompt_of(Command.of("Remove-VM", Name="x", Confirm=Switch(False))) is not None
    assert prompt_of(Command.of("Restore-VMSnapshot", VMName="x", Name="y")) is not None
