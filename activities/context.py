"""Which lab an activity works on: taken from its input's ``lab`` field by an interceptor.

Every activity input carries the lab id (never a secret). The worker installs
:class:`LabContextInterceptor`, which puts that id in :data:`hvlab.labs.CURRENT_LAB` for the
duration of the activity (sync activities run with a copy of this context), so the endpoint
lookup resolves hosts of the right lab without every activity passing it along.
"""

from __future__ import annotations

from typing import Any

from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from hvlab.labs import CURRENT_LAB


class _LabInbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        lab = getattr(input.args[0], "lab", "") if input.args else ""
        token = CURRENT_LAB.set(lab if isinstance(lab, str) else "")
        try:
            return await self.next.execute_activity(input)
        finally:
            CURRENT_LAB.reset(token)


class LabContextInterceptor(Interceptor):
    """Sets the current lab for each activity from its input."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _LabInbound(next)
