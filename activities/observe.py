"""``lab.observe``: what one Hyper-V host holds now, so workflows start from the lab's state.

A class moves VMs (live migration), fails them over (Hyper-V Replica) and restores checkpoints;
the lab file only says where things were meant to be. Every converging workflow first asks each
Hyper-V host which of the lab's VMs it holds, in which state, on which side of a replication and
with which checkpoints (:mod:`workflows.observed` puts the hosts' answers together). Read-only:
three queries per host, never a change.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from temporalio import activity

from activities.base import SILENT, Remote, application_errors
from activities.models import ObserveInput, StepResult
from hvlab.lab_state import LabState, lab_state
from hvlab.powershell.command import Command
from hvlab.powershell.endpoints import (
    EndpointSource,
    StaticEndpoints,
    credentials_for,
    endpoints_for,
)
from hvlab.powershell.errors import CommandNotFound
from hvlab.powershell.session import SessionPool
from hvlab.spec import LabSpec


def list_vms_command() -> Command:
    return Command.of("Get-VM")


def list_replications_command() -> Command:
    return Command.of("Get-VMReplication", ErrorAction=SILENT)


def list_checkpoints_command(vms: list[str]) -> Command:
    return Command.of("Get-VMSnapshot", VMName=vms, ErrorAction=SILENT)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def vm_view(vm: dict[str, Any], replication: dict[str, Any] | None,
            checkpoints: list[str]) -> dict[str, Any]:
    """One VM as the workflows see it (names and states compared as text)."""
    rep = replication or {}
    return {"name": _text(vm.get("Name")), "state": _text(vm.get("State")),
            "mode": _text(rep.get("Mode") or rep.get("ReplicationMode")),
            "replication_state": _text(rep.get("State") or rep.get("ReplicationState")),
            "health": _text(rep.get("Health") or rep.get("ReplicationHealth")),
            "primary_server": _text(rep.get("PrimaryServer")),
            "replica_server": _text(rep.get("ReplicaServer")),
            "checkpoints": checkpoints}


class ObserveActivities:
    """The read-only lab observation on hosts reached through ``sessions`` and ``endpoints``."""

    def __init__(self, sessions: SessionPool, endpoints: EndpointSource) -> None:
        self._remote = Remote(sessions, endpoints)

    @activity.defn(name="lab.observe")
    def observe(self, request: ObserveInput) -> StepResult:
        """The lab's VMs on this host (``request.vms``; every VM when empty): state,
        replication side and checkpoints. A host without Hyper-V yet holds none."""
        with application_errors():
            try:
                vms = [v for v in self._remote.query(request.host, list_vms_command())
                       if isinstance(v, dict)]
            except CommandNotFound:  # the role is not installed yet: no VM can be here
                return StepResult(changed=False, observed={"host": request.host, "hyperv": False,
                                                           "vms": []})
            wanted = {n.lower() for n in request.vms}
            vms = [v for v in vms if not wanted or _text(v.get("Name")).lower() in wanted]
            names = [_text(v.get("Name")) for v in vms]
            replications: dict[str, dict[str, Any]] = {}
            checkpoints: dict[str, list[str]] = {n.lower(): [] for n in names}
            if names:
                for rep in self._remote.query(request.host, list_replications_command()):
                    if isinstance(rep, dict):
                        replications[_text(rep.get("VMName") or rep.get("Name")).lower()] = rep
                for snap in self._remote.query(request.host, list_checkpoints_command(names)):
                    if isinstance(snap, dict):
                        checkpoints.setdefault(_text(snap.get("VMName")).lower(), []).append(
                            _text(snap.get("Name")))
            found = [vm_view(v, replications.get(n.lower()), checkpoints.get(n.lower(), []))
                     for v, n in zip(vms, names, strict=True)]
            return StepResult(changed=False, observed={"host": request.host, "hyperv": True,
                                                       "vms": found})

    def all(self) -> list[Any]:
        """The bound activity methods, for worker registration."""
        return [self.observe]


def observe_hosts(spec: LabSpec, *, sim: bool, home: Path) -> LabState:
    """The lab's observed state, read from outside a worker (``hvlab plan --live``)."""
    pool = SessionPool(credentials_for(spec, sim, home), connection_timeout=5)
    try:
        activities = ObserveActivities(pool, StaticEndpoints(endpoints_for(spec, sim, home)))
        names = [v.name for v in spec.vms]
        hosts = [h.name for h in spec.hyperv_hosts]
        with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as threads:
            answers = list(threads.map(
                lambda host: activities.observe(ObserveInput(lab=spec.lab, host=host,
                                                             vms=names)).observed, hosts))
        return lab_state(hosts, answers)
    finally:
        pool.close()
