"""The remote commands behind every step of the build plan, for ``hvlab plan`` and the catalogue
test. Each step shows the command(s) its activity sends to change the host when the probe finds
a difference (read-only probes are left out); values come from the lab file exactly as the
activities build them, and credentials show as references only.
"""

from __future__ import annotations

from collections.abc import Callable

from activities import directory, guest, host, migration, network, replica, storage, vm
from activities.checkpoint import create_checkpoint_command
from activities.models import (
    DelegationInput,
    DomainJoinInput,
    GuestIpv4Input,
    GuestNatInput,
    GuestRdpInput,
    GuestTelnetInput,
    GuestWaitInput,
    HostNatInput,
    HyperVRoleInput,
    MigrationHostSettings,
    MigrationReadinessInput,
    NtfsInput,
    OfflineGuestConfigInput,
    ReplicaServerInput,
    ReplicationInput,
    ShareAccessInput,
    ShareInput,
    SwitchInput,
    VmCreateInput,
    VmDiskInput,
    VmFirmwareInput,
    VmNicInput,
    delegation_spns,
)
from hvlab.plan import BuildPlan, PlanStep, PlanUnit
from hvlab.powershell.command import Command, Script
from hvlab.spec import LabSpec, NatKind

Emitted = Command | Script
StepCommands = Callable[[LabSpec, PlanUnit, PlanStep], list[Emitted]]


def _host_prep(spec: LabSpec, unit: PlanUnit, step: PlanStep) -> list[Emitted]:
    h = spec.host(unit.target)
    name, _, arg = step.name.partition(":")
    if name == "dns":
        dc = spec.host(spec.domain.dc).connection.address
        return [host.ip_address_command(h.connection.address),
                host.set_dns_command(f"<adapter of {h.connection.address}>", [dc])]
    if name == "domain-join":
        return [host.add_computer_command(DomainJoinInput.from_spec(spec, h.name))]
    if name.startswith("reboot"):
        return [host.restart_command()]
    if name == "hyperv-role":
        return [host.install_feature_command(HyperVRoleInput(host=h.name))]
    if name == "folder":
        return [host.new_folders_command([arg])]
    if name == "default-paths":
        return [host.set_vmhost_command(h.paths.virtual_machines, h.paths.virtual_hard_disks)]
    if name == "switch":
        switch = next(s for s in h.switches if s.name == arg)
        return [host.new_switch_command(SwitchInput.from_spec(h.name, switch))]
    return []


def _shared_storage(spec: LabSpec, unit: PlanUnit, step: PlanStep) -> list[Emitted]:
    host_name, share_name = unit.target.split("/", 1)
    share = next(s for s in spec.shares if s.host == host_name and s.name == share_name)
    if step.name == "folder":
        return [host.new_folders_command([share.path])]
    if step.name == "share":
        return [storage.new_share_command(ShareInput.from_spec(share))]
    if step.name == "share-acl":
        grants = ShareAccessInput.from_spec(share).grants
        rights = sorted({g.access for g in grants})
        return [storage.grant_share_access_command(
            share.name, [g.account for g in grants if g.access == r], r) for r in rights]
    if step.name == "ntfs-acl":
        ntfs = NtfsInput.from_spec(share)
        return [storage.ntfs_grant_script(ntfs.path, g, ntfs.inherit) for g in ntfs.grants]
    return []


def _delegation(spec: LabSpec, unit: PlanUnit, step: PlanStep) -> list[Emitted]:
    entry = next(d for d in spec.delegation if d.host == unit.target)
    request = DelegationInput.from_spec(spec, entry)
    name, _, arg = step.name.partition(":")
    if name == "kcd":
        service, _, target = arg.rpartition("/")
        spns = [s for s in delegation_spns(spec, entry)
                if s.lower() in (arg.lower(), f"{service}/{target}.{spec.domain.fqdn}".lower())]
        return [directory.add_delegation_command(request.computer, spns)]
    if name == "protocol-transition":
        return [directory.account_control_command(request.computer, True)]
    if name == "purge-tickets":
        return [directory.purge_tickets_script()]
    return []


def _readiness(spec: LabSpec, unit: PlanUnit, step: PlanStep) -> list[Emitted]:
    request = MigrationReadinessInput.from_spec(spec.host(unit.target))
    name = step.name.partition(":")[0]
    if name == "enable":
        enabled = request.settings.enabled
        return [migration.enable_migration_command() if enabled
                else migration.disable_migration_command()]
    if name == "settings":
        changes = migration.setting_changes(
            request.settings, MigrationHostSettings(authentication="CredSSP",
                                                    max_vm_migrations=99,
                                                    max_storage_migrations=99,
                                                    performance="TCPIP",
                                                    use_any_network=True))
        return [migration.set_migration_host_command(changes)]
    if name == "network":
        subnet = step.name.partition(":")[2]
        return [migration.add_migration_network_command(n) for n in request.networks
                if n.subnet == subnet]
    return []


def _vm_deploy(spec: LabSpec, unit: PlanUnit, step: PlanStep) -> list[Emitted]:
    v = spec.vm(unit.target)
    name, _, arg = step.name.partition(":")
    if name == "disk":
        disk = VmDiskInput.from_spec(spec, v)
        if disk.mode == "copy":
            return [vm.copy_disk_command(disk), vm.rename_disk_command(disk)]
        return [vm.differencing_disk_command(disk)]
    if name == "create":
        create = VmCreateInput.from_spec(spec, v)
        return [vm.new_vm_command(create), vm.set_processor_command(create)]
    if name == "nic":
        nic = next(n for n in v.nics if n.name == arg)
        return [vm.add_nic_command(VmNicInput.from_spec(v, nic))]
    if name == "offline-config":
        return [guest.offline_config_script(OfflineGuestConfigInput.from_spec(spec, v))]
    if name == "firmware":
        firmware = VmFirmwareInput.from_spec(v)
        return [vm.set_firmware_command(firmware)] if firmware else []
    if name == "start":
        return [vm.start_vm_command(v.name)]
    if name == "guest-ready":
        return [guest.probe_script(GuestWaitInput.from_spec(v))]
    if name == "guest-ip":
        nic = next(n for n in v.nics if n.name == arg)
        request = GuestIpv4Input.from_spec(v, nic)
        return [guest.set_ipv4_script(request, request.nic.mac)]
    if name == "telnet":
        return list(guest.telnet_scripts(GuestTelnetInput.from_spec(v)))
    if name == "rdp":
        return [guest.rdp_script(GuestRdpInput.from_spec(v))]
    return []


def _nat(spec: LabSpec, unit: PlanUnit, step: PlanStep) -> list[Emitted]:
    nat = next(n for n in spec.nat if n.name == unit.target)
    if step.name == "verify":
        from activities.models import ConnectivityInput

        checks = ConnectivityInput.from_spec(spec.model_copy(update={"nat": [nat]})).checks
        return [guest.net_connection_command(c) for c in checks]
    if nat.kind is NatKind.host_netnat:
        request = HostNatInput.from_spec(spec, nat)
        if step.name == "nat-install":
            return [network.new_nat_command(request)]
        if step.name.startswith("forward:"):
            port = int(step.name.rsplit("/", 1)[1])
            return [network.add_mapping_command(request.name, f) for f in request.forwards
                    if f.external_port == port]
        return []
    router = spec.vm(nat.vm or "")
    if step.name == "nat-install" and router.guest.os.value == "windows":
        return [guest.rras_nat_script(GuestNatInput.from_spec(spec, nat))]
    return []


def _replication(spec: LabSpec, unit: PlanUnit, step: PlanStep) -> list[Emitted]:
    request = ReplicationInput.from_spec(spec, unit.target)
    rep = spec.replication_of(unit.target)
    assert rep is not None  # the plan makes a replication unit only for an entry
    name, _, target = step.name.partition(":")
    if name == "shared-settings":  # read-only, on both hosts
        return [replica.get_server_command(), replica.all_replications_command()]
    if name == "replica-server":
        return [host.new_folders_command([rep.storage]),
                replica.set_server_command(ReplicaServerInput(host=target, port=rep.port,
                                                              storage=rep.storage))]
    if name == "firewall":
        commands: list[Emitted] = [replica.enable_rule_command()]
        if rep.port != 80:
            commands.append(replica.set_rule_port_command(rep.port))
        return commands
    if name == "enable":
        return [replica.enable_replication_command(request)]
    if name == "initial":
        return [replica.start_initial_command(rep.vm)]
    return []


def _checkpoint(spec: LabSpec, unit: PlanUnit, step: PlanStep) -> list[Emitted]:
    return [create_checkpoint_command(step.name.partition(":")[2], unit.target)]


BY_KIND: dict[str, StepCommands] = {
    "host-prep": _host_prep,
    "shared-storage": _shared_storage,
    "delegation": _delegation,
    "migration-readiness": _readiness,
    "vm-deploy": _vm_deploy,
    "nat": _nat,
    "replication": _replication,
    "checkpoint": _checkpoint,
}


def step_commands(spec: LabSpec, unit: PlanUnit, step: PlanStep) -> list[Emitted]:
    """The changing commands of one plan step (empty for checks and waits)."""
    builder = BY_KIND.get(unit.kind)
    return builder(spec, unit, step) if builder else []


def plan_commands(spec: LabSpec, plan: BuildPlan) -> dict[tuple[str, str], list[Emitted]]:
    """Every step's commands, keyed by (unit id, step name)."""
    return {(u.id, s.name): step_commands(spec, u, s) for u in plan.units for s in u.steps}
