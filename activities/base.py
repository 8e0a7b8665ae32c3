"""What every activity module shares: running remote commands, heartbeats, failures.

:class:`Remote` runs structured commands and packaged scripts through the worker's
:class:`SessionPool` on the endpoint of a lab host, sending liveness heartbeats while a
pipeline runs and stopping it when the activity is cancelled. :func:`application_errors` wraps
each activity execution: it turns the classified :class:`RemoteError` into a Temporal
``ApplicationError`` (type = the error kind, non-retryable unless transient).
:func:`verify_failed`, :func:`conflict`, :func:`not_found` and :func:`precondition` are the
non-retryable failures the steps share.

Heartbeats are one mechanism (:func:`heartbeat`, :func:`liveness`, :func:`last_heartbeat`):

- a step heartbeats a typed :class:`Beat` (what it did or how far it got); the details are
  kept for the rest of the execution;
- while a remote command runs, :class:`Remote` sends :func:`liveness` beats, which repeat the
  execution's last details, or before it sent any its predecessor's, never nothing;
- a retry reads its predecessor's details with ``last_heartbeat(SomeBeat)``: the model, or
  None when there are none or they are of another kind.

On the wire a beat is a JSON object: its fields plus ``beat`` (the kind). Workers before the
tag sent the same fields without it; :meth:`Beat.read` takes both, so details written before a
worker upgrade still resume the step, and an older worker reads the new ones.

Outside an activity (plain method calls in tests) there is no heartbeat.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ClassVar, Self, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError, CancelledError

from activities.models import StepResult
from hvlab.powershell.command import Command, Pipeline, Script
from hvlab.powershell.endpoints import EndpointSource
from hvlab.powershell.errors import RemoteError
from hvlab.powershell.session import SessionPool

__all__ = [
    "SILENT", "VIRTUALIZATION", "Beat", "Remote", "StepResult", "WaitBeat",
    "application_errors", "cancelled", "conflict", "heartbeat", "last_heartbeat", "liveness",
    "not_found", "precondition", "to_application_error", "verify_failed",
]

SILENT = "SilentlyContinue"  # -ErrorAction of a probe whose 'not found' is an answer
VIRTUALIZATION = "root/virtualization/v2"  # Hyper-V's WMI namespace (Msvm_* classes)


# -- heartbeats ----------------------------------------------------------------------------


class Beat(BaseModel):
    """Heartbeat details of one kind: a subclass per kind, named on the wire by ``KIND``."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    KIND: ClassVar[str]
    TAG: ClassVar[str] = "beat"

    def details(self) -> dict[str, Any]:
        """The JSON object heartbeated: the fields and the kind."""
        return {**self.model_dump(mode="json"), self.TAG: self.KIND}

    @classmethod
    def read(cls, value: Any) -> Self | None:
        """These details as this kind: the tagged shape, or an older worker's untagged one
        (the same fields); None for another kind or details that do not fit."""
        if not isinstance(value, dict):
            return None
        kind = value.get(cls.TAG)
        if kind is not None and kind != cls.KIND:
            return None
        try:
            return cls.model_validate(value)
        except ValidationError:
            return None


class WaitBeat(Beat):
    """A wait for something to answer: how many attempts, and the last answer."""

    KIND = "wait"
    attempts: int
    last: str


B = TypeVar("B", bound=Beat)


@dataclass
class _Record:
    """One execution's last heartbeat details (None: it has sent none yet)."""

    info: activity.Info
    details: tuple[Any, ...] | None = None


_RECORD: ContextVar[_Record | None] = ContextVar("hvlab_heartbeat_record", default=None)


def _record() -> _Record:
    """The running execution's record, new for each execution: the worker gives every
    execution (every attempt) its own Info, which tells them apart where they share a context
    (a reused thread, plain calls in tests)."""
    info, record = activity.info(), _RECORD.get()
    if record is None or record.info is not info:
        record = _Record(info)
        _RECORD.set(record)
    return record


def heartbeat(beat: Beat) -> None:
    """Heartbeat ``beat`` when running as an activity (a no-op otherwise) and keep it: the
    liveness beats that follow repeat it."""
    if activity.in_activity():
        details = (beat.details(),)
        _record().details = details
        activity.heartbeat(*details)


def liveness() -> None:
    """A heartbeat that only says 'still running'. It repeats the details this execution last
    heartbeated, else its predecessor's, so that a retry can still read them: a bare
    ``activity.heartbeat()`` would replace them with nothing."""
    if activity.in_activity():
        kept = _record().details
        activity.heartbeat(*(kept if kept is not None else activity.info().heartbeat_details))


def last_heartbeat(kind: type[B]) -> B | None:
    """The details an earlier attempt of this activity heartbeated last, as ``kind`` (None if
    there are none, they are of another kind, or outside an activity): how a retried step
    learns what its predecessor already did."""
    if not activity.in_activity():
        return None
    details = activity.info().heartbeat_details
    return kind.read(details[0]) if details else None


def cancelled() -> bool:
    """Whether the running activity has been asked to cancel (False outside an activity)."""
    return activity.in_activity() and activity.is_cancelled()


# -- failures ------------------------------------------------------------------------------


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
    """Re-raise RemoteError as ApplicationError (CancelledError when the activity was
    cancelled)."""
    try:
        yield
    except RemoteError as error:
        if cancelled():
            raise CancelledError("activity cancelled") from error
        raise to_application_error(error) from None


def verify_failed(host: str, what: str, observed: Any) -> ApplicationError:
    """The host answered but does not show the change afterwards (not retried)."""
    return ApplicationError(f"{host}: {what} (observed {observed!r})",
                            type="VerificationFailed", non_retryable=True)


def conflict(host: str, what: str) -> ApplicationError:
    """The object exists with other settings; changing it is not this step's job."""
    return ApplicationError(f"{host}: {what}", type="Conflict", non_retryable=True)


def not_found(host: str, what: str) -> ApplicationError:
    """What the step works on does not exist (not retried)."""
    return ApplicationError(f"{host}: {what} does not exist", type="NotFound",
                            non_retryable=True)


def precondition(host: str, what: str) -> ApplicationError:
    """The object is in a state this step cannot start from (not retried)."""
    return ApplicationError(f"{host}: {what}", type="PreconditionFailed", non_retryable=True)


# -- remote commands -----------------------------------------------------------------------


class Remote:
    """Runs commands and packaged scripts (``hvlab/powershell/scripts``) on lab hosts by name
    through the worker's session pool, with liveness heartbeats while each runs."""

    def __init__(self, sessions: SessionPool, endpoints: EndpointSource) -> None:
        self._sessions = sessions
        self._endpoints = endpoints

    def _invoke(self, host: str, pipeline: Pipeline, deadline: float | None = None) -> list[Any]:
        stop: Callable[[], bool] = cancelled if deadline is None else (
            lambda: cancelled() or time.monotonic() > deadline)
        result = self._sessions.run(self._endpoints.endpoint(host), pipeline,
                                    heartbeat=liveness, cancelled=stop)
        return result.output

    def run(self, host: str, *commands: Command, deadline: float | None = None) -> list[Any]:
        """Run ``commands`` piped together on ``host``; plain output values. With
        ``deadline`` (time.monotonic) the pipeline is stopped when it runs past it (a
        transient 'cancelled' RemoteError), as it is when the activity is cancelled."""
        return self._invoke(host, Pipeline(tuple(commands)), deadline)

    def script(self, host: str, script: Script) -> list[Any]:
        """Run ``script`` on ``host``; plain output values."""
        return self._invoke(host, Pipeline.one(script))

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
