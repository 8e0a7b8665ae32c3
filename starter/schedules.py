"""The lab's Temporal Schedules, for ``hvlab schedule``, ``down`` (which deletes them first)
and ``demo`` (which creates the reset schedule): their ids, the Schedule each runs, creating or
replacing one, and writing a schedule's times back as the cron an operator wrote.

A reset schedule has the id ``<lab>-reset-schedule``; it starts LabResetWorkflow runs (overlap
policy skip: a reset that is still running makes the next one skip) in ``--timezone``, else
the lab file's ``reset.timezone`` (one is required: there is no UTC default). An exercise's
schedule is ``<lab>-exercise-<name>-schedule`` (ExerciseWorkflow runs, Temporal appends each
run's start time to its id), the replication health check's
``<lab>-replication-health-schedule``.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
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
from temporalio.service import RPCError, RPCStatusCode

from hvlab.labs import is_sim
from hvlab.spec import LabSpec, time_zone_problem
from starter.console import UsageProblem
from starter.runs import temporal_client
from workflows.replica_health import ReplicationHealthInput, health_workflow_id
from workflows.reset import LabResetInput, reset_checkpoint


def reset_workflow_id(lab: str) -> str:
    return f"{lab}-reset"


def reset_schedule_id(lab: str) -> str:
    return f"{lab}-reset-schedule"


def health_schedule_id(lab: str) -> str:
    return f"{lab}-replication-health-schedule"


def exercise_schedule_id(lab: str, exercise: str) -> str:
    return f"{lab}-exercise-{exercise}-schedule"


def chosen_checkpoint(spec: LabSpec, name: str) -> str:
    """The checkpoint a reset restores: ``name`` (``--checkpoint``), else the lab file's
    ``reset.checkpoint``; a usage problem when the lab file does not know it."""
    try:
        return reset_checkpoint(spec, name)
    except ValueError as exc:
        raise UsageProblem(f"--checkpoint: {exc}") from None


def require_replication(spec: LabSpec) -> None:
    """A usage problem when the lab has no replication entries (no health to check)."""
    if not spec.replication:
        raise UsageProblem(f"lab {spec.lab} has no replication entries: nothing to check")


async def delete_lab_schedules(lab: str, others: list[str] | None = None) -> list[str]:
    """Delete the lab's reset and health schedules (and ``others``) that exist; their ids."""
    client = await temporal_client()
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
