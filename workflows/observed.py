"""The lab as it is now: where each VM runs, which side of a replication is primary, which
checkpoints exist. Converging workflows start from it, never from where the lab file first put
things.

:func:`observe` asks every Hyper-V host of the lab (``lab.observe``, read-only, in parallel);
:func:`placed` turns the answer into the lab file with each VM on the host it runs on now and
each replication entry with its current primary, which is what the unit workflows then converge.
The lab file stays the desired state for everything else; moving a VM back is an explicit
operation (a migration, a failover), never a side effect of ``up``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, Field
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.models import ObserveInput
    from hvlab.spec import LabSpec, Replication
    from workflows.options import PROBE
    from workflows.steps import step

REPLICA_MODES = ("Replica", "TestReplica", "ExtendedReplica")


class VmCopy(BaseModel):
    """One VM of that name on one host."""

    host: str
    state: str = ""
    mode: str = Field(default="", description="replication side: '', Primary, Replica, ...")
    replication_state: str = ""
    health: str = ""
    checkpoints: list[str] = Field(default_factory=list)

    @property
    def is_replica(self) -> bool:
        return self.mode in REPLICA_MODES


class LabState(BaseModel):
    """Every copy of every lab VM the Hyper-V hosts hold, by VM name (lower case)."""

    copies: dict[str, list[VmCopy]] = Field(default_factory=dict)
    hosts: list[str] = Field(default_factory=list, description="the hosts asked")

    def of(self, vm: str) -> list[VmCopy]:
        return self.copies.get(vm.lower(), [])

    def working(self, vm: str, preferred: str = "") -> VmCopy | None:
        """The copy that is the VM: the one that is not a Replica (the lab file's host first
        when, wrongly, several are); None when the lab holds no such copy."""
        live = [c for c in self.of(vm) if not c.is_replica]
        for copy in live:
            if copy.host.lower() == preferred.lower():
                return copy
        return live[0] if live else None

    def replica(self, vm: str) -> VmCopy | None:
        return next((c for c in self.of(vm) if c.is_replica), None)

    def host_of(self, vm: str, default: str) -> str:
        copy = self.working(vm, default)
        return copy.host if copy else default

    def duplicates(self) -> dict[str, list[str]]:
        """VMs that run (are not replicas) on more than one host: never made by hvlab, but a
        class can make them by hand; reported, never resolved silently."""
        found: dict[str, list[str]] = {}
        for name, copies in self.copies.items():
            live = [c.host for c in copies if not c.is_replica]
            if len(live) > 1:
                found[name] = live
        return found


def lab_state(hosts: list[str], answers: list[dict[str, Any]]) -> LabState:
    """Put the hosts' ``lab.observe`` answers together."""
    copies: dict[str, list[VmCopy]] = {}
    for host, answer in zip(hosts, answers, strict=True):
        for vm in answer.get("vms") or []:
            copy = VmCopy(host=host, state=str(vm.get("state") or ""),
                          mode=str(vm.get("mode") or ""),
                          replication_state=str(vm.get("replication_state") or ""),
                          health=str(vm.get("health") or ""),
                          checkpoints=[str(c) for c in vm.get("checkpoints") or []])
            copies.setdefault(str(vm.get("name") or "").lower(), []).append(copy)
    return LabState(copies=copies, hosts=hosts)


def placed(spec: LabSpec, state: LabState) -> LabSpec:
    """The lab file with each VM on the host that runs it now and each replication entry with
    its current primary (after a planned failover the roles are reversed); VMs the lab does
    not hold yet stay where the file puts them."""
    vms = [v.model_copy(update={"host": state.host_of(v.name, v.host)}) for v in spec.vms]
    replication: list[Replication] = []
    for entry in spec.replication:
        primary = state.working(entry.vm, entry.primary)
        backup = state.replica(entry.vm)
        if (primary is not None and backup is not None
                and primary.host.lower() == entry.replica.lower()
                and backup.host.lower() == entry.primary.lower()):
            entry = entry.model_copy(update={"primary": primary.host, "replica": backup.host})
        replication.append(entry)
    return spec.model_copy(update={"vms": vms, "replication": replication})


async def observe(spec: LabSpec, vms: list[str] | None = None) -> LabState:
    """Ask every Hyper-V host of the lab, at once, which of the lab's VMs it holds."""
    hosts = [h.name for h in spec.hyperv_hosts]
    names = list(vms) if vms is not None else [v.name for v in spec.vms]
    answers = await asyncio.gather(*(step(
        "lab.observe", ObserveInput(lab=spec.lab, host=host, vms=names),
        summary=f"what {host} holds now", options=PROBE) for host in hosts))
    return lab_state(hosts, [a.observed for a in answers])
