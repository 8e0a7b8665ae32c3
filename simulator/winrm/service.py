"""The WS-Management side of the simulated listener: shells, commands and fault injection.

:class:`WSManService` turns one decrypted SOAP request into one answer. It keeps the host's
shells (PSRP runspace pools, :class:`~simulator.winrm.psrp.PsrpShell`) and applies the
:class:`~simulator.winrm.faults.FaultHooks` between parsing a request and executing it.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from simulator.protocol import Handler
from simulator.winrm import soap
from simulator.winrm.faults import FaultEffect, FaultHooks, FaultRule, RequestInfo
from simulator.winrm.psrp import PipelineRun, PsrpShell
from simulator.winrm.soap import NS, WSManFault, WSManRequest

log = logging.getLogger(__name__)

DEFAULT_MAX_ENVELOPE = 153600
SERVER_MAX_ENVELOPE_KB = 500
_PS_RESOURCE_PREFIX = "http://schemas.microsoft.com/powershell/"
_SOAP_CONTENT_TYPE = "application/soap+xml;charset=UTF-8"


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class Quotas:
    """The WinRM quotas the listener enforces, with Windows' defaults (``winrm get
    winrm/config``): ``winrs/MaxShellsPerUser`` 30 and ``service/MaxConcurrentOperationsPerUser``
    1500. Exceeding one answers the wsman:QuotaLimit fault with its WSMan error code."""

    max_shells_per_user: int = 30
    max_concurrent_operations_per_user: int = 1500


@dataclass
class Reply:
    """The answer to one WS-Man request (or the decision to drop the connection)."""

    status: int = 200
    body: bytes = b""
    drop: bool = False
    content_type: str = _SOAP_CONTENT_TYPE
    after: Callable[[], None] = _nothing  # runs once the answer was sent (or dropped)


@dataclass
class _Operation:
    """A parsed request whose side effects are held back until faults were decided."""

    commit: Callable[[], str]
    discard: Callable[[], None] = _nothing
    commands: tuple[str, ...] = ()
    command_id: str | None = None
    after: Callable[[], None] = _nothing  # e.g. start pipelines once the answer is out


class WSManService:
    """Shells and WS-Man actions of one simulated host."""

    def __init__(
        self,
        host_name: str,
        handler: Handler,
        faults: FaultHooks,
        max_receive_wait: float,
        endpoint: Callable[[], str],
        quotas: Quotas | None = None,
    ) -> None:
        self.host_name = host_name
        self.quotas = quotas or Quotas()
        self._operations: Counter[str] = Counter()  # requests in progress per user
        self.operations_changed = threading.Condition()
        self.handler = handler
        self.faults = faults
        self.max_receive_wait = max_receive_wait
        self.largest_receive_envelope = 0
        self._endpoint = endpoint
        self._shells: dict[str, PsrpShell] = {}
        self._stale: set[str] = set()  # shells of a boot that has ended (instant reboot)
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._faults: Counter[int] = Counter()

    # -- statistics and lifecycle ------------------------------------------------------------

    @property
    def request_counts(self) -> dict[str, int]:
        """Authenticated WS-Man requests seen, per short action name."""
        with self._lock:
            return dict(self._counts)

    @property
    def fault_counts(self) -> dict[int, int]:
        """WSManFaults answered, per fault code."""
        with self._lock:
            return dict(self._faults)

    def open_shells(self) -> int:
        """Number of live shells (runspace pools)."""
        with self._lock:
            return len(self._shells)

    def discard_shells(self) -> None:
        """Close every shell and its pipelines (host reboot)."""
        with self._lock:
            shells = list(self._shells.values())
            self._shells.clear()
            self._stale.clear()
        for shell in shells:
            shell.close()

    def expire_shells(self) -> None:
        """The host rebooted without going down (instant clock): its shells belong to the old
        boot. Output of pipelines already running can still be received (the Restart-Computer
        answer); a new command on such a shell gets the shell-not-found fault, as after a real
        reboot."""
        with self._lock:
            self._stale = set(self._shells)

    # -- requests ----------------------------------------------------------------------------

    def dispatch(self, data: bytes, username: str, client_ip: str) -> Reply:
        """Answer one decrypted SOAP request from an authenticated user."""
        try:
            request = soap.parse_request(data)
        except WSManFault as fault:
            return self._fault(fault, "")
        with self._lock:
            self._counts[request.name] += 1
        user = username.lower()
        limit = self.quotas.max_concurrent_operations_per_user
        with self.operations_changed:
            if limit and self._operations[user] >= limit:
                return self._fault(soap.quota_max_operations(limit), request.message_id)
            self._operations[user] += 1
            self.operations_changed.notify_all()
        try:
            return self._handle(request, username, client_ip)
        except WSManFault as fault:
            return self._fault(fault, request.message_id)
        except Exception:
            log.exception("internal error answering %s on %s", request.name, self.host_name)
            internal = WSManFault(soap.INTERNAL_ERROR, "The WS-Management service failed.")
            return self._fault(internal, request.message_id)
        finally:
            with self.operations_changed:
                self._operations[user] -= 1
                self.operations_changed.notify_all()

    def operations_in_progress(self, username: str) -> int:
        """Requests of ``username`` being answered right now (the operations quota counts)."""
        with self.operations_changed:
            return self._operations[username.lower()]

    def _handle(self, request: WSManRequest, username: str, client_ip: str) -> Reply:
        operation = self._prepare(request, username, client_ip)
        info = RequestInfo(
            host=self.host_name,
            action=request.name,
            username=username,
            shell_id=request.selectors.get("ShellId"),
            command_id=operation.command_id,
            commands=operation.commands,
        )
        rule = self.faults.decide(info)
        if rule is not None and rule.effect is FaultEffect.DELAY:
            time.sleep(rule.delay)
        elif rule is not None and not rule.after_processing:
            operation.discard()
            return self._injected(rule, request)
        reply = self._commit(request, operation)
        if rule is not None and rule.effect is not FaultEffect.DELAY:
            reply = self._injected(rule, request)
        reply.after = operation.after
        return reply

    def _commit(self, request: WSManRequest, operation: _Operation) -> Reply:
        try:
            body = soap.response(request, operation.commit())
        except WSManFault as fault:
            return self._fault(fault, request.message_id)
        if request.name == "Receive":
            with self._lock:
                self.largest_receive_envelope = max(self.largest_receive_envelope, len(body))
        return Reply(200, body)

    def _fault(self, fault: WSManFault, relates_to: str) -> Reply:
        with self._lock:
            self._faults[fault.code] += 1
        return Reply(500, soap.fault_envelope(fault, relates_to, self.host_name))

    def _injected(self, rule: FaultRule, request: WSManRequest) -> Reply:
        if rule.effect is FaultEffect.DROP:
            return Reply(drop=True)
        if rule.fault_code is None:
            return Reply(500, b"Internal Server Error", content_type="text/plain")
        fault = WSManFault(rule.fault_code, "Injected fault: internal server error.")
        return self._fault(fault, request.message_id)

    def _prepare(self, request: WSManRequest, username: str, client_ip: str) -> _Operation:
        name = request.name
        if name == "Create":
            return _Operation(lambda: self._create(request, username, client_ip))
        if name == "Get":
            return _Operation(lambda: self._get(request, username, client_ip))
        if name == "Delete":
            return _Operation(lambda: self._delete(request))
        if name == "Command":
            return self._command(request, username)
        if name == "Send":
            return self._send(request, username)
        if name == "Receive":
            return _Operation(lambda: self._receive(request), command_id=_receive_command(request))
        if name == "Signal":
            return _Operation(lambda: self._signal(request))
        raise WSManFault(
            soap.ACTION_NOT_SUPPORTED,
            f"The WS-Management service does not support the action {request.action}.",
            "w:ActionNotSupported",
        )

    def _shell(self, request: WSManRequest) -> PsrpShell:
        shell_id = request.selectors.get("ShellId", "")
        with self._lock:
            shell = self._shells.get(shell_id.upper())
        if shell is None:
            raise soap.shell_not_found(shell_id)
        shell.set_envelope(request.max_envelope_size)
        return shell

    def _create(self, request: WSManRequest, username: str, client_ip: str) -> str:
        element = request.body.find("rsp:Shell", NS)
        if element is None or not request.resource_uri.startswith(_PS_RESOURCE_PREFIX):
            raise WSManFault(
                soap.RESOURCE_NOT_FOUND,
                "The WS-Management service cannot process the request. The resource URI "
                f"{request.resource_uri} is not supported by this host.",
                "w:DestinationUnreachable",
            )
        shell_id = (element.get("ShellId") or str(uuid.uuid4())).upper()
        limit = self.quotas.max_shells_per_user
        with self._lock:
            owned = sum(1 for s in self._shells.values()
                        if s.owner.lower() == username.lower() and s.shell_id != shell_id)
        if limit and owned >= limit:
            raise soap.quota_max_shells(limit)
        shell = PsrpShell(
            shell_id,
            request.resource_uri,
            username,
            self.host_name,
            self.handler,
            request.max_envelope_size or DEFAULT_MAX_ENVELOPE,
        )
        creation = element.find("pwsh:creationXml", NS)
        if creation is not None and creation.text:
            shell.feed(base64.b64decode(creation.text), None)
        with self._lock:
            previous = self._shells.pop(shell_id, None)
            self._shells[shell_id] = shell
        if previous is not None:
            previous.close()
        return soap.resource_created(
            self._endpoint(), request.resource_uri, shell_id
        ) + soap.shell_xml(shell_id, request.resource_uri, username, client_ip)

    def _get(self, request: WSManRequest, username: str, client_ip: str) -> str:
        if request.resource_uri.rstrip("/").endswith("/config"):
            return soap.config_xml(SERVER_MAX_ENVELOPE_KB)
        shell = self._shell(request)
        return soap.shell_xml(shell.shell_id, shell.resource_uri, shell.owner, client_ip)

    def _delete(self, request: WSManRequest) -> str:
        shell_id = request.selectors.get("ShellId", "").upper()
        with self._lock:
            shell = self._shells.pop(shell_id, None)
            self._stale.discard(shell_id)
        if shell is None:
            raise soap.shell_not_found(shell_id)
        shell.close()
        return ""

    def _command(self, request: WSManRequest, username: str) -> _Operation:
        shell = self._shell(request)
        with self._lock:
            stale = shell.shell_id in self._stale
            if stale:
                self._stale.discard(shell.shell_id)
                self._shells.pop(shell.shell_id, None)
        if stale:
            shell.close()
            raise soap.shell_not_found(shell.shell_id)
        line = request.body.find("rsp:CommandLine", NS)
        command_id = (line.get("CommandId") if line is not None else None) or str(uuid.uuid4())
        args = line.findall("rsp:Arguments", NS) if line is not None else []
        run = shell.create_pipeline(command_id)
        if not self.faults.inspects_commands:
            # Like Windows, answer at once and decode the pipeline afterwards: the client
            # prepares its Receive meanwhile.
            return _Operation(
                commit=lambda: _command_response(run),
                discard=lambda: shell.discard([run]),
                command_id=run.command_id,
                after=lambda: shell.start(self._feed_all(shell, run, args), username),
            )
        try:
            ready = self._feed_all(shell, run, args)
        except WSManFault:
            shell.discard([run])
            raise
        return _Operation(
            commit=lambda: _command_response(run),
            discard=lambda: shell.discard([run, *ready]),
            commands=_names(ready),
            command_id=run.command_id,
            after=lambda: shell.start(ready, username),
        )

    @staticmethod
    def _feed_all(shell: PsrpShell, run: PipelineRun, args: list[Any]) -> list[PipelineRun]:
        ready: list[PipelineRun] = []
        for arg in args:
            if arg.text:
                ready += shell.feed(base64.b64decode(arg.text), run)
        return ready

    def _send(self, request: WSManRequest, username: str) -> _Operation:
        shell = self._shell(request)
        ready: list[PipelineRun] = []
        command_id = None
        for stream in request.body.findall("rsp:Send/rsp:Stream", NS):
            command_id = stream.get("CommandId")
            run = shell.run_for(command_id) if command_id else None
            data = base64.b64decode(stream.text or "")
            ready += shell.feed(data, run, stream.get("Name", "stdin"))
        return _Operation(
            commit=lambda: "<rsp:SendResponse/>",
            discard=lambda: shell.discard(ready),
            commands=_names(ready),
            command_id=command_id,
            after=lambda: shell.start(ready, username),
        )

    def _receive(self, request: WSManRequest) -> str:
        shell = self._shell(request)
        command_id = _receive_command(request)
        run = shell.run_for(command_id) if command_id else None
        wait = min(request.operation_timeout or self.max_receive_wait, self.max_receive_wait)
        max_envelope = request.max_envelope_size or DEFAULT_MAX_ENVELOPE
        payloads, done = shell.receive(run, max_envelope, wait)
        return soap.receive_xml(command_id, payloads, done if run is not None else None)

    def _signal(self, request: WSManRequest) -> str:
        shell = self._shell(request)
        signal = request.body.find("rsp:Signal", NS)
        command_id = signal.get("CommandId") if signal is not None else None
        code_el = signal.find("rsp:Code", NS) if signal is not None else None
        code = (code_el.text or "").strip().lower() if code_el is not None else ""
        run = shell.find_run(command_id) if command_id else None
        if run is not None:  # an already forgotten command is terminated already
            if code.endswith("terminate"):
                shell.terminate(run)
            elif code.endswith(("ctrl_c", "ctrl_break")):
                shell.stop(run)
        return "<rsp:SignalResponse/>"


def _receive_command(request: WSManRequest) -> str | None:
    stream = request.body.find("rsp:Receive/rsp:DesiredStream", NS)
    return stream.get("CommandId") if stream is not None else None


def _command_response(run: PipelineRun) -> str:
    return (
        f"<rsp:CommandResponse><rsp:CommandId>{run.command_id}</rsp:CommandId>"
        "</rsp:CommandResponse>"
    )


def _names(runs: list[PipelineRun]) -> tuple[str, ...]:
    return tuple(name for run in runs for name in run.commands)
