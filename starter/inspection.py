"""What a workflow and its children did and are doing, for ``hvlab history`` and ``--watch``.

hvlab's parents do their work in child workflows (``<lab>-build`` runs one child per plan
unit, ``<lab>-reset`` runs a converge build whose children run the units), so both views walk
the tree:

- :func:`timeline` reads the histories of a workflow and, recursively, of every child it
  started: each activity and each child is a row (children indented) with its duration,
  outcome, attempts and the failure's cause. An activity still running is looked up in the
  workflow's description, so a step that keeps failing shows ``retrying`` with its last error.
- :class:`Watcher` is one progress poll of ``--watch``: the workflow's status and ``progress``
  query, and the pending activities of the workflow and its running children that carry a
  ``last_failure`` (Temporal keeps the failure of the last attempt, the attempt count and the
  next retry time there while the activity retries; nothing of it is in the history yet).
- :func:`failure_text` is the innermost failure of a chain (the activity's classified error,
  with the fix hvlab's error classification adds) and where it happened.

Failures are decoded with the client's data converter, so an encrypted history (the payload
codec) reads the same.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.api.common.v1 import Payloads
from temporalio.api.enums.v1 import EventType
from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflow.v1 import PendingActivityInfo
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    FailureError,
    TimeoutError,
)
from temporalio.service import RPCError

from workflows.progress import Progress

QUERY_TIMEOUT = timedelta(seconds=5)  # a query waits for a worker: do not hang a poll on it

# --------------------------------------------------------------------------- failures


def failure_text(error: BaseException | None) -> str:
    """``where: Type: message`` of the innermost failure under ``error``.

    ``where`` is the deepest child workflow id and the activity type on the way down
    (``classroom-build/host-prep:SVR2 > host.dns``); the message of a remote step's
    ApplicationError already names the host, the command, the host's message and the fix."""
    where: list[str] = []
    innermost: BaseException | None = None
    cause = error
    while cause is not None:
        if isinstance(cause, ChildWorkflowError):
            where = [cause.workflow_id]
        elif isinstance(cause, ActivityError):
            where = [*where[:1], cause.activity_type]
        innermost = cause
        cause = cause.cause if isinstance(cause, FailureError) else cause.__cause__
    if innermost is None:
        return ""
    if isinstance(innermost, ApplicationError) and innermost.type:
        text = f"{innermost.type}: {innermost.message}"
    elif isinstance(innermost, TimeoutError):
        kind = innermost.type.name.lower().replace("_", "-") if innermost.type else ""
        text = f"timed out ({kind})" if kind else "timed out"
    elif isinstance(innermost, FailureError):
        text = innermost.message or type(innermost).__name__
    else:
        text = f"{type(innermost).__name__}: {innermost}"
    return f"{' > '.join(where)}: {text}" if where else text


async def _decoded(client: Client, failure: Failure) -> str:
    """The innermost failure of a failure proto, or "" when it cannot be decoded."""
    try:
        return failure_text(await client.data_converter.decode_failure(failure))
    except Exception:  # a codec key we do not hold: show what the proto says
        return failure.message


# --------------------------------------------------------------------------- retrying


@dataclass(frozen=True)
class Retrying:
    """A pending activity whose last attempt failed (Temporal retries it)."""

    workflow_id: str
    activity_id: str
    activity: str
    failed_attempt: int
    maximum_attempts: int  # 0: no limit
    next_attempt: datetime | None
    cause: str

    @property
    def attempts(self) -> str:
        """``attempt 2 of 8`` (the attempt that failed)."""
        limit = f" of {self.maximum_attempts}" if self.maximum_attempts else ""
        return f"attempt {self.failed_attempt}{limit}"

    def next_try(self, now: datetime | None = None) -> str:
        """``next try in 4 s`` (or ``retrying now``)."""
        if self.next_attempt is None:
            return "retrying now"
        seconds = (self.next_attempt - (now or datetime.now(UTC))).total_seconds()
        return f"next try in {seconds:.0f} s" if seconds >= 0.5 else "retrying now"

    def line(self) -> str:
        """One line for the watch's log: where, which attempt, the cause with its fix."""
        return (f"{self.workflow_id} > {self.activity}: {self.attempts} failed: {self.cause}"
                f" — {self.next_try()}")


def _when(stamp: Any) -> datetime | None:
    """A protobuf Timestamp as an aware datetime (None when unset)."""
    if stamp is None or (stamp.seconds == 0 and stamp.nanos == 0):
        return None
    value: datetime = stamp.ToDatetime(UTC)
    return value


async def _retrying(client: Client, workflow_id: str, info: PendingActivityInfo
                    ) -> Retrying | None:
    if not info.HasField("last_failure"):
        return None
    return Retrying(
        workflow_id=workflow_id, activity_id=info.activity_id,
        activity=info.activity_type.name, failed_attempt=max(1, info.attempt - 1),
        maximum_attempts=info.maximum_attempts,
        next_attempt=_when(info.next_attempt_schedule_time),
        cause=await _decoded(client, info.last_failure))


async def _describe(client: Client, workflow_id: str, run_id: str | None = None
                    ) -> WorkflowExecutionDescription | None:
    try:
        return await client.get_workflow_handle(workflow_id, run_id=run_id).describe()
    except RPCError:  # not started yet, or gone
        return None


async def retrying(client: Client, workflow_id: str, run_id: str | None = None,
                   description: WorkflowExecutionDescription | None = None) -> list[Retrying]:
    """The failing pending activities of the workflow and, recursively, its running children."""
    description = description or await _describe(client, workflow_id, run_id)
    if description is None or description.status != WorkflowExecutionStatus.RUNNING:
        return []
    raw = description.raw_description
    found = [r for r in await asyncio.gather(
        *(_retrying(client, workflow_id, info) for info in raw.pending_activities)) if r]
    children = await asyncio.gather(
        *(retrying(client, child.workflow_id, child.run_id or None)
          for child in raw.pending_children))
    for rows in children:
        found += rows
    return found


# --------------------------------------------------------------------------- watching


@dataclass
class WatchView:
    """What one poll of ``--watch`` saw."""

    status: WorkflowExecutionStatus | None
    progress: Progress | None
    retrying: list[Retrying] = field(default_factory=list)
    new: list[Retrying] = field(default_factory=list)  # failures not reported before

    @property
    def running(self) -> bool:
        return self.status == WorkflowExecutionStatus.RUNNING


class Watcher:
    """The polls of ``hvlab watch``/``--watch``: one :meth:`poll` per refresh."""

    def __init__(self, client: Client, workflow_id: str) -> None:
        self.handle: WorkflowHandle[Any, Any] = client.get_workflow_handle(workflow_id)
        self._client = client
        self._reported: set[tuple[str, str, str]] = set()
        self.polls = 0

    async def poll(self) -> WatchView:
        """Describe the workflow, query its progress, collect the failing pending activities of
        it and its running children; ``new`` holds the failures no earlier poll reported."""
        self.polls += 1
        description = await self.handle.describe()
        progress: Progress | None = None
        with contextlib.suppress(RPCError, WorkflowQueryFailedError):  # not started yet
            progress = await self.handle.query("progress", result_type=Progress,
                                               rpc_timeout=QUERY_TIMEOUT)
        view = WatchView(description.status, progress)
        if view.running:
            view.retrying = await retrying(self._client, self.handle.id,
                                           description=description)
        for item in view.retrying:
            key = (item.workflow_id, item.activity_id, item.cause)
            if key not in self._reported:
                self._reported.add(key)
                view.new.append(item)
        return view


# --------------------------------------------------------------------------- timeline


@dataclass(frozen=True)
class TimelineRow:
    """One activity or child workflow of a history; ``depth`` 0 is the workflow asked for."""

    depth: int
    step: str
    started: datetime
    ended: datetime | None
    outcome: str
    cause: str = ""
    child: bool = False
    workflow_type: str = ""  # of a child

    @property
    def seconds(self) -> float | None:
        return (self.ended - self.started).total_seconds() if self.ended else None


@dataclass
class Timeline:
    """A workflow's rows, its children's below each child's row, and how it ended."""

    workflow_id: str
    workflow_type: str
    status: str
    rows: list[TimelineRow]
    failure: str = ""


_ACTIVITY_ENDS = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: ("activity_task_completed_event_attributes",
                                                   "ok"),
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: ("activity_task_failed_event_attributes",
                                                "failed"),
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: ("activity_task_timed_out_event_attributes",
                                                   "timed out"),
    EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED: ("activity_task_canceled_event_attributes",
                                                  "cancelled"),
}
_CHILD_ENDS = {
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED: (
        "child_workflow_execution_completed_event_attributes", "ok"),
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED: (
        "child_workflow_execution_failed_event_attributes", "failed"),
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED: (
        "child_workflow_execution_canceled_event_attributes", "cancelled"),
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT: (
        "child_workflow_execution_timed_out_event_attributes", "timed out"),
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED: (
        "child_workflow_execution_terminated_event_attributes", "terminated"),
}
_WORKFLOW_ENDS = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED: "completed",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED: "failed",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED: "cancelled",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT: "timed out",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED: "terminated",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW: "continued as new",
}


@dataclass
class _Activity:
    name: str
    activity_id: str
    started: datetime
    ended: datetime | None = None
    outcome: str = "running"
    attempts: int = 1
    failure: Failure | None = None


@dataclass
class _Child:
    workflow_id: str
    workflow_type: str
    started: datetime
    run_id: str = ""
    ended: datetime | None = None
    outcome: str = "starting"
    failure: Failure | None = None
    result: Payloads | None = None


def _failure_of(attrs: Any) -> Failure | None:
    return attrs.failure if attrs.HasField("failure") else None


class _Reader:
    """One history's activities and children, in start order, and how the workflow ended."""

    def __init__(self) -> None:
        self.items: list[tuple[datetime, int, _Activity | _Child]] = []
        self.activities: dict[int, _Activity] = {}
        self.children: dict[int, _Child] = {}
        self.workflow_type = ""
        self.status = "running"
        self.failure: Failure | None = None

    def read(self, event: HistoryEvent) -> None:
        when = event.event_time.ToDatetime(UTC)
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            attrs = event.workflow_execution_started_event_attributes
            self.workflow_type = attrs.workflow_type.name
        elif kind in _WORKFLOW_ENDS:
            self.status = _WORKFLOW_ENDS[kind]
            if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
                self.failure = event.workflow_execution_failed_event_attributes.failure
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled = event.activity_task_scheduled_event_attributes
            activity = _Activity(scheduled.activity_type.name, scheduled.activity_id, when)
            self.activities[event.event_id] = activity
            self.items.append((when, event.event_id, activity))
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started = event.activity_task_started_event_attributes
            if started.scheduled_event_id in self.activities:
                self.activities[started.scheduled_event_id].attempts = started.attempt
        elif kind in _ACTIVITY_ENDS:
            self._activity_end(event, when)
        else:
            self._child(event, when)

    def _activity_end(self, event: HistoryEvent, when: datetime) -> None:
        name, outcome = _ACTIVITY_ENDS[event.event_type]
        attrs = getattr(event, name)
        found = self.activities.get(attrs.scheduled_event_id)
        if found is not None:
            found.ended, found.outcome = when, outcome
            if event.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                found.failure = _failure_of(attrs)

    def _child(self, event: HistoryEvent, when: datetime) -> None:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
            initiated = event.start_child_workflow_execution_initiated_event_attributes
            child = _Child(initiated.workflow_id, initiated.workflow_type.name, when)
            self.children[event.event_id] = child
            self.items.append((when, event.event_id, child))
        elif kind == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED:
            refused = event.start_child_workflow_execution_failed_event_attributes
            if refused.initiated_event_id in self.children:
                child = self.children[refused.initiated_event_id]
                child.ended, child.outcome = when, "not started"
        elif kind == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
            began = event.child_workflow_execution_started_event_attributes
            if began.initiated_event_id in self.children:
                child = self.children[began.initiated_event_id]
                child.run_id, child.outcome = began.workflow_execution.run_id, "running"
        elif kind in _CHILD_ENDS:
            name, outcome = _CHILD_ENDS[kind]
            attrs = getattr(event, name)
            if attrs.initiated_event_id in self.children:
                child = self.children[attrs.initiated_event_id]
                child.ended, child.outcome = when, outcome
                if kind == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED:
                    child.failure = _failure_of(attrs)
                elif kind == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED \
                        and attrs.HasField("result"):
                    child.result = attrs.result


async def timeline(client: Client, workflow_id: str, run_id: str | None = None,
                   depth: int = 0) -> Timeline:
    """The workflow's activities and children in start order, each child followed by its own
    rows one level deeper. Raises RPCError when the workflow does not exist."""
    history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    reader = _Reader()
    for event in history.events:
        reader.read(event)
    running = reader.status == "running"
    pending = await _pending(client, workflow_id, run_id) if running else {}
    items = sorted(reader.items, key=lambda item: (item[0], item[1]))
    started = [item for _, _, item in items if isinstance(item, _Child) and item.run_id]
    nested = await asyncio.gather(*(
        timeline(client, child.workflow_id, child.run_id, depth + 1) for child in started))
    below = {child.run_id: rows for child, rows in zip(started, nested, strict=True)}
    rows: list[TimelineRow] = []
    for _, _, item in items:
        if isinstance(item, _Activity):
            rows.append(await _activity_row(client, depth, item, pending.get(item.activity_id)))
        else:
            rows += await _child_rows(client, depth, item, below.get(item.run_id))
    failure = await _decoded(client, reader.failure) if reader.failure is not None else ""
    return Timeline(workflow_id, reader.workflow_type, reader.status, rows, failure)


@dataclass(frozen=True)
class ChildResult:
    """A child workflow a workflow started, how it ended and (completed) its result as JSON."""

    workflow_id: str
    workflow_type: str
    run_id: str
    outcome: str
    result: Any = None


async def child_results(client: Client, workflow_id: str, run_id: str | None = None
                        ) -> list[ChildResult]:
    """The children the workflow's history started, in start order, each with its decoded
    result (plain JSON, no type) when it completed. Raises RPCError for an unknown workflow."""
    history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    reader = _Reader()
    for event in history.events:
        reader.read(event)
    found = []
    for _, _, item in sorted(reader.items, key=lambda item: (item[0], item[1])):
        if not isinstance(item, _Child):
            continue
        result: Any = None
        if item.result is not None and item.result.payloads:
            with contextlib.suppress(Exception):  # a codec key we do not hold
                result = (await client.data_converter.decode(item.result.payloads))[0]
        found.append(ChildResult(item.workflow_id, item.workflow_type, item.run_id,
                                 item.outcome, result))
    return found


async def _pending(client: Client, workflow_id: str, run_id: str | None
                   ) -> dict[str, PendingActivityInfo]:
    description = await _describe(client, workflow_id, run_id)
    if description is None:
        return {}
    return {info.activity_id: info for info in description.raw_description.pending_activities}


async def _activity_row(client: Client, depth: int, activity: _Activity,
                        pending: PendingActivityInfo | None) -> TimelineRow:
    outcome, cause = activity.outcome, ""
    if activity.failure is not None:
        cause = await _decoded(client, activity.failure)
    if activity.attempts > 1 and activity.ended is not None:
        outcome += f" (attempt {activity.attempts})"
    if pending is not None and activity.ended is None:
        found = await _retrying(client, "", pending)
        if found is not None:
            outcome, cause = f"retrying ({found.attempts} failed)", found.cause
    return TimelineRow(depth, activity.name, activity.started, activity.ended, outcome, cause)


async def _child_rows(client: Client, depth: int, child: _Child, below: Timeline | None
                      ) -> list[TimelineRow]:
    cause = await _decoded(client, child.failure) if child.failure is not None else ""
    rows = below.rows if below is not None else []
    if cause and any(cause.endswith(row.cause) for row in rows if row.cause):
        cause = ""  # the failing step below says it already
    head = TimelineRow(depth, child.workflow_id, child.started, child.ended, child.outcome,
                       cause, True, child.workflow_type)
    return [head, *rows]


async def failure_reason(handle: WorkflowHandle[Any, Any]) -> str:
    """Where the failed workflow failed and why: the innermost error (the activity's classified
    error with the host's message and its fix), if any."""
    try:
        await handle.result()
    except WorkflowFailureError as exc:
        return failure_text(exc.cause)
    except Exception:
        return ""
    return ""
