"""Replay a saved history through the real workflow code and observe what it does.

The Replayer already fails on a different sequence of commands (non-determinism). It does
not compare what the commands carry, so :func:`replay` also records, through the SDK's
interceptor API, every activity the code starts (name, input, summary, timeouts, retries)
and how the run ended (its result or exception), and :func:`recorded_activities` /
:func:`recorded_end` read the same from the history for comparison.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.api.failure.v1 import Failure
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ActivityError, CancelledError
from temporalio.runtime import Runtime, TelemetryConfig
from temporalio.worker import (
    ExecuteWorkflowInput,
    Interceptor,
    Replayer,
    StartActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

from tests.conftest import sandbox_runner
from workflows.registry import ALL_WORKFLOWS

HISTORIES = Path(__file__).resolve().parents[1] / "histories"
CONVERTER = pydantic_data_converter.payload_converter


@dataclass(frozen=True)
class Activity:
    """One activity command as the code issued it (or as the history holds it)."""

    name: str
    args: list[Any]
    summary: str
    start_to_close: float | None
    heartbeat: float | None
    max_attempts: int | None


@dataclass
class Observed:
    """What one replayed run did."""

    activities: list[Activity] = field(default_factory=list)
    result: Any = None
    error: BaseException | None = None
    replay_failure: Exception | None = None


_CURRENT: list[Observed] = []
_RUNTIMES: dict[int, Runtime] = {}


def process_runtime() -> Runtime:
    """A Temporal runtime of this process: runtimes do not survive a fork, and mutmut runs
    each mutant's tests in a child forked after the default runtime was made (a replay there
    fails with "Cannot create replay worker across forks", which would kill every mutant)."""
    pid = os.getpid()
    if pid not in _RUNTIMES:
        _RUNTIMES[pid] = Runtime(telemetry=TelemetryConfig())
    return _RUNTIMES[pid]


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


def _json(payload: Payload) -> Any:
    return json.loads(payload.data) if payload.data else None


class _Outbound(WorkflowOutboundInterceptor):
    def start_activity(self, input: StartActivityInput) -> workflow.ActivityHandle[Any]:
        payloads = CONVERTER.to_payloads(list(input.args))
        retry = input.retry_policy
        _CURRENT[-1].activities.append(Activity(
            input.activity, [_json(p) for p in payloads], input.summary or "",
            _seconds(input.start_to_close_timeout), _seconds(input.heartbeat_timeout),
            retry.maximum_attempts if retry is not None else None))
        return self.next.start_activity(input)


class _Inbound(WorkflowInboundInterceptor):
    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_Outbound(outbound))

    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        try:
            result = await self.next.execute_workflow(input)
        except BaseException as exc:
            _CURRENT[-1].error = exc
            raise
        _CURRENT[-1].result = result
        return result


class _Observer(Interceptor):
    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        return _Inbound


def load(path: Path) -> WorkflowHistory:
    ids: dict[str, str] = json.loads((path.parent / "ids.json").read_text())
    return WorkflowHistory.from_json(ids[path.stem], path.read_text())


async def replay(path: Path) -> Observed:
    """Replay the history at ``path`` with every registered workflow; what it did."""
    observed = Observed()
    _CURRENT.append(observed)
    try:
        replayer = Replayer(workflows=ALL_WORKFLOWS, data_converter=pydantic_data_converter,
                            workflow_runner=sandbox_runner(), interceptors=[_Observer()],
                            runtime=process_runtime())
        result = await replayer.replay_workflow(load(path), raise_on_replay_failure=False)
    finally:
        _CURRENT.remove(observed)
    observed.replay_failure = result.replay_failure
    return observed


def recorded_activities(history: WorkflowHistory) -> list[Activity]:
    """The activity commands the history holds, in order."""
    found = []
    for event in history.events:
        if event.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            continue
        attrs = event.activity_task_scheduled_event_attributes
        summary = event.user_metadata.summary
        found.append(Activity(
            attrs.activity_type.name, [_json(p) for p in attrs.input.payloads],
            CONVERTER.from_payload(summary, str) if summary.data else "",
            attrs.start_to_close_timeout.ToTimedelta().total_seconds()
            if attrs.HasField("start_to_close_timeout") else None,
            attrs.heartbeat_timeout.ToTimedelta().total_seconds()
            if attrs.HasField("heartbeat_timeout")
            and attrs.heartbeat_timeout.ToTimedelta() else None,
            attrs.retry_policy.maximum_attempts if attrs.HasField("retry_policy") else None))
    return found


def _strip(failure: Failure) -> dict[str, Any]:
    """The parts of a failure a user sees: message, type, details, retryable, causes."""
    info = failure.application_failure_info
    return {
        "message": failure.message,
        "type": info.type,
        "non_retryable": info.non_retryable,
        "details": [_json(p) for p in info.details.payloads],
        "cause": _strip(failure.cause) if failure.HasField("cause") else None,
    }


def recorded_end(history: WorkflowHistory) -> tuple[str, Any]:
    """How the run ended: ("completed", result json), ("failed", failure) or
    ("cancelled", None)."""
    last = history.events[-1]
    if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
        payloads = last.workflow_execution_completed_event_attributes.result.payloads
        return "completed", _json(payloads[0])
    if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
        return "failed", _strip(last.workflow_execution_failed_event_attributes.failure)
    assert last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED
    return "cancelled", None


def observed_end(observed: Observed) -> tuple[str, Any]:
    """How the replayed code ended, in the same form as :func:`recorded_end`."""
    error = observed.error
    if error is None:
        return "completed", _json(CONVERTER.to_payloads([observed.result])[0])
    # the SDK ends a run as cancelled for a cancel error, also one an activity raised
    cause = error.cause if isinstance(error, ActivityError) else error
    if isinstance(error, asyncio.CancelledError) or isinstance(cause, CancelledError):
        return "cancelled", None
    failure = Failure()
    pydantic_data_converter.failure_converter.to_failure(error, CONVERTER, failure)
    return "failed", _strip(failure)
