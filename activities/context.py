"""Which lab an activity works on (from its input's ``lab`` field), and its step metric.

Every activity input carries the lab id (never a secret). The worker installs
:class:`LabContextInterceptor`, which puts that id in :data:`hvlab.labs.CURRENT_LAB` for the
duration of the activity (sync activities run with a copy of this context), so the endpoint
lookup resolves hosts of the right lab without every activity passing it along.
"""

from __future__ import annotations

from typing import Any

from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from hvlab.labs import CURRENT_LAB
from hvlab.metrics import timed_step


class _LabInbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        arg = input.args[0] if input.args else None
        lab = getattr(arg, "lab", "")
        host = getattr(arg, "host", None) or getattr(arg, "dc", None) or "-"
        token = CURRENT_LAB.set(lab if isinstance(lab, str) else "")
        try:
            with timed_step(activity.info().activity_type, str(host)):
                return await self.next.execute_activity(input)
        finally:
            CURRENT_LAB.reset(token)


class LabContextInterceptor(Interceptor):
    """Sets the current lab for each activity from its input."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _LabInbound(next)
