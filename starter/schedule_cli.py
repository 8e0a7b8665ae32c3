"""Lab operations beyond the build: ``checkpoint``, ``reset``, ``down`` and ``schedule ...``.

Every command validates the lab file (exit 2 with its problems) and the names it is given
(exit 2) before it connects to Temporal or starts anything, then registers the lab for the
workers. Workflow ids follow the lab: ``<lab>-checkpoint-<name>``, ``<lab>-reset``,
``<lab>-down``; starting one that runs already attaches to it. A reset schedule has the id
``<lab>-reset-schedule``; it starts LabResetWorkflow runs (overlap policy skip: a reset that
is still running makes the next one skip) in ``--timezone``, else the lab file's
``reset.timezone`` (one is required: there is no UTC default). Creating it
again replaces its cron expression and the lab file it carries. ``schedule run FILE EXERCISE``
puts an exercise on a cron schedule (``<lab>-exercise-<name>-schedule``, starting
ExerciseWorkflow runs as ``<lab>-exercise-<name>-<start time>``, overlap skip: a run still going
makes the next one skip); ``down`` deletes it too.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from pydantic import BaseModel
from rich.table import Table
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleHandle,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from hvlab.labs import is_sim
from hvlab.settings import get_settings
from hvlab.spec import LabSpec, time_zone_problem
from hvlab.specfile import load_lab
from starter.cli import UsageProblem, err, out
from starter.ops_cli import (
    JsonOption,
    NoWaitOption,
    WatchOption,
    _client,
    follow,
    register_lab,
    start_or_attach,
    wait_mode,
)
from workflows.checkpoint import CheckpointWorkflowInput, checkpoint_vms
from workflows.replica_health import (
    ReplicationHealthInput,
    ReplicationHealthResult,
    health_workflow_id,
)
from workflows.reset import LabResetInput, reset_checkpoint
from workflows.teardown import LabTeardownInput, LabTeardownResult

LabFile = Annotated[Path, typer.Argument(help="lab file (YAML)", show_default=False)]
SimOption = Annotated[bool, typer.Option("--sim", help="use the simulated fleet's endpoints")]
CheckpointOption = Annotated[str, typer.Option(
    "--checkpoint", help="checkpoint to restore (default: the lab file's reset.checkpoint)")]
ScheduleId = Annotated[str, typer.Argument(help="schedule id, e.g. classroom-reset-schedule")]
CRON = re.compile(r"^\S+( \S+){4}$")

schedule_app = typer.Typer(help="Temporal Schedules: lab resets, exercises and replication health "
                           "checks.",
                           no_args_is_help=True, rich_markup_mode=None)


def reset_workflow_id(lab: str) -> str:
    return f"{lab}-reset"


def reset_schedule_id(lab: str) -> str:
    return f"{lab}-reset-schedule"


def _reset_checkpoint(spec: LabSpec, name: str) -> str:
    try:
        return reset_checkpoint(spec, name)
    except ValueError as exc:
        raise UsageProblem(f"--checkpoint: {exc}") from None


def _launch(workflow: str, arg: BaseModel, workflow_id: str, summary: str, no_wait: bool,
            as_json: bool) -> None:
    handle = asyncio.run(start_or_attach(workflow, arg, workflow_id, summary))
    follow(handle.id, what=summary, no_wait=no_wait, as_json=as_json)


# ------------------------------------------------------------------ checkpoint, reset, down


def checkpoint(
    file: LabFile,
    name: Annotated[str, typer.Argument(help="checkpoint name from the lab file")],
    sim: SimOption = False,
    replace: Annotated[bool, typer.Option(
        "--replace", help="retake the checkpoint where it exists (remove it, then take it "
        "again; the old one cannot come back)")] = False,
    no_compensate: Annotated[bool, typer.Option(
        "--no-compensate", help="keep checkpoints already taken when one VM fails")] = False,
    no_wait: NoWaitOption = False,
    as_json: JsonOption = False,
    watch: WatchOption = False,
) -> None:
    """Take the lab file's checkpoint NAME of every VM it lists (one that exists is left
    alone unless --replace)."""
    wait_mode(watch, no_wait)
    spec = load_lab(file)
    try:
        checkpoint_vms(spec, name)
    except ValueError as exc:
        raise UsageProblem(f"NAME: {exc}") from None
    spec = register_lab(spec, sim)
    request = CheckpointWorkflowInput(spec=spec, checkpoint=name, compensate=not no_compensate,
                                      replace=replace)
    verb = "retake" if replace else "checkpoint"
    _launch("CheckpointWorkflow", request, f"{spec.lab}-checkpoint-{name}",
            f"{verb} {name} of lab {spec.lab}", no_wait, as_json)


def reset(
    file: LabFile,
    name: CheckpointOption = "",
    sim: SimOption = False,
    compensate: Annotated[bool, typer.Option(
        "--compensate", help="undo the re-converging build's steps if it fails (default: "
        "keep them; a reset is re-run, not rolled back)")] = False,
    no_wait: NoWaitOption = False,
    as_json: JsonOption = False,
    watch: WatchOption = False,
) -> None:
    """Restore a checkpoint on every VM of the lab, then re-converge the lab file."""
    wait_mode(watch, no_wait)
    spec = load_lab(file)
    chosen = _reset_checkpoint(spec, name)
    spec = register_lab(spec, sim)
    _launch("LabResetWorkflow", LabResetInput(spec=spec, checkpoint=chosen, compensate=compensate),
            reset_workflow_id(spec.lab), f"reset of lab {spec.lab} to {chosen}", no_wait,
            as_json)


def down(
    file: LabFile,
    sim: SimOption = False,
    yes: Annotated[bool, typer.Option(
        "--yes", "-y", help="do not ask for confirmation (needed without a terminal)")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="also remove VMs, disks and switches hvlab did not create (adopted) "
        "and the External switch that carries a host's management address")] = False,
    no_wait: NoWaitOption = False,
    as_json: JsonOption = False,
    watch: WatchOption = False,
) -> None:
    """Remove what FILE describes and hvlab created, newest first; running it twice is
    harmless.

    Asks for confirmation unless --yes. The lab's schedules (reset, replication health,
    exercises) are deleted first, so none starts a run against a lab being removed. A VM,
    disk or switch that was there before hvlab (no ``hvlab: created-by`` line in its Notes)
    stays, and so does the External switch that carries a host's management address; the
    command lists what it kept and why. --force removes them too."""
    wait_mode(watch, no_wait)
    spec = load_lab(file)
    _confirm_down(spec, sim, yes)
    spec = register_lab(spec, sim)
    exercises = [exercise_schedule_id(spec.lab, e.name) for e in spec.exercises]
    for schedule_id in asyncio.run(_delete_lab_schedules(spec.lab, exercises)):
        out.print(f"schedule {schedule_id} deleted")
    workflow_id = f"{spec.lab}-down"
    try:
        _launch("LabTeardownWorkflow", LabTeardownInput(spec=spec, force=force), workflow_id,
                f"teardown of lab {spec.lab}", no_wait, as_json)
    except typer.Exit as done:
        if done.exit_code == 0 and not no_wait and not as_json:
            for line in asyncio.run(_kept(workflow_id)):
                out.print(f"kept: {line}", markup=False)
        raise


def _confirm_down(spec: LabSpec, sim: bool, yes: bool) -> None:
    """Ask before removing a lab (``--yes`` skips it); without a terminal to ask on, exit 2
    saying to pass --yes. Nothing has been changed when this refuses."""
    if yes:
        return
    where = "the simulated fleet" if sim else ", ".join(h.name for h in spec.hyperv_hosts)
    vms = ", ".join(v.name for v in spec.vms) or "no VMs"
    if not sys.stdin.isatty():
        raise UsageProblem(f"--yes: `hvlab down` removes lab {spec.lab} ({vms}) from {where}; "
                           "no terminal to confirm on, pass --yes to remove it")
    question = (f"Remove lab {spec.lab} from {where}: VMs {vms}, their disks, checkpoints, "
                "replication, switches and the lab's schedules?")
    if not typer.confirm(question, default=False):
        err.print("nothing removed")
        raise typer.Exit(1)


async def _kept(workflow_id: str) -> list[str]:
    """What the completed teardown kept, and why."""
    client = await _client()
    result = await client.get_workflow_handle(
        workflow_id, result_type=LabTeardownResult).result()
    return [line for lines in result.kept.values() for line in lines]


async def _delete_lab_schedules(lab: str, others: list[str] | None = None) -> list[str]:
    """Delete the lab's reset and health schedules (and ``others``) that exist; their ids."""
    client = await _client()
    deleted = []
    for schedule_id in (reset_schedule_id(lab), health_schedule_id(lab), *(others or [])):
        try:
            await client.get_schedule_handle(schedule_id).delete()
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            continue
        deleted.append(schedule_id)
    return deleted


# --------------------------------------------------------------------------- schedules


def reset_zone(spec: LabSpec, timezone: str | None = None) -> str:
    """The time zone a reset schedule runs in: ``timezone`` (``--timezone``), else the lab
    file's ``reset.timezone``. There is no default: a class's 06:00 is not 06:00 UTC."""
    zone = timezone if timezone is not None else spec.reset.timezone if spec.reset else None
    if zone is None:
        raise UsageProblem("--timezone: a reset schedule needs the class's IANA time zone "
                           "(e.g. --timezone Asia/Seoul), or reset.timezone in the lab file")
    problem = time_zone_problem(zone)
    if problem:
        raise UsageProblem(f"--timezone: {problem}")
    return zone.strip()


def reset_schedule(spec: LabSpec, cron: str, checkpoint: str, task_queue: str,
                   timezone: str | None = None) -> Schedule:
    """The Schedule that runs LabResetWorkflow for ``spec`` on ``cron`` in
    :func:`reset_zone`."""
    timezone = reset_zone(spec, timezone)
    action = ScheduleActionStartWorkflow(
        "LabResetWorkflow", LabResetInput(spec=spec, checkpoint=checkpoint),
        id=reset_workflow_id(spec.lab), task_queue=task_queue,
        execution_timeout=timedelta(hours=12), static_summary=f"scheduled reset of {spec.lab}")
    return Schedule(
        action=action,
        spec=ScheduleSpec(cron_expressions=[cron], time_zone_name=timezone),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        state=ScheduleState(note=f"reset {spec.lab} to {checkpoint}"))


async def put_reset_schedule(client: Client, spec: LabSpec, cron: str, checkpoint: str,
                             task_queue: str, timezone: str | None = None
                             ) -> tuple[ScheduleHandle, bool]:
    """Create the lab's reset schedule, or replace an existing one; (handle, created)."""
    return await put_schedule(client, reset_schedule_id(spec.lab),
                              reset_schedule(spec, cron, checkpoint, task_queue, timezone))


async def put_schedule(client: Client, schedule_id: str, schedule: Schedule
                       ) -> tuple[ScheduleHandle, bool]:
    """Create the schedule, or replace an existing one of that id; (handle, created)."""
    try:
        return await client.create_schedule(schedule_id, schedule), True
    except ScheduleAlreadyRunningError:
        handle = client.get_schedule_handle(schedule_id)

        def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await handle.update(replace)
        return handle, False


@schedule_app.command("reset")
def schedule_reset(
    file: LabFile,
    cron: Annotated[str | None, typer.Option(
        "--cron", help='five-field cron, e.g. "0 6 * * 1-5" (default: the lab file\'s '
        "reset.cron)")] = None,
    name: CheckpointOption = "",
    timezone: Annotated[str | None, typer.Option(
        "--timezone", help="IANA time zone of the cron, e.g. Asia/Seoul (default: the lab "
                           "file's reset.timezone; one of them is required)")] = None,
    sim: SimOption = False,
) -> None:
    """Reset the lab on a cron schedule: --cron, else the lab file's reset.cron, in
    --timezone, else the lab file's reset.timezone."""
    spec = load_lab(file)
    chosen = _reset_checkpoint(spec, name)
    if cron is None:
        if spec.reset is None:
            raise UsageProblem("--cron: the lab file has no reset.cron; give the schedule, "
                               'e.g. --cron "0 6 * * 1-5"')
        cron = spec.reset.cron
    if not CRON.match(cron.strip()):
        raise UsageProblem(f"--cron {cron!r} is not a five-field cron expression")
    zone = reset_zone(spec, timezone)
    spec = register_lab(spec, sim)
    handle, created = asyncio.run(_put(spec, cron.strip(), chosen, zone))
    verb = "created" if created else "updated"
    out.print(f"schedule {handle.id} {verb}: reset {spec.lab} to {chosen} at '{cron}' {zone}")


async def _put(spec: LabSpec, cron: str, checkpoint: str, zone: str
               ) -> tuple[ScheduleHandle, bool]:
    client = await _client()
    try:
        return await put_reset_schedule(client, spec, cron, checkpoint,
                                        get_settings().task_queue, zone)
    except RPCError as exc:
        if exc.status == RPCStatusCode.INVALID_ARGUMENT:
            raise UsageProblem(f"schedule rejected: {exc.message}") from None
        raise


def cron_text(spec: ScheduleSpec | None) -> str:
    """A schedule's times as an operator wrote them: the server keeps a cron expression as
    calendar ranges (``cron_expressions`` comes back empty), so they are written back as cron
    fields, with the time zone; intervals as ``every 5m``."""
    if spec is None:
        return ""
    parts = list(spec.cron_expressions)
    parts += [_calendar_cron(c) for c in spec.calendars]
    parts += [f"every {_span(i.every)}" for i in spec.intervals]
    text = ", ".join(parts)
    if text and spec.time_zone_name and (spec.calendars or spec.cron_expressions):
        text += f" ({spec.time_zone_name})"
    return text


_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day_of_month", 1, 31), ("month", 1, 12),
           ("day_of_week", 0, 6))


def _calendar_cron(calendar: ScheduleCalendarSpec) -> str:
    fields = []
    for name, low, high in _FIELDS:
        ranges = getattr(calendar, name)
        if not ranges or (len(ranges) == 1 and ranges[0].start == low and
                          max(ranges[0].end, ranges[0].start) >= high and ranges[0].step <= 1):
            fields.append("*")
            continue
        fields.append(",".join(_range_text(r, low, high) for r in ranges))
    return " ".join(fields)


def _range_text(value: ScheduleRange, low: int, high: int) -> str:
    end = max(value.end, value.start)
    step = f"/{value.step}" if value.step > 1 else ""
    if value.start == low and end == high:
        return f"*{step}"
    return f"{value.start}{step}" if end == value.start else f"{value.start}-{end}{step}"


def _span(every: timedelta) -> str:
    seconds = int(every.total_seconds())
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


async def _list() -> list[dict[str, str]]:
    client = await _client()
    rows: list[dict[str, str]] = []
    async for entry in await client.list_schedules():
        schedule, info = entry.schedule, entry.info
        paused = "paused" if schedule and schedule.state.paused else "active"
        upcoming = info.next_action_times[0].isoformat() if info and info.next_action_times \
            else ""
        rows.append({"id": entry.id, "cron": cron_text(schedule.spec if schedule else None),
                     "state": paused, "next": upcoming})
    return rows


@schedule_app.command("list")
def schedule_list(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """List schedules: id, when (cron and time zone, or interval), paused or active, next run."""
    rows = asyncio.run(_list())
    if as_json:
        sys.stdout.write(json.dumps(rows) + "\n")
        return
    table = Table("schedule id", "when", "state", "next run (UTC)")
    table.columns[0].no_wrap = table.columns[1].no_wrap = True
    for row in rows:
        table.add_row(row["id"], row["cron"], row["state"], row["next"])
    out.print(table)


async def _on_schedule(schedule_id: str,
                       act: Callable[[ScheduleHandle], Awaitable[None]]) -> None:
    client = await _client()
    handle = client.get_schedule_handle(schedule_id)
    try:
        await handle.describe()
        await act(handle)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise UsageProblem(f"no schedule {schedule_id}") from None
        raise


def _pause(handle: ScheduleHandle) -> Awaitable[None]:
    return handle.pause(note="paused with hvlab schedule pause")


def _unpause(handle: ScheduleHandle) -> Awaitable[None]:
    return handle.unpause(note="unpaused with hvlab schedule unpause")


def _delete(handle: ScheduleHandle) -> Awaitable[None]:
    return handle.delete()


@schedule_app.command("pause")
def schedule_pause(schedule_id: ScheduleId) -> None:
    """Stop the schedule from starting runs until unpaused."""
    asyncio.run(_on_schedule(schedule_id, _pause))
    out.print(f"schedule {schedule_id} paused")


@schedule_app.command("unpause")
def schedule_unpause(schedule_id: ScheduleId) -> None:
    """Let a paused schedule start runs again."""
    asyncio.run(_on_schedule(schedule_id, _unpause))
    out.print(f"schedule {schedule_id} unpaused")


TRIGGER_WAIT = 10.0  # seconds to wait for a triggered run to show in the schedule


async def _trigger(schedule_id: str) -> tuple[str | None, list[str]]:
    """Trigger the schedule; (the id of the run it started or None, the runs still going)."""
    started: list[str | None] = [None]
    running: list[str] = []

    async def act(handle: ScheduleHandle) -> None:
        before = await handle.describe()
        seen = {a.action.workflow_id for a in before.info.recent_actions
                if isinstance(a.action, ScheduleActionExecutionStartWorkflow)}
        await handle.trigger()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TRIGGER_WAIT
        while True:
            after = await handle.describe()
            new = [a.action.workflow_id for a in after.info.recent_actions
                   if isinstance(a.action, ScheduleActionExecutionStartWorkflow)
                   and a.action.workflow_id not in seen]
            running[:] = [r.workflow_id for r in after.info.running_actions
                          if isinstance(r, ScheduleActionExecutionStartWorkflow)]
            if new:
                started[0] = new[-1]
                return
            if loop.time() >= deadline:
                return
            await asyncio.sleep(0.2)

    await _on_schedule(schedule_id, act)
    return started[0], running


@schedule_app.command("trigger")
def schedule_trigger(schedule_id: ScheduleId) -> None:
    """Start one run now and print its workflow id (skipped while a run of it is still
    going)."""
    started, running = asyncio.run(_trigger(schedule_id))
    if started is not None:
        out.print(f"schedule {schedule_id} triggered: workflow {started}; follow it with "
                  f"`hvlab watch {started}`")
    elif running:
        out.print(f"schedule {schedule_id} triggered, but {', '.join(running)} still runs: "
                  "the schedule skips a run while one is going (follow it with "
                  f"`hvlab watch {running[0]}`)")
    else:
        out.print(f"schedule {schedule_id} triggered; no run has shown yet, see "
                  "`hvlab status`")


@schedule_app.command("delete")
def schedule_delete(schedule_id: ScheduleId) -> None:
    """Delete the schedule (runs it started keep going)."""
    asyncio.run(_on_schedule(schedule_id, _delete))
    out.print(f"schedule {schedule_id} deleted")


# --------------------------------------------------------------------------- exercises


def exercise_schedule_id(lab: str, exercise: str) -> str:
    return f"{lab}-exercise-{exercise}-schedule"


def exercise_schedule(spec: LabSpec, exercise: str, cron: str, timezone: str,
                      task_queue: str) -> Schedule:
    """The Schedule that runs the lab's exercise on ``cron`` (one run at a time: a run still
    going makes the next one skip; Temporal appends each run's start time to its id)."""
    from hvlab.exercises import exercise_id
    from workflows.exercise import ExerciseInput

    action = ScheduleActionStartWorkflow(
        "ExerciseWorkflow", ExerciseInput(
            spec=spec, exercise=exercise,
            resume_hint=f"hvlab run FILE {exercise}{' --sim' if is_sim(spec.lab) else ''}"),
        id=exercise_id(spec.lab, exercise), task_queue=task_queue,
        static_summary=f"scheduled exercise {exercise} of {spec.lab}")
    return Schedule(
        action=action,
        spec=ScheduleSpec(cron_expressions=[cron], time_zone_name=timezone),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        state=ScheduleState(note=f"exercise {exercise} of {spec.lab}"))


@schedule_app.command("run")
def schedule_run(
    file: LabFile,
    exercise: Annotated[str, typer.Argument(help="exercise name from the lab file",
                                            show_default=False)],
    cron: Annotated[str, typer.Option("--cron", help='five-field cron, e.g. "0 7 * * 1"',
                                      show_default=False)],
    timezone: Annotated[str, typer.Option(
        "--timezone", help="IANA time zone (default: the lab file's reset.timezone, else UTC)",
        show_default=False)] = "",
    sim: SimOption = False,
) -> None:
    """Run the lab's EXERCISE on a cron schedule (beside the reset schedule)."""
    from starter.run_cli import pick_exercise

    spec = load_lab(file)
    chosen = pick_exercise(spec, exercise)
    if not CRON.match(cron.strip()):
        raise UsageProblem(f"--cron {cron!r} is not a five-field cron expression")
    zone = timezone or (spec.reset.timezone if spec.reset else "UTC")
    spec = register_lab(spec, sim)
    schedule_id = exercise_schedule_id(spec.lab, chosen.name)
    schedule = exercise_schedule(spec, chosen.name, cron.strip(), zone,
                                 get_settings().task_queue)
    handle, created = asyncio.run(_put_checked(schedule_id, schedule))
    verb = "created" if created else "updated"
    out.print(f"schedule {handle.id} {verb}: exercise {chosen.name} of {spec.lab} at '{cron}' "
              f"({zone})")


async def _put_checked(schedule_id: str, schedule: Schedule) -> tuple[ScheduleHandle, bool]:
    try:
        return await put_schedule(await _client(), schedule_id, schedule)
    except RPCError as exc:
        if exc.status == RPCStatusCode.INVALID_ARGUMENT:
            raise UsageProblem(f"schedule rejected: {exc.message}") from None
        raise


# ------------------------------------------------------------------- replication health

EVERY = re.compile(r"^(\d+)([smh])$")


def health_schedule_id(lab: str) -> str:
    return f"{lab}-replication-health-schedule"


def _every(text: str) -> timedelta:
    match = EVERY.match(text.strip())
    if not match:
        raise UsageProblem(f"--every {text!r}: use a number with s, m or h, e.g. 5m")
    value = int(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2)]
    if not 30 <= value <= 86400:
        raise UsageProblem(f"--every {text!r}: between 30s and 24h")
    return timedelta(seconds=value)


def _replicated(spec: LabSpec) -> None:
    if not spec.replication:
        raise UsageProblem(f"lab {spec.lab} has no replication entries: nothing to check")


def health(
    file: LabFile,
    sim: SimOption = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> int:
    """Read the replication health of the lab's replicated VMs (read-only).

    Exit 1 when one is not Replicating/Normal. Also refreshes hvlab_replication_health on the
    worker."""
    spec = load_lab(file)
    _replicated(spec)
    spec = register_lab(spec, sim)
    result = asyncio.run(_health(spec))
    if as_json:
        out.print_json(result.model_dump_json())
    else:
        table = Table("VM", "primary", "replica", "state", "health", "note")
        for vm in result.vms:
            table.add_row(vm.vm, vm.primary or "-", vm.replica or "-", vm.state, vm.health,
                          vm.note)
        out.print(table)
    return 1 if result.problems else 0


async def _health(spec: LabSpec) -> ReplicationHealthResult:
    client = await _client()
    handle = await client.start_workflow(
        "ReplicationHealthWorkflow", ReplicationHealthInput(spec=spec),
        id=health_workflow_id(spec.lab), task_queue=get_settings().task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        result_type=ReplicationHealthResult, static_summary=f"replication health of {spec.lab}",
        execution_timeout=timedelta(minutes=10))
    result: ReplicationHealthResult = await handle.result()
    return result


def health_schedule(spec: LabSpec, every: timedelta, task_queue: str) -> Schedule:
    """The Schedule that runs ReplicationHealthWorkflow for ``spec`` every ``every``."""
    action = ScheduleActionStartWorkflow(
        "ReplicationHealthWorkflow", ReplicationHealthInput(spec=spec),
        id=health_workflow_id(spec.lab), task_queue=task_queue,
        execution_timeout=timedelta(minutes=10),
        static_summary=f"scheduled replication health of {spec.lab}")
    return Schedule(
        action=action,
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        state=ScheduleState(note=f"replication health of {spec.lab}"))


@schedule_app.command("health")
def schedule_health(
    file: LabFile,
    every: Annotated[str, typer.Option("--every", help="interval, e.g. 5m (30s to 24h)")] = "5m",
    sim: SimOption = False,
) -> None:
    """Check the lab's replication health on an interval (keeps the metric and alert fresh)."""
    spec = load_lab(file)
    _replicated(spec)
    interval = _every(every)
    spec = register_lab(spec, sim)
    handle, created = asyncio.run(_put_schedule(
        health_schedule_id(spec.lab), health_schedule(spec, interval, get_settings().task_queue)))
    verb = "created" if created else "updated"
    out.print(f"schedule {handle.id} {verb}: replication health of {spec.lab} every {every}")


async def _put_schedule(schedule_id: str, schedule: Schedule) -> tuple[ScheduleHandle, bool]:
    return await put_schedule(await _client(), schedule_id, schedule)


def register(app: typer.Typer) -> None:
    for command in (checkpoint, reset, down, health):
        app.command()(command)
    app.add_typer(schedule_app, name="schedule")
