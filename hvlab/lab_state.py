"""The lab as it is now: where each VM runs, which side of a replication is primary, which
checkpoints exist. Converging workflows start from it, never from where the lab file first put
things.

``workflows.observed.observe`` asks every Hyper-V host of the lab (``lab.observe``, read-only);
:func:`lab_state` puts the answers together and :func:`placed` turns them into the lab file with
each VM on the host it runs on now and each replication entry with its current primary, which
is what the unit workflows then converge. The lab file stays the desired state for everything
else; moving a VM back is an explicit operation (a migration, a failover), never a side effect
of ``up``. :func:`differences` is what ``hvlab plan --live`` prints.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from hvlab.spec import LabSpec, Replication

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


class Difference(BaseModel):
    """One line of ``hvlab plan --live``: what converging the lab file would do about it."""

    action: str = Field(description="create, moved, reversed, duplicate or unchanged")
    what: str
    detail: str = ""


SYMBOLS = {"create": "+", "moved": "~", "reversed": "~", "duplicate": "!", "unchanged": "="}


def _vm_difference(spec: LabSpec, state: LabState, name: str, host: str) -> Difference:
    copy = state.working(name, host)
    where = state.duplicates().get(name.lower())
    if where:
        return Difference(action="duplicate", what=f"VM {name}", detail=(
            f"runs on {' and '.join(where)}: remove the copy that should not be there"))
    if copy is None:
        return Difference(action="create", what=f"VM {name}", detail=f"on {host}")
    if copy.host.lower() != host.lower() and copy.mode == "Primary":
        return Difference(action="reversed", what=f"VM {name}", detail=(
            f"runs on {copy.host} ({copy.state}) since a failover, the lab file says {host}: "
            f"left there; `hvlab failback FILE {name}` returns it"))
    if copy.host.lower() != host.lower():
        return Difference(action="moved", what=f"VM {name}", detail=(
            f"runs on {copy.host} ({copy.state}), the lab file says {host}: left there; "
            f"`hvlab migrate FILE {name} --to {host}` moves it back"))
    return Difference(action="unchanged", what=f"VM {name}", detail=f"on {host} ({copy.state})")


def _replication_difference(state: LabState, entry: Replication) -> Difference:
    what = f"replication {entry.vm}"
    primary = next((c for c in state.of(entry.vm) if c.mode == "Primary"), None)
    if primary is None:
        return Difference(action="create", what=what, detail=f"{entry.primary} -> {entry.replica}")
    if primary.host.lower() != entry.primary.lower():
        return Difference(action="reversed", what=what, detail=(
            f"primary is {primary.host} since a failover, the lab file says {entry.primary}: "
            f"kept; `hvlab failback FILE {entry.vm}` returns it"))
    return Difference(action="unchanged", what=what, detail=(
        f"{entry.primary} -> {entry.replica} ({primary.replication_state}/{primary.health})"))


def differences(spec: LabSpec, state: LabState) -> list[Difference]:
    """The lab file against the observed lab, as a Terraform plan lists resources: VMs,
    replications and checkpoints, each to create, moved or reversed (left as the class left
    them), duplicated or unchanged."""
    found = [_vm_difference(spec, state, vm.name, vm.host) for vm in spec.vms]
    found += [_replication_difference(state, entry) for entry in spec.replication]
    for checkpoint in spec.checkpoints:
        names = ([v.name for v in spec.vms] if checkpoint.vms == "all" else
                 [v.name for v in spec.vms if v.name.lower() in
                  {n.lower() for n in checkpoint.vms}])
        for name in names:
            copy = state.working(name, spec.vm(name).host)
            has = copy is not None and checkpoint.name in copy.checkpoints
            found.append(Difference(
                action="unchanged" if has else "create",
                what=f"checkpoint {checkpoint.name} of {name}",
                detail=f"on {copy.host}" if copy is not None else "after the VM is built"))
    return found


def summary(found: list[Difference]) -> str:
    """One line: how many of each action."""
    counts = {a: sum(1 for d in found if d.action == a) for a in SYMBOLS}
    parts = [f"{counts['create']} to create",
             f"{counts['moved'] + counts['reversed']} moved or failed over (left as they are)",
             f"{counts['duplicate']} duplicated", f"{counts['unchanged']} unchanged"]
    return "Plan: " + ", ".join(parts) + "."
