"""Cmdlet implementations, one module per area.

Each module listed in :data:`MODULES` exposes ``register(registry: Registry) -> None`` and
registers its cmdlets (``@registry.cmdlet("Get-VM")``), packaged scripts
(``@registry.script("guest-ip")``) and CIM classes/methods. To add an area, create the module
and append its dotted name here; nothing else needs editing.
"""

from __future__ import annotations

import importlib

from simulator.core import Registry

MODULES: list[str] = [
    "simulator.cmdlets.host",
    "simulator.cmdlets.hyperv",
    "simulator.cmdlets.directory",
    "simulator.cmdlets.smb",
    "simulator.cmdlets.network",
    "simulator.cmdlets.guest",
    "simulator.cmdlets.preflight",
]


def build_registry(modules: list[str] | None = None) -> Registry:
    """A registry with every module's implementations registered."""
    registry = Registry()
    for dotted in modules or MODULES:
        importlib.import_module(dotted).register(registry)
    return registry
