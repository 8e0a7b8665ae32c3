"""Glue between WS-Man shells and psrpcore's server-side PSRP state machines.

One :class:`PsrpShell` per runspace pool (WS-Man shell). psrpcore produces all outgoing PSRP
data into one buffer; :meth:`PsrpShell._flush` routes it into per-target queues (the pool, or
each pipeline) from which WS-Man Receive requests are answered. Each pipeline runs the host's
:class:`~simulator.protocol.Handler` in its own worker thread.
"""

from __future__ import annotations

import base64
import functools
import logging
import queue
import threading
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from psrpcore import (
    CreatePipelineEvent,
    EndOfPipelineInputEvent,
    GetAvailableRunspacesEvent,
    GetCommandMetadataEvent,
    PipelineInputEvent,
    PSRPEvent,
    PSRPPayload,
    ResetRunspaceStateEvent,
    ServerPipeline,
    ServerRunspacePool,
    SetMaxRunspacesEvent,
    SetMinRunspacesEvent,
    StreamType,
)
from psrpcore.types import (
    ErrorRecord,
    PSInvocationState,
    PSRPMessageType,
    WarningRecord,
    add_note_property,
)

from simulator.protocol import RUNTIME_EXCEPTION, Handler, PipelineStopped, TerminatingError
from simulator.winrm.fastpipe import parse_create_pipeline
from simulator.winrm.records import (
    NULL,
    application_private_data,
    build_invocation,
    error_record,
)
from simulator.winrm.soap import (
    RESOURCE_NOT_FOUND,
    SHELL_NOT_FOUND,
    WSManFault,
    shell_not_found,
    timed_out,
)

_ENVELOPE_OVERHEAD = 2048  # bytes of a Receive response besides its stream payloads
_STREAM_OVERHEAD = 128  # bytes of one <rsp:Stream ...></rsp:Stream> wrapper
_MIN_FRAGMENT = 256
_FINAL_STATES = (PSInvocationState.Completed, PSInvocationState.Failed, PSInvocationState.Stopped)
log = logging.getLogger(__name__)
_KEEP_DRAINED = 64  # finished pipelines whose output was delivered, kept for late Signals


def receive_budget(max_envelope_size: int) -> int:
    """Base64 bytes of stream payload one Receive response may carry."""
    return max(_MIN_FRAGMENT * 2, max_envelope_size - _ENVELOPE_OVERHEAD)


def fragment_size(max_envelope_size: int) -> int:
    """Largest raw PSRP payload that still fits one Receive once base64-encoded."""
    return max(_MIN_FRAGMENT, (receive_budget(max_envelope_size) - _STREAM_OVERHEAD) * 3 // 4)


class _Workers:
    """Elastic daemon thread pool for pipeline handlers.

    Reuses idle threads (creating one costs about a millisecond) but never queues work behind
    busy ones: handlers may block for minutes (long-running cmdlets) or wait on each other.
    Threads idle for ``idle_seconds`` exit.
    """

    def __init__(self, idle_seconds: float = 60.0) -> None:
        self._tasks: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._idle_seconds = idle_seconds

    def submit(self, task: Callable[[], None]) -> None:
        """Run ``task`` on an idle worker, or on a new one."""
        with self._lock:
            reuse = self._idle > 0
            if reuse:
                self._idle -= 1
        if reuse:
            self._tasks.put(task)
        else:
            threading.Thread(
                target=self._work, args=(task,), name="psrp-worker", daemon=True
            ).start()

    def _work(self, task: Callable[[], None]) -> None:
        while True:
            task()
            with self._lock:
                self._idle += 1
            try:
                task = self._tasks.get(timeout=self._idle_seconds)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:  # nobody counted on this worker: retire it
                        self._idle -= 1
                        return
                task = self._tasks.get()  # a submit reserved this worker just now


_WORKERS = _Workers()


class _ServerPool(ServerRunspacePool):
    """psrpcore's server pool, reading the call id of SetMax/SetMinRunspaces case-insensitively.

    pypsrp sends it as ``CI`` (MS-PSRP says ``ci``); PowerShell's property lookup ignores case,
    psrpcore's does not.
    """

    @staticmethod
    def _fix_ci(event: Any) -> None:
        obj = event._ps_object
        if getattr(obj, "ci", None) is None and getattr(obj, "CI", None) is not None:
            add_note_property(obj, "ci", obj.CI)

    def _process_message(self, message: Any) -> Any:
        """Decode CreatePipeline with :mod:`simulator.winrm.fastpipe`; psrpcore otherwise."""
        pipeline = self.pipeline_table.get(message.pipeline_id)
        if message.message_type == PSRPMessageType.CreatePipeline and pipeline is not None:
            try:
                pipeline.metadata = parse_create_pipeline(
                    message.data,
                    self._cipher,
                    our_capability=self.our_capability,
                    their_capability=self.their_capability,
                )
            except Exception:  # an unusual shape: let psrpcore decode it
                log.debug("fast CreatePipeline decoding failed", exc_info=True)
            else:
                return PSRPEvent.create(
                    message.message_type, None, message.runspace_pool_id, message.pipeline_id
                )
        return super()._process_message(message)

    def _process_SetMaxRunspaces(self, event: SetMaxRunspacesEvent) -> None:
        self._fix_ci(event)
        super()._process_SetMaxRunspaces(event)

    def _process_SetMinRunspaces(self, event: SetMinRunspacesEvent) -> None:
        self._fix_ci(event)
        super()._process_SetMinRunspaces(event)


@dataclass(eq=False)
class PipelineRun:
    """Server-side state of one pipeline (WS-Man command)."""

    pipeline: ServerPipeline
    command_id: str
    stop_event: threading.Event = field(default_factory=threading.Event)
    inputs: list[Any] = field(default_factory=list)
    metadata_only: bool = False
    ready: bool = False
    finished: bool = False
    closed: bool = False

    @property
    def pipeline_id(self) -> uuid.UUID:
        """The PSRP pipeline id (equal to the WS-Man CommandId)."""
        return self.pipeline.pipeline_id

    @property
    def commands(self) -> tuple[str, ...]:
        """Command names of the pipeline, once CreatePipeline arrived."""
        return tuple(str(c.command_text) for c in getattr(self.pipeline.metadata, "commands", ()))


class PipelineContext:
    """The :class:`simulator.protocol.PipelineContext` a handler writes through."""

    def __init__(self, shell: PsrpShell, run: PipelineRun, activity: str) -> None:
        self._shell = shell
        self._run = run
        self._activity = activity

    def output(self, obj: Any) -> None:
        """Write one object to the output stream."""
        value = NULL if obj is None else obj
        self._shell.write(self._run, lambda p: p.write_output(value))

    def error(
        self,
        message: str,
        error_id: str = "RuntimeException",
        category: str = "NotSpecified",
        target: str | None = None,
        *,
        exception_type: str = RUNTIME_EXCEPTION,
    ) -> None:
        """Write a non-terminating error record."""
        rec = error_record(
            message, error_id, category, exception_type, target=target, activity=self._activity
        )
        self._shell.write(
            self._run, lambda p: p.prepare_message(rec, message_type=PSRPMessageType.ErrorRecord)
        )

    def warning(self, message: str) -> None:
        """Write a warning record."""
        record = WarningRecord(Message=message)
        record.serialize_extended_info = False
        record.PSObject.to_string = message
        self._shell.write(
            self._run,
            lambda p: p.prepare_message(record, message_type=PSRPMessageType.WarningRecord),
        )

    def progress(self, activity: str, percent: int, status: str = "") -> None:
        """Write a progress record."""
        self._shell.write(
            self._run,
            lambda p: p.write_progress(
                activity, 0, status or "Processing", percent_complete=percent
            ),
        )

    def stopping(self) -> bool:
        """True once the client asked to stop the pipeline."""
        return self._run.stop_event.is_set()

    def sleep(self, seconds: float) -> bool:
        """Wait up to ``seconds``; False as soon as the pipeline is being stopped."""
        return not self._run.stop_event.wait(seconds)


class PsrpShell:
    """A PowerShell runspace pool exposed as a WS-Man shell."""

    def __init__(
        self,
        shell_id: str,
        resource_uri: str,
        owner: str,
        host: str,
        handler: Handler,
        max_envelope_size: int,
    ) -> None:
        self.shell_id = shell_id
        self.resource_uri = resource_uri
        self.owner = owner
        self.host = host
        self.handler = handler
        version = getattr(handler, "ps_version", None)
        private = application_private_data(version()) if callable(version) else (
            application_private_data())
        self.pool = _ServerPool(application_private_data=private)
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.queues: defaultdict[uuid.UUID | None, deque[bytes]] = defaultdict(deque)
        self.runs: dict[uuid.UUID, PipelineRun] = {}
        self.drained: deque[PipelineRun] = deque()
        self.closed = False
        self.fragment_size = fragment_size(max_envelope_size)

    # -- input -------------------------------------------------------------------------------

    def set_envelope(self, max_envelope_size: int | None) -> None:
        """Size future fragments for the client's current MaxEnvelopeSize."""
        if max_envelope_size:
            with self.lock:
                self.fragment_size = fragment_size(max_envelope_size)

    def create_pipeline(self, command_id: str) -> PipelineRun:
        """Register the pipeline a Command request announces (before its data is fed)."""
        with self.lock:
            self._check_open()
            try:
                pid = uuid.UUID(command_id)
            except ValueError as exc:
                raise WSManFault(RESOURCE_NOT_FOUND, f"Invalid CommandId {command_id}") from exc
            if pid in self.runs:
                raise WSManFault(
                    RESOURCE_NOT_FOUND, f"A command with CommandId {command_id} exists."
                )
            run = PipelineRun(ServerPipeline(self.pool, pid), command_id.upper())
            self.runs[pid] = run
            return run

    def find_run(self, command_id: str) -> PipelineRun | None:
        """The pipeline of a CommandId, if the shell still knows it."""
        with self.lock:
            self._check_open()
            try:
                return self.runs.get(uuid.UUID(command_id))
            except ValueError:
                return None

    def run_for(self, command_id: str) -> PipelineRun:
        """The pipeline of a CommandId; WSManFault when unknown."""
        with self.lock:
            run = self.find_run(command_id)
            if run is None:
                raise WSManFault(
                    SHELL_NOT_FOUND,
                    f"The request for the command with CommandId {command_id} failed because "
                    "the command was not found in shell " + self.shell_id + ".",
                    "w:InvalidSelectors",
                )
            return run

    def feed(
        self, data: bytes, run: PipelineRun | None, stream: str = "stdin"
    ) -> list[PipelineRun]:
        """Feed PSRP fragments; returns pipelines that became ready to start (not started)."""
        stream_type = StreamType.prompt_response if stream == "pr" else StreamType.default
        pid = run.pipeline_id if run is not None else None
        with self.lock:
            self._check_open()
            self.pool.receive_data(PSRPPayload(data, stream_type, pid))
            ready: list[PipelineRun] = []
            while True:
                try:
                    event = self.pool.next_event()
                except Exception as exc:  # malformed data, e.g. an <I32> that overflows
                    self._reject(run, exc)
                    continue
                if event is None:
                    break
                became_ready = self._on_event(event)
                if became_ready is not None:
                    ready.append(became_ready)
            self._flush()
            return ready

    def _reject(self, run: PipelineRun | None, exc: Exception) -> None:
        if run is None or run.ready:
            raise WSManFault(
                RESOURCE_NOT_FOUND, f"Invalid PowerShell remoting data: {exc}"
            ) from exc
        run.ready = True
        self._set_running(run)
        record = error_record(
            f"The PowerShell remoting data could not be processed: {exc}",
            "PSRemotingDataStructureException",
            "InvalidData",
            "System.Management.Automation.Remoting.PSRemotingDataStructureException",
        )
        run.pipeline._change_state(PSInvocationState.Failed, record)
        run.finished = True

    def _on_event(self, event: Any) -> PipelineRun | None:
        run = self.runs.get(event.pipeline_id) if event.pipeline_id is not None else None
        if isinstance(event, (SetMaxRunspacesEvent, SetMinRunspacesEvent, ResetRunspaceStateEvent)):
            self.pool.runspace_availability_response(event.ci, True)
        elif isinstance(event, GetAvailableRunspacesEvent):
            busy = sum(1 for r in self.runs.values() if r.ready and not r.finished)
            self.pool.runspace_availability_response(
                event.ci, max(self.pool.max_runspaces - busy, 0)
            )
        elif run is None:
            return None
        elif isinstance(event, GetCommandMetadataEvent):
            run.metadata_only = True
            return self._mark_ready(run)
        elif isinstance(event, CreatePipelineEvent):
            # psrpcore already parsed event.pipeline into the metadata; it re-parses per access
            if run.pipeline.metadata is not None and run.pipeline.metadata.no_input:
                return self._mark_ready(run)
        elif isinstance(event, PipelineInputEvent):
            run.inputs.append(event.data)
        elif isinstance(event, EndOfPipelineInputEvent):
            return self._mark_ready(run)
        return None

    @staticmethod
    def _mark_ready(run: PipelineRun) -> PipelineRun | None:
        if run.ready:
            return None
        run.ready = True
        return run

    # -- execution ---------------------------------------------------------------------------

    def start(self, runs: list[PipelineRun], username: str) -> None:
        """Start ready pipelines, each on its own worker thread."""
        for run in runs:
            with self.lock:
                if run.closed or run.finished:
                    continue
                self._set_running(run)
            _WORKERS.submit(functools.partial(self._execute, run, username))

    def discard(self, runs: list[PipelineRun]) -> None:
        """Forget pipelines as if the request that announced them never arrived."""
        with self.lock:
            for run in runs:
                self._close_run(run)
            self._flush()

    def _set_running(self, run: PipelineRun) -> None:
        # Windows does not announce the Running state; psrpcore's start() would.
        run.pipeline._change_state(PSInvocationState.Running, emit=False)

    def _execute(self, run: PipelineRun, username: str) -> None:
        commands = getattr(run.pipeline.metadata, "commands", None) or []
        activity = "" if not commands or commands[0].is_script else str(commands[0].command_text)
        finished = False
        try:
            error = self._invoke(run, username, activity)
            finished = True
            self._finish(run, error)
        finally:  # even on BaseException the client must see a final pipeline state
            if not finished:
                self._finish(
                    run, error_record("The pipeline ended abnormally.", "", "NotSpecified")
                )

    def _invoke(self, run: PipelineRun, username: str, activity: str) -> ErrorRecord | None:
        """Run the handler; the ErrorRecord to fail the pipeline with, if any."""
        try:
            if run.metadata_only:
                raise TerminatingError("GetCommandMetadata is not supported by the simulator.")
            invocation = build_invocation(
                self.host, run.pipeline.metadata, run.inputs, username, self.shell_id
            )
            self.handler.invoke(invocation, PipelineContext(self, run, activity))
        except PipelineStopped:
            pass
        except TerminatingError as exc:
            return error_record(
                exc.message, exc.error_id, exc.category, exc.exception_type, exc.target, activity
            )
        except Exception as exc:
            return error_record(str(exc) or type(exc).__name__, "RuntimeException", "NotSpecified")
        return None

    def _finish(self, run: PipelineRun, error: ErrorRecord | None) -> None:
        with self.lock:
            if not run.closed and run.pipeline.state == PSInvocationState.Running:
                if error is None:
                    run.pipeline.complete()
                else:  # psrpcore 0.3.1 has no public way to fail a pipeline
                    run.pipeline._change_state(PSInvocationState.Failed, error)
            run.finished = True
            self._flush()

    def write(self, run: PipelineRun, action: Callable[[ServerPipeline], None]) -> None:
        """Apply a psrpcore write to a running pipeline and publish the data."""
        with self.lock:
            if (
                run.closed
                or run.stop_event.is_set()
                or (run.pipeline.state != PSInvocationState.Running)
            ):
                raise PipelineStopped()
            action(run.pipeline)
            self._flush()

    # -- output ------------------------------------------------------------------------------

    def _flush(self) -> None:
        while (payload := self.pool.data_to_send(self.fragment_size)) is not None:
            pid = payload.pipeline_id
            if pid is None or pid in self.runs:
                self.queues[pid].append(payload.data)
        self.cond.notify_all()

    def receive(
        self, run: PipelineRun | None, max_envelope_size: int, wait: float
    ) -> tuple[list[str], bool]:
        """Long-poll output: ``(base64 payloads, command done)``.

        Blocks until output is queued, the pipeline finished or the shell closed; raises the
        OperationTimeout fault after ``wait`` seconds with nothing to send.
        """
        pid = run.pipeline_id if run is not None else None
        with self.cond:
            self._check_open()
            pending = self.queues[pid]

            def ready() -> bool:
                ended = run is not None and (run.finished or run.closed)
                return self.closed or bool(pending) or ended

            if not self.cond.wait_for(ready, wait):
                raise timed_out()
            self._check_open()
            payloads = self._take(pending, receive_budget(max_envelope_size))
            done = run is not None and (run.finished or run.closed) and not pending
            if done and run is not None:
                self._retire(run)
            return payloads, done

    def _retire(self, run: PipelineRun) -> None:
        """Forget the oldest pipelines whose output was fully delivered (pypsrp's invoke()
        never sends Signal Terminate, so they would pile up)."""
        if run in self.drained:
            return
        self.drained.append(run)
        while len(self.drained) > _KEEP_DRAINED:
            self._close_run(self.drained.popleft())

    @staticmethod
    def _take(pending: deque[bytes], budget: int) -> list[str]:
        """Base64 payloads from the front of ``pending`` that fit ``budget`` (at least one)."""
        payloads: list[str] = []
        used = 0
        while pending:
            encoded = base64.b64encode(pending[0]).decode()
            cost = len(encoded) + _STREAM_OVERHEAD
            if payloads and used + cost > budget:
                break
            pending.popleft()
            payloads.append(encoded)
            used += cost
        return payloads

    # -- signals and teardown ----------------------------------------------------------------

    def stop(self, run: PipelineRun) -> None:
        """Stop a pipeline (Signal ctrl_c): PipelineState Stopped, handler sees stopping()."""
        with self.lock:
            run.stop_event.set()
            state = run.pipeline.state
            if state == PSInvocationState.NotStarted:
                self._set_running(run)
                state = PSInvocationState.Running
            if state == PSInvocationState.Running:
                run.pipeline.stop()
                run.finished = True
            self._flush()

    def terminate(self, run: PipelineRun) -> None:
        """Close a pipeline (Signal Terminate): stop it if running and drop its output."""
        with self.lock:
            if run.pipeline.state not in _FINAL_STATES:
                self.stop(run)
            self._close_run(run)
            self.cond.notify_all()

    def _close_run(self, run: PipelineRun) -> None:
        run.stop_event.set()
        run.closed = True
        self.runs.pop(run.pipeline_id, None)
        self.pool.pipeline_table.pop(run.pipeline_id, None)
        self.queues.pop(run.pipeline_id, None)

    def close(self) -> None:
        """Delete the shell: stop every pipeline and wake blocked Receives."""
        with self.lock:
            self.closed = True
            for run in list(self.runs.values()):
                self._close_run(run)
            self.queues.clear()
            self.drained.clear()
            self.cond.notify_all()

    def _check_open(self) -> None:
        if self.closed:
            raise shell_not_found(self.shell_id)
