"""The names a command is given (a VM, a host, a VM's replication), checked against the lab
file before anything starts: an unknown one is a usage problem naming the field and what the
lab file has (exit 2)."""

from __future__ import annotations

from hvlab.spec import HostRole, LabSpec, Replication
from starter.console import UsageProblem


def known_vm(spec: LabSpec, name: str) -> str:
    """The lab file's spelling of VM ``name``."""
    try:
        return spec.vm(name).name
    except KeyError:
        known = ", ".join(v.name for v in spec.vms) or "none"
        raise UsageProblem(f"VM: no VM {name!r} in lab {spec.lab} (known: {known})") from None


def known_hyperv_host(spec: LabSpec, name: str, field: str) -> str:
    """The lab file's spelling of Hyper-V host ``name`` (given as option ``field``)."""
    known = ", ".join(h.name for h in spec.hyperv_hosts) or "none"
    try:
        host = spec.host(name)
    except KeyError:
        raise UsageProblem(f"{field}: no host {name!r} in lab {spec.lab} (Hyper-V hosts: "
                           f"{known})") from None
    if host.role is not HostRole.hyperv:
        raise UsageProblem(f"{field}: {host.name} is not a Hyper-V host (Hyper-V hosts: "
                           f"{known})")
    return host.name


def known_replication(spec: LabSpec, vm: str) -> Replication:
    """The lab file's replication entry of ``vm``."""
    entry = spec.replication_of(vm)
    if entry is None:
        raise UsageProblem(f"VM: {vm} has no replication in lab {spec.lab}")
    return entry
