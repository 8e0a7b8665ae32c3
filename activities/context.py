"""Per-activity context: the lab, the log context, and the step metric.

Every activity input carries the lab id (never a secret). The worker installs
:class:`LabContextInterceptor`, which for the duration of each activity

- puts that id in :data:`hvlab.labs.CURRENT_LAB`, so the endpoint lookup resolves hosts of the
  right lab without every activity passing it along (sync activities run with a copy of this
  context);
- binds ``workflow_id``, ``run_id``, ``workflow_type``, ``activity``, ``activity_id``,
  ``attempt``, ``lab``, ``host`` and ``vm`` into structlog's context, so every log line of the
  step (the session pool's too) carries them, and logs one ``step finished`` / ``step failed``
  line with its duration;
- observes ``hvlab_step_duration_seconds{step,host,outcome}``.

Only names from the input are bound (lab, host, VM): inputs never hold secrets, and error
messages are logged as the host returned them (hosts do not echo passwords).
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from hvlab.labs import CURRENT_LAB
from hvlab.metrics import timed_step

log = structlog.get_logger("hvlab.activity")


def _name(arg: Any, *fields: str) -> str | None:
    for field in fields:
        value = getattr(arg, field, None)
        if isinstance(value, str) and value:
            return value
    return None


def step_context(info: activity.Info, arg: Any) -> dict[str, Any]:
    """The log context of one activity attempt (names only, never values of the input)."""
    return {
        "workflow_id": info.workflow_id,
        "run_id": info.workflow_run_id,
        "workflow_type": info.workflow_type,
        "activity": info.activity_type,
        "activity_id": info.activity_id,
        "attempt": info.attempt,
        "lab": _name(arg, "lab"),
        "host": _name(arg, "host", "dc", "primary") or "-",
        "vm": _name(arg, "vm"),
    }


def _failure(exc: BaseException) -> dict[str, Any]:
    kind = exc.type if isinstance(exc, ApplicationError) and exc.type else type(exc).__name__
    retryable = not (isinstance(exc, ApplicationError) and exc.non_retryable)
    return {"error_type": kind, "error": str(exc)[:500], "retryable": retryable}


class _LabInbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        arg = input.args[0] if input.args else None
        info = activity.info()
        context = step_context(info, arg)
        lab_token = CURRENT_LAB.set(context["lab"] or "")
        log_tokens = structlog.contextvars.bind_contextvars(**context)
        started = time.monotonic()
        try:
            with timed_step(info.activity_type, context["host"]):
                result = await self.next.execute_activity(input)
        except BaseException as exc:
            log.warning("step failed", duration_s=round(time.monotonic() - started, 3),
                        **_failure(exc))
            raise
        else:
            log.info("step finished", duration_s=round(time.monotonic() - started, 3),
                     changed=getattr(result, "changed", None))
            return result
        finally:
            structlog.contextvars.reset_contextvars(**log_tokens)
            CURRENT_LAB.reset(lab_token)


class LabContextInterceptor(Interceptor):
    """Sets the current lab, the log context and the step metric for each activity."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _LabInbound(next)
