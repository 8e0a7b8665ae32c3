"""The simulated fleet's state: hosts, Hyper-V objects, guests, AD, shares, jobs, counters.

Everything is a pydantic model so the whole world saves to JSON and loads back unchanged.
Lookups are case-insensitive like Windows. Other simulator modules (cmdlets for AD, SMB,
networking, guests) work through the helper methods here rather than poking at dicts.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field

GB = 1024**3
MB = 1024**2
DEFAULT_HOST_MEMORY = 16 * GB
HOST_RESERVE = 2 * GB  # memory the parent partition keeps for itself
OS_VERSION = "10.0.20348"
DEFAULT_VOLUME = 256 * 1024**3
OS_CAPTION = "Microsoft Windows Server 2022 Datacenter"
# built-in rules by Name (a DisplayName is localized: simulator/localization.py)
REPLICA_HTTP_RULE = "VIRT-HVRHTTPL-In-TCP-NoScope"
REPLICA_HTTPS_RULE = "Hyper-V Replica HTTPS Listener (TCP-In)"
MIGRATION_RULE = "Hyper-V (MIG-TCP-In)"

T = TypeVar("T")


class _M(BaseModel):
    model_config = ConfigDict(extra="ignore")


_A = TypeVar("_A", bound=BaseModel)


# ---------------------------------------------------------------- paths


def norm_path(path: str) -> str:
    """A Windows path in canonical display form: backslashes, no trailing separator."""
    p = path.replace("/", "\\").strip()
    unc = p.startswith("\\\\")
    while "\\\\" in p[2:]:
        p = p[:2] + p[2:].replace("\\\\", "\\")
    if not unc:
        p = p.replace("\\\\", "\\")
    if len(p) > 3 and p.endswith("\\"):
        p = p.rstrip("\\")
    if len(p) == 2 and p[1] == ":":
        p += "\\"
    return p


def path_key(path: str) -> str:
    return norm_path(path).lower()


def parent_path(path: str) -> str | None:
    p = norm_path(path)
    if p.startswith("\\\\"):
        parts = p[2:].split("\\")
        return None if len(parts) <= 2 else "\\\\" + "\\".join(parts[:-1])
    if len(p) <= 3:
        return None
    head = p.rsplit("\\", 1)[0]
    return head + "\\" if len(head) == 2 else head


def join_path(base: str, *parts: str) -> str:
    out = norm_path(base)
    for part in parts:
        out = out.rstrip("\\") + "\\" + part.strip("\\")
    return norm_path(out)


def leaf(path: str) -> str:
    return norm_path(path).rsplit("\\", 1)[-1]


def is_unc(path: str) -> bool:
    return norm_path(path).startswith("\\\\")


def find(mapping: dict[str, T], name: str) -> T | None:
    """Case-insensitive dict lookup."""
    if name in mapping:
        return mapping[name]
    low = name.lower()
    for key, value in mapping.items():
        if key.lower() == low:
            return value
    return None


def new_guid() -> str:
    return str(uuid.uuid4())


# ---------------------------------------------------------------- files, ACLs, network


class SimFile(_M):
    path: str
    size: int
    vhd_type: str | None = None  # Dynamic / Fixed / Differencing for VHD(X) files
    virtual_size: int = 0
    parent: str | None = None  # differencing parent (path on the same host or UNC)
    os: str | None = None  # guest OS family installed on this disk (golden images)
    first_boot: dict[str, Any] | None = None  # offline guest config applied at the next boot
    truncated: bool = False  # a copy that was cut short (Copy-Item stopped, host rebooted)
    generalized: bool = False  # a sysprepped image: its first boot specializes the guest
    # a Linux image's network configuration, per adapter in order (eth0, eth1, ...): an
    # "a.b.c.d/p" static address, "dhcp", or "" (none); None: no configuration
    network: list[str] | None = None
    kvp_daemon: bool = True  # hv_kvp_daemon runs in the image (reports addresses to Hyper-V)


class Ace(_M):
    account: str
    right: str = "Full"  # Full / Change / Read (share) or FullControl / Modify / Read (NTFS)
    inherit: bool = True


class FirewallRule(_M):
    name: str
    display_name: str
    enabled: bool = False
    direction: str = "Inbound"
    action: str = "Allow"
    protocol: str = "TCP"
    local_port: str = "Any"
    group: str = ""


class IpAddress(_M):
    address: str  # "192.168.1.110/24"
    origin: str = "Manual"


class HostAdapter(_M):
    alias: str
    description: str
    mac: str
    ips: list[IpAddress] = Field(default_factory=list)
    gateway: str | None = None
    dns: list[str] = Field(default_factory=list)
    status: str = "Up"
    virtual_switch: str | None = None  # "vEthernet (X)" adapters belong to switch X
    bound_to_switch: str | None = None  # physical adapter bound to an External switch


class NatMapping(_M):
    protocol: str
    external_ip: str
    external_port: int
    internal_ip: str
    internal_port: int
    id: int = 0


class NetNat(_M):
    name: str
    internal_prefix: str
    mappings: list[NatMapping] = Field(default_factory=list)


# ---------------------------------------------------------------- guests


class GuestNat(_M):
    installed: bool = False
    interfaces: dict[str, str] = Field(default_factory=dict)  # interface name -> full/private
    port_mappings: list[dict[str, Any]] = Field(default_factory=list)


class Guest(_M):
    os: str = "windows"  # windows / windows-legacy / linux
    ips: dict[str, list[str]] = Field(default_factory=dict)  # MAC -> ["10.0.0.1/24"]
    gateways: dict[str, str] = Field(default_factory=dict)  # MAC -> gateway
    dns: dict[str, list[str]] = Field(default_factory=dict)
    users: dict[str, dict[str, Any]] = Field(default_factory=dict)
    groups: dict[str, list[str]] = Field(default_factory=dict)
    services: dict[str, dict[str, str]] = Field(default_factory=dict)  # name -> status/start
    registry: dict[str, dict[str, Any]] = Field(default_factory=dict)
    features: list[str] = Field(default_factory=list)
    nat: GuestNat = Field(default_factory=GuestNat)
    firewall_ports: list[str] = Field(default_factory=list)
    adapter_names: dict[str, str] = Field(default_factory=dict)  # MAC -> connection name
    specialized: bool = True  # False until the first boot of a guest from a sysprepped image
    image_network: list[str] = Field(default_factory=list)  # Linux: from its golden image
    kvp: bool = True  # Linux: the image runs hv_kvp_daemon

    RDP_KEY: ClassVar[str] = (
        "HKLM\\SYSTEM\\CurrentControlSet\\Control\\Terminal Server\\WinStations\\RDP-Tcp"
    )

    @property
    def rdp_port(self) -> int | None:
        values = find(self.registry, self.RDP_KEY)
        if self.os == "linux" or values is None:
            return None
        return int(values.get("PortNumber", 3389))


def default_guest(os_family: str) -> Guest:
    guest = Guest(os=os_family)
    if os_family != "linux":
        guest.users = {"Administrator": {"enabled": True}}
        guest.groups = {"Administrators": ["Administrator"], "Users": []}
        guest.services = {
            "TermService": {"status": "Running", "start": "Auto"},
            "TlntSvr": {"status": "Stopped", "start": "Disabled"},
            "RemoteAccess": {"status": "Stopped", "start": "Disabled"},
        }
        guest.registry = {Guest.RDP_KEY: {"PortNumber": 3389}}
    else:
        guest.users = {"root": {"enabled": True}}
        guest.services = {"sshd": {"status": "Running", "start": "Auto"}}
    return guest


# ---------------------------------------------------------------- Hyper-V objects


class VmNic(_M):
    id: str = Field(default_factory=new_guid)
    name: str = "Network Adapter"
    switch: str | None = None
    mac: str
    legacy: bool = False


class VmDisk(_M):
    path: str
    controller_type: str = "SCSI"
    controller_number: int = 0
    controller_location: int = 0


class VmDvd(_M):
    path: str | None = None
    controller_type: str = "IDE"
    controller_number: int = 1
    controller_location: int = 0


class Replication(_M):
    mode: str  # Primary / Replica / TestReplica
    state: str
    health: str = "Normal"
    frequency: int = 300
    primary: str = ""
    replica: str = ""
    port: int = 80
    auth: str = "Kerberos"
    relationship: str = "Simple"
    last_replication: float | None = None
    test_vm: str | None = None


class Snapshot(_M):
    id: str = Field(default_factory=new_guid)
    name: str
    created: float
    parent: str | None = None
    snapshot_type: str = "Standard"
    config: dict[str, Any] = Field(default_factory=dict)  # the VM (minus snapshots) at the time


class Vm(_M):
    id: str = Field(default_factory=new_guid)
    name: str
    generation: int = 1
    version: str = "10.0"
    memory_startup: int = 512 * MB
    dynamic_memory: bool = False
    processor_count: int = 1
    path: str  # VM folder root (Path)
    config_location: str
    state: str = "Off"
    nics: list[VmNic] = Field(default_factory=list)
    disks: list[VmDisk] = Field(default_factory=list)
    dvds: list[VmDvd] = Field(default_factory=list)
    snapshots: list[Snapshot] = Field(default_factory=list)
    compatibility_for_migration: bool = False
    automatic_stop_action: str = "Save"
    automatic_start_action: str = "StartIfRunning"
    checkpoint_type: str = "Production"
    notes: str = ""
    guest: Guest = Field(default_factory=Guest)
    ready_at: float | None = None  # when the guest finished booting (heartbeat)
    blackout_until: float = 0.0  # unreachable until (live-migration switch-over)
    replication: Replication | None = None
    migrating: bool = False
    # generation 2 firmware (New-VM's defaults: Secure Boot on, the MicrosoftWindows template)
    secure_boot: bool = True
    secure_boot_template: str = "MicrosoftWindows"

    def nic(self, name: str) -> VmNic | None:
        return next((n for n in self.nics if n.name.lower() == name.lower()), None)


# Secure Boot templates (their ids as Get-VMFirmware shows them) and the guest families whose
# boot loaders their certificates sign: Windows' boot manager is signed by the Microsoft
# Windows PCA, Linux shims by the Microsoft UEFI CA.
SECURE_BOOT_TEMPLATES = {
    "MicrosoftWindows": ("1734c6e8-3154-4dda-ba5f-a874cc483422", {"windows"}),
    "MicrosoftUEFICertificateAuthority": ("272e7447-90a4-4563-a4b9-8e4ab00526ce", {"linux"}),
    "OpenSourceShieldedVM": ("4292ae2b-ee2c-4c48-9bd6-0dcd4d5ee6b0", {"linux"}),
}
NEVER = float(2**62)  # ready_at of a guest that never boots (halted in its firmware)


def firmware_halts(vm: Vm) -> bool:
    """A generation 2 VM whose Secure Boot template does not trust its guest's boot loader
    stays in UEFI: State Running, heartbeat NoContact, no network."""
    if vm.generation != 2 or not vm.secure_boot:
        return False
    family = "linux" if vm.guest.os == "linux" else "windows"
    trusted = SECURE_BOOT_TEMPLATES.get(vm.secure_boot_template, ("", set()))[1]
    return family not in trusted


class Switch(_M):
    id: str = Field(default_factory=new_guid)
    name: str
    type: str  # External / Internal / Private
    adapter: str | None = None
    adapter_description: str | None = None
    allow_management_os: bool = False
    notes: str = ""


class MigrationNetwork(_M):
    subnet: str
    priority: int = 0


class VmHostSettings(_M):
    virtual_machine_path: str = "C:\\ProgramData\\Microsoft\\Windows\\Hyper-V"
    virtual_hard_disk_path: str = "C:\\Users\\Public\\Documents\\Hyper-V\\Virtual Hard Disks"
    migration_enabled: bool = False
    migration_auth: str = "CredSSP"
    migration_performance: str = "Compression"
    max_migrations: int = 2
    max_storage_migrations: int = 2
    use_any_network: bool = True
    migration_networks: list[MigrationNetwork] = Field(default_factory=list)


class ReplicaServer(_M):
    enabled: bool = False
    auth: str = "Kerberos"
    kerberos_port: int = 80
    certificate_port: int = 443
    allow_any_server: bool = True
    default_storage: str = ""
    monitoring_interval: str = "12:00:00"


# ---------------------------------------------------------------- hosts


class Host(_M):
    name: str
    address: str
    role: str = "hyperv"
    os_version: str = OS_VERSION
    os_caption: str = OS_CAPTION
    memory_total: int = DEFAULT_HOST_MEMORY
    cpu_vendor: str = "GenuineIntel"
    cpu_family: str = "Intel(R) Xeon(R) Gold 6248R CPU @ 3.00GHz"
    logical_processors: int = 4
    virtualization_exposed: bool = True
    domain: str | None = None  # FQDN when joined
    workgroup: str = "WORKGROUP"
    pending_domain: str | None = None  # "" = leaving the domain at next boot
    features: list[str] = Field(default_factory=list)
    pending_features: list[str] = Field(default_factory=list)
    pending_removal: list[str] = Field(default_factory=list)
    boot_time: float = 0.0
    rebooting: bool = False
    clock_skew: float = 0.0
    services: dict[str, str] = Field(default_factory=dict)
    files: dict[str, SimFile] = Field(default_factory=dict)  # key: path_key
    folders: dict[str, str] = Field(default_factory=dict)  # path_key -> display path
    ntfs_acls: dict[str, list[Ace]] = Field(default_factory=dict)  # path_key -> explicit ACEs
    firewall: dict[str, FirewallRule] = Field(default_factory=dict)  # rule Name -> rule
    adapters: dict[str, HostAdapter] = Field(default_factory=dict)
    netnat: dict[str, NetNat] = Field(default_factory=dict)
    switches: dict[str, Switch] = Field(default_factory=dict)
    vms: dict[str, Vm] = Field(default_factory=dict)  # key: VM Id (names may repeat)
    vmhost: VmHostSettings = Field(default_factory=VmHostSettings)
    replica_server: ReplicaServer = Field(default_factory=ReplicaServer)
    mac_counter: int = 0
    host_octet: int = 1
    tickets_purged_at: float = 0.0  # klist purge -li 0x3e7 (machine ticket cache)
    locale: str = "en-US"  # display language: messages and localized names (localization.py)
    # values written by reg.exe: key (HKEY_LOCAL_MACHINE\\...) -> value name -> [type, data]
    registry: dict[str, dict[str, list[Any]]] = Field(default_factory=dict)
    # what a first contact finds (simulator/gaps.py sets them; docs/simulator-fidelity.md)
    actual_name: str | None = None  # the computer's own name when it is not the lab's
    volumes: dict[str, int] = Field(default_factory=dict)  # "C:" -> capacity (default 256 GB)
    network_category: str = "Private"  # Public / Private while in a workgroup

    @property
    def computer_name(self) -> str:
        """The name Windows reports (Win32_ComputerSystem.Name), normally the lab's."""
        return self.actual_name or self.name

    def volume_capacity(self, drive: str) -> int:
        return self.volumes.get(drive.upper(), DEFAULT_VOLUME)

    def volume_free(self, drive: str) -> int:
        """Capacity less the files on the drive (``C:``)."""
        prefix = drive.lower() + "\\"
        used = sum(f.size for key, f in self.files.items() if key.startswith(prefix))
        return max(0, self.volume_capacity(drive) - used)

    # -- feature state
    def has_feature(self, name: str) -> bool:
        return any(f.lower() == name.lower() for f in self.features)

    @property
    def pending_reboot(self) -> bool:
        return bool(
            self.pending_features or self.pending_removal or self.pending_domain is not None
        )

    # -- files
    def folder_exists(self, path: str) -> bool:
        key = path_key(path)
        return len(key) == 3 or key in self.folders

    def add_folder(self, path: str) -> None:
        p: str | None = norm_path(path)
        while p and len(p) > 3:
            self.folders.setdefault(p.lower(), p)
            p = parent_path(p)

    def file(self, path: str) -> SimFile | None:
        return self.files.get(path_key(path))

    def put_file(self, f: SimFile) -> None:
        f.path = norm_path(f.path)
        parent = parent_path(f.path)
        if parent:
            self.add_folder(parent)
        self.files[path_key(f.path)] = f

    def children(self, path: str) -> list[str]:
        prefix = path_key(path).rstrip("\\") + "\\"
        out = [p for k, p in self.folders.items() if k.startswith(prefix)]
        out += [f.path for k, f in self.files.items() if k.startswith(prefix)]
        return [p for p in out if "\\" not in p[len(prefix) :]]

    # -- Hyper-V
    def vms_named(self, name: str) -> list[Vm]:
        return [vm for vm in self.vms.values() if vm.name.lower() == name.lower()]

    def vm(self, name: str) -> Vm | None:
        found = self.vms_named(name)
        return found[0] if found else None

    def switch(self, name: str) -> Switch | None:
        return find(self.switches, name)

    def memory_used(self) -> int:
        active = {"Running", "Starting", "Paused", "Saving", "Stopping", "Pausing", "Resuming"}
        used = sum(vm.memory_startup for vm in self.vms.values() if vm.state in active)
        return HOST_RESERVE + used

    def memory_free(self) -> int:
        return max(0, self.memory_total - self.memory_used())

    def next_mac(self) -> str:
        self.mac_counter += 1
        high, low = (self.mac_counter >> 8) & 0xFF, self.mac_counter & 0xFF
        return f"00155D{self.host_octet:02X}{high:02X}{low:02X}"


# ---------------------------------------------------------------- AD, shares, jobs


class AdComputer(_M):
    name: str
    dns_host_name: str
    enabled: bool = True
    allowed_to_delegate_to: list[str] = Field(default_factory=list)
    trusted_to_auth_for_delegation: bool = False
    trusted_for_delegation: bool = False
    principals_allowed_to_delegate: list[str] = Field(default_factory=list)
    distinguished_name: str = ""
    sid: str = ""
    # [{"at": time, "spns": [...], "trusted": bool}]: delegation as of each change (KCD cache)
    delegation_history: list[dict[str, Any]] = Field(default_factory=list)

    def delegation_at(self, cutoff: float) -> tuple[list[str], bool]:
        """(msDS-AllowedToDelegateTo, TrustedToAuthForDelegation) as of ``cutoff``: what a
        host whose machine tickets date from then sees. Without a recorded history (objects set
        up directly) the current settings count."""
        if not self.delegation_history:
            return list(self.allowed_to_delegate_to), self.trusted_to_auth_for_delegation
        seen = [h for h in self.delegation_history if float(h["at"]) <= cutoff]
        state = seen[-1] if seen else self.delegation_history[0]
        return list(state["spns"]), bool(state["trusted"])


class AdUser(_M):
    name: str
    sam_account_name: str
    enabled: bool = True
    distinguished_name: str = ""


class AdGroup(_M):
    name: str
    members: list[str] = Field(default_factory=list)
    distinguished_name: str = ""


class Directory(_M):
    fqdn: str
    netbios: str
    dc: str
    computers: dict[str, AdComputer] = Field(default_factory=dict)
    users: dict[str, AdUser] = Field(default_factory=dict)
    groups: dict[str, AdGroup] = Field(default_factory=dict)

    @property
    def base_dn(self) -> str:
        return ",".join(f"DC={part}" for part in self.fqdn.split("."))

    def computer(self, name: str) -> AdComputer | None:
        short = name.split(".")[0].rstrip("$")
        return find(self.computers, short)

    def add_computer(self, name: str, ou: str = "CN=Computers") -> AdComputer:
        existing = self.computer(name)
        if existing:
            return existing
        comp = AdComputer(
            name=name.upper(),
            dns_host_name=f"{name.lower()}.{self.fqdn}",
            distinguished_name=f"CN={name.upper()},{ou},{self.base_dn}",
            sid=f"S-1-5-21-1004336348-1177238915-682003330-{1100 + len(self.computers)}",
        )
        self.computers[comp.name] = comp
        return comp


class Share(_M):
    name: str
    path: str
    share_acl: list[Ace] = Field(default_factory=list)
    description: str = ""


class Job(_M):
    id: str = Field(default_factory=new_guid)
    number: int = 0
    host: str
    kind: str  # migration / storage / replication / copy
    cim_class: str = "Msvm_MigrationJob"
    job_type: int = 305
    migration_type: int | None = None
    state: int = (
        4  # JobState: 2 New, 3 Starting, 4 Running, 7 Completed, 8 Terminated, 10 Exception
    )
    percent: int = 0
    vm_id: str = ""
    vm_name: str = ""
    destination: str | None = None
    peer: str | None = None  # the host at the job's other end (replica server), else destination
    error_code: int = 0
    error_description: str = ""
    started: float = 0.0
    finished: float | None = None
    cancel_requested: bool = False
    command: str = ""

    @property
    def done(self) -> bool:
        return self.state in (7, 8, 9, 10)


class World(_M):
    version: int = 1
    lab: str = ""
    hosts: dict[str, Host] = Field(default_factory=dict)
    ad: Directory
    shares: dict[str, dict[str, Share]] = Field(default_factory=dict)
    jobs: dict[str, Job] = Field(default_factory=dict)
    counters: dict[str, dict[str, int]] = Field(default_factory=dict)
    job_counter: int = 0
    # the classroom LAN's DHCP server (on External switches): "vm/nic" (lower case) -> the
    # reserved "a.b.c.d/p"
    dhcp_reservations: dict[str, str] = Field(default_factory=dict)
    # state of kinds of object the models above do not know, each owned by the cmdlet module
    # that simulates it (see :meth:`area`): "<area>" -> that module's model
    areas: dict[str, Any] = Field(default_factory=dict)

    def area(self, key: str, model: type[_A]) -> _A:
        """The state a cmdlet module keeps under ``key`` (``model()`` the first time). It is
        saved and loaded with the world: a new unit kind's cmdlets need no edit here."""
        value = self.areas.get(key)
        if not isinstance(value, model):
            value = model.model_validate(value) if value is not None else model()
            self.areas[key] = value
        return value

    # -- lookups
    def host(self, name: str) -> Host | None:
        """A host by short name, FQDN or address."""
        short = name.strip().lower()
        for host in self.hosts.values():
            fqdn = f"{host.name}.{self.ad.fqdn}".lower()
            if short in (host.name.lower(), fqdn, host.address.lower()):
                return host
        return None

    def dc(self) -> Host:
        dc = self.host(self.ad.dc)
        assert dc is not None
        return dc

    def count(self, host: str, command: str) -> None:
        per_host = self.counters.setdefault(host, {})
        per_host[command] = per_host.get(command, 0) + 1

    def find_vm(self, vm_id: str) -> tuple[Host, Vm] | None:
        for host in self.hosts.values():
            if vm_id in host.vms:
                return host, host.vms[vm_id]
        return None

    # -- shares / UNC
    def share(self, host: str, name: str) -> Share | None:
        per_host = find(self.shares, host)
        return find(per_host, name) if per_host else None

    def resolve_unc(self, path: str) -> tuple[Host, str, Share] | None:
        """``\\\\SERVER\\share\\rest`` -> (server host, local path, share) or None."""
        p = norm_path(path)
        if not p.startswith("\\\\"):
            return None
        parts = p[2:].split("\\")
        if len(parts) < 2:
            return None
        host = self.host(parts[0])
        if host is None:
            return None
        share = self.share(host.name, parts[1])
        if share is None:
            return None
        return host, join_path(share.path, *parts[2:]), share

    def locate(self, host: Host, path: str) -> tuple[Host, str] | None:
        """Where a path used on ``host`` physically lives: (host, local path)."""
        if not is_unc(path):
            return host, norm_path(path)
        hit = self.resolve_unc(path)
        return (hit[0], hit[1]) if hit else None

    def ntfs_acl(self, host: Host, path: str) -> list[Ace]:
        """Effective NTFS ACEs on a local path: explicit ones plus inherited from parents."""
        out: list[Ace] = []
        p: str | None = norm_path(path)
        first = True
        while p:
            for ace in host.ntfs_acls.get(p.lower(), []):
                if first or ace.inherit:
                    out.append(ace)
            first = False
            p = parent_path(p)
        admins = Ace(account="BUILTIN\\Administrators", right="FullControl")
        return [*out, admins, Ace(account="NT AUTHORITY\\SYSTEM", right="FullControl")]

    def computer_can_write(self, client: Host, unc: str) -> bool:
        """Does ``client``'s computer account (DOMAIN\\HOST$) have share+NTFS write on ``unc``?"""
        hit = self.resolve_unc(unc)
        if hit is None:
            return False
        server, local, share = hit
        account = f"{self.ad.netbios}\\{client.name}$".lower()
        writes = {"full", "change", "fullcontrol", "modify", "write"}

        def grants(aces: list[Ace]) -> bool:
            names = {account, "everyone"}
            return any(a.account.lower() in names and a.right.lower() in writes for a in aces)

        return (
            client.domain is not None
            and grants(share.share_acl)
            and grants(self.ntfs_acl(server, local))
        )

    def delegates(self, source: str, service: str, target: str, *, transition: bool = True) -> bool:
        """Does ``source`` (the middle server) get tickets delegating to ``service/target``?

        Either the short or the FQDN form in msDS-AllowedToDelegateTo counts. The source sees
        its AD object as of its last machine-ticket purge (``klist purge -li 0x3e7``) or boot,
        whichever is later; ``transition`` requires "use any authentication protocol", which
        remotely initiated operations need.
        """
        comp = self.ad.computer(source)
        if comp is None or not comp.enabled:
            return False
        host = self.host(source)
        cutoff = max(host.boot_time, host.tickets_purged_at) if host else float("inf")
        spns, trusted = comp.delegation_at(cutoff)
        if transition and not trusted:
            return False
        short = target.split(".")[0].lower()
        wanted = {f"{service}/{short}".lower(), f"{service}/{short}.{self.ad.fqdn}".lower()}
        return any(spn.lower() in wanted for spn in spns)

    # -- jobs
    def new_job(self, **fields: Any) -> Job:
        self.job_counter += 1
        job = Job(number=self.job_counter, **fields)
        self.jobs[job.id] = job
        return job

    # -- firewall API (used by the NetSecurity cmdlets)
    def firewall_rule(self, host: Host, name_or_display: str) -> FirewallRule | None:
        rule = find(host.firewall, name_or_display)
        if rule:
            return rule
        low = name_or_display.lower()
        return next((r for r in host.firewall.values() if r.display_name.lower() == low), None)

    # -- persistence
    def save(self, path: Path) -> None:
        """Write atomically (temp file + rename)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
        tmp.write_text(self.model_dump_json())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> World:
        return cls.model_validate_json(path.read_text())
