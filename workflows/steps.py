"""Calling step activities by name from workflow code, with typed results."""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.models import StepResult
    from workflows.options import REMOTE_STEP


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
