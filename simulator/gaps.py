"""Gaps a fresh real host can have, for a simulated fleet to start with (``hvlab doctor``'s
checks each have a test in which one of them makes the check fail).

A fault plan's ``gaps`` list (YAML/JSON, next to ``faults``)::

    gaps:
      - {host: SVR2, kind: listener_down}                  # no WinRM listener answers
      - {host: SVR1, kind: old_windows, version: 6.3.9600}  # Windows Server 2012 R2
      - {host: SVR1, kind: no_virtualization}              # VT-x/AMD-V not exposed
      - {host: SVR1, kind: disk_free, size: 2GB}           # C: has 2 GB free
      - {host: SVR1, kind: golden_missing, path: 'C:\\Golden\\linux01.vhdx'}  # path optional
      - {host: SVR2, kind: computer_name, name: WIN-7Q2K4M1}  # installed under another name
      - {host: SVR2, kind: clock_skew, seconds: 600}
      - {host: DC1, kind: dns_stopped}                     # the DC's DNS Server service
      - {host: SVR1, kind: network_public}                 # network profile Public
      - {host: SVR2, kind: golden_no_kvp}                  # Linux image without hv_kvp_daemon
      - {host: SVR2, kind: golden_address, address: 192.168.1.99/24}  # image's eth0 address

They are applied to the world when the fleet builds or resets it (not to a world reloaded
from ``world.json``, which keeps what happened to it); ``listener_down`` when it starts.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from hvlab.units import parse_size
from simulator.world import World, path_key

GapKind = Literal[
    "listener_down", "old_windows", "no_virtualization", "disk_free", "golden_missing",
    "computer_name", "clock_skew", "dns_stopped", "network_public", "golden_no_kvp",
    "golden_address",
]

# Windows Server 2012 R2, as Win32_OperatingSystem reports it
OLD_CAPTION = "Microsoft Windows Server 2012 R2 Datacenter"


class Gap(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str
    kind: GapKind
    name: str | None = None
    path: str | None = None
    size: str | int | None = None
    seconds: float = 600.0
    version: str = "6.3.9600"
    address: str | None = None


def apply(world: World, gaps: list[Gap]) -> None:
    """Give the world's hosts these gaps (unknown hosts are ignored)."""
    for gap in gaps:
        host = world.host(gap.host)
        if host is None:
            continue
        if gap.kind == "old_windows":
            host.os_version, host.os_caption = gap.version, OLD_CAPTION
        elif gap.kind == "no_virtualization":
            host.virtualization_exposed = False
        elif gap.kind == "disk_free":
            free = parse_size(gap.size if gap.size is not None else "1GB")
            used = host.volume_capacity("C:") - host.volume_free("C:")
            host.volumes["C:"] = used + free
        elif gap.kind == "golden_missing":
            wanted = path_key(gap.path) if gap.path else None
            for key, file in list(host.files.items()):
                if (key == wanted) or (wanted is None and file.os is not None):
                    del host.files[key]
        elif gap.kind == "computer_name":
            host.actual_name = gap.name or f"WIN-{host.name.upper()}X"
        elif gap.kind == "clock_skew":
            host.clock_skew = gap.seconds
        elif gap.kind == "dns_stopped":
            host.services["DNS"] = "Stopped"
        elif gap.kind == "network_public":
            host.network_category = "Public"
        elif gap.kind in ("golden_no_kvp", "golden_address"):
            _linux_images(host, gap)


def _linux_images(host: Any, gap: Gap) -> None:
    """The host's Linux golden images (the one at ``path``) without the KVP daemon, or with
    ``address`` on their first adapter."""
    wanted = path_key(gap.path) if gap.path else None
    for key, file in host.files.items():
        if file.os != "linux" or (wanted is not None and key != wanted):
            continue
        if gap.kind == "golden_no_kvp":
            file.kvp_daemon = False
        else:
            network = list(file.network or [""])
            network[0] = gap.address or ""
            file.network = network


def listeners_down(gaps: list[Gap]) -> set[str]:
    """Upper-case names of the hosts whose WinRM listener does not answer."""
    return {gap.host.upper() for gap in gaps if gap.kind == "listener_down"}
