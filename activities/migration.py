"""Live, SMB and storage migration activities (reference §11-§12): host readiness and its
compensation, Compare-VM pre-flight, starting a move as a host-side Msvm_MigrationJob, finding,
polling and cancelling that job, and checking where the VM and its files ended up.

A move is started once: ``migration.start_move`` first checks whether the VM is already where
it should be (done) or whether a migration job for it is running on the source (re-attach), so
a retried or replayed step never sends a second Move-VM. The job, not the client session, is
the source of truth while it runs; the VM's location decides the outcome afterwards. The
``*_command`` functions build the exact commands the activities emit (the catalogue test binds
every one of them).
"""

from __future__ import annotations

import ipaddress
import time
import uuid
from typing import Any

from pydantic import field_serializer
from temporalio import activity
from temporalio.exceptions import ApplicationError, CancelledError

from activities.base import (
    VIRTUALIZATION,
    Beat,
    Remote,
    application_errors,
    cancelled,
    heartbeat,
    last_heartbeat,
    verify_failed,
)
from activities.host import get_vmhost_command
from activities.models import (
    DowntimeInput,
    FindJobInput,
    MigrationHostSettings,
    MigrationJobInput,
    MigrationNetworkInput,
    MigrationReadinessInput,
    MigrationRestoreInput,
    MoveInput,
    StepResult,
    VerifyLocationInput,
)
from activities.vm import get_vm_command
from hvlab.metrics import MIGRATION_DOWNTIME
from hvlab.powershell.command import SWITCH, Command
from hvlab.powershell.endpoints import EndpointSource
from hvlab.powershell.errors import RemoteError, classify_message
from hvlab.powershell.session import SessionPool

JOB_CLASS = "Msvm_MigrationJob"
COMPLETED, TERMINATED, KILLED, EXCEPTION = 7, 8, 9, 10
DONE_STATES = (COMPLETED, TERMINATED, KILLED, EXCEPTION)
TERMINATE = 4
JOB_STATE_NAMES = {2: "New", 3: "Starting", 4: "Running", 5: "Suspended", 6: "ShuttingDown",
                   7: "Completed", 8: "Terminated", 9: "Killed", 10: "Exception", 11: "Service"}
# RequestStateChange: 0 done, 4096 job started; 32775 invalid state (the job already ended).
CANCEL_ACCEPTED = (0, 4096)
CANCEL_TOO_LATE = 32775


# -- commands ------------------------------------------------------------------------------


def enable_migration_command() -> Command:
    return Command.of("Enable-VMMigration")


def disable_migration_command() -> Command:
    return Command.of("Disable-VMMigration")


def set_migration_host_command(changes: dict[str, Any]) -> Command:
    """Set-VMHost with only the migration settings that differ (parameter name -> value)."""
    return Command.of("Set-VMHost", **changes)


def get_migration_networks_command() -> Command:
    return Command.of("Get-VMMigrationNetwork")


def add_migration_network_command(network: MigrationNetworkInput) -> Command:
    return Command.of("Add-VMMigrationNetwork", Subnet=network.subnet, Priority=network.priority)


def remove_migration_network_command(subnet: str) -> Command:
    return Command.of("Remove-VMMigrationNetwork", Subnet=subnet)


def _destination(request: MoveInput) -> str:
    return request.destination_fqdn or str(request.destination)


def compare_vm_command(request: MoveInput) -> Command:
    """Compare-VM with the destination parameters of the move (never -AsJob)."""
    storage = request.mode == "shared-nothing"
    return Command.of("Compare-VM", Name=request.vm, DestinationHost=_destination(request),
                      IncludeStorage=SWITCH if storage else None,
                      DestinationStoragePath=request.destination_path if storage else None)


def move_command(request: MoveInput) -> Command:
    """The move as a host-side job: Move-VM (shared-nothing, smb) or Move-VMStorage."""
    if request.mode == "storage":
        return Command.of("Move-VMStorage", VMName=request.vm,
                          DestinationStoragePath=request.destination_path, AsJob=SWITCH)
    storage = request.mode == "shared-nothing"
    return Command.of("Move-VM", Name=request.vm, DestinationHost=_destination(request),
                      IncludeStorage=SWITCH if storage else None,
                      DestinationStoragePath=request.destination_path if storage else None,
                      AsJob=SWITCH)


def migration_jobs_command() -> Command:
    return Command.of("Get-CimInstance", Namespace=VIRTUALIZATION, ClassName=JOB_CLASS)


def _job_query(job_id: str) -> str:
    return f"SELECT * FROM {JOB_CLASS} WHERE InstanceID='{job_id}'"


def migration_job_command(job_id: str) -> Command:
    return Command.of("Get-CimInstance", Namespace=VIRTUALIZATION, Query=_job_query(job_id))


def ping_command(address: str) -> Command:
    """One echo request, True/False (Test-Connection -Count 1 -Quiet, Windows PowerShell 5.1)."""
    return Command.of("Test-Connection", ComputerName=address, Count=1, Quiet=SWITCH)


def cancel_job_command(job_id: str) -> Command:
    """RequestStateChange(Terminate) on the job (reference §12.5)."""
    return Command.of("Invoke-CimMethod", Namespace=VIRTUALIZATION, Query=_job_query(job_id),
                      MethodName="RequestStateChange", Arguments={"RequestedState": TERMINATE})


def receive_job_command(job_number: int) -> Command:
    """The -AsJob PowerShell job's errors (when the host-side job is already gone)."""
    return Command.of("Receive-Job", Id=job_number)


def hard_disks_command(vm: str) -> Command:
    return Command.of("Get-VMHardDiskDrive", VMName=vm)


# -- heartbeat details --------------------------------------------------------------------


class ReadinessBeat(Beat):
    """migration.readiness: the host's settings before the step changed them and the
    migration networks it added (a retry reports those, not what its predecessor left)."""

    KIND = "migration.readiness"
    previous: MigrationHostSettings
    added_networks: list[str] = []

    @field_serializer("previous")
    def _settings_only(self, previous: MigrationHostSettings) -> dict[str, Any]:
        return previous.model_dump(exclude={"lab"})


class JobBeat(Beat):
    """migration.poll_job: how far the job had got at the last poll (a retry resumes there)."""

    KIND = "migration.job"
    job_id: str
    percent: int


class DowntimeBeat(Beat):
    """migration.watch_downtime: the pings so far (progress only; not resumed)."""

    KIND = "migration.downtime"
    probes: int
    lost: int
    longest: float


# -- helpers -------------------------------------------------------------------------------


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _norm(path: Any) -> str:
    return _text(path).rstrip("\\").lower()


def _under(path: Any, root: str) -> bool:
    """``path`` is ``root`` or inside it (case-insensitive Windows/UNC paths)."""
    p, r = _norm(path), _norm(root)
    return bool(r) and (p == r or p.startswith(r + "\\"))


def _check_move(request: MoveInput) -> None:
    """The destination parameters the mode needs (refused before anything is sent)."""
    missing = [name for name, needed in (
        ("destination", request.mode != "storage" and not request.destination),
        ("destination_path", request.mode != "smb" and not request.destination_path),
    ) if needed]
    if missing:
        raise ApplicationError(f"a {request.mode} move of {request.vm} needs "
                               + " and ".join(missing), type="InvalidParameter",
                               non_retryable=True)


def _job_id(value: str) -> str:
    """A job InstanceID (a GUID) as Hyper-V writes it; anything else is refused before it
    reaches a WQL query."""
    try:
        return str(uuid.UUID(value)).upper()
    except ValueError:
        raise ApplicationError(f"not a migration job id: {value!r}", type="InvalidParameter",
                               non_retryable=True) from None


def _job_view(job: dict[str, Any]) -> dict[str, Any]:
    state = int(job.get("JobState") or 0)
    return {"job_id": _text(job.get("InstanceID")).upper(), "state": JOB_STATE_NAMES.get(state,
            str(state)), "job_state": state, "percent": int(job.get("PercentComplete") or 0),
            "vm_id": _text(job.get("VirtualSystemName")).upper(),
            "destination": job.get("DestinationHost"), "job_type": job.get("JobType"),
            "error": job.get("ErrorDescription")}


def _running(job: dict[str, Any]) -> bool:
    return int(job.get("JobState") or 0) not in DONE_STATES


def _vm_id(vm: dict[str, Any]) -> str:
    return _text(vm.get("Id")).upper()


def _settings_view(vmhost: dict[str, Any]) -> MigrationHostSettings:
    return MigrationHostSettings(
        enabled=bool(vmhost.get("VirtualMachineMigrationEnabled")),
        authentication=_text(vmhost.get("VirtualMachineMigrationAuthenticationType")) or "CredSSP",
        performance=_text(vmhost.get("VirtualMachineMigrationPerformanceOption")) or "Compression",
        max_vm_migrations=int(vmhost.get("MaximumVirtualMachineMigrations") or 2),
        max_storage_migrations=int(vmhost.get("MaximumStorageMigrations") or 2),
        use_any_network=bool(vmhost.get("UseAnyNetworkForMigration")))


def _same(a: MigrationHostSettings, b: MigrationHostSettings) -> bool:
    return a.model_dump(exclude={"lab"}) == b.model_dump(exclude={"lab"})


_SET_VMHOST = {  # MigrationHostSettings field -> Set-VMHost parameter
    "authentication": "VirtualMachineMigrationAuthenticationType",
    "performance": "VirtualMachineMigrationPerformanceOption",
    "max_vm_migrations": "MaximumVirtualMachineMigrations",
    "max_storage_migrations": "MaximumStorageMigrations",
    "use_any_network": "UseAnyNetworkForMigration",
}


def setting_changes(wanted: MigrationHostSettings,
                    current: MigrationHostSettings) -> dict[str, Any]:
    """Set-VMHost parameters for the settings that differ (enablement is separate)."""
    return {param: getattr(wanted, field) for field, param in _SET_VMHOST.items()
            if getattr(wanted, field) != getattr(current, field)}


def _subnet(value: Any) -> str:
    try:
        return str(ipaddress.ip_network(_text(value), strict=False))
    except ValueError:
        return _text(value)


def _problem_view(item: Any) -> dict[str, Any]:
    item = item if isinstance(item, dict) else {"Message": _text(item)}
    source = item.get("Source")
    if isinstance(source, dict):
        source = source.get("Name") or source.get("VMName") or str(source)
    message_id = item.get("MessageId")
    return {"message": _text(item.get("Message")),
            "message_id": int(message_id) if message_id is not None else None,
            "source": None if source is None else str(source)}


def job_failure(host: str, job: dict[str, Any]) -> ApplicationError:
    """The non-retryable failure of a job that ended badly, its ErrorDescription classified."""
    view = _job_view(job)
    description = _text(job.get("ErrorDescription")) or f"the job ended {view['state']}"
    if view["job_state"] in (TERMINATED, KILLED):
        return ApplicationError(f"{host}: migration job {view['job_id']} was {view['state']}: "
                                f"{description}", view, type="JobTerminated", non_retryable=True)
    error: RemoteError = classify_message(host, f"{JOB_CLASS} {view['job_id']}", description)
    return ApplicationError(str(error), {**view, "host": host, "message": description},
                            type=error.type_name, non_retryable=True)


class MigrationActivities:
    """Migration steps on lab hosts reached through ``sessions`` and ``endpoints``."""

    def __init__(self, sessions: SessionPool, endpoints: EndpointSource) -> None:
        self._remote = Remote(sessions, endpoints)

    # -- readiness -----------------------------------------------------------------------
    @activity.defn(name="migration.readiness")
    def readiness(self, request: MigrationReadinessInput) -> StepResult:
        """Enable migration, set authentication/performance/concurrency/network use, add the
        migration networks; observes the previous settings for migration.restore_readiness."""
        with application_errors():
            return self._readiness(request)

    def _settings(self, host: str) -> MigrationHostSettings:
        return _settings_view(self._remote.query_one(host, get_vmhost_command()) or {})

    def _networks(self, host: str) -> dict[str, int]:
        found = self._remote.query(host, get_migration_networks_command())
        return {_subnet(n.get("Subnet")): int(n.get("Priority") or 0)
                for n in found if isinstance(n, dict)}

    def _missing_networks(self, request: MigrationReadinessInput) -> list[MigrationNetworkInput]:
        present = self._networks(request.host)
        return [n for n in request.networks if _subnet(n.subnet) not in present]

    def _apply(self, host: str, wanted: MigrationHostSettings,
               current: MigrationHostSettings) -> bool:
        changes = setting_changes(wanted, current)
        if wanted.enabled and not current.enabled:
            self._remote.run(host, enable_migration_command())
        if changes:
            self._remote.run(host, set_migration_host_command(changes))
        if current.enabled and not wanted.enabled:
            self._remote.run(host, disable_migration_command())
        return bool(changes) or wanted.enabled != current.enabled

    def _readiness(self, request: MigrationReadinessInput) -> StepResult:
        """What the host had before is heartbeated before anything changes, so a retry after
        a lost result still reports the original settings, every network it added, and
        ``changed`` (the compensation is registered on it)."""
        earlier = last_heartbeat(ReadinessBeat)
        before = self._settings(request.host)
        previous = earlier.previous if earlier else before
        added = list(earlier.added_networks) if earlier else []
        heartbeat(ReadinessBeat(previous=previous, added_networks=added))
        changed = self._apply(request.host, request.settings, before)
        for network in self._missing_networks(request):
            added.append(_subnet(network.subnet))
            heartbeat(ReadinessBeat(previous=previous, added_networks=added))
            self._remote.run(request.host, add_migration_network_command(network))
            changed = True
        after = self._settings(request.host)
        if not _same(after, request.settings) or self._missing_networks(request):
            raise verify_failed(request.host, "migration settings did not take", after)
        if earlier is not None:  # an earlier attempt of this execution may have made the changes
            changed = changed or bool(added) or not _same(previous, after)
        return StepResult(changed=changed, observed={
            "current": after.model_dump(exclude={"lab"}),
            "previous": previous.model_dump(exclude={"lab"}), "added_networks": added,
            "networks": self._networks(request.host)})

    @activity.defn(name="migration.restore_readiness")
    def restore_readiness(self, request: MigrationRestoreInput) -> StepResult:
        """Compensation of migration.readiness: put the previous settings back and remove the
        migration networks it added."""
        with application_errors():
            before = self._settings(request.host)
            changed = self._apply(request.host, request.previous, before)
            present = self._networks(request.host)
            remove = [s for s in map(_subnet, request.remove_networks) if s in present]
            for subnet in remove:
                self._remote.run(request.host, remove_migration_network_command(subnet))
            after = self._settings(request.host)
            left = set(remove) & set(self._networks(request.host))
            if not _same(after, request.previous) or left:
                raise verify_failed(request.host, "migration settings were not restored", after)
            return StepResult(changed=changed or bool(remove), observed={
                "current": after.model_dump(exclude={"lab"}), "removed_networks": remove})

    # -- where the VM is -----------------------------------------------------------------
    def _get_vm(self, host: str, vm: str) -> dict[str, Any] | None:
        return self._remote.query_one(host, get_vm_command(vm))

    def _disk_paths(self, host: str, vm: str) -> list[str]:
        return [_text(d.get("Path")) for d in self._remote.query(host, hard_disks_command(vm))
                if isinstance(d, dict)]

    def _moved(self, request: MoveInput) -> dict[str, Any] | None:
        """The VM's location view when the move is already done, else None."""
        if request.mode == "storage":
            vm = self._get_vm(request.host, request.vm)
            root = str(request.destination_path)
            if vm is None or not _under(vm.get("Path"), root):
                return None
            disks = self._disk_paths(request.host, request.vm)
            if not all(_under(d, root) for d in disks):
                return None
            return {"host": request.host, "path": vm.get("Path"), "disks": disks}
        target = str(request.destination)
        vm = self._get_vm(target, request.vm)
        if vm is None or self._get_vm(request.host, request.vm) is not None:
            return None
        return {"host": target, "path": vm.get("Path"), "state": _text(vm.get("State"))}

    def _source_vm(self, request: MoveInput) -> dict[str, Any]:
        vm = self._get_vm(request.host, request.vm)
        if vm is None:
            raise ApplicationError(f"{request.host}: VM {request.vm} does not exist",
                                   type="NotFound", non_retryable=True)
        return vm

    # -- jobs ----------------------------------------------------------------------------
    def _jobs_for(self, host: str, vm_id: str) -> list[dict[str, Any]]:
        return [j for j in self._remote.query(host, migration_jobs_command())
                if isinstance(j, dict) and _text(j.get("VirtualSystemName")).upper() == vm_id]

    def _job_for(self, host: str, vm_id: str, running_only: bool) -> dict[str, Any] | None:
        """The VM's running migration job, else (unless ``running_only``) its newest one."""
        jobs = self._jobs_for(host, vm_id)
        running = [j for j in jobs if _running(j)]
        if running:
            return running[-1]
        return None if running_only or not jobs else jobs[-1]

    def _get_job(self, host: str, job_id: str) -> dict[str, Any] | None:
        return self._remote.query_one(host, migration_job_command(job_id))

    # -- pre-flight ----------------------------------------------------------------------
    @activity.defn(name="migration.preflight")
    def preflight(self, request: MoveInput) -> StepResult:
        """Compare-VM with the move's destination parameters; incompatibilities come back as
        data ({message, message_id, source}). Never starts a move."""
        with application_errors():
            return self._preflight(request)

    def _preflight(self, request: MoveInput) -> StepResult:
        _check_move(request)
        done = self._moved(request)
        if done is not None:
            return StepResult(changed=False, observed={"done": True, "location": done,
                                                       "compatible": True, "incompatibilities": []})
        self._source_vm(request)
        if request.mode == "storage":  # Compare-VM checks moves to another host only
            return StepResult(changed=False, observed={
                "done": False, "compatible": True, "incompatibilities": [], "compared": False})
        report = self._remote.query_one(request.host, compare_vm_command(request)) or {}
        problems = [_problem_view(p) for p in report.get("Incompatibilities") or []]
        return StepResult(changed=False, observed={
            "done": False, "compatible": not problems, "incompatibilities": problems,
            "operation": _text(report.get("OperationType")), "compared": True})

    # -- start ---------------------------------------------------------------------------
    @activity.defn(name="migration.start_move")
    def start_move(self, request: MoveInput) -> StepResult:
        """Start the move as a host-side job and return its id. Already at the destination:
        done, nothing sent. A migration job of this VM running on the source: re-attach to it.
        Never sends a second Move-VM. A move the host refuses at once (delegation, switch,
        memory, processor, access) leaves a job that already ended in Exception: that fails
        here, non-retryably, as its classified ErrorDescription (as poll_job would)."""
        with application_errors():
            return self._start_move(request)

    def _start_move(self, request: MoveInput) -> StepResult:
        _check_move(request)
        done = self._moved(request)
        if done is not None:
            return StepResult(changed=False, observed={"done": True, "location": done})
        vm_id = _vm_id(self._source_vm(request))
        earlier = self._jobs_for(request.host, vm_id)
        running = [j for j in earlier if _running(j)]
        if running:
            return StepResult(changed=False, observed={**_job_view(running[-1]), "done": False,
                                                       "reattached": True, "vm_id": vm_id})
        started = self._remote.run(request.host, move_command(request))
        known = {_text(j.get("InstanceID")).upper() for j in earlier}
        job = next((j for j in reversed(self._jobs_for(request.host, vm_id))
                    if _text(j.get("InstanceID")).upper() not in known), None)
        if job is None:
            return self._without_job(request, started)
        if not _running(job) and int(job.get("JobState") or 0) != COMPLETED:
            raise job_failure(request.host, job)  # refused at once (-AsJob: a failed job)
        return StepResult(changed=True, observed={**_job_view(job), "done": False,
                                                  "reattached": False, "vm_id": vm_id})

    def _without_job(self, request: MoveInput, started: list[Any]) -> StepResult:
        """The host-side job already left (a quick move, or one that failed at once): the
        VM's location says done; otherwise the PowerShell job's error says why."""
        done = self._moved(request)
        if done is not None:
            return StepResult(changed=True, observed={"done": True, "location": done})
        ps_job = next((o for o in started if isinstance(o, dict) and "Id" in o), None)
        if ps_job is not None:
            self._remote.run(request.host, receive_job_command(int(ps_job["Id"])))
        raise verify_failed(request.host, f"{request.vm} did not move and no job is left",
                            ps_job)

    @activity.defn(name="migration.find_job")
    def find_job(self, request: FindJobInput) -> StepResult:
        """The VM's migration job on ``host`` (running first, else the newest), or none."""
        with application_errors():
            vm_id = request.vm_id.upper() if request.vm_id else None
            if vm_id is None:
                vm = self._get_vm(request.host, request.vm)
                if vm is None:
                    return StepResult(changed=False, observed={"job": None, "vm_present": False})
                vm_id = _vm_id(vm)
            job = self._job_for(request.host, vm_id, running_only=False)
            return StepResult(changed=False, observed={
                "job": _job_view(job) if job else None, "vm_id": vm_id})

    # -- poll ----------------------------------------------------------------------------
    @activity.defn(name="migration.poll_job")
    def poll_job(self, request: MigrationJobInput) -> StepResult:
        """Poll the job until it ends, heartbeating {job_id, percent}; a retry resumes from
        the last heartbeat. Completed -> result; failed -> non-retryable ApplicationError of
        the classified ErrorDescription; gone -> state Gone (decide by VM location)."""
        with application_errors():
            return self._poll_job(request)

    def _poll_job(self, request: MigrationJobInput) -> StepResult:
        job_id = _job_id(request.job_id)
        resumed = last_heartbeat(JobBeat)
        start = resumed.percent if resumed is not None and resumed.job_id == job_id else None
        if resumed is not None and start is not None:
            heartbeat(resumed)  # kept until the first poll answers
        deadline = time.monotonic() + request.timeout_seconds
        polls = 0
        while True:
            polls += 1
            job = self._get_job(request.host, job_id)
            if job is None:
                return StepResult(changed=False, observed={
                    "job_id": job_id, "state": "Gone", "polls": polls, "resumed_from": start})
            view = _job_view(job)
            if view["job_state"] == COMPLETED:
                return StepResult(changed=False, observed={**view, "polls": polls,
                                                           "resumed_from": start})
            if view["job_state"] in DONE_STATES:
                raise job_failure(request.host, job)
            heartbeat(JobBeat(job_id=job_id, percent=view["percent"]))
            self._pause(request, deadline, polls)

    @staticmethod
    def _pause(request: MigrationJobInput, deadline: float, polls: int) -> None:
        if cancelled():
            raise CancelledError(f"{request.host}: polling of {request.job_id} cancelled")
        if time.monotonic() + request.interval_seconds > deadline:
            raise ApplicationError(f"{request.host}: migration job {request.job_id} still "
                                   f"running after {polls} polls", type="JobTimeout",
                                   non_retryable=False)
        time.sleep(request.interval_seconds)

    # -- verify --------------------------------------------------------------------------
    @activity.defn(name="migration.watch_downtime")
    def watch_downtime(self, request: DowntimeInput) -> StepResult:
        """Ping the VM while its migration job runs; the longest gap in replies is the observed
        downtime (also ``hvlab_migration_downtime_seconds``). A VM that does not answer before
        the move is reported as not measurable, not as down."""
        with application_errors():
            return self._watch_downtime(request)

    def _pings(self, request: DowntimeInput) -> bool:
        answer = self._remote.query(request.host, ping_command(request.address))
        return bool(answer) and answer[0] is True

    def _job_ended(self, request: DowntimeInput) -> bool:
        job = self._remote.query_one(request.job_host, migration_job_command(request.job_id))
        return job is None or int(job.get("JobState") or 0) in DONE_STATES

    def _watch_downtime(self, request: DowntimeInput) -> StepResult:
        if not self._pings(request):
            return StepResult(changed=False, observed={
                "measured": False, "reason": f"{request.address} does not answer pings from "
                                             f"{request.host}"})
        started = time.monotonic()
        longest, lost, probes, down_since = 0.0, 0, 1, None
        while time.monotonic() - started < request.timeout_seconds:
            ended = self._job_ended(request)
            ok = self._pings(request)
            probes, now = probes + 1, time.monotonic()
            if not ok:
                lost += 1
                down_since = down_since if down_since is not None else now
            elif down_since is not None:
                longest, down_since = max(longest, now - down_since), None
            heartbeat(DowntimeBeat(probes=probes, lost=lost, longest=round(longest, 3)))
            if ended or cancelled():
                break
            time.sleep(request.interval_seconds)
        if down_since is not None:
            longest = max(longest, time.monotonic() - down_since)
        MIGRATION_DOWNTIME.labels(mode=request.mode).observe(longest)
        return StepResult(changed=False, observed={
            "measured": True, "downtime_seconds": round(longest, 3), "probes": probes,
            "lost": lost, "from": request.host})

    @activity.defn(name="migration.verify_location")
    def verify_location(self, request: VerifyLocationInput) -> StepResult:
        """Where the VM and its files are (host, Path, disk paths) against the expectation;
        a mismatch fails as VerificationFailed unless ``fail_on_mismatch`` is off."""
        with application_errors():
            observed = self._location(request)
            if observed["mismatches"] and request.fail_on_mismatch:
                raise ApplicationError(
                    f"{request.host}: VM {request.vm} is not where expected: "
                    + "; ".join(observed["mismatches"]), observed,
                    type="VerificationFailed", non_retryable=True)
            return StepResult(changed=False, observed=observed)

    def _location(self, request: VerifyLocationInput) -> dict[str, Any]:
        vm = self._get_vm(request.host, request.vm)
        disks = self._disk_paths(request.host, request.vm) if vm else []
        mismatches = [] if vm else [f"not on {request.host}"]
        if request.absent_from and self._get_vm(request.absent_from, request.vm) is not None:
            mismatches.append(f"still on {request.absent_from}")
        if vm and request.path:
            if not _under(vm.get("Path"), request.path):
                mismatches.append(f"configuration at {vm.get('Path')}, not under {request.path}")
            mismatches += [f"disk {d} not under {request.path}" for d in disks
                           if not _under(d, request.path)]
        return {"host": request.host, "present": vm is not None,
                "path": vm.get("Path") if vm else None,
                "configuration": vm.get("ConfigurationLocation") if vm else None,
                "state": _text(vm.get("State")) if vm else None, "disks": disks,
                "mismatches": mismatches}

    # -- cancel --------------------------------------------------------------------------
    @activity.defn(name="migration.cancel_job")
    def cancel_job(self, request: MigrationJobInput) -> StepResult:
        """RequestStateChange(4) on the job; a job that is gone or already ended is success.
        The job ends Terminated shortly after; confirm with poll_job / verify_location."""
        with application_errors():
            return self._cancel_job(request)

    def _cancel_job(self, request: MigrationJobInput) -> StepResult:
        job_id = _job_id(request.job_id)
        job = self._get_job(request.host, job_id)
        if job is None or not _running(job):
            view = _job_view(job) if job else {"job_id": job_id, "state": "Gone"}
            return StepResult(changed=False, observed={**view, "already_ended": True})
        try:
            answer = self._remote.run(request.host, cancel_job_command(job_id))
        except RemoteError as error:
            if error.type_name != "NotFound":
                raise
            return StepResult(changed=False, observed={"job_id": job_id, "state": "Gone",
                                                       "already_ended": True})
        code = int((answer[0] if answer and isinstance(answer[0], dict) else {})
                   .get("ReturnValue", -1))
        if code == CANCEL_TOO_LATE:
            return StepResult(changed=False, observed={"job_id": job_id, "already_ended": True})
        if code not in CANCEL_ACCEPTED:
            raise ApplicationError(f"{request.host}: RequestStateChange(4) on {job_id} returned "
                                   f"{code}", type="CancelRejected", non_retryable=True)
        after = self._get_job(request.host, job_id)
        return StepResult(changed=True, observed={
            **(_job_view(after) if after else {"job_id": job_id, "state": "Gone"}),
            "requested": True, "return_value": code})

    def all(self) -> list[Any]:
        """The bound activity methods, for worker registration."""
        return [self.watch_downtime, self.readiness, self.restore_readiness, self.preflight,
                self.start_move, self.find_job, self.poll_job, self.verify_location,
                self.cancel_job]
