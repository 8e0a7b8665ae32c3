"""Hyper-V cmdlets, split by area; this module registers them all."""

from __future__ import annotations

from simulator.cmdlets import (
    hyperv_devices,
    hyperv_host,
    hyperv_migration,
    hyperv_replica,
    hyperv_storage,
    hyperv_switch,
    hyperv_vm,
)
from simulator.core import Registry

AREAS = (hyperv_host, hyperv_switch, hyperv_vm, hyperv_devices, hyperv_storage,
         hyperv_migration, hyperv_replica)


def register(registry: Registry) -> None:
    for module in AREAS:
        module.register(registry)
