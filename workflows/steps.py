"""Calling step activities from workflow code by typed reference, with typed results.

An activity is named by its method on the activity class (``HostActivities.switch``), never by a
string: a misspelt method is a type error (mypy) and an ``AttributeError`` in the first test that
reaches the line, and the argument's type is checked against the method's parameter. The name
Temporal records (``host.switch``) comes from the method's ``@activity.defn``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.models import StepResult
    from workflows.options import REMOTE_STEP
    from workflows.progress import Tracker

A = TypeVar("A", bound=BaseModel)

ActivityMethod = Callable[[Any, A], StepResult]
"""A step activity: a method of an activity class taking one input model."""


def activity_name(activity: Callable[..., Any]) -> str:
    """The name ``activity`` is registered under (its ``@activity.defn(name=...)``)."""
    definition = getattr(activity, "__temporal_activity_definition", None)
    name = getattr(definition, "name", None)
    if not isinstance(name, str):
        raise TypeError(f"{activity!r} is not an activity method (no @activity.defn)")
    return name


async def step(
    activity: ActivityMethod[A],
    arg: A,
    *,
    summary: str = "",
    options: workflow.ActivityConfig = REMOTE_STEP,
) -> StepResult:
    """Run ``activity`` (e.g. ``HostActivities.switch``) with ``arg`` and return its result."""
    name = activity_name(activity)
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
    activity: ActivityMethod[A],
    arg: A,
    options: workflow.ActivityConfig = REMOTE_STEP,
) -> StepResult:
    """Run an activity as one tracked step (state, times, UI details); ``changed`` decides
    whether the step shows as done or unchanged."""

    async def work() -> StepResult:
        return await step(activity, arg, summary=title, options=options)

    return await tracker.run(name, title, work, lambda r: r.changed)
