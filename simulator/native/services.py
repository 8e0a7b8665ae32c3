"""The host's services as sc.exe and net see them (``Host.services``: name -> status)."""

from __future__ import annotations

from simulator.native.run import NotModelled
from simulator.world import Host

DISPLAY_NAMES = {
    "vmms": "Hyper-V Virtual Machine Management",
    "vmcompute": "Hyper-V Host Compute Service",
    "winrm": "Windows Remote Management (WS-Management)",
    "lanmanserver": "Server",
    "lanmanworkstation": "Workstation",
    "w32time": "Windows Time",
    "dnscache": "DNS Client",
    "mpssvc": "Windows Defender Firewall",
    "remoteregistry": "Remote Registry",
    "ntds": "Active Directory Domain Services",
    "dns": "DNS Server",
    "netlogon": "Netlogon",
    "kdc": "Kerberos Key Distribution Center",
    "remoteaccess": "Routing and Remote Access",
}
# stopping these cuts the session that asks (WinRM) or stops dependants first (not modelled)
UNSTOPPABLE = {"winrm", "lanmanworkstation", "mpssvc"}


def display_name(name: str) -> str:
    return DISPLAY_NAMES.get(name.lower(), name)


def find(host: Host, name: str, *, by_display: bool = False) -> str | None:
    """The service's key in ``host.services`` by service name (or display name)."""
    for key in host.services:
        shown = display_name(key) if by_display else key
        if name.lower() in (key.lower(), shown.lower()):
            return key
    return None


def change(host: Host, key: str, running: bool) -> None:
    if not running and key.lower() in UNSTOPPABLE:
        raise NotModelled(f"stopping {key} is not modelled")
    host.services[key] = "Running" if running else "Stopped"
