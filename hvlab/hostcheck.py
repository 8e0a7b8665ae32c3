"""``hvlab doctor FILE``: the preflight of a lab's hosts, before the first ``hvlab up``.

Per host, in this order (a host that cannot be reached or authenticated gets no later rows):

- **listener**: a TCP connection to the WinRM port the lab file names;
- **bootstrap credential** / **domain credential**: a WinRM session with each (the host's
  ``bootstrap_credential``, its local Administrator, is what reaches it until it is joined;
  the domain credential must work on the DC and on joined hosts), each tried alone;
- **WinRM session**: the session as the worker opens it (the same pool logic), naming the
  credential it logged on with (the bootstrap credential until the host is joined);
- **Windows**: the OS build and the Windows PowerShell version the host announces (5.1 ships
  with Windows Server 2016 and later);
- **Hyper-V** (Hyper-V hosts): virtualization extensions and the role's state;
- **free space** (Hyper-V hosts): the volumes of the VM and VHD paths against what the lab's
  VMs on that host need;
- **golden images** (Hyper-V hosts): every golden image at the path the lab names;
- **host name**: the computer's name equals the lab's;
- **DNS** (other hosts): the DC's DNS server resolves the DC and the other hosts;
- **network profile**: not Public (Public limits WinRM to the local subnet);
- **clock vs DC**: within Kerberos' 5 minutes of the DC (each host's offset from the
  worker's clock when it was read, so the time between the readings does not count).

A joining host without a bootstrap credential that refuses the domain credential gets the
lab-file line that fixes it (``bootstrap_credential: <the lab's local Administrator
credential>`` under the host).

Each failed check carries its fix: a PowerShell line to run on that host or the lab-file
change. Read-only: it runs through the same session pool as the worker and changes nothing.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hvlab.powershell.command import SWITCH, Command, Pipeline
from hvlab.powershell.endpoints import credentials_for, endpoints_for
from hvlab.powershell.errors import (
    AuthenticationFailed,
    BootstrapCredentialMissing,
    CertificateMismatch,
    CredentialUnavailable,
    HostUnreachable,
    InsecureTransport,
    RemoteError,
)
from hvlab.powershell.session import Endpoint, SessionPool
from hvlab.spec import DiskMode, Host, HostRole, LabSpec
from hvlab.units import format_size

MAX_SKEW_SECONDS = 300.0
MIN_BUILD = 14393  # Windows Server 2016
MIN_POWERSHELL = (5, 1)
DIFFERENCING_GROWTH = 2 * 1024**3  # what a differencing disk may grow to before the class ends
RESERVE = 10 * 1024**3  # kept free on every volume the lab writes to
CATEGORY_NAMES = {0: "Public", 1: "Private", 2: "DomainAuthenticated"}
SILENT = "SilentlyContinue"


def os_command() -> Command:
    return Command.of("Get-CimInstance", ClassName="Win32_OperatingSystem")


def computer_system_command() -> Command:
    return Command.of("Get-CimInstance", ClassName="Win32_ComputerSystem")


def processor_command() -> Command:
    return Command.of("Get-CimInstance", ClassName="Win32_Processor")


def hyperv_feature_command() -> Command:
    return Command.of("Get-WindowsFeature", Name="Hyper-V")


def volumes_command() -> Command:
    return Command.of("Get-CimInstance", ClassName="Win32_LogicalDisk")


def golden_command(path: str) -> Command:
    return Command.of("Test-Path", LiteralPath=path, PathType="Leaf")


def resolve_command(name: str, server: str) -> Command:
    return Command.of("Resolve-DnsName", Name=name, Type="A", Server=server, DnsOnly=SWITCH,
                      ErrorAction=SILENT)


def profile_command() -> Command:
    return Command.of("Get-CimInstance", Namespace="root/StandardCimv2",
                      ClassName="MSFT_NetConnectionProfile")


def doctor_commands(spec: LabSpec) -> list[Command]:
    """Every command the doctor can send for this lab (for the catalogue test)."""
    out = [os_command(), computer_system_command(), processor_command(),
           hyperv_feature_command(), volumes_command(), profile_command()]
    out += [golden_command(image.path) for image in spec.golden_images]
    dc = spec.host(spec.domain.dc)
    out += [resolve_command(fqdn(spec, h.name), dc.connection.address) for h in spec.hosts]
    return out


def fqdn(spec: LabSpec, host: str) -> str:
    return f"{host}.{spec.domain.fqdn}".lower()


def _one(pipeline: Command) -> Pipeline:
    return Pipeline.one(pipeline)


@dataclass(frozen=True)
class HostCheck:
    host: str
    check: str
    ok: bool | None
    detail: str
    fix: str = ""


def _ps(line: str, host: str) -> str:
    return f"on {host}: {line}"


def bootstrap_of(host: Host) -> str | None:
    """The host's ``bootstrap_credential`` (the lab-file field of issue 14; read
    optionally so the doctor works with lab models that do not have it yet)."""
    value = getattr(host, "bootstrap_credential", None)
    return value if isinstance(value, str) and value else None


def _credential_fix(spec: LabSpec, name: str, error: RemoteError) -> str:
    cred = spec.credentials.get(name)
    if isinstance(error, CredentialUnavailable):
        where = cred.secret if cred is not None else "its reference"
        return f"make credential '{name}' resolvable on the worker ({where})"
    user = cred.username if cred is not None else "?"
    return (f"check credential '{name}' (user {user}, secret "
            f"{cred.secret if cred is not None else '?'}): the password the host expects")


def _local_account(username: str) -> bool:
    return "\\" not in username and "@" not in username


def bootstrap_fix(spec: LabSpec, host: Host) -> str:
    """The lab-file line that gives a joining host its bootstrap credential: a credential of
    the lab for a local account (the local Administrator first) that no guest uses, else a
    new one to define."""
    used = {vm.guest.credential for vm in spec.vms}
    used |= {u.credential for vm in spec.vms if vm.guest.telnet for u in vm.guest.telnet.users}
    local = [(name, cred) for name, cred in spec.credentials.items()
             if _local_account(cred.username) and name not in used]
    local.sort(key=lambda item: item[1].username.lower() != "administrator")
    where = f"under hosts[{host.name}] in the lab file"
    if local:
        name, cred = local[0]
        return (f"until {host.name} is joined only its local accounts log on: add the line "
                f"`bootstrap_credential: {name}` {where} (credential '{name}': user "
                f"{cred.username}, secret {cred.secret}, the password of {host.name}'s local "
                "Administrator)")
    return (f"until {host.name} is joined only its local accounts log on: define "
            "`credentials: local-admin: {username: Administrator, secret: "
            "env:HVLAB_LOCAL_ADMIN_PASSWORD}` (the password of its local Administrator) and add "
            f"the line `bootstrap_credential: local-admin` {where}")


def _listener_fix(spec: LabSpec, host: Host, endpoint: Endpoint) -> str:
    if endpoint.scheme == "http":
        return (_ps("Enable-PSRemoting -Force", host.name)
                + f" (`hvlab host-setup FILE {host.name}` prints the whole first-contact "
                f"setup); check that TCP {endpoint.port} reaches {endpoint.address}")
    return (f"create the HTTPS listener on {host.name} (`hvlab host-setup FILE {host.name}` "
            f"prints it) and allow TCP {endpoint.port}, or use `transport: http` in "
            f"hosts[{host.name}].connection")


def _tcp(address: str, port: int, timeout: float) -> str | None:
    """None when a TCP connection opens, else the reason."""
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return None
    except OSError as exc:
        return exc.strerror or type(exc).__name__


_DT = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?$")


def _clock(value: Any) -> datetime | None:
    """A CIM datetime as pypsrp hands it over (ISO text with up to 7 fraction digits)."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    match = _DT.match(str(value or ""))
    if match is None:
        return None
    base, fraction, zone = match.groups()
    text = base + ((fraction or ".0")[:7])
    zone = "+00:00" if zone in (None, "Z") else zone
    return datetime.fromisoformat(text + zone)


def _version(text: str | None) -> tuple[int, ...]:
    parts = re.findall(r"\d+", text or "")
    return tuple(int(p) for p in parts[:2])


def _drive(path: str | None) -> str | None:
    if path and len(path) >= 2 and path[1] == ":":
        return path[:2].upper()
    return None


def space_needed(spec: LabSpec, host: Host) -> dict[str, int]:
    """Bytes each local volume of ``host`` needs for the lab's VMs placed on it: a copied
    golden disk's size or a differencing disk's growth on the VHD path's volume, each VM's
    memory (saved state) on the VM path's volume, plus a reserve on each."""
    need: dict[str, int] = {}
    for vm in spec.vms:
        if vm.host.lower() != host.name.lower():
            continue
        images = {g.name: g for g in spec.golden_images}
        image = images.get(vm.disk.golden)
        disk = (image.size if image is not None and vm.disk.mode is DiskMode.copy
                else DIFFERENCING_GROWTH)
        for drive, size in ((_drive(spec.vm_disk_path(vm)), disk),
                            (_drive(spec.vm_config_path(vm)), vm.memory)):
            if drive is not None:
                need[drive] = need.get(drive, 0) + size
    return {drive: size + RESERVE for drive, size in need.items()}


class HostChecker:
    """Runs the read-only checks of :mod:`hvlab.hostcheck` against a lab's hosts."""

    def __init__(self, spec: LabSpec, *, sim: bool, home: Path,
                 connect_timeout: float = 5.0) -> None:
        self._spec = spec
        self._endpoints = endpoints_for(spec, sim, home)
        self._timeout = connect_timeout
        # the worker's view (bootstrap credential until joined) and single-credential probes
        # (one pool per credential and host, so the two never share a session)
        self._pool = SessionPool(credentials_for(spec, sim, home),
                                 connection_timeout=int(connect_timeout))
        self._probes = SessionPool(credentials_for(spec, sim, home),
                                   connection_timeout=int(connect_timeout))

    def close(self) -> None:
        self._pool.close()
        self._probes.close()

    def run(self) -> list[HostCheck]:
        rows: list[HostCheck] = []
        clocks: dict[str, timedelta] = {}
        for host in self._spec.hosts:
            rows += self._host(host, clocks)
        rows += self._skew(clocks)
        return rows

    def _run(self, endpoint: Endpoint, command: Command) -> list[Any]:
        return self._pool.run(endpoint, _one(command)).output

    # -- reaching the host ----------------------------------------------------------------
    def _host(self, host: Host, clocks: dict[str, timedelta]) -> list[HostCheck]:
        name = host.name
        endpoint = self._endpoints.get(name)
        if endpoint is None:
            return [HostCheck(name, "listener", False, "the simulated fleet does not serve it",
                              "restart the fleet: `hvlab sim serve FILE --detach`")]
        where = f"{endpoint.scheme}://{endpoint.address}:{endpoint.port}"
        refused = _tcp(endpoint.address, endpoint.port, self._timeout)
        if refused is not None:
            return [HostCheck(name, "listener", False, f"{where}: {refused}",
                              _listener_fix(self._spec, host, endpoint))]
        rows = [HostCheck(name, "listener", True, f"{where} accepts connections")]
        session, auth_rows = self._authenticate(host, endpoint)
        rows += auth_rows
        if session is None:
            return rows
        try:
            rows += self._facts(host, session, clocks)
        except RemoteError as error:
            rows.append(HostCheck(name, "read-only queries", False, error.host_message,
                                  error.fix or "see the host's message"))
        return rows

    @staticmethod
    def _try(pool: SessionPool, endpoint: Endpoint
             ) -> tuple[dict[str, Any] | None, RemoteError | None]:
        try:
            output = pool.run(endpoint, _one(computer_system_command())).output
        except RemoteError as error:
            return None, error
        return (output[0] if output else {}), None

    def _authenticate(
        self, host: Host, endpoint: Endpoint
    ) -> tuple[Endpoint | None, list[HostCheck]]:
        """A row per credential tried alone, then the WinRM session the worker would open
        (the pool's choice: the bootstrap credential until the host is joined), naming the
        credential it logged on with; the endpoint to go on with."""
        rows: list[HostCheck] = []
        bootstrap = bootstrap_of(host)
        domain = host.connection.credential
        joined: bool | None = None
        boot_ok = False
        if bootstrap is not None and bootstrap != domain:
            boot = dataclasses.replace(endpoint, credential=bootstrap, bootstrap_credential="",
                                       joins_domain=False)
            system, error = self._try(self._probes, boot)
            if error is not None:
                rows.append(self._auth_failed(host, boot, "bootstrap credential", error))
                if not isinstance(error, AuthenticationFailed | CredentialUnavailable):
                    return None, rows
            else:
                joined = bool((system or {}).get("PartOfDomain"))
                boot_ok = True
                rows.append(HostCheck(host.name, "bootstrap credential", True,
                                      f"'{bootstrap}' accepted"))
        # the connection credential alone (a joining host without a bootstrap credential
        # fails as BootstrapCredentialMissing, as the worker would)
        alone = dataclasses.replace(endpoint, bootstrap_credential="",
                                    joins_domain=endpoint.joins_domain and bootstrap is None)
        _, error = self._try(self._probes, alone)
        will_join = host.role is HostRole.hyperv and host.join_domain
        if error is None:
            rows.append(HostCheck(host.name, "domain credential", True, f"'{domain}' accepted"))
        elif boot_ok and joined is False and will_join:
            rows.append(HostCheck(
                host.name, "domain credential", None,
                f"'{domain}' not accepted before the join; the bootstrap credential is used "
                "until then"))
        else:
            rows.append(self._auth_failed(host, alone, "domain credential", error))
            if not boot_ok:
                return None, rows
        return self._session(host, endpoint, rows)

    def _session(self, host: Host, endpoint: Endpoint, rows: list[HostCheck]
                 ) -> tuple[Endpoint | None, list[HostCheck]]:
        """The session as the worker opens it (the same pool logic), and which credential
        it logged on with."""
        _, error = self._try(self._pool, endpoint)
        if error is not None:
            rows.append(self._auth_failed(host, endpoint, "WinRM session", error))
            return None, rows
        used = self._pool.logged_on_as(endpoint) or endpoint.credential
        cred = self._spec.credentials.get(used)
        who = f"'{used}'" + (f" ({cred.username})" if cred is not None else "")
        if used != endpoint.credential:
            detail = (f"logged on as {who}: {host.name} is not in a domain yet; after the "
                      f"join hvlab logs on as '{endpoint.credential}'")
        else:
            detail = f"logged on as {who}"
        rows.append(HostCheck(host.name, "WinRM session", True, detail))
        return endpoint, rows

    def _auth_failed(self, host: Host, endpoint: Endpoint, check: str,
                     error: RemoteError) -> HostCheck:
        if isinstance(error, BootstrapCredentialMissing):
            fix = bootstrap_fix(self._spec, host)
        elif isinstance(error, AuthenticationFailed | CredentialUnavailable):
            fix = _credential_fix(self._spec, endpoint.credential, error)
        elif isinstance(error, HostUnreachable):
            fix = _listener_fix(self._spec, host, endpoint)
        elif isinstance(error, InsecureTransport | CertificateMismatch):
            fix = error.fix
        else:
            fix = error.fix or "see the host's message"
        return HostCheck(host.name, check, False, error.host_message, fix)

    # -- what the host is ----------------------------------------------------------------
    def _facts(self, host: Host, endpoint: Endpoint,
               clocks: dict[str, timedelta]) -> list[HostCheck]:
        os_info = (self._run(endpoint, os_command()) or [{}])[0]
        system = (self._run(endpoint, computer_system_command()) or [{}])[0]
        when = _clock(os_info.get("LocalDateTime"))
        if when is not None:
            # the offset from the worker's clock when read: hosts are read one after the
            # other, so comparing their readings directly would count the time in between
            clocks[host.name] = when - datetime.now(UTC)
        rows = [self._windows(host, endpoint, os_info)]
        if host.role is HostRole.hyperv:
            rows += [self._hyperv(host, endpoint, system), self._space(host, endpoint),
                     self._golden(host, endpoint)]
        rows.append(self._name(host, system))
        if host.name.lower() != self._spec.domain.dc.lower():
            rows.append(self._dns(host, endpoint))
        rows.append(self._profile(host, endpoint))
        return rows

    def _windows(self, host: Host, endpoint: Endpoint, os_info: dict[str, Any]) -> HostCheck:
        version = str(os_info.get("Version") or "")
        caption = str(os_info.get("Caption") or "Windows")
        try:
            build = int(version.split(".")[-1])
        except ValueError:
            build = 0
        powershell = self._pool.powershell_version(endpoint)
        detail = f"{caption} {version}, Windows PowerShell {powershell or 'unknown'}"
        ok = build >= MIN_BUILD and _version(powershell) >= MIN_POWERSHELL
        return HostCheck(host.name, "Windows", ok, detail, "" if ok else (
            "lab hosts need Windows Server 2016 or later (Windows PowerShell 5.1, the Hyper-V "
            "and NetNat cmdlets hvlab uses): install Windows Server 2019 or 2022"))

    def _hyperv(self, host: Host, endpoint: Endpoint, system: dict[str, Any]) -> HostCheck:
        feature = (self._run(endpoint, hyperv_feature_command()) or [{}])[0]
        state = str(feature.get("InstallState") or "Available")
        if state == "Installed" or system.get("HypervisorPresent"):
            return HostCheck(host.name, "Hyper-V", True, f"role {state}, hypervisor running")
        cpu = (self._run(endpoint, processor_command()) or [{}])[0]
        missing = [label for key, label in (
            ("VMMonitorModeExtensions", "VT-x/AMD-V"),
            ("VirtualizationFirmwareEnabled", "enabled in firmware"),
            ("SecondLevelAddressTranslationExtensions", "SLAT")) if not cpu.get(key)]
        if missing:
            return HostCheck(
                host.name, "Hyper-V", False,
                f"role {state}; the processor lacks: {', '.join(missing)}",
                "enable virtualization (VT-x/AMD-V) in the firmware; a host that is itself a "
                "VM needs nested virtualization (outer Hyper-V: Set-VMProcessor -VMName "
                f"{host.name} -ExposeVirtualizationExtensions $true, with the VM off)")
        note = "a reboot finishes it" if state == "InstallPending" else "`hvlab up` installs it"
        return HostCheck(host.name, "Hyper-V", None,
                         f"role {state} ({note}); virtualization extensions present")

    def _space(self, host: Host, endpoint: Endpoint) -> HostCheck:
        need = space_needed(self._spec, host)
        if not need:
            return HostCheck(host.name, "free space", None, "no VM of the lab on this host")
        volumes = {str(v.get("DeviceID") or "").upper(): v
                   for v in self._run(endpoint, volumes_command())}
        short = []
        seen = []
        for drive, size in sorted(need.items()):
            free = int((volumes.get(drive) or {}).get("FreeSpace") or 0)
            seen.append(f"{drive} {format_size(free)} free of {format_size(size)} needed")
            if free < size:
                short.append((drive, size - free))
        if not short:
            return HostCheck(host.name, "free space", True, "; ".join(seen))
        lacking = ", ".join(f"{format_size(more)} more on {drive}" for drive, more in short)
        return HostCheck(
            host.name, "free space", False, "; ".join(seen),
            f"free {lacking} on {host.name}, or point hosts[{host.name}].paths "
            "(virtual_machines, virtual_hard_disks) at a volume with room")

    def _golden(self, host: Host, endpoint: Endpoint) -> HostCheck:
        local = [g for g in self._spec.golden_images if _drive(g.path) is not None]
        if not local:
            return HostCheck(host.name, "golden images", None, "none on a local path")
        missing = [g for g in local if self._run(endpoint, golden_command(g.path)) != [True]]
        if not missing:
            return HostCheck(host.name, "golden images", True,
                             ", ".join(g.name for g in local) + " present")
        names = ", ".join(f"{g.name} ({g.path})" for g in missing)
        copies = "; ".join(
            f"Copy-Item -Path <source>\\{g.path.rsplit(chr(92), 1)[-1]} -Destination {g.path}"
            for g in missing)
        return HostCheck(host.name, "golden images", False, f"missing: {names}",
                         f"stage them {_ps(copies, host.name)} (or change golden_images[].path "
                         "to where they are)")

    def _name(self, host: Host, system: dict[str, Any]) -> HostCheck:
        actual = str(system.get("Name") or "")
        if actual.lower() == host.name.lower():
            return HostCheck(host.name, "host name", True, actual)
        return HostCheck(
            host.name, "host name", False, f"the computer is named {actual!r}",
            _ps(f"Rename-Computer -NewName {host.name} -Restart", host.name)
            + f" (before it joins), or rename the host in the lab file to {actual}")

    def _dns(self, host: Host, endpoint: Endpoint) -> HostCheck:
        dc = self._spec.host(self._spec.domain.dc)
        server = dc.connection.address
        wrong: list[str] = []
        later: list[str] = []
        for other in self._spec.hosts:
            if other.name.lower() == host.name.lower():
                continue
            name = fqdn(self._spec, other.name)
            answers = self._run(endpoint, resolve_command(name, server))
            addresses = {str(a.get("IPAddress")) for a in answers if isinstance(a, dict)}
            expected = other.connection.address
            if addresses and (expected in addresses or not _is_ip(expected)):
                continue
            if addresses:
                wrong.append(f"{name} -> {', '.join(sorted(addresses))} (lab: {expected})")
            elif other is dc:
                wrong.append(f"{name} not resolved")
            else:
                later.append(name)
        if wrong:
            return HostCheck(
                host.name, "DNS", False, f"at {dc.name}'s DNS server {server}: "
                + "; ".join(wrong),
                f"{_ps('Get-Service DNS', dc.name)} must be Running and UDP/TCP 53 open to "
                f"{host.name}; fix or remove stale records there (Get-DnsServerResourceRecord "
                f"-ZoneName {self._spec.domain.fqdn})")
        detail = f"{dc.name}'s DNS server {server} resolves {fqdn(self._spec, dc.name)}"
        if later:
            detail += f"; not yet registered: {', '.join(later)} (they register at the join)"
        return HostCheck(host.name, "DNS", True, detail)

    def _profile(self, host: Host, endpoint: Endpoint) -> HostCheck:
        profiles = self._run(endpoint, profile_command())
        public = [p for p in profiles if int(p.get("NetworkCategory") or 0) == 0]
        seen = ", ".join(f"{p.get('InterfaceAlias')}: "
                         f"{CATEGORY_NAMES.get(int(p.get('NetworkCategory') or 0), '?')}"
                         for p in profiles)
        if not public:
            return HostCheck(host.name, "network profile", True, seen or "no connected network")
        lines = "; ".join(f"Set-NetConnectionProfile -InterfaceAlias '{p.get('InterfaceAlias')}'"
                          " -NetworkCategory Private" for p in public)
        return HostCheck(
            host.name, "network profile", False,
            f"{seen} (on a Public network the WinRM firewall rule admits only the local subnet)",
            _ps(lines, host.name))

    def _skew(self, clocks: dict[str, timedelta]) -> list[HostCheck]:
        dc = self._spec.domain.dc
        reference = next((when for name, when in clocks.items()
                          if name.lower() == dc.lower()), None)
        if reference is None:
            return []
        rows = []
        for name, when in clocks.items():
            if name.lower() == dc.lower():
                continue
            skew = abs((when - reference).total_seconds())
            ok = skew <= MAX_SKEW_SECONDS
            rows.append(HostCheck(
                name, "clock vs DC", ok, f"{skew:.0f} s from {dc}",
                "" if ok else "Kerberos fails beyond 5 minutes: " + _ps(
                    f"w32tm /config /manualpeerlist:{self._spec.host(dc).connection.address} "
                    "/syncfromflags:manual /update; w32tm /resync /force", name)))
        return rows


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
