"""The lab specification: one YAML file describing a whole Hyper-V training lab.

Structure is checked by pydantic (all field errors at once); cross-references and Windows
naming rules are checked afterwards by :func:`check_lab` (all problems at once). Both kinds of
problem are reported as :class:`SpecIssue` with the YAML path and line, see :mod:`hvlab.specfile`.
"""

from __future__ import annotations

import ipaddress
import re
import zoneinfo
from enum import StrEnum
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from hvlab.units import MB, format_size, parse_size

# Characters Windows rejects in computer, VM, switch and share names (and shell metacharacters
# that have no business in a lab object name).
_FORBIDDEN = set('\\/:*?"<>|;&\'`$%,=+')
_SECRET_REF = re.compile(r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:\S.*)$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _name_problem(value: str, *, limit: int) -> str | None:
    bad = sorted({ch for ch in value if ch in _FORBIDDEN})
    if bad:
        return f"{value!r} contains {' '.join(bad)}, which Windows does not allow in a name"
    if value != value.strip() or not value:
        return f"{value!r} must not be empty or start/end with a space"
    if len(value) > limit:
        return f"{value!r} is {len(value)} characters long; the limit is {limit}"
    return None


def _check_name(value: str, limit: int) -> str:
    problem = _name_problem(value, limit=limit)
    if problem:
        raise ValueError(problem)
    return value


# NetBIOS computer names: at most 15 characters.
HostName = Annotated[str, StringConstraints(min_length=1, max_length=15)]
ObjectName = Annotated[str, StringConstraints(min_length=1, max_length=100)]


def _memory(value: Any) -> int:
    size = parse_size(value)
    if size < 32 * MB:
        raise ValueError(f"{format_size(size)} is below the 32MB Hyper-V minimum")
    if size % (2 * MB):
        raise ValueError(f"{size} bytes is not a multiple of 2MB, which Hyper-V requires")
    return size


_SIZE_SCHEMA = {
    "anyOf": [
        {"type": "integer", "minimum": 0},
        {"type": "string", "pattern": r"^\s*\d+\s*([KkMmGgTt]?[Bb])?\s*$"},
    ],
    "description": "bytes, or a number with KB/MB/GB/TB such as 512MB",
}
MemorySize = Annotated[
    int, PlainSerializer(format_size, return_type=str), WithJsonSchema(_SIZE_SCHEMA)
]
Port = Annotated[int, Field(ge=1, le=65535)]


class HostRole(StrEnum):
    dc = "dc"
    hyperv = "hyperv"


class Transport(StrEnum):
    https = "https"
    http = "http"


class AuthKind(StrEnum):
    negotiate = "negotiate"
    kerberos = "kerberos"
    ntlm = "ntlm"
    credssp = "credssp"
    basic = "basic"


class SwitchType(StrEnum):
    External = "External"
    Internal = "Internal"
    Private = "Private"


class Credential(_Model):
    """A user name and a reference to where its secret lives (never the secret itself)."""

    username: str = Field(min_length=1)
    secret: str = Field(description="env:VARIABLE or file:/path/to/file")

    @field_validator("secret")
    @classmethod
    def _is_reference(cls, value: str) -> str:
        if not _SECRET_REF.match(value):
            raise ValueError(
                "must be a reference 'env:VARIABLE' or 'file:/path'; "
                "never write the password itself in the lab file"
            )
        return value


class Domain(_Model):
    fqdn: str = Field(pattern=r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
    netbios: str = Field(min_length=1, max_length=15, pattern=r"^[A-Za-z0-9-]+$")
    dc: str = Field(description="name of the host with role dc")
    admin_credential: str = Field(description="credential with Domain Admin rights")


class Connection(_Model):
    """How the worker reaches a host's WinRM listener.

    The defaults reach a freshly installed Windows Server: ``Enable-PSRemoting`` creates only
    the HTTP listener on 5985, and a workgroup host has no certificate for HTTPS. Over HTTP the
    messages are encrypted by Negotiate (Kerberos once the host is joined and ``address`` is its
    name, NTLM otherwise); Basic over HTTP is never used. ``transport: https`` (5986) validates
    the certificate against the name in ``address``: use a name the certificate's SAN holds.
    """

    address: str = Field(min_length=1)
    port: Port | None = None
    transport: Transport = Transport.http
    auth: AuthKind = AuthKind.negotiate
    credential: str
    validate_certificate: bool = Field(
        default=True, description="HTTPS only: check the certificate's chain and SAN")
    insecure: bool = Field(
        default=False, description="allow CredSSP over HTTP to a non-loopback address "
        "(rehearsal only; Basic over HTTP is refused regardless)"
    )

    @property
    def effective_port(self) -> int:
        """The WinRM port: 5986 for HTTPS, 5985 for HTTP unless given."""
        if self.port is not None:
            return self.port
        return 5986 if self.transport is Transport.https else 5985


class Switch(_Model):
    name: ObjectName
    type: SwitchType
    adapter: str | None = Field(default=None, description="physical adapter (External only)")
    allow_management_os: bool = Field(
        default=True, description="External only: keep a host vNIC with the adapter's address "
        "(New-VMSwitch's default). false dedicates the adapter to VMs: if it carries the "
        "host's WinRM address, the host drops off the network until the switch is removed")
    subnet: ipaddress.IPv4Network | None = Field(
        default=None, description="IPv4 subnet of the network behind this switch, if any"
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value, 100)


class HostPaths(_Model):
    virtual_machines: str | None = None
    virtual_hard_disks: str | None = None


class MigrationAuth(StrEnum):
    Kerberos = "Kerberos"
    CredSSP = "CredSSP"


class MigrationPerformance(StrEnum):
    TCPIP = "TCPIP"
    Compression = "Compression"
    SMB = "SMB"


class MigrationSettings(_Model):
    enabled: bool = True
    authentication: MigrationAuth = MigrationAuth.Kerberos
    performance: MigrationPerformance = MigrationPerformance.Compression
    max_concurrent: int = Field(default=2, ge=1, le=64)
    max_storage: int = Field(default=2, ge=1, le=64)
    networks: list[ipaddress.IPv4Network] = Field(default_factory=list)
    use_any_network: bool = False


HostLocale = Literal["en-US", "ko-KR"]


class Host(_Model):
    name: HostName
    role: HostRole
    connection: Connection
    join_domain: bool = True
    bootstrap_credential: str | None = Field(
        default=None, description="credential of the host's local Administrator: used until "
        "the host is joined to the domain (a host outside the domain accepts only its local "
        "accounts), then connection.credential")
    folders: list[str] = Field(default_factory=list)
    paths: HostPaths = Field(default_factory=HostPaths)
    switches: list[Switch] = Field(default_factory=list)
    migration: MigrationSettings | None = None
    memory: MemorySize | None = Field(default=None, description="physical memory (simulation)")
    locale: HostLocale = Field(
        default="en-US",
        description="the host's display language (simulation: a ko-KR host words its "
                    "messages and localized names in Korean, as a Korean Windows Server does)")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value, 15)

    @field_validator("memory", mode="before")
    @classmethod
    def _memory(cls, value: Any) -> Any:
        return None if value is None else parse_size(value)


class OsFamily(StrEnum):
    windows = "windows"
    windows_legacy = "windows-legacy"
    linux = "linux"


class GoldenImage(_Model):
    name: ObjectName
    path: str = Field(description="VHDX path on each Hyper-V host, or a UNC path")
    generation: Literal[1, 2]
    sysprepped: bool = True
    os: OsFamily = OsFamily.windows
    size: MemorySize = Field(default=8 * 1024**3, description="file size (simulation)")

    @field_validator("size", mode="before")
    @classmethod
    def _size(cls, value: Any) -> int:
        return parse_size(value)


class DiskMode(StrEnum):
    copy = "copy"
    differencing = "differencing"


class Disk(_Model):
    golden: str
    mode: DiskMode = DiskMode.copy
    path: str | None = Field(
        default=None, description="VHDX path; default <host VHD folder>\\<vm>.vhdx; UNC for SMB"
    )


class Nic(_Model):
    name: ObjectName
    switch: str
    ipv4: ipaddress.IPv4Interface | None = None
    gateway: ipaddress.IPv4Address | None = None
    dns: list[ipaddress.IPv4Address] = Field(default_factory=list)
    legacy: bool = False


class TelnetUser(_Model):
    name: str = Field(min_length=1, max_length=20)
    credential: str


class TelnetRole(_Model):
    users: list[TelnetUser] = Field(default_factory=list)
    group: str = "TelnetClients"


class RdpRole(_Model):
    port: Port = 3389


class AddressSource(StrEnum):
    """Where a guest's NIC addresses come from."""

    static = "static"  # hvlab configures them (PowerShell Direct, or offline for 2003)
    golden = "golden"  # the golden image configures them; hvlab verifies
    dhcp = "dhcp"  # a DHCP server gives them (ipv4: the reservation); hvlab verifies


class Guest(_Model):
    os: OsFamily
    credential: str | None = None
    telnet: TelnetRole | None = None
    rdp: RdpRole | None = None
    address_source: AddressSource | None = Field(default=None, description=(
        "static (Windows guests, the default: hvlab sets each NIC's ipv4), golden (Linux "
        "guests, the default: the golden image configures them) or dhcp (Linux: a DHCP "
        "server gives them). Golden and dhcp addresses are verified through the Hyper-V "
        "KVP data exchange, which needs the Linux integration services' hv_kvp_daemon"))
    address_timeout: int = Field(default=600, ge=0, description=(
        "seconds to wait for a golden/dhcp guest to report its addresses after its start"))

    @property
    def addresses_from(self) -> AddressSource:
        """The address source in effect (the default for the guest family when unset)."""
        if self.address_source is not None:
            return self.address_source
        return AddressSource.golden if self.os is OsFamily.linux else AddressSource.static


class SecureBootTemplate(StrEnum):
    """Hyper-V's Secure Boot templates: which boot loaders a generation 2 VM trusts."""

    microsoft_windows = "MicrosoftWindows"
    microsoft_uefi_ca = "MicrosoftUEFICertificateAuthority"  # Linux (shim signed by the UEFI CA)
    open_source_shielded_vm = "OpenSourceShieldedVM"


# the templates whose certificates sign each guest family's boot loader
TRUSTED_TEMPLATES: dict[str, frozenset[SecureBootTemplate]] = {
    "windows": frozenset({SecureBootTemplate.microsoft_windows}),
    "linux": frozenset({SecureBootTemplate.microsoft_uefi_ca,
                        SecureBootTemplate.open_source_shielded_vm}),
}


class Vm(_Model):
    name: ObjectName
    host: str
    generation: Literal[1, 2] = 2
    memory: MemorySize
    processors: int = Field(default=1, ge=1, le=240)
    path: str | None = Field(default=None, description="configuration folder; UNC for SMB")
    disk: Disk
    nics: list[Nic] = Field(default_factory=list)
    guest: Guest
    start: bool = True
    secure_boot: bool | None = Field(
        default=None, description="generation 2 only: Secure Boot on (the default) or off")
    secure_boot_template: SecureBootTemplate | None = Field(
        default=None, description="generation 2 only: default MicrosoftWindows for Windows "
        "guests, MicrosoftUEFICertificateAuthority for Linux (Hyper-V's own default, "
        "MicrosoftWindows, halts a Linux guest in firmware)")

    @property
    def verified_nics(self) -> list[Nic]:
        """The NICs whose addresses VmDeploy waits for, on a guest hvlab does not configure
        (address_source golden or dhcp) once it runs: each NIC with an ipv4, and with dhcp
        every NIC (one without ipv4 must get an address in its switch's subnet)."""
        source = self.guest.addresses_from
        if not self.start or source is AddressSource.static:
            return []
        return [n for n in self.nics if n.ipv4 is not None or source is AddressSource.dhcp]

    @property
    def firmware(self) -> tuple[bool, SecureBootTemplate] | None:
        """(Secure Boot on, template) for a generation 2 VM; None for generation 1 (BIOS)."""
        if self.generation != 2:
            return None
        default = (SecureBootTemplate.microsoft_uefi_ca if self.guest.os is OsFamily.linux
                   else SecureBootTemplate.microsoft_windows)
        return self.secure_boot is not False, self.secure_boot_template or default

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value, 100)

    @field_validator("memory", mode="before")
    @classmethod
    def _memory(cls, value: Any) -> int:
        return _memory(value)


class NatKind(StrEnum):
    rras_in_guest = "rras-in-guest"
    host_netnat = "host-netnat"


class Protocol(StrEnum):
    tcp = "tcp"
    udp = "udp"


class PortForward(_Model):
    protocol: Protocol = Protocol.tcp
    external_port: Port
    to_vm: str | None = None
    to_ip: ipaddress.IPv4Address | None = None
    internal_port: Port


class NatGateway(_Model):
    name: ObjectName
    kind: NatKind
    vm: str | None = Field(default=None, description="router VM (rras-in-guest)")
    host: str | None = Field(default=None, description="Hyper-V host (host-netnat)")
    external: str = Field(description="NIC name (rras) or interface alias (netnat)")
    internal: list[str] = Field(min_length=1)
    internal_prefix: ipaddress.IPv4Network | None = None
    forwards: list[PortForward] = Field(default_factory=list)


class Access(StrEnum):
    Full = "Full"
    Change = "Change"
    Read = "Read"


class Grant(_Model):
    account: str = Field(min_length=1)
    access: Access = Access.Full


class Share(_Model):
    host: str
    name: Annotated[str, StringConstraints(min_length=1, max_length=80)]
    path: str
    grants: list[Grant] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value, 80)


MIGRATION_SERVICE = "Microsoft Virtual System Migration Service"


class DelegationTarget(_Model):
    target: str
    services: list[str] = Field(min_length=1)


class Delegation(_Model):
    host: str
    protocol_transition: bool = True
    to: list[DelegationTarget] = Field(min_length=1)


class ReplicaAuth(StrEnum):
    Kerberos = "Kerberos"
    Certificate = "Certificate"


class Replication(_Model):
    vm: str
    primary: str
    replica: str
    port: Port = 80
    auth: ReplicaAuth = ReplicaAuth.Kerberos
    frequency: int = 300
    storage: str = "C:\\Hyper-V\\Replica"

    @field_validator("frequency")
    @classmethod
    def _frequency(cls, value: int) -> int:
        if value not in (30, 300, 900):
            raise ValueError(f"{value} is not a Hyper-V Replica frequency; use 30, 300 or 900")
        return value


class Checkpoint(_Model):
    name: ObjectName
    vms: list[str] | Literal["all"] = "all"


def time_zone_problem(value: str) -> str | None:
    """Why ``value`` is not an IANA time zone name (``Asia/Seoul``, ``UTC``), or None."""
    name = value.strip()
    if not name:
        return "is empty: give the class's IANA time zone, e.g. Asia/Seoul"
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        if zoneinfo.available_timezones():  # no zone database at all: Temporal will judge
            return (f"{name!r} is not an IANA time zone name; give the class's zone, "
                    "e.g. Asia/Seoul")
    return None


class ResetPolicy(_Model):
    checkpoint: str
    cron: str = Field(pattern=r"^\S+( \S+){4}$", description="five-field cron expression")
    timezone: str = Field(description="IANA time zone the cron runs in, e.g. Asia/Seoul "
                                      "(required: a class's 06:00 is not 06:00 UTC)")

    @model_validator(mode="before")
    @classmethod
    def _explicit_zone(cls, data: Any) -> Any:
        if isinstance(data, dict) and "timezone" not in data:
            raise ValueError("timezone is required: the IANA time zone the class runs in "
                             "(e.g. timezone: Asia/Seoul); without it the cron would run "
                             "in UTC, 06:00 UTC is 15:00 in Seoul")
        return data

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        problem = time_zone_problem(value)
        if problem:
            raise ValueError(problem)
        return value.strip()


# --------------------------------------------------------------------------- exercises

UnitKindName = Literal["host-prep", "shared-storage", "delegation", "migration-readiness",
                       "vm-deploy", "nat", "replication", "checkpoint"]
"""The build plan's unit kinds, which a ``build`` step may pick: one per module that
:mod:`workflows.kinds` lists (it refuses a kind missing here)."""
UNIT_KINDS: tuple[str, ...] = get_args(UnitKindName)


class BuildStep(_Model):
    """Build (converge) the lab from where it is now: every unit, or only some kinds."""

    only: list[UnitKindName] = Field(
        default_factory=list, description="unit kinds to build (all when empty)")


class MigrateStep(_Model):
    """Move a VM live (shared-nothing, smb) or its storage (storage)."""

    vm: str
    to: str | None = Field(default=None, description="destination host (not for storage)")
    mode: Literal["shared-nothing", "smb", "storage"] = "shared-nothing"
    storage_path: str | None = Field(
        default=None, description="destination folder (storage: required)")


class ReplicateStep(_Model):
    """Replicate a VM with Hyper-V Replica (the lab file's entry, or to another host)."""

    vm: str
    to: str | None = Field(default=None, description="replica host (else the lab file's)")


class FailoverStep(_Model):
    """Planned failover of a replicated VM (or a test failover on its replica)."""

    vm: str
    to: str | None = Field(default=None, description=(
        "host that runs the VM afterwards (default: the lab file's replica); a VM that runs "
        "there already is left as it is"))
    test: bool = False
    reverse: bool = True
    approval: bool = Field(default=False, description=(
        "wait after prepare for `hvlab approve <step workflow id>`"))
    approval_timeout: float = Field(default=3600.0, gt=0, description="seconds")


class FailbackStep(_Model):
    """Fail a replicated VM back to the lab file's primary (left alone when it runs there)."""

    vm: str
    reverse: bool = True


class CheckpointStep(_Model):
    """Take one of the lab file's checkpoints of every VM it lists."""

    name: str
    replace: bool = Field(default=False, description=(
        "remove an existing checkpoint of that name first, so it is taken again now"))


class ResetStep(_Model):
    """Restore a checkpoint on every VM, then re-converge the lab file."""

    checkpoint: str = Field(default="", description="default: the lab file's reset.checkpoint")


class VerifyStep(_Model):
    """The lab's connectivity checks: every NAT port forward, where the VMs run now."""

    timeout: float = Field(default=900.0, ge=0, description=(
        "seconds a failing check is tried again (a sysprepped 2003 router answers only after "
        "its first boot's mini-setup); 0: once"))


class ApprovalStep(_Model):
    """Wait for the teacher's go: `hvlab approve <exercise workflow id>`."""

    message: str = Field(default="", description="what the teacher is asked")
    timeout: float | None = Field(default=None, gt=0, description=(
        "seconds to wait (none: wait as long as it takes); no approval in time fails the "
        "exercise"))


class ConvergeStep(_Model):
    """Put the lab back where the lab file says (moves back, failbacks, build)."""


class DownStep(_Model):
    """Remove what the lab file describes."""


STEP_KINDS = ("build", "migrate", "replicate", "failover", "failback", "checkpoint", "reset",
              "verify", "approval", "converge", "down")


class ExerciseStep(_Model):
    """One step of an exercise: exactly one of the step kinds, and an optional name."""

    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,60}$",
                             description="unique in the exercise (default: kind[-vm|-name])")
    build: BuildStep | None = None
    migrate: MigrateStep | None = None
    replicate: ReplicateStep | None = None
    failover: FailoverStep | None = None
    failback: FailbackStep | None = None
    checkpoint: CheckpointStep | None = None
    reset: ResetStep | None = None
    verify: VerifyStep | None = None
    approval: ApprovalStep | None = None
    converge: ConvergeStep | None = None
    down: DownStep | None = None

    @model_validator(mode="before")
    @classmethod
    def _empty_kinds(cls, value: Any) -> Any:
        """``- build:`` (no settings) means ``build: {}``; a kind that is null beside one that
        is set (how a dumped step carries the kinds it is not) stays unset."""
        if isinstance(value, dict) and not any(
                value.get(k) is not None for k in STEP_KINDS):
            return {k: ({} if k in STEP_KINDS and v is None else v) for k, v in value.items()}
        return value

    @property
    def kinds(self) -> list[str]:
        """The step kinds set (exactly one in a valid lab file)."""
        return [k for k in STEP_KINDS if getattr(self, k) is not None]

    @property
    def kind(self) -> str:
        kinds = self.kinds
        return kinds[0] if kinds else ""

    @property
    def settings(self) -> Any:
        """The step kind's settings model."""
        return getattr(self, self.kind) if self.kind else None

    @property
    def key(self) -> str:
        """The step's name: given, else ``<kind>``, ``<kind>-<vm>`` or ``checkpoint-<name>``."""
        if self.name:
            return self.name
        settings = self.settings
        target = getattr(settings, "vm", None) or (
            settings.name if isinstance(settings, CheckpointStep) else None)
        return f"{self.kind}-{target}" if target else self.kind


class Exercise(_Model):
    """A named, ordered sequence of steps on the lab: a class's unit of work."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,40}$",
                      description="exercise id (in workflow ids: <lab>-exercise-<name>)")
    description: str = ""
    steps: list[ExerciseStep] = Field(min_length=1)

    def index(self, step: str) -> int:
        """The position of the step named ``step`` (case-insensitive); KeyError if absent."""
        for i, candidate in enumerate(self.steps):
            if candidate.key.lower() == step.lower():
                return i
        raise KeyError(step)


SIM_PREFIX = "sim."
"""Marks the simulated fleet's registration of a lab: ``sim.<lab>`` (see :mod:`hvlab.labs`).
A lab file cannot use it (:func:`hvlab.spec_check.check_lab`); ``--sim`` commands send it."""


class LabSpec(_Model):
    """A whole lab."""

    lab: str = Field(pattern=r"^(sim\.)?[a-z0-9][a-z0-9-]{0,40}$",
                     description="lab id for workflow ids (sim.<lab>: its --sim registration)")
    domain: Domain
    credentials: dict[str, Credential]
    hosts: list[Host] = Field(min_length=1)
    golden_images: list[GoldenImage] = Field(default_factory=list)
    vms: list[Vm] = Field(default_factory=list)
    nat: list[NatGateway] = Field(default_factory=list)
    shares: list[Share] = Field(default_factory=list)
    delegation: list[Delegation] = Field(default_factory=list)
    replication: list[Replication] = Field(default_factory=list)
    checkpoints: list[Checkpoint] = Field(default_factory=list)
    reset: ResetPolicy | None = None
    exercises: list[Exercise] = Field(
        default_factory=list, description="named, ordered steps a class runs on the lab "
        "(`hvlab run FILE EXERCISE`)")

    def exercise(self, name: str) -> Exercise:
        """The exercise of that name (the first when ``name`` is empty); KeyError if absent."""
        for exercise in self.exercises:
            if not name or exercise.name == name.lower():
                return exercise
        raise KeyError(name)

    def host(self, name: str) -> Host:
        """The host of that name (case-insensitive); KeyError if absent."""
        for host in self.hosts:
            if host.name.lower() == name.lower():
                return host
        raise KeyError(name)

    def vm(self, name: str) -> Vm:
        """The VM of that name (case-insensitive); KeyError if absent."""
        for vm in self.vms:
            if vm.name.lower() == name.lower():
                return vm
        raise KeyError(name)

    def replication_of(self, vm: str) -> Replication | None:
        """The replication entry of that VM (case-insensitive), or None."""
        return next((r for r in self.replication if r.vm.lower() == vm.lower()), None)

    def golden(self, name: str) -> GoldenImage:
        for image in self.golden_images:
            if image.name == name:
                return image
        raise KeyError(name)

    @property
    def hyperv_hosts(self) -> list[Host]:
        return [h for h in self.hosts if h.role is HostRole.hyperv]

    def vm_disk_path(self, vm: Vm) -> str:
        """Where the VM's VHDX lives: the lab file's path or the host's VHD folder."""
        if vm.disk.path:
            return vm.disk.path
        host = self.host(vm.host)
        folder = host.paths.virtual_hard_disks or "C:\\Hyper-V\\VHDs"
        return f"{folder}\\{vm.name}.vhdx"

    def vm_config_path(self, vm: Vm) -> str:
        """The VM's configuration folder root (New-VM -Path)."""
        if vm.path:
            return vm.path
        host = self.host(vm.host)
        return host.paths.virtual_machines or "C:\\Hyper-V"
