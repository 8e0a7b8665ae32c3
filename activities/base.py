"""Running remote commands from activities: heartbeat and cancellation wiring, error mapping.

:class:`Remote` runs structured commands through the worker's :class:`SessionPool` on the
endpoint of a lab host, heartbeating while a pipeline runs and stopping it when the activity
is cancelled. :func:`application_errors` turns the classified :class:`RemoteError` into a
Temporal ``ApplicationError`` (type = the error kind, non-retryable unless transient) at the
activity boundary. Outside an activity (plain method calls in tests) there is no heartbeat.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError, CancelledError

from activities.models import StepResult
from hvlab.powershell.command import Command, Pipeline
from hvlab.powershell.endpoints import EndpointSource
from hvlab.powershell.errors import RemoteError
from hvlab.powershell.session import SessionPool

__all__ = ["Remote", "StepResult", "application_errors", "to_application_error"]


# The details an activity execution heartbeated last, with that execution's Info (the worker
# runs each execution in its own copy of the context; the Info tells executions apart where
# they share one, as activities run as plain calls in tests do).
_DETAILS: ContextVar[tuple[activity.Info, tuple[Any, ...]] | None] = ContextVar(
    "hvlab_heartbeat_details", default=None)


def heartbeat(*details: Any) -> None:
    """Heartbeat ``details`` when running as an activity (a no-op otherwise). They are kept:
    the liveness beats sent while a remote command runs repeat them."""
    if activity.in_activity():
        _DETAILS.set((activity.info(), details))
        activity.heartbeat(*details)


def liveness() -> None:
    """A heartbeat that only says 'still running'. It repeats the details this execution last
    heartbeated, else its predecessor's, so that a retry can still read them: a bare
    ``activity.heartbeat()`` would replace them with nothing."""
    if activity.in_activity():
        info, kept = activity.info(), _DETAILS.get()
        activity.heartbeat(*(kept[1] if kept and kept[0] is info else info.heartbeat_details))


def last_heartbeat() -> Any:
    """The details an earlier attempt of this activity heartbeated last (None if none, or
    outside an activity): how a retried step learns what its predecessor already did."""
    if not activity.in_activity():
        return None
    details = activity.info().heartbeat_details
    return details[0] if details else None


def cancelled() -> bool:
    """Whether the running activity has been asked to cancel (False outside an activity)."""
    return activity.in_activity() and activity.is_cancelled()


def to_application_error(error: RemoteError) -> ApplicationError:
    """The Temporal failure for a remote error: its kind as type, retryable only if transient."""
    return ApplicationError(
        str(error),
        {"host": error.host, "command": error.command, "message": error.host_message},
        type=error.type_name,
        non_retryable=not error.retryable,
    )


@contextmanager
def application_errors() -> Iterator[None]:
    """Re-raise RemoteError as ApplicationError (CancelledError when the activity was cancelled)."""
    try:
        yield
    except RemoteError as error:
        if cancelled():
            raise CancelledError("activity cancelled") from error
        raise to_application_error(error) from None


class Remote:
    """Runs commands on lab hosts by name through the worker's session pool."""

    def __init__(self, sessions: SessionPool, endpoints: EndpointSource) -> None:
        self._sessions = sessions
        self._endpoints = endpoints

    def run(self, host: str, *commands: Command, deadline: float | None = None) -> list[Any]:
        """Run ``commands`` piped together on ``host``; plain output values. With
        ``deadline`` (time.monotonic) the pipeline is stopped when it runs past it (a
        transient 'cancelled' RemoteError), as it is when the activity is cancelled."""
        pipeline = Pipeline(tuple(commands))
        endpoint = self._endpoints.endpoint(host)
        stop = cancelled if deadline is None else (
            lambda: cancelled() or time.monotonic() > deadline)
        result = self._sessions.run(endpoint, pipeline, heartbeat=liveness, cancelled=stop)
        return result.output

    def note_reboot(self, host: str) -> None:
        """``host`` is about to restart: the session pool treats HTTP 401 in the minutes after
        as the host starting (retried), not as a rejected credential."""
        self._sessions.note_reboot(host)

    def query(self, host: str, command: Command) -> list[Any]:
        """A read-only probe."""
        return self.run(host, command)

    def query_one(self, host: str, command: Command) -> dict[str, Any] | None:
        """The first object a read-only probe returns, or None when it returns nothing."""
        for item in self.query(host, command):
            if isinstance(item, dict):
                return item
        return None
