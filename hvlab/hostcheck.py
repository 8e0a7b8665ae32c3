"""``hvlab doctor FILE``: is every host of the lab reachable, authenticated and usable?

Per host: WinRM reachable with the lab's credential, the Windows version (Windows PowerShell
5.1 ships with Windows Server 2016 and later), the Hyper-V PowerShell module on Hyper-V hosts,
and the clock against the domain controller (Kerberos fails beyond 5 minutes of skew). Each
failed check says what to fix. Runs directly from the CLI through the same session pool the
worker uses; it changes nothing on the hosts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from hvlab.powershell.command import Command, Pipeline
from hvlab.powershell.endpoints import credentials_for, endpoints_for
from hvlab.powershell.errors import (
    AuthenticationFailed,
    CredentialUnavailable,
    HostUnreachable,
    InsecureTransport,
    RemoteError,
)
from hvlab.powershell.session import Endpoint, SessionPool
from hvlab.spec import HostRole, LabSpec

MAX_SKEW_SECONDS = 300.0
_OS = Pipeline.one(Command.of("Get-CimInstance", ClassName="Win32_OperatingSystem"), mutating=False)
_HYPERV_MODULE = Pipeline.one(Command.of("Get-WindowsFeature", Name="Hyper-V-PowerShell"),
                              mutating=False)


@dataclass(frozen=True)
class HostCheck:
    host: str
    check: str
    ok: bool | None
    detail: str
    fix: str = ""


def _fix_for(error: RemoteError, endpoint: Endpoint) -> str:
    if isinstance(error, AuthenticationFailed | CredentialUnavailable):
        return (f"check credential '{endpoint.credential}' (user name in the lab file, secret in "
                "the worker's environment or secrets file)")
    if isinstance(error, HostUnreachable):
        return (f"enable a WinRM {endpoint.scheme.upper()} listener on {endpoint.address}:"
                f"{endpoint.port} and open it in the firewall (or use --sim to rehearse)")
    if isinstance(error, InsecureTransport):
        return error.fix
    return "see the host's message"


def _windows(os_info: dict[str, Any]) -> HostCheck | str:
    version = str(os_info.get("Version") or "")
    caption = str(os_info.get("Caption") or "Windows")
    try:
        build = int(version.split(".")[-1])
    except ValueError:
        build = 0
    ok = build >= 14393
    detail = f"{caption} {version}" + (" (Windows PowerShell 5.1)" if ok else "")
    return detail if ok else HostCheck("", "Windows version", False, detail,
                                       "Windows Server 2016 or later is needed on lab hosts")


_DT = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?$")


def _clock(value: Any) -> datetime | None:
    """A CIM datetime as pypsrp hands it over (ISO text with up to 7 fraction digits)."""
    if isinstance(value, datetime):
        return value
    match = _DT.match(str(value or ""))
    if match is None:
        return None
    base, fraction, zone = match.groups()
    text = base + ((fraction or ".0")[:7])
    zone = "+00:00" if zone in (None, "Z") else zone
    return datetime.fromisoformat(text + zone)


class HostChecker:
    """Runs the read-only checks of :mod:`hvlab.hostcheck` against a lab's hosts."""

    def __init__(self, spec: LabSpec, *, sim: bool, home: Path) -> None:
        self._spec = spec
        self._endpoints = endpoints_for(spec, sim, home)
        self._pool = SessionPool(credentials_for(spec, sim, home), connection_timeout=5)

    def close(self) -> None:
        self._pool.close()

    def run(self) -> list[HostCheck]:
        rows: list[HostCheck] = []
        clocks: dict[str, datetime] = {}
        for host in self._spec.hosts:
            rows += self._host(host.name, host.role, clocks)
        rows += self._skew(clocks)
        return rows

    def _host(self, name: str, role: HostRole, clocks: dict[str, datetime]) -> list[HostCheck]:
        endpoint = self._endpoints[name]
        where = f"{endpoint.scheme}://{endpoint.address}:{endpoint.port}"
        try:
            os_info = self._pool.run(endpoint, _OS).output[0]
        except RemoteError as error:
            return [HostCheck(name, "WinRM", False, f"{where}: {error.host_message}",
                              _fix_for(error, endpoint))]
        rows = [HostCheck(name, "WinRM", True, f"{where} as {endpoint.credential}")]
        windows = _windows(os_info)
        rows.append(HostCheck(name, "Windows", True, windows) if isinstance(windows, str)
                    else HostCheck(name, windows.check, False, windows.detail, windows.fix))
        when = _clock(os_info.get("LocalDateTime"))
        if when is not None:
            clocks[name] = when
        if role is HostRole.hyperv:
            rows.append(self._hyperv(name, endpoint))
        return rows

    def _hyperv(self, name: str, endpoint: Endpoint) -> HostCheck:
        try:
            output = self._pool.run(endpoint, _HYPERV_MODULE).output
        except RemoteError as error:
            return HostCheck(name, "Hyper-V module", False, error.host_message,
                             _fix_for(error, endpoint))
        state = str((output[0] if output else {}).get("InstallState", "Available"))
        if state == "Installed":
            return HostCheck(name, "Hyper-V module", True, "Hyper-V PowerShell installed")
        return HostCheck(name, "Hyper-V module", None,
                         f"not installed yet ({state}); `hvlab up` installs the role")

    def _skew(self, clocks: dict[str, datetime]) -> list[HostCheck]:
        dc = self._spec.domain.dc
        reference = clocks.get(dc)
        if reference is None:
            return []
        rows = []
        for name, when in clocks.items():
            if name == dc:
                continue
            skew = abs((when - reference).total_seconds())
            ok = skew <= MAX_SKEW_SECONDS
            rows.append(HostCheck(
                name, "clock vs DC", ok, f"{skew:.0f} s from {dc}",
                "" if ok else "Kerberos fails beyond 5 minutes: sync the clock "
                              "(w32tm /resync) against the domain controller"))
        return rows
