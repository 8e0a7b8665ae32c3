"""Typed inputs and the result of the host and VM activities.

Inputs carry host and object names and non-secret values only (credentials by lab name), so
they are safe in workflow history. ``from_spec`` builders derive them from the lab file; new
fields get defaults so running histories still decode.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hvlab.spec import (
    Delegation,
    LabSpec,
    NatGateway,
    NatKind,
    Nic,
    PortForward,
    Share,
    SwitchType,
    Vm,
)
from hvlab.spec import Host as HostSpec
from hvlab.spec import Switch as SwitchSpec


class StepInput(BaseModel):
    """The base of every step activity's input: which registered lab's hosts it acts on. An
    area module may define its inputs beside its activities on this base."""

    model_config = ConfigDict(frozen=True)

    lab: str = Field(default="", description="lab id: which registered lab's hosts to use")


class StepResult(BaseModel):
    """What one idempotent step did: ``changed`` and the state it observed afterwards."""

    changed: bool
    observed: dict[str, Any] = Field(default_factory=dict)


class HostInput(StepInput):
    """A step on one host that needs nothing but the host's name."""

    host: str


class ObserveInput(StepInput):
    """Which of the lab's VMs one Hyper-V host holds (``lab.observe``)."""

    host: str
    vms: list[str] = Field(default_factory=list, description="the VMs to report; empty: all")


class DomainJoinInput(StepInput):
    host: str
    domain: str = Field(description="FQDN, e.g. kosa.vm")
    credential: str = Field(description="lab credential name with rights to join")

    @classmethod
    def from_spec(cls, spec: LabSpec, host: str) -> DomainJoinInput:
        return cls(host=host, domain=spec.domain.fqdn, credential=spec.domain.admin_credential)


class DnsInput(StepInput):
    """Point the adapter that carries ``address`` at ``servers`` (the DC first)."""

    host: str
    address: str = Field(description="the host's own address, to find its adapter")
    servers: list[str]

    @classmethod
    def from_spec(cls, spec: LabSpec, host: str) -> DnsInput:
        dc = spec.host(spec.domain.dc)
        return cls(host=host, address=spec.host(host).connection.address,
                   servers=[dc.connection.address])


class HyperVRoleInput(StepInput):
    host: str
    feature: str = "Hyper-V"


class WaitReadyInput(StepInput):
    """Poll the host until a cheap command answers (and ``service`` runs, when given)."""

    host: str
    timeout_seconds: float = 1800.0
    interval_seconds: float = 5.0
    service: str | None = Field(default=None, description="e.g. vmms after the Hyper-V role")
    booted_before: str | None = Field(
        default=None, description="LastBootUpTime before the restart: an answer from that same "
        "boot is the old one still shutting down, not the host back")


class FoldersInput(StepInput):
    host: str
    paths: list[str]

    @classmethod
    def from_spec(cls, host: HostSpec) -> FoldersInput:
        return cls(host=host.name, paths=list(host.folders))


class DefaultPathsInput(StepInput):
    host: str
    virtual_machines: str | None = None
    virtual_hard_disks: str | None = None

    @classmethod
    def from_spec(cls, host: HostSpec) -> DefaultPathsInput:
        return cls(host=host.name, virtual_machines=host.paths.virtual_machines,
                   virtual_hard_disks=host.paths.virtual_hard_disks)


class SwitchInput(StepInput):
    host: str
    name: str
    type: Literal["External", "Internal", "Private"]
    adapter: str | None = Field(default=None, description="physical adapter (External)")
    allow_management_os: bool = False

    @classmethod
    def from_spec(cls, host: str, switch: SwitchSpec) -> SwitchInput:
        return cls(host=host, name=switch.name, type=switch.type.value, adapter=switch.adapter,
                   allow_management_os=switch.allow_management_os)


class RemoveSwitchInput(StepInput):
    host: str
    name: str
    keep_adopted: bool = Field(default=False, description=(
        "keep a switch without this lab's `hvlab: created-by` Notes mark (`hvlab down`)"))
    keep_management: bool = Field(default=False, description=(
        "keep an External switch whose host vNIC carries ``management_address`` (`hvlab down`)"))
    management_address: str | None = Field(
        default=None, description="the address the lab reaches the host at")


class VmDiskInput(StepInput):
    host: str
    vm: str
    path: str = Field(description="the VM's VHDX")
    golden_path: str
    mode: Literal["copy", "differencing"] = "copy"

    @classmethod
    def from_spec(cls, spec: LabSpec, vm: Vm) -> VmDiskInput:
        return cls(host=vm.host, vm=vm.name, path=spec.vm_disk_path(vm),
                   golden_path=spec.golden(vm.disk.golden).path, mode=vm.disk.mode.value)


class VmCreateInput(StepInput):
    host: str
    name: str
    generation: Literal[1, 2] = 2
    memory_bytes: int = Field(gt=0, description="startup memory, sent as Int64")
    disk_path: str
    config_path: str | None = Field(default=None, description="New-VM -Path")
    processors: int = Field(default=1, ge=1)
    keep_default_nic: bool = Field(
        default=False, description="keep New-VM's unconnected 'Network Adapter'"
    )
    disk_created: bool | None = Field(default=None, description=(
        "whether this build copied the VM's disk (recorded in the VM's Notes mark: `hvlab down` "
        "keeps a disk that was there before); None: unknown, counted as created"))

    @classmethod
    def from_spec(cls, spec: LabSpec, vm: Vm) -> VmCreateInput:
        return cls(host=vm.host, name=vm.name, generation=vm.generation, memory_bytes=vm.memory,
                   disk_path=spec.vm_disk_path(vm), config_path=spec.vm_config_path(vm),
                   processors=vm.processors)


class VmNicInput(StepInput):
    host: str
    vm: str
    name: str
    switch: str
    legacy: bool = False
    mac: str | None = Field(default=None, description="static MAC, 12 hex digits")

    @classmethod
    def from_spec(cls, vm: Vm, nic: Nic, mac: str | None = None) -> VmNicInput:
        """The NIC with ``mac``, else the deterministic :func:`static_mac` of the VM's NIC
        (guest configuration finds adapters by MAC, so lab NICs never get dynamic ones)."""
        return cls(host=vm.host, vm=vm.name, name=nic.name, switch=nic.switch,
                   legacy=nic.legacy, mac=mac or static_mac(vm.name, nic.name))


class VmFirmwareInput(StepInput):
    """Secure Boot of a generation 2 VM (set while it is off, before its first start)."""

    host: str
    vm: str
    secure_boot: bool = True
    template: str = Field(default="MicrosoftWindows", description="Secure Boot template, "
                          "e.g. MicrosoftUEFICertificateAuthority")

    @classmethod
    def from_spec(cls, vm: Vm) -> VmFirmwareInput | None:
        """The VM's firmware settings, or None for generation 1 (BIOS: nothing to set)."""
        firmware = vm.firmware
        if firmware is None:
            return None
        on, template = firmware
        return cls(host=vm.host, vm=vm.name, secure_boot=on, template=template.value)


class VmInput(StepInput):
    """A step on one VM (start, stop)."""

    host: str
    vm: str


class VmStopInput(VmInput):
    """vm.stop: ``shutdown_seconds`` shuts the guest down (Stop-VM without -TurnOff) and
    turns it off only if it is not off within that time; None turns it off at once. (A
    subclass, so the VmInput payloads recorded in histories stay as they were.)"""

    shutdown_seconds: int | None = None


class VmRemoveInput(StepInput):
    """Compensation of vm.create/vm.disk: turn off, remove the VM, delete its disk. With
    ``keep_adopted`` (`hvlab down` without --force) only a VM with this lab's ``created-by``
    Notes mark goes, and its disks only when the build copied them."""

    host: str
    vm: str
    disk_path: str | None = None
    keep_adopted: bool = False


# -- guest configuration, storage, directory and network steps -------------------------------

GuestOs = Literal["windows", "windows-legacy", "linux"]
MAC_PREFIX = "00155D"


def static_mac(vm: str, nic: str) -> str:
    """A deterministic static MAC (12 hex digits) for a VM's NIC: Hyper-V's 00-15-5D prefix
    and three bytes of SHA-256 over the lower-cased VM and NIC names."""
    digest = hashlib.sha256(f"{vm.lower()}/{nic.lower()}".encode()).hexdigest()
    return MAC_PREFIX + digest[:6].upper()


def _forward_ip(spec: LabSpec, nat: NatGateway, forward: PortForward) -> str:
    """The private address of a port forward: ``to_ip``, else the target VM's address on one
    of the NAT's internal networks (else its first address)."""
    if forward.to_ip is not None:
        return str(forward.to_ip)
    target = spec.vm(forward.to_vm or "")
    inside = set(nat.internal)
    if nat.vm:
        inside = {n.switch for n in spec.vm(nat.vm).nics if n.name in nat.internal}
    addresses = sorted(((n.switch not in inside, n.ipv4) for n in target.nics if n.ipv4),
                       key=lambda pair: pair[0])
    if not addresses:
        raise ValueError(f"forward to {target.name}: the VM has no IPv4 address in the lab file")
    return str(addresses[0][1].ip)


class GuestNicConfig(StepInput):
    """Static IPv4 settings of one guest adapter, found in the guest by its MAC."""

    name: str = Field(description="VM NIC name, also the guest connection name")
    mac: str = Field(description="the NIC's static MAC, 12 hex digits")
    ip: str
    prefix: int = Field(ge=0, le=32)
    gateway: str | None = None
    dns: list[str] = Field(default_factory=list)

    @classmethod
    def from_spec(cls, vm: Vm, nic: Nic) -> GuestNicConfig:
        if nic.ipv4 is None:
            raise ValueError(f"{vm.name}/{nic.name} has no ipv4 in the lab file")
        return cls(name=nic.name, mac=static_mac(vm.name, nic.name), ip=str(nic.ipv4.ip),
                   prefix=nic.ipv4.network.prefixlen,
                   gateway=str(nic.gateway) if nic.gateway else None,
                   dns=[str(d) for d in nic.dns])


class GuestUserConfig(StepInput):
    """A local guest user; its password is the lab credential's, sent as a PSCredential."""

    name: str
    credential: str = Field(description="lab credential name")
    groups: list[str] = Field(default_factory=list)


class GuestNatConfig(StepInput):
    """RRAS NAT in a guest: public and private connection names, port mappings."""

    public: str
    private: list[str]
    mappings: list[str] = Field(default_factory=list,
                                description="proto:publicport:privateip:privateport")

    @classmethod
    def from_spec(cls, spec: LabSpec, nat: NatGateway) -> GuestNatConfig:
        mappings = [f"{f.protocol.value}:{f.external_port}:{_forward_ip(spec, nat, f)}:"
                    f"{f.internal_port}" for f in nat.forwards]
        return cls(public=nat.external, private=list(nat.internal), mappings=mappings)


def _guest_nat(spec: LabSpec, vm: Vm) -> GuestNatConfig | None:
    for nat in spec.nat:
        if nat.kind is NatKind.rras_in_guest and (nat.vm or "").lower() == vm.name.lower():
            return GuestNatConfig.from_spec(spec, nat)
    return None


def _telnet_users(vm: Vm) -> list[GuestUserConfig]:
    telnet = vm.guest.telnet
    if telnet is None:
        return []
    return [GuestUserConfig(name=u.name, credential=u.credential, groups=[telnet.group])
            for u in telnet.users]


class GuestInput(StepInput):
    """A guest step on the VM's Hyper-V host; PowerShell Direct needs ``os`` windows (2016+)
    and the guest administrator's lab ``credential``."""

    host: str
    vm: str
    os: GuestOs
    credential: str | None = None

    @classmethod
    def base(cls, vm: Vm) -> dict[str, Any]:
        return {"host": vm.host, "vm": vm.name, "os": vm.guest.os.value,
                "credential": vm.guest.credential}


class OfflineGuestConfigInput(GuestInput):
    """host/offline-guest-config for a legacy guest: written into its VHD(X) while it is off,
    applied at its next boot."""

    vhd_path: str
    nics: list[GuestNicConfig] = Field(default_factory=list)
    users: list[GuestUserConfig] = Field(default_factory=list)
    telnet: bool = False
    rdp_port: int | None = None
    nat: GuestNatConfig | None = None

    @classmethod
    def from_spec(cls, spec: LabSpec, vm: Vm) -> OfflineGuestConfigInput:
        return cls(**cls.base(vm), vhd_path=spec.vm_disk_path(vm),
                   nics=[GuestNicConfig.from_spec(vm, n) for n in vm.nics if n.ipv4],
                   users=_telnet_users(vm), telnet=vm.guest.telnet is not None,
                   rdp_port=vm.guest.rdp.port if vm.guest.rdp else None,
                   nat=_guest_nat(spec, vm))


class GuestWaitInput(GuestInput):
    timeout_seconds: float = 900.0
    interval_seconds: float = 5.0

    @classmethod
    def from_spec(cls, vm: Vm) -> GuestWaitInput:
        return cls(**cls.base(vm))


class GuestIpv4Input(GuestInput):
    nic: GuestNicConfig

    @classmethod
    def from_spec(cls, vm: Vm, nic: Nic) -> GuestIpv4Input:
        return cls(**cls.base(vm), nic=GuestNicConfig.from_spec(vm, nic))


class GuestAddressInput(StepInput):
    """guest.wait_address: the address a NIC of a guest hvlab does not configure (a Linux
    guest: golden image or DHCP) must report through KVP."""

    host: str
    vm: str
    nic: str
    source: Literal["golden", "dhcp"]
    address: str | None = Field(default=None, description="the lab's ipv4, with prefix")
    subnet: str | None = Field(default=None, description="the switch's subnet (no ipv4)")
    timeout_seconds: float = Field(default=600.0, ge=0)
    interval_seconds: float = Field(default=5.0, gt=0)

    @classmethod
    def from_spec(cls, spec: LabSpec, vm: Vm, nic: Nic) -> GuestAddressInput:
        switch = next((s for s in spec.host(vm.host).switches
                       if s.name.lower() == nic.switch.lower()), None)
        subnet = switch.subnet if switch is not None else None
        source = vm.guest.addresses_from.value
        assert source in ("golden", "dhcp")
        return cls(host=vm.host, vm=vm.name, nic=nic.name, source=source,
                   address=str(nic.ipv4) if nic.ipv4 else None,
                   subnet=str(subnet) if subnet else None,
                   timeout_seconds=float(vm.guest.address_timeout))


class GuestTelnetInput(GuestInput):
    users: list[GuestUserConfig]
    group: str = "TelnetClients"

    @classmethod
    def from_spec(cls, vm: Vm) -> GuestTelnetInput:
        group = vm.guest.telnet.group if vm.guest.telnet else "TelnetClients"
        return cls(**cls.base(vm), users=_telnet_users(vm), group=group)


class GuestRdpInput(GuestInput):
    port: int = Field(default=3389, ge=1, le=65535)

    @classmethod
    def from_spec(cls, vm: Vm) -> GuestRdpInput:
        return cls(**cls.base(vm), port=vm.guest.rdp.port if vm.guest.rdp else 3389)


class GuestNatInput(GuestInput):
    nat: GuestNatConfig

    @classmethod
    def from_spec(cls, spec: LabSpec, nat: NatGateway) -> GuestNatInput:
        return cls(**cls.base(spec.vm(nat.vm or "")), nat=GuestNatConfig.from_spec(spec, nat))


class ConnectivityCheck(StepInput):
    """From ``host``: does ``address`` answer (TCP ``port``, or ping without a port)?"""

    name: str
    host: str
    address: str
    port: int | None = Field(default=None, ge=1, le=65535)


class ConnectivityInput(StepInput):
    """The checks, and how long a failing one is tried again: what a guest's first boot
    configures (a 2003 router's NAT forwards, Telnet, the RDP port) answers only once its
    mini-setup has run the first-boot commands, minutes after the VM started."""

    checks: list[ConnectivityCheck]
    timeout_seconds: float = Field(default=900.0, ge=0)
    interval_seconds: float = Field(default=5.0, gt=0)

    @classmethod
    def from_spec(cls, spec: LabSpec) -> ConnectivityInput:
        """Every TCP forward of every NAT, tried on the NAT's public address from a Hyper-V
        host: each lands on a server in an internal network, so it passes only when the router
        routes into that network and the server routes back through it."""
        return cls(checks=[c for nat in spec.nat for c in _nat_checks(spec, nat)])


def _nat_checks(spec: LabSpec, nat: NatGateway) -> list[ConnectivityCheck]:
    if nat.kind is NatKind.rras_in_guest and nat.vm:
        router = spec.vm(nat.vm)
        public = next((n for n in router.nics if n.name == nat.external and n.ipv4), None)
        if public is None or public.ipv4 is None:
            return []
        source, address = router.host, str(public.ipv4.ip)
    else:
        host = spec.host(nat.host or "")
        others = [h.name for h in spec.hyperv_hosts if h.name != host.name]
        source, address = (others or [host.name])[0], host.connection.address
    return [ConnectivityCheck(
        name=f"{nat.name}: tcp {f.external_port} on {address} -> {f.to_vm or f.to_ip}:"
             f"{f.internal_port}", host=source, address=address, port=f.external_port)
        for f in nat.forwards if f.protocol.value == "tcp" and not split_forward(spec, nat, f)]


def split_forward(spec: LabSpec, nat: NatGateway, forward: PortForward) -> str:
    """Why the forward cannot work where the VMs run now ('' when it can): an RRAS router
    reaches its servers through Internal or Private switches, which do not leave their host,
    so after a class moved the router or the server to another host the path is gone until a
    move brings them together again."""
    if nat.kind is not NatKind.rras_in_guest or not nat.vm or not forward.to_vm:
        return ""
    router, server = spec.vm(nat.vm), spec.vm(forward.to_vm)
    if router.host.lower() == server.host.lower():
        return ""
    shared = {n.switch.lower() for n in router.nics} & {n.switch.lower() for n in server.nics}
    for name in shared:
        switch = next((s for s in spec.host(server.host).switches
                       if s.name.lower() == name), None)
        if switch is not None and switch.type is SwitchType.External:
            return ""
    return (f"{nat.vm} runs on {router.host} and {server.name} on {server.host}: their "
            "switches do not cross hosts; move them onto one host to use this forward")


# storage (SMB share, share ACL, NTFS)

ShareRight = Literal["Full", "Change", "Read"]
NTFS_FOR_SHARE: dict[str, Literal["F", "M", "RX"]] = {"Full": "F", "Change": "M", "Read": "RX"}


def _accounts(share: Share, access: str) -> list[str]:
    return [g.account for g in share.grants if g.access.value == access]


class ShareInput(StepInput):
    """An SMB share on a folder (created when missing) with its initial share ACL."""

    host: str
    name: str
    path: str
    full_access: list[str] = Field(default_factory=list)
    change_access: list[str] = Field(default_factory=list)
    read_access: list[str] = Field(default_factory=list)

    @classmethod
    def from_spec(cls, share: Share) -> ShareInput:
        return cls(host=share.host, name=share.name, path=share.path,
                   full_access=_accounts(share, "Full"), change_access=_accounts(share, "Change"),
                   read_access=_accounts(share, "Read"))


class ShareGrant(StepInput):
    account: str
    access: ShareRight = "Full"


class ShareAccessInput(StepInput):
    host: str
    name: str
    grants: list[ShareGrant]

    @classmethod
    def from_spec(cls, share: Share) -> ShareAccessInput:
        return cls(host=share.host, name=share.name,
                   grants=[ShareGrant(account=g.account, access=g.access.value)
                           for g in share.grants])


class NtfsGrant(StepInput):
    account: str
    rights: Literal["F", "M", "RX"] = "F"


class NtfsInput(StepInput):
    """NTFS rights on a folder (icacls, host/ntfs-grant); ``inherit`` adds (OI)(CI)."""

    host: str
    path: str
    grants: list[NtfsGrant]
    inherit: bool = True

    @classmethod
    def from_spec(cls, share: Share) -> NtfsInput:
        return cls(host=share.host, path=share.path,
                   grants=[NtfsGrant(account=g.account, rights=NTFS_FOR_SHARE[g.access.value])
                           for g in share.grants])


class RemoveShareInput(StepInput):
    host: str
    name: str


class RevokeAccessInput(StepInput):
    host: str
    name: str
    accounts: list[str]


# directory (Kerberos constrained delegation)


def delegation_spns(spec: LabSpec, entry: Delegation) -> list[str]:
    """``service/target`` in short and FQDN form for every service of every target."""
    fqdn = spec.domain.fqdn
    return [spn for target in entry.to for service in target.services
            for spn in (f"{service}/{target.target}", f"{service}/{target.target}.{fqdn}")]


class DelegationInput(StepInput):
    """KCD on ``computer``'s AD object, set on the domain controller ``dc``."""

    dc: str
    computer: str
    spns: list[str] = Field(description="msDS-AllowedToDelegateTo entries")
    protocol_transition: bool = True

    @classmethod
    def from_spec(cls, spec: LabSpec, entry: Delegation) -> DelegationInput:
        return cls(dc=spec.domain.dc, computer=entry.host, spns=delegation_spns(spec, entry),
                   protocol_transition=entry.protocol_transition)


class RemoveDelegationInput(StepInput):
    """Compensation of directory.delegation: remove exactly what that step added."""

    dc: str
    computer: str
    spns: list[str] = Field(default_factory=list, description="entries the step added")
    restore_transition: bool = Field(
        default=False, description="the step turned protocol transition on; turn it off")

    @classmethod
    def from_step(cls, request: DelegationInput, result: StepResult) -> RemoveDelegationInput:
        return cls(lab=request.lab, dc=request.dc, computer=request.computer,
                   spns=list(result.observed.get("added", [])),
                   restore_transition=bool(result.observed.get("transition_set", False)))


# network (WinNAT on a Hyper-V host)


def _internal_prefix(spec: LabSpec, nat: NatGateway) -> str:
    if nat.internal_prefix is not None:
        return str(nat.internal_prefix)
    host = spec.host(nat.host or "")
    nets = [s.subnet for s in host.switches if s.name in nat.internal and s.subnet is not None]
    if not nets:
        raise ValueError(f"NAT {nat.name}: give internal_prefix or subnets on its switches")
    wide = nets[0]
    while not all(n.subnet_of(wide) for n in nets):
        wide = wide.supernet()
    return str(wide)


class NatForwardConfig(StepInput):
    protocol: Literal["TCP", "UDP"] = "TCP"
    external_ip: str = "0.0.0.0"
    external_port: int = Field(ge=1, le=65535)
    internal_ip: str
    internal_port: int = Field(ge=1, le=65535)


class HostNatInput(StepInput):
    """A WinNAT network (New-NetNat) on a Hyper-V host with static port mappings."""

    host: str
    name: str
    internal_prefix: str
    forwards: list[NatForwardConfig] = Field(default_factory=list)

    @classmethod
    def from_spec(cls, spec: LabSpec, nat: NatGateway) -> HostNatInput:
        forwards = [NatForwardConfig(protocol="TCP" if f.protocol.value == "tcp" else "UDP",
                                     external_port=f.external_port,
                                     internal_ip=_forward_ip(spec, nat, f),
                                     internal_port=f.internal_port) for f in nat.forwards]
        return cls(host=nat.host or "", name=nat.name, internal_prefix=_internal_prefix(spec, nat),
                   forwards=forwards)


class RemoveHostNatInput(StepInput):
    host: str
    name: str



# -- migration, replica and checkpoint steps (activities/migration.py, replica.py, checkpoint.py)


class MigrationNetworkInput(StepInput):
    subnet: str = Field(description="e.g. 192.168.1.0/24")
    priority: int = Field(default=1, ge=0)


class MigrationHostSettings(StepInput):
    """The Set-VMHost migration settings (reference §11); also what readiness found before."""

    enabled: bool = True
    authentication: Literal["Kerberos", "CredSSP"] = "Kerberos"
    performance: Literal["TCPIP", "Compression", "SMB"] = "Compression"
    max_vm_migrations: int = Field(default=2, ge=1)
    max_storage_migrations: int = Field(default=2, ge=1)
    use_any_network: bool = False


class MigrationReadinessInput(StepInput):
    host: str
    settings: MigrationHostSettings = Field(default_factory=MigrationHostSettings)
    networks: list[MigrationNetworkInput] = Field(default_factory=list)

    @classmethod
    def from_spec(cls, host: HostSpec) -> MigrationReadinessInput:
        m = host.migration
        if m is None:
            return cls(host=host.name)
        settings = MigrationHostSettings(
            enabled=m.enabled, authentication=m.authentication.value,
            performance=m.performance.value, max_vm_migrations=m.max_concurrent,
            max_storage_migrations=m.max_storage, use_any_network=m.use_any_network)
        return cls(host=host.name, settings=settings, networks=[
            MigrationNetworkInput(subnet=str(n), priority=i + 1) for i, n in enumerate(m.networks)])


class MigrationRestoreInput(StepInput):
    """Compensation of migration.readiness: the settings it observed before, and the
    migration networks it added (only those are removed)."""

    host: str
    previous: MigrationHostSettings
    remove_networks: list[str] = Field(default_factory=list)

    @classmethod
    def from_readiness(cls, request: MigrationReadinessInput, result: StepResult
                       ) -> MigrationRestoreInput:
        return cls(lab=request.lab, host=request.host,
                   previous=MigrationHostSettings(**result.observed["previous"]),
                   remove_networks=list(result.observed.get("added_networks", [])))


MoveMode = Literal["shared-nothing", "smb", "storage"]


class MoveInput(StepInput):
    """A move of ``vm`` from ``host``: shared-nothing (VM + storage to ``destination_path`` on
    ``destination``), smb (compute only, files stay on the share) or storage (Move-VMStorage on
    ``host`` to ``destination_path``)."""

    host: str
    vm: str
    mode: MoveMode = "shared-nothing"
    destination: str | None = Field(default=None, description="lab host name (not storage)")
    destination_fqdn: str | None = Field(default=None, description="Move-VM -DestinationHost")
    destination_path: str | None = None

    def target_host(self) -> str:
        """Where the VM runs after the move."""
        return self.host if self.mode == "storage" else str(self.destination)


class MigrationJobInput(StepInput):
    """A host-side Msvm_MigrationJob on the source ``host``."""

    host: str
    job_id: str
    interval_seconds: float = Field(default=2.0, gt=0)
    timeout_seconds: float = Field(default=4 * 3600.0, gt=0)


class DowntimeInput(StepInput):
    """Ping ``address`` from ``host`` (the seed's ``ping -t``) until the migration job
    ``job_id`` on ``job_host`` has ended; report the longest run of lost replies."""

    host: str = Field(description="where the pings come from")
    address: str
    vm: str
    job_host: str
    job_id: str
    mode: str = "shared-nothing"
    interval_seconds: float = Field(default=0.2, gt=0)
    timeout_seconds: float = Field(default=4 * 3600.0, gt=0)


class FindJobInput(StepInput):
    host: str
    vm: str
    vm_id: str | None = Field(default=None, description="when the VM already left the host")


class VerifyLocationInput(StepInput):
    """Where ``vm`` must be: on ``host`` (not on ``absent_from``), config and disks under
    ``path`` when given."""

    host: str
    vm: str
    path: str | None = None
    absent_from: str | None = None
    fail_on_mismatch: bool = True


class ReplicaServerInput(StepInput):
    """``host`` accepts replication (Kerberos on ``port``, from any server, into ``storage``).
    ``vm`` is the VM it is set up for: the other relationships on the host rely on the
    settings it has, so a change they would not survive is refused (Conflict)."""

    host: str
    port: int = Field(default=80, ge=1, le=65535)
    storage: str = "C:\\Hyper-V\\Replica"
    vm: str | None = Field(default=None, description="the VM this replica server is for")


class ReplicaServersInput(StepInput):
    """The replica servers ``vm``'s replication needs (``hosts``: its replica, then its
    primary) and the settings asked for; None takes what the servers already have."""

    vm: str
    hosts: list[str] = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)
    storage: str | None = None


class ReplicaFirewallInput(StepInput):
    """The 'Hyper-V Replica HTTP Listener (TCP-In)' rule on ``host``: enabled on ``port``
    (forward) or disabled and back on ``port`` (compensation, port 80 by default)."""

    host: str
    port: int = Field(default=80, ge=1, le=65535)


class ReplicationInput(StepInput):
    """Replication of ``vm`` from ``primary`` to ``replica`` (lab host names);
    ``replica_server`` is the name Hyper-V connects to (FQDN)."""

    primary: str
    replica: str
    vm: str
    replica_server: str
    port: int = Field(default=80, ge=1, le=65535)
    primary_server: str | None = Field(default=None, description="primary's FQDN (reverse)")
    auth: Literal["Kerberos"] = "Kerberos"
    frequency: int = Field(default=300, description="30, 300 or 900 seconds")

    @classmethod
    def from_spec(cls, spec: LabSpec, vm: str) -> ReplicationInput:
        rep = spec.replication_of(vm)
        if rep is None:
            raise KeyError(vm)
        fqdn = spec.domain.fqdn.lower()
        return cls(primary=rep.primary, replica=rep.replica, vm=rep.vm,
                   replica_server=f"{rep.replica.lower()}.{fqdn}",
                   primary_server=f"{rep.primary.lower()}.{fqdn}", port=rep.port,
                   frequency=rep.frequency)


class ReplicaVmInput(StepInput):
    """One side (``host``) of a replicated VM."""

    host: str
    vm: str


class ReplicaHealthInput(StepInput):
    """A replicated VM and the hosts that may hold its primary side (either one, after a
    planned failover and reverse replication)."""

    vm: str
    hosts: list[str] = Field(min_length=1)


class ReplicaWaitInput(StepInput):
    host: str
    vm: str
    states: list[str] = Field(default_factory=lambda: ["Replicating"])
    health: list[str] = Field(default_factory=lambda: ["Normal"])
    interval_seconds: float = Field(default=5.0, gt=0)
    timeout_seconds: float = Field(default=4 * 3600.0, gt=0)


class CheckpointInput(StepInput):
    host: str
    vm: str
    name: str
