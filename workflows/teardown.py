"""LabTeardownWorkflow (``hvlab down``): remove what the lab file describes, in reverse plan order.

Each unit of the build plan is undone by the undo activities of its kind (reference §18):
checkpoints removed, replication removed on both sides (the replica VM with its disks) and the
replica servers and their firewall rule turned off, host NAT removed, VMs turned off and removed
with their disks, migration turned off and the lab's migration networks removed, delegation
entries removed, the SMB share removed, the hosts' switches removed. What has no undo activity
stays and the result says so (domain membership, Hyper-V role, folders and default paths, the
router's NAT inside its VM, which goes with the VM, the share's folder and NTFS rights).

Every undo activity treats "already gone" as done, so a second teardown only probes. A host
whose Hyper-V cmdlets do not answer (a half-built lab: role not installed) has none of the
Hyper-V objects; its steps are skipped after one read-only probe per host and the result says
so. A unit is undone once every unit that depends on it is undone, independent ones at the same
time. After a failure no further unit starts and the teardown fails; running it again
continues. Cancelled, it stops undoing (nothing removed is put back) and its memo lists what it
removed and which units it had not undone yet (:mod:`workflows.outcome`).

With ``units`` set, only those units are undone, each only in the parts named (the switches of a
host, the VMs of a checkpoint, the host a VM was created on, the replication steps): a cancelled
build undoes exactly what its run created this way (:mod:`workflows.build_compensation`).

Without ``units`` (``hvlab down``) only what hvlab created goes: a VM or a switch without this
lab's ``hvlab: created-by=<lab>`` Notes mark (:mod:`activities.marks`) was there before hvlab
(adopted) and stays, with the disks of a VM made on a disk that was there before and a disk
that no VM of the lab stands next to; an External switch whose host vNIC carries the address
the lab reaches its host at stays too (removing it cuts the host off). The result's ``kept``
says what stayed and why; ``force`` (``hvlab down --force``) removes them as well.
"""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.models import RemoveSwitchInput, VmInput, VmRemoveInput
    from activities.vm import VmActivities
    from hvlab.plan import PlanUnit
    from hvlab.spec import LabSpec
    from workflows.kind import Undo
    from workflows.kinds import build_plan, kind
    from workflows.options import PROBE
    from workflows.outcome import Compensation, record
    from workflows.progress import Progress, Tracker
    from workflows.steps import activity_name, step


class LabTeardownInput(BaseModel):
    spec: LabSpec
    only: list[str] = Field(default_factory=list, description="unit kinds (all if empty)")
    units: dict[str, list[str]] | None = Field(default=None, description=(
        "unit id -> the parts of it to undo (see select_parts); None: every unit, wholly"))
    force: bool = Field(default=False, description=(
        "`hvlab down --force`: also remove VMs, disks and switches hvlab did not create and "
        "the External switch that carries a host's management address"))


class LabTeardownResult(BaseModel):
    lab: str
    removed: dict[str, list[str]] = Field(
        default_factory=dict, description="unit -> the undo steps that changed something")
    left: dict[str, str] = Field(default_factory=dict,
                                 description="unit -> what teardown does not remove, and why")
    kept: dict[str, list[str]] = Field(default_factory=dict, description=(
        "unit -> what `hvlab down` found and kept, and why: not created by hvlab (adopted), "
        "or the switch that carries the host's management address (--force removes them)"))
    progress: Progress


def guarded(arg: BaseModel) -> BaseModel:
    """The undo step as `hvlab down` without --force runs it: keeping what this lab did not
    create (no ``created-by`` mark) and the switch that carries a host's management address."""
    if isinstance(arg, VmRemoveInput):
        return arg.model_copy(update={"keep_adopted": True})
    if isinstance(arg, RemoveSwitchInput):
        return arg.model_copy(update={"keep_adopted": True, "keep_management": True})
    return arg


def teardown_units(spec: LabSpec, only: list[str], selected: dict[str, list[str]] | None = None
                   ) -> list[tuple[PlanUnit, list[Undo]]]:
    """The plan's units in reverse order, each with its undo steps (empty: nothing to undo);
    with ``selected``, only those units, each in the parts named (its kind's ``parts``: the
    switches of a host, the VMs of a checkpoint, the host a VM was created on, the
    replication steps; other kinds are undone wholly)."""
    units = [u for u in reversed(build_plan(spec).order()) if (not only or u.kind in only)
             and (selected is None or u.id in selected)]
    out: list[tuple[PlanUnit, list[Undo]]] = []
    for unit in units:
        unit_kind = kind(unit.kind)
        undos = unit_kind.undo(spec, unit)
        out.append((unit, undos if selected is None else unit_kind.parts(undos,
                                                                          selected[unit.id])))
    return out


def _no_hyperv(exc: ActivityError) -> bool:
    """The probe failed because the host has no Hyper-V cmdlets (role not installed)."""
    cause = exc.cause
    return isinstance(cause, ApplicationError) and cause.type == "CommandNotFound"


@workflow.defn(name="LabTeardownWorkflow")
class LabTeardownWorkflow:
    def __init__(self) -> None:
        self._tracker = Tracker("LabTeardown")
        self._hyperv: dict[str, asyncio.Future[bool]] = {}
        self._lab = ""
        self._hosts: list[str] = []
        self._done: dict[str, asyncio.Event] = {}
        self._failed = False
        self._everywhere = True
        self._guard = False

    @workflow.query
    def progress(self) -> Progress:
        return self._tracker.progress

    @workflow.run
    async def run(self, request: LabTeardownInput) -> LabTeardownResult:
        """Undo every unit, newest first."""
        spec = request.spec
        units = teardown_units(spec, request.only, request.units)
        self._lab = spec.lab
        self._everywhere = request.units is None
        # a cancelled build's compensation undoes what its run created, as it did; `hvlab down`
        # keeps what hvlab did not create unless forced
        self._guard = request.units is None and not request.force
        self._hosts = [h.name for h in spec.hyperv_hosts]
        self._tracker = Tracker("LabTeardown", spec.lab)
        self._tracker.plan(*((u.id, f"undo {u.kind} {u.target}") for u, _ in units))
        result = LabTeardownResult(lab=spec.lab, progress=self._tracker.progress)
        self._done = {u.id: asyncio.Event() for u, _ in units}
        self._failed = False
        try:
            outcomes = await asyncio.gather(*(self._after_dependents(u, undos, units, result)
                                              for u, undos in units), return_exceptions=True)
        except BaseException:
            if workflow.cancellation_reason() is not None:
                self._cancelled(result)
            raise
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        self._tracker.finish()
        result.progress = self._tracker.progress
        return result

    def _cancelled(self, result: LabTeardownResult) -> None:
        """Cancelled: nothing removed comes back; the memo says what is left to remove."""
        finished = ("done", "unchanged", "skipped")
        pending = [s.name for s in self._tracker.progress.steps if s.state not in finished]
        record(Compensation(
            undone=[f"{unit}: {change}" for unit, changes in result.removed.items()
                    for change in changes],
            kept=[f"{unit}: not undone yet" for unit in pending],
            next="a cancelled teardown puts nothing back; run `hvlab down FILE` again to "
                 "remove the rest"))

    async def _after_dependents(self, unit: PlanUnit, undos: list[Undo],
                                units: list[tuple[PlanUnit, list[Undo]]],
                                result: LabTeardownResult) -> None:
        """Undo ``unit`` once every unit that depends on it is undone (independent units at
        the same time); after a failure no further unit starts."""
        try:
            for other, _ in units:
                if unit.id in other.depends_on or _after_vms(unit, other):
                    await self._done[other.id].wait()
            if not self._failed:
                await self._unit(unit, undos, result)
        except BaseException:
            self._failed = True
            raise
        finally:
            self._done[unit.id].set()

    async def _unit(self, unit: PlanUnit, undos: list[Undo], result: LabTeardownResult) -> None:
        title = f"undo {unit.kind} {unit.target}"
        note = kind(unit.kind).left_in_place
        if not undos:
            note = note or f"no undo activity for {unit.kind} units"
            self._tracker.skip(unit.id, title, note)
        else:

            async def work() -> list[str]:
                return await self._undo(undos, unit, result)

            changed = await self._tracker.run(unit.id, title, work, bool)
            if changed:
                result.removed[unit.id] = changed
        if note:
            result.left[unit.id] = "; ".join(filter(None, [note, result.left.get(unit.id)]))

    async def _undo(self, undos: list[Undo], unit: PlanUnit, result: LabTeardownResult
                    ) -> list[str]:
        changed: list[str] = []
        for activity, arg, needs in undos:
            missing = [h for h in needs if not await self._has_hyperv(h)]
            if missing:
                result.left.setdefault(unit.id, f"no Hyper-V on {', '.join(missing)}: "
                                                "nothing of it there")
                continue
            targets: list[BaseModel] = [guarded(arg) if self._guard else arg]
            if isinstance(arg, VmRemoveInput) and self._everywhere:
                targets = list(await self._located(arg))
            for target in targets:
                what = f"{activity_name(activity)} {_describe(target)}"
                outcome = await step(activity, target, summary=what)
                if outcome.changed:
                    changed.append(what)
                kept = outcome.observed.get("kept")
                if kept:
                    result.kept.setdefault(unit.id, []).extend(
                        [kept] if isinstance(kept, str) else [str(k) for k in kept])
        return changed

    async def _located(self, arg: VmRemoveInput) -> list[VmRemoveInput]:
        """The VM wherever it is now: live migration and failover move VMs off the host the
        lab file names, and a replica leaves a copy on the other host. Each copy goes with
        its attached disks (vm.remove deletes them)."""
        hosts = [h for h in self._hosts if await self._has_hyperv(h)]
        found = [h for h, r in zip(hosts, await asyncio.gather(*(
            step(VmActivities.exists, VmInput(lab=self._lab, host=h, vm=arg.vm), options=PROBE)
            for h in hosts)), strict=True) if r.observed.get("exists")]
        if self._guard:
            arg = arg.model_copy(update={"keep_adopted": True})
        others = [arg.model_copy(update={"host": h, "disk_path": None}) for h in found
                  if h.lower() != arg.host.lower()]
        return [*others, arg]  # where it runs first: its disks are freed before deletion

    async def _has_hyperv(self, host: str) -> bool:
        """Whether Hyper-V's cmdlets answer on ``host`` (one read-only probe per host and run,
        shared by the units that ask at the same time)."""
        key = host.lower()
        if key not in self._hyperv:
            self._hyperv[key] = asyncio.ensure_future(self._probe(host))
        return await self._hyperv[key]

    async def _probe(self, host: str) -> bool:
        try:
            await step(VmActivities.exists,
                       VmInput(lab=self._lab, host=host, vm="hvlab-teardown-probe"),
                       summary=f"is Hyper-V on {host}?", options=PROBE)
        except ActivityError as exc:
            if not _no_hyperv(exc):
                raise
            return False
        return True


def _after_vms(unit: PlanUnit, other: PlanUnit) -> bool:
    """Host-wide access (KCD, share rights) goes only after every VM is gone: a VM that has
    moved to another host still needs it to delete its files on the share."""
    return unit.kind in ("delegation", "shared-storage") and other.kind == "vm-deploy"


def _describe(arg: BaseModel) -> str:
    fields = arg.model_dump()
    keys = ("host", "dc", "primary", "vm", "computer", "name")
    return " ".join(str(fields[k]) for k in keys if fields.get(k))
