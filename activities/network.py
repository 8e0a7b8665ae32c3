"""Host networking activities: a WinNAT network on a Hyper-V host (New-NetNat) with static
port mappings (NAT kind ``host-netnat``), and the compensation that removes it.

WinNAT supports one NAT network per host, so another NAT network on the host is a Conflict
rather than a second one. The ``*_command`` functions build the exact commands the
activities emit (the catalogue test binds every one of them).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from temporalio import activity

from activities.base import SILENT, Remote, application_errors, conflict, verify_failed
from activities.models import HostNatInput, NatForwardConfig, RemoveHostNatInput, StepResult
from hvlab.powershell.command import Command, Switch
from hvlab.powershell.endpoints import EndpointSource
from hvlab.powershell.session import SessionPool

NO_CONFIRM = Switch(False)


# -- commands ------------------------------------------------------------------------------


def get_nat_command(name: str | None = None) -> Command:
    return Command.of("Get-NetNat", Name=name, ErrorAction=SILENT)


def new_nat_command(request: HostNatInput) -> Command:
    return Command.of("New-NetNat", Name=request.name,
                      InternalIPInterfaceAddressPrefix=request.internal_prefix)


def get_mappings_command(name: str) -> Command:
    return Command.of("Get-NetNatStaticMapping", NatName=name, ErrorAction=SILENT)


def add_mapping_command(name: str, forward: NatForwardConfig) -> Command:
    return Command.of("Add-NetNatStaticMapping", NatName=name, Protocol=forward.protocol,
                      ExternalIPAddress=forward.external_ip, ExternalPort=forward.external_port,
                      InternalIPAddress=forward.internal_ip, InternalPort=forward.internal_port)


def remove_mappings_command(name: str) -> Command:
    return Command.of("Remove-NetNatStaticMapping", NatName=name, Confirm=NO_CONFIRM)


def remove_nat_command(name: str) -> Command:
    return Command.of("Remove-NetNat", Name=name, Confirm=NO_CONFIRM)


# -- helpers -------------------------------------------------------------------------------


def _network(value: Any) -> str:
    try:
        return str(ipaddress.IPv4Network(str(value), strict=False))
    except ValueError:
        return str(value)


def mapping_key(protocol: Any, external_ip: Any, external_port: Any) -> tuple[str, str, int]:
    return str(protocol).upper(), str(external_ip), int(str(external_port))


def mapping_view(m: dict[str, Any]) -> dict[str, Any]:
    return {"protocol": str(m.get("Protocol")).upper(), "external_ip": m.get("ExternalIPAddress"),
            "external_port": int(str(m.get("ExternalPort"))),
            "internal_ip": m.get("InternalIPAddress"),
            "internal_port": int(str(m.get("InternalPort")))}


def _wanted_view(f: NatForwardConfig) -> dict[str, Any]:
    return {"protocol": f.protocol, "external_ip": f.external_ip,
            "external_port": f.external_port, "internal_ip": f.internal_ip,
            "internal_port": f.internal_port}


class NetworkActivities:
    """WinNAT steps on Hyper-V hosts."""

    def __init__(self, sessions: SessionPool, endpoints: EndpointSource) -> None:
        self._remote = Remote(sessions, endpoints)

    def _nats(self, host: str) -> list[dict[str, Any]]:
        return [n for n in self._remote.query(host, get_nat_command()) if isinstance(n, dict)]

    def _mappings(self, host: str, name: str) -> dict[tuple[str, str, int], dict[str, Any]]:
        out = {}
        for m in self._remote.query(host, get_mappings_command(name)):
            if isinstance(m, dict):
                view = mapping_view(m)
                out[mapping_key(view["protocol"], view["external_ip"],
                                view["external_port"])] = view
        return out

    # -- NAT network ---------------------------------------------------------------------
    @activity.defn(name="network.host_nat")
    def host_nat(self, request: HostNatInput) -> StepResult:
        """Create the NAT network unless it exists with that prefix, then add the missing
        static mappings; a mapping of the same external port to another target, or another
        NAT network on the host, is a Conflict."""
        with application_errors():
            created = self._ensure_nat(request)
            added = self._ensure_mappings(request)
            return self._verify(request, created, added)

    def _ensure_nat(self, request: HostNatInput) -> bool:
        nats = self._nats(request.host)
        mine = next((n for n in nats if str(n.get("Name")).lower() == request.name.lower()), None)
        if mine is None:
            if nats:
                raise conflict(request.host, f"NAT network {nats[0].get('Name')} exists; "
                               "WinNAT supports one NAT network per host")
            self._remote.run(request.host, new_nat_command(request))
            return True
        prefix = _network(mine.get("InternalIPInterfaceAddressPrefix"))
        if prefix != _network(request.internal_prefix):
            raise conflict(request.host, f"NAT network {request.name} exists for {prefix}, "
                           f"not {request.internal_prefix}; remove it first")
        return False

    def _ensure_mappings(self, request: HostNatInput) -> list[dict[str, Any]]:
        current = self._mappings(request.host, request.name)
        added = []
        for forward in request.forwards:
            key = mapping_key(forward.protocol, forward.external_ip, forward.external_port)
            found = current.get(key)
            if found is None:
                self._remote.run(request.host, add_mapping_command(request.name, forward))
                added.append(_wanted_view(forward))
            elif found != _wanted_view(forward):
                raise conflict(request.host, f"{key[0]} {key[1]}:{key[2]} already maps to "
                               f"{found['internal_ip']}:{found['internal_port']}")
        return added

    def _verify(self, request: HostNatInput, created: bool,
                added: list[dict[str, Any]]) -> StepResult:
        nats = [n for n in self._nats(request.host)
                if str(n.get("Name")).lower() == request.name.lower()]
        after = self._mappings(request.host, request.name)
        missing = [f.external_port for f in request.forwards
                   if after.get(mapping_key(f.protocol, f.external_ip, f.external_port))
                   != _wanted_view(f)]
        if not nats or missing:
            raise verify_failed(request.host, f"NAT {request.name} is incomplete",
                                {"nat": bool(nats), "missing_ports": missing})
        return StepResult(changed=created or bool(added), observed={
            "name": request.name, "internal_prefix": request.internal_prefix,
            "created": created, "added": added, "mappings": list(after.values())})

    # -- compensation --------------------------------------------------------------------
    @activity.defn(name="network.remove_host_nat")
    def remove_host_nat(self, request: RemoveHostNatInput) -> StepResult:
        """Compensation of network.host_nat: remove its static mappings and the NAT
        network; already gone is success."""
        with application_errors():
            if self._remote.query_one(request.host, get_nat_command(request.name)) is None:
                return StepResult(changed=False, observed={"absent": True})
            if self._mappings(request.host, request.name):
                self._remote.run(request.host, remove_mappings_command(request.name))
            self._remote.run(request.host, remove_nat_command(request.name))
            if self._remote.query_one(request.host, get_nat_command(request.name)) is not None:
                raise verify_failed(request.host, f"NAT {request.name} is still there", True)
            return StepResult(changed=True, observed={"absent": True})

    def all(self) -> list[Any]:
        """The bound activity methods, for worker registration."""
        return [self.host_nat, self.remove_host_nat]
