"""Typed inputs and the result of the host and VM activities.

Inputs carry host and object names and non-secret values only (credentials by lab name), so
they are safe in workflow history. ``from_spec`` builders derive them from the lab file; new
fields get defaults so running histories still decode.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hvlab.spec import Host as HostSpec
from hvlab.spec import LabSpec, Nic, Vm
from hvlab.spec import Switch as SwitchSpec


class _Input(BaseModel):
    model_config = ConfigDict(frozen=True)


class StepResult(BaseModel):
    """What one idempotent step did: ``changed`` and the state it observed afterwards."""

    changed: bool
    observed: dict[str, Any] = Field(default_factory=dict)


class HostInput(_Input):
    """A step on one host that needs nothing but the host's name."""

    host: str


class DomainJoinInput(_Input):
    host: str
    domain: str = Field(description="FQDN, e.g. kosa.vm")
    credential: str = Field(description="lab credential name with rights to join")

    @classmethod
    def from_spec(cls, spec: LabSpec, host: str) -> DomainJoinInput:
        return cls(host=host, domain=spec.domain.fqdn, credential=spec.domain.admin_credential)


class HyperVRoleInput(_Input):
    host: str
    feature: str = "Hyper-V"


class WaitReadyInput(_Input):
    """Poll the host until a cheap command answers (and ``service`` runs, when given)."""

    host: str
    timeout_seconds: float = 1800.0
    interval_seconds: float = 5.0
    service: str | None = Field(default=None, description="e.g. vmms after the Hyper-V role")


class FoldersInput(_Input):
    host: str
    paths: list[str]

    @classmethod
    def from_spec(cls, host: HostSpec) -> FoldersInput:
        return cls(host=host.name, paths=list(host.folders))


class DefaultPathsInput(_Input):
    host: str
    virtual_machines: str | None = None
    virtual_hard_disks: str | None = None

    @classmethod
    def from_spec(cls, host: HostSpec) -> DefaultPathsInput:
        return cls(host=host.name, virtual_machines=host.paths.virtual_machines,
                   virtual_hard_disks=host.paths.virtual_hard_disks)


class SwitchInput(_Input):
    host: str
    name: str
    type: Literal["External", "Internal", "Private"]
    adapter: str | None = Field(default=None, description="physical adapter (External)")
    allow_management_os: bool = False

    @classmethod
    def from_spec(cls, host: str, switch: SwitchSpec) -> SwitchInput:
        return cls(host=host, name=switch.name, type=switch.type.value, adapter=switch.adapter,
                   allow_management_os=switch.allow_management_os)


class RemoveSwitchInput(_Input):
    host: str
    name: str


class VmDiskInput(_Input):
    host: str
    vm: str
    path: str = Field(description="the VM's VHDX")
    golden_path: str
    mode: Literal["copy", "differencing"] = "copy"

    @classmethod
    def from_spec(cls, spec: LabSpec, vm: Vm) -> VmDiskInput:
        return cls(host=vm.host, vm=vm.name, path=spec.vm_disk_path(vm),
                   golden_path=spec.golden(vm.disk.golden).path, mode=vm.disk.mode.value)


class VmCreateInput(_Input):
    host: str
    name: str
    generation: Literal[1, 2] = 2
    memory_bytes: int = Field(gt=0, description="startup memory, sent as Int64")
    disk_path: str
    config_path: str | None = Field(default=None, description="New-VM -Path")
    processors: int = Field(default=1, ge=1)
    keep_default_nic: bool = Field(
        default=False, description="keep New-VM's unconnected 'Network Adapter'"
    )

    @classmethod
    def from_spec(cls, spec: LabSpec, vm: Vm) -> VmCreateInput:
        return cls(host=vm.host, name=vm.name, generation=vm.generation, memory_bytes=vm.memory,
                   disk_path=spec.vm_disk_path(vm), config_path=spec.vm_config_path(vm),
                   processors=vm.processors)


class VmNicInput(_Input):
    host: str
    vm: str
    name: str
    switch: str
    legacy: bool = False
    mac: str | None = Field(default=None, description="static MAC, 12 hex digits")

    @classmethod
    def from_spec(cls, vm: Vm, nic: Nic, mac: str | None = None) -> VmNicInput:
        return cls(host=vm.host, vm=vm.name, name=nic.name, switch=nic.switch,
                   legacy=nic.legacy, mac=mac)


class VmInput(_Input):
    """A step on one VM (start, stop)."""

    host: str
    vm: str


class VmRemoveInput(_Input):
    """Compensation of vm.create/vm.disk: turn off, remove the VM, delete its disk."""

    host: str
    vm: str
    disk_path: str | None = None
