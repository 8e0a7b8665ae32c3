"""``hvlab schedule ...``: the lab's Temporal Schedules (lab resets, exercises, replication
health checks), and listing, pausing, unpausing, triggering and deleting any schedule.

Every command validates the lab file (exit 2 with its problems) and the values it is given
(exit 2) before it connects to Temporal, then registers the lab for the workers. Creating a
schedule again replaces its times and the lab file it carries. ``schedule run FILE EXERCISE``
puts an exercise on a cron schedule (overlap skip: a run still going makes the next one skip);
``down`` deletes the lab's schedules too. The schedules themselves: :mod:`starter.schedules`.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated

import typer
from rich.table import Table
from temporalio.client import (
    Schedule,
    ScheduleActionExecutionStartWorkflow,
    ScheduleHandle,
)
from temporalio.service import RPCError, RPCStatusCode

from hvlab.settings import get_settings
from hvlab.spec import LabSpec
from hvlab.specfile import load_lab
from starter.console import UsageProblem, out
from starter.exercise_run import pick_exercise
from starter.options import CheckpointOption, LabFile, SimOption
from starter.runs import register_lab, temporal_client
from starter.schedules import (
    chosen_checkpoint,
    cron_text,
    exercise_schedule,
    exercise_schedule_id,
    health_schedule,
    health_schedule_id,
    put_reset_schedule,
    put_schedule,
    require_replication,
    reset_zone,
)

ScheduleId = Annotated[str, typer.Argument(help="schedule id, e.g. classroom-reset-schedule")]
CRON = re.compile(r"^\S+( \S+){4}$")


schedule_app = typer.Typer(help="Temporal Schedules: lab resets, exercises and replication health "
                           "checks.",
                           no_args_is_help=True, rich_markup_mode=None)


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
    chosen = chosen_checkpoint(spec, name)
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
    client = await temporal_client()
    try:
        return await put_reset_schedule(client, spec, cron, checkpoint,
                                        get_settings().task_queue, zone)
    except RPCError as exc:
        if exc.status == RPCStatusCode.INVALID_ARGUMENT:
            raise UsageProblem(f"schedule rejected: {exc.message}") from None
        raise


async def _list() -> list[dict[str, str]]:
    client = await temporal_client()
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
    client = await temporal_client()
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
        return await put_schedule(await temporal_client(), schedule_id, schedule)
    except RPCError as exc:
        if exc.status == RPCStatusCode.INVALID_ARGUMENT:
            raise UsageProblem(f"schedule rejected: {exc.message}") from None
        raise


EVERY = re.compile(r"^(\d+)([smh])$")


def _every(text: str) -> timedelta:
    match = EVERY.match(text.strip())
    if not match:
        raise UsageProblem(f"--every {text!r}: use a number with s, m or h, e.g. 5m")
    value = int(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2)]
    if not 30 <= value <= 86400:
        raise UsageProblem(f"--every {text!r}: between 30s and 24h")
    return timedelta(seconds=value)


@schedule_app.command("health")
def schedule_health(
    file: LabFile,
    every: Annotated[str, typer.Option("--every", help="interval, e.g. 5m (30s to 24h)")] = "5m",
    sim: SimOption = False,
) -> None:
    """Check the lab's replication health on an interval (keeps the metric and alert fresh)."""
    spec = load_lab(file)
    require_replication(spec)
    interval = _every(every)
    spec = register_lab(spec, sim)
    handle, created = asyncio.run(_put_schedule(
        health_schedule_id(spec.lab), health_schedule(spec, interval, get_settings().task_queue)))
    verb = "created" if created else "updated"
    out.print(f"schedule {handle.id} {verb}: replication health of {spec.lab} every {every}")


async def _put_schedule(schedule_id: str, schedule: Schedule) -> tuple[ScheduleHandle, bool]:
    return await put_schedule(await temporal_client(), schedule_id, schedule)
