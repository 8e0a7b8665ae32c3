"""Calling step activities by name from workflow code, with typed results."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.models import StepResult
    from workflows.options import REMOTE_STEP
    from workflows.progress import Tracker


async def step(
    name: str,
    arg: BaseModel,
    *,
    summary: str = "",
    options: workflow.ActivityConfig = REMOTE_STEP,
) -> StepResult:
    """Run the activity registered as ``name`` (e.g. ``host.switch``) and return its result."""
    result = await workflow.execute_activity(
        name,
        arg,
        result_type=StepResult,
        summary=summary or name,
        start_to_close_timeout=options.get("start_to_close_timeout"),
        heartbeat_timeout=options.get("heartbeat_timeout"),
        retry_policy=options.get("retry_policy"),
    )
    assert isinstance(result, StepResult)
    return result


async def tracked(
    tracker: Tracker,
    name: str | Sequence[str],
    title: str,
    activity: str,
    arg: BaseModel,
    options: workflow.ActivityConfig = REMOTE_STEP,
) -> StepResult:
    """Run an activity as one tracked step (state, times, UI details); ``changed`` decides
    whether the step shows as done or unchanged."""

    async def work() -> StepResult:
        return await step(activity, arg, summary=title, options=options)

    return await tracker.run(name, title, work, lambda r: r.changed)
