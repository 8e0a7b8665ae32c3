"""The ``replication`` unit kind: Hyper-V Replica of one VM (reference §13.1-§13.2),
ReplicationWorkflow (also ``hvlab replicate``).

Replica servers on both hosts (the primary must accept replication too, for reverse
replication after a planned failover), the listener firewall rule on both, Enable-VMReplication
on the primary, initial replication (a host-side job, followed with heartbeats) and the wait for
Replicating/Normal. Frequency comes from the lab file's replication entry for the VM (300 s
otherwise).

Replica servers are shared by every relationship on a host, so the run first reads both hosts
(``replica.shared_settings``) and never changes a setting (port, authentication, allowed
primaries, storage) another relationship there relies on. Port and storage come from the VM's
replication entry; without one, from another entry that uses the same hosts, else from what the
servers already have. A request that would change a setting under another relationship fails
as Conflict, naming both, before anything is changed: another lab-file entry for the same hosts
with other settings (checked in workflow code), or the relationships the hosts report.

On failure or cancel the replication this run enabled is removed on both sides (with the
replica VM); replica servers and firewall rules this run turned on are turned off again,
unless other relationships on the host use them by then.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities import host as host_commands
    from activities import replica
    from activities.models import (
        HostInput,
        ReplicaFirewallInput,
        ReplicaServerInput,
        ReplicaServersInput,
        ReplicationInput,
        ReplicaWaitInput,
        StepResult,
    )
    from activities.replica import ReplicaActivities
    from hvlab.plan import PlanStep, PlanUnit
    from hvlab.spec import Host, LabSpec, Replication, Vm
    from workflows.kind import Emitted, Parts, StepName, Undo, UnitKind, plan_step
    from workflows.observed import observe
    from workflows.options import COMPENSATION, LONG_JOB
    from workflows.progress import Progress, Tracker
    from workflows.saga import Saga
    from workflows.steps import step, tracked


class Step(StepName):
    SHARED_SETTINGS = "shared-settings"
    REPLICA_SERVER = "replica-server"
    FIREWALL = "firewall"
    ENABLE = "enable"
    INITIAL = "initial"
    WAIT_NORMAL = "wait-normal"


def plan(spec: LabSpec, before: list[PlanUnit]) -> Iterable[PlanUnit]:
    for rep in spec.replication:
        p, r = rep.primary, rep.replica
        steps = [
            plan_step(Step.SHARED_SETTINGS, "replica server settings in use", r),
            plan_step(Step.REPLICA_SERVER.of(r), f"replica server on {r} ({rep.auth}, port "
                                                 f"{rep.port})", r),
            plan_step(Step.REPLICA_SERVER.of(p), f"replica server on {p} (for reverse "
                                                 "replication)", p),
            plan_step(Step.FIREWALL.of(r), "Hyper-V Replica HTTP listener rule", r),
            plan_step(Step.FIREWALL.of(p), "Hyper-V Replica HTTP listener rule", p),
            plan_step(Step.ENABLE, f"replicate {rep.vm} to {r} every {rep.frequency} s", p),
            plan_step(Step.INITIAL, "initial replication", p),
            plan_step(Step.WAIT_NORMAL, "wait Replicating / Normal", p),
        ]
        yield PlanUnit(id=f"replication:{rep.vm}", kind="replication", target=rep.vm, phase=4,
                       hosts=[p, r], depends_on=[f"vm-deploy:{rep.vm}", f"host-prep:{r}"],
                       steps=steps)


def step_commands(spec: LabSpec, unit: PlanUnit, step: PlanStep) -> list[Emitted]:
    request = ReplicationInput.from_spec(spec, unit.target)
    rep = spec.replication_of(unit.target)
    assert rep is not None  # the plan makes a replication unit only for an entry
    name, target = Step.parse(step.name)
    if name is Step.SHARED_SETTINGS:  # read-only, on both hosts
        return [replica.get_server_command(), replica.all_replications_command()]
    if name is Step.REPLICA_SERVER:
        return [host_commands.new_folders_command([rep.storage]),
                replica.set_server_command(ReplicaServerInput(host=target, port=rep.port,
                                                              storage=rep.storage))]
    if name is Step.FIREWALL:
        commands: list[Emitted] = [replica.enable_rule_command()]
        if rep.port != 80:
            commands.append(replica.set_rule_port_command(rep.port))
        return commands
    if name is Step.ENABLE:
        return [replica.enable_replication_command(request)]
    if name is Step.INITIAL:
        return [replica.start_initial_command(rep.vm)]
    return []


def undo(spec: LabSpec, unit: PlanUnit) -> list[Undo]:
    """Replication removed on both sides (the replica VM with its disks), then the replica
    servers and their listener rule turned off unless other relationships use them."""
    rep = ReplicationInput.from_spec(spec, unit.target).model_copy(update={"lab": spec.lab})
    undos: list[Undo] = [(ReplicaActivities.remove, rep, (rep.replica, rep.primary))]
    for host in (rep.replica, rep.primary):
        undos += [(ReplicaActivities.disable_firewall,
                   ReplicaFirewallInput(lab=spec.lab, host=host), (host,)),
                  (ReplicaActivities.disable_server, HostInput(lab=spec.lab, host=host), (host,))]
    return undos


def _part(undo: Undo) -> str:
    activity, arg, _ = undo
    if activity is ReplicaActivities.remove:
        return Step.ENABLE
    host = str(arg.model_dump()["host"])
    return (Step.FIREWALL if activity is ReplicaActivities.disable_firewall
            else Step.REPLICA_SERVER).of(host)


def turned_on(undos: list[Undo], parts: list[str]) -> list[Undo]:
    """The undo steps of what a run turned on: parts are the workflow's ``changed`` entries
    (``enable``, ``replica-server:<host>``, ``firewall:<host>``)."""
    named = {p.lower() for p in parts}
    return [u for u in undos if _part(u).lower() in named]


def changed(spec: LabSpec, unit: PlanUnit, result: Any) -> Parts:
    """What this run turned on (the initial replication goes with the relationship)."""
    fields: dict[str, Any] = result if isinstance(result, dict) else {}
    parts = [str(c) for c in fields.get("changed", []) if c != Step.INITIAL]
    return parts or None, []


class ReplicationWorkflowInput(BaseModel):
    spec: LabSpec
    vm: str
    replica: str | None = Field(default=None, description="replica host (else the lab file's)")
    primary: str | None = Field(default=None, description="primary host (else the lab file's)")
    compensate: bool = True
    poll_seconds: float = Field(default=5.0, gt=0)


class ReplicationWorkflowResult(BaseModel):
    vm: str
    primary: str
    replica: str
    state: str
    health: str
    changed: list[str]
    progress: Progress


SHARED_SERVERS = "replica-servers-shared"  # workflow.patched: histories before it set the
# replica servers without reading what other relationships use
DEFAULT_STORAGE = "C:\\Hyper-V\\Replica"


def replication_id(lab: str, vm: str) -> str:
    return f"{lab}-replicate-{vm}"


def known_vm(spec: LabSpec, name: str) -> Vm:
    """The lab file's VM; an unknown name fails the workflow (not its task) as NotFound."""
    try:
        return spec.vm(name)
    except KeyError:
        raise ApplicationError(f"lab {spec.lab} has no VM {name!r}", type="NotFound",
                               non_retryable=True) from None


def known_host(spec: LabSpec, name: str) -> Host:
    """The lab file's host; an unknown name fails the workflow (not its task) as NotFound."""
    try:
        return spec.host(name)
    except KeyError:
        raise ApplicationError(f"lab {spec.lab} has no host {name!r}", type="NotFound",
                               non_retryable=True) from None


def replication_input(spec: LabSpec, vm: str, replica: str | None = None,
                      primary: str | None = None) -> ReplicationInput:
    """The activities' view of ``vm``'s replication: hosts from the arguments, else the lab
    file's entry (primary defaults to the VM's host); port and frequency from the entry."""
    entry, name = spec.replication_of(vm), known_vm(spec, vm).name
    primary_host = known_host(spec, primary or (entry.primary if entry else
                                                spec.vm(vm).host)).name
    replica_name = replica or (entry.replica if entry else None)
    if replica_name is None:
        raise ApplicationError(f"{name}: no replica host given and none in the lab file",
                               type="InvalidParameter", non_retryable=True)
    replica_host = known_host(spec, replica_name).name
    if replica_host == primary_host:
        raise ApplicationError(f"{name}: replica host {replica_host} is its primary",
                               type="InvalidParameter", non_retryable=True)
    fqdn = spec.domain.fqdn.lower()
    shared = entry or shared_entry(spec, name, primary_host, replica_host)
    return ReplicationInput(
        lab=spec.lab, primary=primary_host, replica=replica_host, vm=name,
        replica_server=f"{replica_host.lower()}.{fqdn}",
        primary_server=f"{primary_host.lower()}.{fqdn}",
        port=shared.port if shared else 80, frequency=entry.frequency if entry else 300)


def replica_storage(spec: LabSpec, vm: str) -> str:
    entry = spec.replication_of(vm)
    return entry.storage if entry else DEFAULT_STORAGE


def _hosts(entry: Replication) -> set[str]:
    return {entry.primary.lower(), entry.replica.lower()}


def shared_entry(spec: LabSpec, vm: str, primary: str, replica: str) -> Replication | None:
    """Another VM's replication entry whose replica servers include these hosts' (both
    hosts run one: the primary's takes reverse replication): one for the replica host first."""
    others = [e for e in spec.replication if e.vm.lower() != vm.lower()]
    return next((e for host in (replica, primary) for e in others
                 if host.lower() in _hosts(e)), None)


def requested_settings(spec: LabSpec, rep: ReplicationInput) -> tuple[int | None, str | None]:
    """Port and storage the replica servers of ``rep`` are asked for: the VM's entry, else
    another entry on the same hosts (:func:`shared_entry`), else None (what the servers
    have). An entry that differs from another entry on a shared host fails as Conflict
    (non-retryable, details as ``replica.shared_settings``'s), before any step runs."""
    entry = spec.replication_of(rep.vm)
    if entry is None:
        shared = shared_entry(spec, rep.vm, rep.primary, rep.replica)
        return (shared.port, shared.storage) if shared else (None, None)
    changes: list[dict[str, Any]] = []
    for other in spec.replication:
        if other.vm.lower() == entry.vm.lower():
            continue
        for host in (rep.replica, rep.primary):
            if host.lower() not in _hosts(other):
                continue
            for setting, mine, theirs in (("port", entry.port, other.port),
                                          ("authentication", entry.auth.value,
                                           other.auth.value),
                                          ("storage", entry.storage, other.storage)):
                same = mine.rstrip("\\").lower() == theirs.rstrip("\\").lower() \
                    if isinstance(mine, str) and isinstance(theirs, str) else mine == theirs
                if not same:
                    changes.append({"host": host, "setting": setting, "current": theirs,
                                    "wanted": mine,
                                    "relationships": [f"{other.vm} (lab file entry)"]})
    if changes:
        what = "; ".join(f"{c['host']}: {rep.vm}'s entry asks for replica server "
                         f"{c['setting']} {c['wanted']}, {c['relationships'][0]} for "
                         f"{c['current']}" for c in changes)
        raise ApplicationError(
            f"lab {spec.lab}: {what}. One replica server per host serves both; nothing was "
            f"changed: give both entries the same port, authentication and storage",
            {"vm": rep.vm, "changes": changes}, type="Conflict", non_retryable=True)
    return entry.port, entry.storage


@workflow.defn(name="ReplicationWorkflow")
class ReplicationWorkflow:
    def __init__(self) -> None:
        self._tracker = Tracker("Replication")

    @workflow.query
    def progress(self) -> Progress:
        return self._tracker.progress

    @workflow.run
    async def run(self, request: ReplicationWorkflowInput) -> ReplicationWorkflowResult:
        """Replicate the VM; remove what this run set up on failure or cancel."""
        if workflow.patched("observe-lab"):
            request = await self._observed(request)
        rep = replication_input(request.spec, request.vm, request.replica, request.primary)
        shared = workflow.patched(SHARED_SERVERS)
        self._tracker = Tracker("Replication", f"{rep.vm} {rep.primary} -> {rep.replica}")
        self._tracker.plan(*([(Step.SHARED_SETTINGS, "replica server settings in use")]
                             if shared else []), *self._steps(rep))
        storage = {h: replica_storage(request.spec, rep.vm) for h in (rep.replica, rep.primary)}
        if shared:
            rep, storage = await self._shared(request.spec, rep)
        saga = Saga(f"Replication {rep.vm}", enabled=request.compensate)
        changed: list[str] = []
        try:
            for host in (rep.replica, rep.primary):
                await self._server(rep, host, storage[host], saga, changed)
            for host in (rep.replica, rep.primary):
                await self._firewall(rep, host, saga, changed)
            await self._enable(rep, saga, changed)
            done = await self._initial(request, rep, changed)
        except BaseException:
            await saga.compensate()
            raise
        self._tracker.finish()
        return ReplicationWorkflowResult(
            vm=rep.vm, primary=rep.primary, replica=rep.replica,
            state=str(done.observed.get("state")), health=str(done.observed.get("health")),
            changed=changed, progress=self._tracker.progress)

    @staticmethod
    async def _observed(request: ReplicationWorkflowInput) -> ReplicationWorkflowInput:
        """The VM's replication as it is now (after a planned failover its primary is the lab
        file's replica), else the VM's current host as the primary."""
        if request.primary is not None:
            return request
        known_vm(request.spec, request.vm)
        state = await observe(request.spec, [request.vm])
        primary = state.working(request.vm, request.spec.vm(request.vm).host)
        replica = state.replica(request.vm)
        if primary is None:
            return request
        if replica is not None and request.replica is None:
            return request.model_copy(update={"primary": primary.host, "replica": replica.host})
        entry = request.spec.replication_of(request.vm)
        wanted = request.replica or (entry.replica if entry else None)
        if wanted is not None and wanted.lower() == primary.host.lower() and entry is not None:
            # the VM runs on the lab file's replica host (moved there): replicate back
            return request.model_copy(update={"primary": primary.host,
                                              "replica": entry.primary})
        return request.model_copy(update={"primary": primary.host})

    @staticmethod
    def _steps(rep: ReplicationInput) -> list[tuple[str, str]]:
        return [(Step.REPLICA_SERVER.of(rep.replica), f"replica server on {rep.replica}"),
                (Step.REPLICA_SERVER.of(rep.primary), f"replica server on {rep.primary}"),
                (Step.FIREWALL.of(rep.replica), f"listener rule on {rep.replica}"),
                (Step.FIREWALL.of(rep.primary), f"listener rule on {rep.primary}"),
                (Step.ENABLE, f"replicate {rep.vm} to {rep.replica}"),
                (Step.INITIAL, "initial replication"),
                (Step.WAIT_NORMAL, "wait Replicating / Normal")]

    async def _shared(self, spec: LabSpec, rep: ReplicationInput
                      ) -> tuple[ReplicationInput, dict[str, str]]:
        """The port and per-host storage to use, read from both hosts; Conflict (before any
        change) when they would break another relationship (:func:`requested_settings`,
        ``replica.shared_settings``)."""
        port, storage = requested_settings(spec, rep)
        found = await tracked(self._tracker, Step.SHARED_SETTINGS, "replica server settings in "
                              "use", ReplicaActivities.shared_settings, ReplicaServersInput(
                                  lab=rep.lab, vm=rep.vm, hosts=[rep.replica, rep.primary],
                                  port=port, storage=storage))
        stores = found.observed.get("storage") or {}
        return (rep.model_copy(update={"port": int(found.observed["port"])}),
                {h: str(stores.get(h) or storage or DEFAULT_STORAGE)
                 for h in (rep.replica, rep.primary)})

    async def _server(self, rep: ReplicationInput, host: str, storage: str, saga: Saga,
                      changed: list[str]) -> None:
        server = ReplicaServerInput(lab=rep.lab, host=host, port=rep.port, storage=storage,
                                    vm=rep.vm)
        result = await tracked(self._tracker, Step.REPLICA_SERVER.of(host),
                               f"replica server on {host}", ReplicaActivities.server, server)
        if result.changed and not (result.observed.get("previous") or {}).get("enabled"):
            changed.append(Step.REPLICA_SERVER.of(host))
            saga.add(f"disable replica server on {host}", lambda: step(
                ReplicaActivities.disable_server, HostInput(lab=rep.lab, host=host),
                summary=f"undo: replica server on {host}", options=COMPENSATION))

    async def _firewall(self, rep: ReplicationInput, host: str, saga: Saga,
                        changed: list[str]) -> None:
        rule = ReplicaFirewallInput(lab=rep.lab, host=host, port=rep.port)
        result = await tracked(self._tracker, Step.FIREWALL.of(host), f"listener rule on {host}",
                               ReplicaActivities.firewall, rule)
        previous = result.observed.get("previous") or {}
        if result.changed and not previous.get("enabled"):
            changed.append(Step.FIREWALL.of(host))
            port = int((str(previous.get("port") or "").split(",")[0]) or 80)
            undo = ReplicaFirewallInput(lab=rep.lab, host=host, port=port)
            saga.add(f"disable listener rule on {host}", lambda: step(
                ReplicaActivities.disable_firewall, undo, summary=f"undo: listener rule on {host}",
                options=COMPENSATION))

    async def _enable(self, rep: ReplicationInput, saga: Saga, changed: list[str]) -> None:
        """Enable-VMReplication; the removal is registered first and skipped only when the
        step found the replication in place already (or refused a different one)."""
        created: list[bool] = []

        async def remove() -> StepResult | None:
            if created and not created[0]:
                return None
            return await step(ReplicaActivities.remove, rep,
                              summary=f"undo: replication of {rep.vm}",
                              options=COMPENSATION)

        saga.add(f"remove replication of {rep.vm}", remove)
        try:
            result = await tracked(self._tracker, Step.ENABLE, f"replicate {rep.vm} to "
                                   f"{rep.replica}", ReplicaActivities.enable, rep)
        except ActivityError as exc:
            if isinstance(exc.cause, ApplicationError) and exc.cause.type == "Conflict":
                created.append(False)
            raise
        created.append(result.changed)
        if result.changed:
            changed.append(Step.ENABLE)

    async def _initial(self, request: ReplicationWorkflowInput, rep: ReplicationInput,
                       changed: list[str]) -> StepResult:
        started = await tracked(self._tracker, Step.INITIAL, "initial replication",
                                ReplicaActivities.start_initial, rep)
        if started.changed:
            changed.append(Step.INITIAL)
        wait = ReplicaWaitInput(lab=rep.lab, host=rep.primary, vm=rep.vm,
                                interval_seconds=request.poll_seconds)
        return await tracked(self._tracker, Step.WAIT_NORMAL, "wait Replicating / Normal",
                             ReplicaActivities.wait_state, wait, options=LONG_JOB)


KIND = UnitKind(
    name="replication", workflow=ReplicationWorkflow, plan=plan,
    unit_input=lambda spec, unit, compensate: ReplicationWorkflowInput(
        spec=spec, vm=unit.target, compensate=compensate),
    commands=step_commands, undo=undo, parts=turned_on, changed=changed)
