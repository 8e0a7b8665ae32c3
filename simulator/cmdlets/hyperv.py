"""Hyper-V cmdlets, split by area; this module registers them all."""

from __future__ import annotations

from simulator.engine import Registry


def register(registry: Registry) -> None:
    from simulator.cmdlets import (
        hyperv_host,
        hyperv_migration,
        hyperv_replica,
        hyperv_switch,
        hyperv_vm,
    )

    for module in (hyperv_host, hyperv_switch, hyperv_vm, hyperv_migration, hyperv_replica):
        module.register(registry)
