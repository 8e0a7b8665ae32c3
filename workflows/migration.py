"""LiveMigrationWorkflow: one VM moved live (reference §12), as a host-side job followed to
the end.

Where the VM is now (every Hyper-V host probed), Compare-VM pre-flight (incompatibilities are
data: in the failure's details and message, no move started), the move as a host-side job
(``migration.start_move`` re-attaches to a running job or recognises a finished move, so a
retry or a restarted worker never sends a second Move-VM), the job followed with heartbeats
(``migration.poll_job``, resumed from its heartbeat after a worker crash) while a progress
probe copies the job's percent into the ``progress`` query, then the VM's location checked.

Modes: ``shared-nothing`` (Move-VM -IncludeStorage into ``storage_path``, by default the
destination host's VM folder + VM name), ``smb`` (compute only, the files stay on the share),
``storage`` (Move-VMStorage to ``storage_path`` on the VM's own host). For ``smb`` the VM's
files must be on a share already; the check afterwards wants them still there.

On failure or cancel the VM's running migration job is cancelled and the VM is made to run
where it is (started again if it ran before). During a live move ``migration.watch_downtime``
pings the VM from the DC (the seed's ``ping -t``) until the job ends and reports the longest
gap in replies as ``downtime_seconds`` (behind ``workflow.patched("downtime-probe")`` so runs
recorded before it still replay).
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from activities.migration import MigrationActivities
    from activities.models import (
        DowntimeInput,
        FindJobInput,
        MigrationJobInput,
        MoveInput,
        MoveMode,
        StepResult,
        VerifyLocationInput,
        VmInput,
    )
    from activities.vm import VmActivities
    from hvlab.spec import LabSpec
    from workflows.metrics import migration_finished
    from workflows.options import COMPENSATION, LONG_JOB, PROBE
    from workflows.progress import Progress, Tracker
    from workflows.replication import known_host, known_vm
    from workflows.saga import Saga
    from workflows.steps import step, tracked

FINISHED_JOB_STATES = ("Completed", "Terminated", "Killed", "Exception", "Gone")
DOWNTIME_NOT_MEASURED = "not measured: no live move ran (or it is a storage move)"


class LiveMigrationInput(BaseModel):
    spec: LabSpec
    vm: str
    destination: str | None = Field(default=None, description="lab host (not for storage)")
    mode: MoveMode = "shared-nothing"
    storage_path: str | None = Field(
        default=None, description="storage: required; shared-nothing: <dest VM path>\\<vm>")
    source: str | None = Field(default=None, description="host the VM runs on (else found)")
    compensate: bool = True
    poll_seconds: float = Field(default=2.0, gt=0, description="job poll interval")
    progress_seconds: float = Field(default=10.0, gt=0, description="percent probe interval")


class LiveMigrationResult(BaseModel):
    vm: str
    mode: MoveMode
    source: str
    host: str = Field(description="where the VM is now")
    path: str | None = None
    disks: list[str] = Field(default_factory=list)
    state: str | None = None
    moved: bool = Field(description="this run moved it (False: it was there already)")
    job_id: str | None = None
    reattached: bool = False
    resumed_from: int | None = Field(default=None, description="percent a poll resumed at")
    incompatibilities: list[dict[str, Any]] = Field(default_factory=list)
    downtime_seconds: float | None = None
    downtime_note: str = DOWNTIME_NOT_MEASURED
    progress: Progress


def migration_id(lab: str, vm: str) -> str:
    """The workflow id of a VM's migration (one at a time per VM)."""
    return f"{lab}-migrate-{vm}"


def _outcome(exc: BaseException) -> str:
    """``cancelled`` when the run (or its job) was cancelled, else ``failed``."""
    cause = exc.cause if isinstance(exc, ActivityError) and exc.cause is not None else exc
    if isinstance(exc, asyncio.CancelledError) or isinstance(cause, CancelledError):
        return "cancelled"
    return "failed"


def share_of(path: str) -> str | None:
    """The SMB share (\\\\server\\share) a UNC path is on; None for a local path."""
    parts = path.lstrip("\\").split("\\")
    if not path.startswith("\\\\") or len(parts) < 2:
        return None
    return "\\\\" + "\\".join(parts[:2])


def _problem(host: str, message: str, kind: str, details: Any = None) -> ApplicationError:
    return ApplicationError(f"{host}: {message}", details, type=kind, non_retryable=True)


class _Plan(BaseModel):
    """The move this run makes, once the VM has been found."""

    move: MoveInput
    verify: VerifyLocationInput
    was_running: bool
    already_there: bool


@workflow.defn(name="LiveMigrationWorkflow")
class LiveMigrationWorkflow:
    def __init__(self) -> None:
        self._tracker = Tracker("LiveMigration")
        self._vm_id: str | None = None
        self._source = ""

    @workflow.query
    def progress(self) -> Progress:
        return self._tracker.progress

    @workflow.run
    async def run(self, request: LiveMigrationInput) -> LiveMigrationResult:
        """Move the VM; on failure or cancel stop the job and keep the VM running."""
        vm = known_vm(request.spec, request.vm)
        self._tracker = Tracker("LiveMigration", f"{vm.name} ({request.mode})")
        self._tracker.plan(("locate", f"find {vm.name}"), ("preflight", "Compare-VM"),
                           ("start", "start the move"), ("job", "migration job"),
                           ("verify", "check where the VM is"))
        self._request = request.model_copy(update={"vm": vm.name})
        self._lab = request.spec.lab
        saga = Saga(f"LiveMigration {vm.name}", enabled=request.compensate)
        started = workflow.now()
        try:
            plan = await self._tracker.run("locate", f"find {vm.name}", self._locate)
            self._source = plan.move.host
            result = await self._migrate(plan, saga)
        except BaseException as exc:
            migration_finished(request.mode, _outcome(exc), None)
            await saga.compensate()
            raise
        migration_finished(request.mode, "ok" if result.moved else "noop",
                           workflow.now() - started if result.moved else None)
        self._tracker.finish()
        return result

    # -- where is it ---------------------------------------------------------------------
    async def _exists(self, host: str) -> StepResult:
        return await step(VmActivities.exists,
                          VmInput(lab=self._lab, host=host, vm=self._request.vm),
                          summary=f"is {self._request.vm} on {host}?", options=PROBE)

    async def _locate(self) -> _Plan:
        request = self._request
        hosts = [h.name for h in request.spec.hyperv_hosts]
        if request.source:
            hosts = [known_host(request.spec, request.source).name]
        found = await asyncio.gather(*(self._exists(h) for h in hosts))
        states = {h: str(r.observed.get("state")) for h, r in zip(hosts, found, strict=True)
                  if r.observed.get("exists")}
        plan = self._plan(states)
        if self._request.mode != "smb":
            return plan
        where = plan.verify.host if plan.already_there else plan.move.host
        share = await self._share(where)
        return plan.model_copy(update={"verify": plan.verify.model_copy(update={"path": share})})

    async def _share(self, host: str) -> str:
        """The SMB share (\\\\server\\share) holding the VM's configuration: a compute-only
        move leaves the files there (and needs them there)."""
        vm = self._request.vm
        found = await step(MigrationActivities.verify_location, VerifyLocationInput(
            lab=self._lab, host=host, vm=vm, fail_on_mismatch=False), options=PROBE,
            summary=f"where are the files of {vm}?")
        path = str(found.observed.get("path") or "")
        share = share_of(path)
        if share is None:
            raise _problem(host, f"{vm} is stored at {path or '?'}, not on an SMB share: mode "
                           "smb moves compute only; use shared-nothing", "InvalidParameter",
                           {"path": path})
        return share

    def _destination(self, source: str) -> str:
        request = self._request
        if request.mode == "storage":
            return source
        if not request.destination:
            raise _problem(request.vm, f"mode {request.mode} needs a destination host",
                           "InvalidParameter")
        return known_host(request.spec, request.destination).name

    def _find_source(self, states: dict[str, str]) -> tuple[str, bool]:
        """The host the VM moves from, and whether it is at the destination already."""
        request, vm = self._request, self._request.vm
        destination = known_host(request.spec, request.destination).name if request.destination \
            and request.mode != "storage" else None
        others = [h for h in states if h != destination]
        if len(others) > 1:
            raise _problem(vm, f"found on {', '.join(others)}; say which is the source",
                           "Conflict", {"hosts": others})
        if others:
            return others[0], False
        if destination is not None and destination in states:
            return known_host(request.spec, request.spec.vm(vm).host).name, True
        raise _problem(vm, "not found on any Hyper-V host", "NotFound", {"hosts": states})

    def _plan(self, states: dict[str, str]) -> _Plan:
        request, spec, lab = self._request, self._request.spec, self._lab
        source, there = self._find_source(states)
        destination = self._destination(source)
        path = self._path(destination)
        move = MoveInput(lab=lab, host=source, vm=request.vm, mode=request.mode,
                         destination=None if request.mode == "storage" else destination,
                         destination_fqdn=None if request.mode == "storage"
                         else f"{destination.lower()}.{spec.domain.fqdn.lower()}",
                         destination_path=path if request.mode != "smb" else None)
        verify = VerifyLocationInput(lab=lab, host=destination, vm=request.vm, path=path,
                                     absent_from=None if source == destination else source)
        where = destination if there else source
        return _Plan(move=move, verify=verify, was_running=states.get(where) == "Running",
                     already_there=there)

    def _path(self, destination: str) -> str | None:
        """Where the VM's files must end up (None: not checked)."""
        request, spec = self._request, self._request.spec
        if request.mode == "smb":
            return None  # the share holding the files, found while locating
        if request.storage_path:
            return request.storage_path
        if request.mode == "storage":
            raise _problem(request.vm, "mode storage needs a storage path", "InvalidParameter")
        folder = spec.host(destination).paths.virtual_machines or "C:\\Hyper-V"
        return f"{folder}\\{spec.vm(request.vm).name}"

    # -- the move ------------------------------------------------------------------------
    async def _migrate(self, plan: _Plan, saga: Saga) -> LiveMigrationResult:
        move = plan.move
        saga.add(f"keep {move.vm} running", lambda: self._keep_running(plan))
        result: dict[str, Any] = {"moved": False}
        if plan.already_there:
            for name, title in (("preflight", "Compare-VM"), ("start", "start the move"),
                                ("job", "migration job")):
                self._tracker.skip(name, title, f"{move.vm} is on {plan.verify.host} already")
        else:
            result = await self._move(plan, saga)
        where = await tracked(self._tracker, "verify", "check where the VM is",
                              MigrationActivities.verify_location, plan.verify, options=PROBE)
        return self._result(plan, where, result)

    async def _move(self, plan: _Plan, saga: Saga) -> dict[str, Any]:
        move = plan.move
        if await self._job_running():
            self._tracker.skip("preflight", "Compare-VM", "a migration job of the VM runs: "
                               "re-attaching to it")
        else:
            await self._preflight(move)
        saga.add(f"cancel the migration job of {move.vm}", self._cancel_job)
        started = await tracked(self._tracker, "start", "start the move",
                                MigrationActivities.start_move, move)
        self._vm_id = started.observed.get("vm_id") or self._vm_id
        if started.observed.get("done"):
            self._tracker.skip("job", "migration job", "the move had finished")
            return {"moved": started.changed}
        job_id = str(started.observed["job_id"])
        watch = self._watch_downtime(move, job_id)
        try:
            polled = await self._tracker.run("job", "migration job",
                                             lambda: self._follow(job_id))
        except BaseException:
            if watch is not None:
                watch.cancel()
            raise
        return {"moved": True, "job_id": job_id,
                "reattached": bool(started.observed.get("reattached")),
                "resumed_from": polled.observed.get("resumed_from"),
                **await self._downtime(watch)}

    def _watch_downtime(self, move: MoveInput, job_id: str) -> asyncio.Future[StepResult] | None:
        """Ping the VM from the DC during a live move (the seed's ``ping -t``)."""
        if not workflow.patched("downtime-probe") or move.mode == "storage":
            return None
        spec = self._request.spec
        address = next((str(n.ipv4.ip) for n in spec.vm(move.vm).nics if n.ipv4), None)
        if address is None:
            return None
        probe = DowntimeInput(lab=self._lab, host=spec.domain.dc, address=address, vm=move.vm,
                              job_host=move.host, job_id=job_id, mode=move.mode)
        return asyncio.ensure_future(step(MigrationActivities.watch_downtime, probe,
                                          options=LONG_JOB,
                                          summary=f"ping {move.vm} during the move"))

    @staticmethod
    async def _downtime(watch: asyncio.Future[StepResult] | None) -> dict[str, Any]:
        if watch is None:
            return {}
        try:
            observed = (await watch).observed
        except ActivityError as exc:
            return {"downtime_note": f"not measured: the ping probe failed ({exc.cause})"}
        if not observed.get("measured"):
            return {"downtime_note": f"not measured: {observed.get('reason')}"}
        return {"downtime_seconds": observed.get("downtime_seconds"),
                "downtime_note": f"{observed.get('lost')} of {observed.get('probes')} pings "
                                 f"from {observed.get('from')} lost"}

    async def _job_running(self) -> bool:
        """A migration job of the VM runs on the source already (an earlier run's)."""
        found = await step(MigrationActivities.find_job, self._find_input(), options=PROBE,
                           summary=f"is {self._request.vm} being migrated?")
        job = found.observed.get("job") or {}
        self._vm_id = found.observed.get("vm_id") or self._vm_id
        return bool(job) and job.get("state") not in FINISHED_JOB_STATES

    async def _preflight(self, move: MoveInput) -> None:
        """Compare-VM; incompatibilities fail the workflow with them as details."""
        checked = await tracked(self._tracker, "preflight", "Compare-VM",
                                MigrationActivities.preflight, move)
        problems = list(checked.observed.get("incompatibilities") or [])
        if problems:
            text = "; ".join(f"{p.get('message')} ({p.get('message_id')}, {p.get('source')})"
                             for p in problems)
            raise _problem(move.host, f"{move.vm} cannot move to {move.target_host()}: {text}",
                           "MigrationIncompatible", {"incompatibilities": problems})

    def _job_input(self, job_id: str) -> MigrationJobInput:
        return MigrationJobInput(lab=self._lab, host=self._source, job_id=job_id,
                                 interval_seconds=self._request.poll_seconds)

    async def _follow(self, job_id: str) -> StepResult:
        """Poll the job to its end; meanwhile copy its percent into the progress."""
        poll = asyncio.ensure_future(step(
            MigrationActivities.poll_job, self._job_input(job_id),
            summary=f"follow migration job {job_id}", options=LONG_JOB))
        try:
            while True:
                done, _ = await workflow.wait([poll], timeout=self._request.progress_seconds)
                if done:
                    return poll.result()
                await self._sample()
        except BaseException:
            poll.cancel()
            raise

    async def _sample(self) -> None:
        """Read the job's percent (a best-effort probe: a failed read is skipped)."""
        try:
            found = await step(MigrationActivities.find_job, self._find_input(), options=PROBE,
                               summary="migration job progress")
        except ActivityError:
            return
        job = found.observed.get("job") or {}
        if "percent" in job:
            self._tracker.progress.phase = f"migration job {job['percent']}%"
            for item in self._tracker.progress.steps:
                if item.name == "job":
                    item.detail = f"{job['percent']}%"
            workflow.set_current_details(
                f"LiveMigration {self._request.vm}: job {job['percent']}%")

    def _find_input(self) -> FindJobInput:
        return FindJobInput(lab=self._lab, host=self._source, vm=self._request.vm,
                            vm_id=self._vm_id)

    def _result(self, plan: _Plan, where: StepResult, moved: dict[str, Any]
                ) -> LiveMigrationResult:
        observed = where.observed
        return LiveMigrationResult(
            vm=plan.move.vm, mode=plan.move.mode, source=plan.move.host,
            host=str(observed.get("host")), path=observed.get("path"),
            disks=list(observed.get("disks") or []), state=observed.get("state"),
            moved=bool(moved.get("moved")), job_id=moved.get("job_id"),
            reattached=bool(moved.get("reattached")), resumed_from=moved.get("resumed_from"),
            downtime_seconds=moved.get("downtime_seconds"),
            downtime_note=moved.get("downtime_note", DOWNTIME_NOT_MEASURED),
            progress=self._tracker.progress)

    # -- compensation --------------------------------------------------------------------
    async def _cancel_job(self) -> None:
        """Cancel the VM's running migration job on the source and wait until it ended."""
        found = await step(MigrationActivities.find_job, self._find_input(), options=COMPENSATION,
                           summary=f"undo: find the migration job of {self._request.vm}")
        job = found.observed.get("job")
        if not job or job.get("state") in FINISHED_JOB_STATES:
            return
        job_input = self._job_input(str(job["job_id"]))
        await step(MigrationActivities.cancel_job, job_input, options=COMPENSATION,
                   summary=f"undo: cancel migration job {job['job_id']}")
        try:
            await step(MigrationActivities.poll_job, job_input, options=COMPENSATION,
                       summary=f"undo: wait until job {job['job_id']} ended")
        except ActivityError as exc:  # Terminated is the expected end of a cancelled job
            workflow.logger.info("migration job %s ended: %s", job["job_id"], exc.cause)

    async def _keep_running(self, plan: _Plan) -> None:
        """The VM runs where it is now (the source, unless the move finished first)."""
        if not plan.was_running:
            return
        for host in dict.fromkeys((plan.move.host, plan.verify.host)):
            found = await self._exists(host)
            if not found.observed.get("exists"):
                continue
            if found.observed.get("state") != "Running":
                await step(VmActivities.start, VmInput(lab=self._lab, host=host, vm=plan.move.vm),
                           summary=f"undo: start {plan.move.vm} on {host}",
                           options=COMPENSATION)
            return
