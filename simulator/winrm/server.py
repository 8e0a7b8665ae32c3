"""A WinRM (WS-Management over HTTP) + PowerShell Remoting listener for one simulated host.

The unmodified pypsrp client talks to it as to a Windows host: NTLM/Negotiate authentication with
WinRM message encryption (or Basic on loopback), WS-Man shells carrying PSRP runspace pools, and
pipelines whose commands are executed by a :class:`simulator.protocol.Handler`.

Usage::

    server = WinRMServer("127.0.0.2", 5985, "HV01", handler, {"Administrator": "P@ssw0rd"})
    server.start()
    wsman = WSMan("127.0.0.2", port=server.port, ssl=False, auth="ntlm",
                  username="LAB\\\\Administrator", password="P@ssw0rd", no_proxy=True)
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import Any
from urllib.parse import urlsplit

from simulator.protocol import Handler
from simulator.winrm import soap
from simulator.winrm.auth import AuthFailed, AuthStep, ConnectionAuth, UserDirectory
from simulator.winrm.faults import FaultEffect, FaultHooks, FaultRule, RequestInfo
from simulator.winrm.psrp import PipelineRun, PsrpShell
from simulator.winrm.soap import NS, WSManFault, WSManRequest

DEFAULT_MAX_ENVELOPE = 153600
SERVER_MAX_ENVELOPE_KB = 500
_POLL_INTERVAL = 0.05
_PS_RESOURCE_PREFIX = "http://schemas.microsoft.com/powershell/"
_SOAP_CONTENT_TYPE = "application/soap+xml;charset=UTF-8"


def _nothing() -> None:
    return None


@dataclass
class _Reply:
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


@dataclass
class _Connections:
    """Open client sockets, so an outage can cut them."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    sockets: set[socket.socket] = field(default_factory=set)

    def add(self, sock: socket.socket) -> None:
        with self.lock:
            self.sockets.add(sock)

    def remove(self, sock: socket.socket) -> None:
        with self.lock:
            self.sockets.discard(sock)

    def cut(self) -> None:
        with self.lock:
            socks = list(self.sockets)
            self.sockets.clear()
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: WinRMServer) -> None:
        self.app = app
        self.connections = _Connections()
        super().__init__(address, _RequestHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the FQDN of the address, which can be slow.
        TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Connection errors are expected (drops, outages); report anything else."""
        import sys

        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        app = self.server.app
        self.auth = ConnectionAuth(app.users, app.basic_allowed)
        self.server.connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.connections.remove(self.connection)

    def do_POST(self) -> None:
        self.server.app._serve(self)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request log lines of BaseHTTPRequestHandler."""

    def reply(self, status: int, body: bytes = b"", headers: tuple[str, ...] = ()) -> None:
        """Write status line, headers and body in one send (exact Content-Length)."""
        phrase = self.responses.get(status, ("",))[0]
        lines = [
            f"HTTP/1.1 {status} {phrase}",
            "Server: Microsoft-HTTPAPI/2.0",
            f"Content-Length: {len(body)}",
            *headers,
        ]
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)

    def drop(self) -> None:
        """Close the connection without answering."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class WinRMServer:
    """WinRM/PSRP listener of one simulated Windows host on ``address:port`` at ``/wsman``."""

    def __init__(
        self,
        address: str,
        port: int,
        host_name: str,
        handler: Handler,
        users: dict[str, str],
        *,
        allow_basic: bool = True,
        faults: FaultHooks | None = None,
        max_receive_wait: float = 20.0,
    ) -> None:
        self.address = address
        self.host_name = host_name
        self.handler = handler
        self.users = UserDirectory(users)
        self.faults = faults if faults is not None else FaultHooks()
        self.max_receive_wait = max_receive_wait
        self.basic_allowed = allow_basic and ipaddress.ip_address(address).is_loopback
        self.largest_receive_envelope = 0
        self._port = port
        self._shells: dict[str, PsrpShell] = {}
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The listening port (the bound one when 0 was requested)."""
        return self._port

    @property
    def endpoint(self) -> str:
        """``http://address:port/wsman``."""
        return f"http://{self.address}:{self._port}/wsman"

    @property
    def is_up(self) -> bool:
        """True while the listener accepts connections."""
        return self._httpd is not None

    def start(self) -> None:
        """Bind and serve in a background daemon thread."""
        with self._lock:
            if self._httpd is not None:
                return
            httpd = _HTTPServer((self.address, self._port), self)
            self._port = int(httpd.server_address[1])
            self._httpd = httpd
            self._thread = threading.Thread(
                target=httpd.serve_forever,
                kwargs={"poll_interval": _POLL_INTERVAL},
                name=f"winrm-{self.host_name}",
                daemon=True,
            )
            self._thread.start()

    def stop(self) -> None:
        """Close the listener and every connection, and discard all shells."""
        self.go_down()

    def go_down(self) -> None:
        """Simulate the host going down (reboot, crash).

        The listening socket closes, so new connections are refused; open connections are cut;
        all shells and their pipelines are discarded as after a reboot.
        """
        with self._lock:
            httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
            httpd.connections.cut()
        self._discard_shells()

    def come_up(self) -> None:
        """Reopen the listener on the same address and port after :meth:`go_down`."""
        self.start()

    def _discard_shells(self) -> None:
        with self._lock:
            shells = list(self._shells.values())
            self._shells.clear()
        for shell in shells:
            shell.close()

    # -- statistics --------------------------------------------------------------------------

    @property
    def request_counts(self) -> dict[str, int]:
        """Authenticated WS-Man requests seen, per short action name."""
        with self._lock:
            return dict(self._counts)

    def open_shells(self) -> int:
        """Number of live shells (runspace pools)."""
        with self._lock:
            return len(self._shells)

    # -- HTTP --------------------------------------------------------------------------------

    def _serve(self, http: _RequestHandler) -> None:
        length = int(http.headers.get("Content-Length") or 0)
        body = http.rfile.read(length) if length else b""
        if urlsplit(http.path).path.rstrip("/").lower() != "/wsman":
            http.reply(404)
            return
        try:
            step = http.auth.authorize(http.headers.get("Authorization"))
        except AuthFailed:
            http.reply(401, headers=self._challenge())
            return
        token = _token_header(step)
        if not step.authenticated:
            http.reply(401, headers=token or self._challenge())
            return
        self._serve_authenticated(http, body, token)

    def _serve_authenticated(
        self, http: _RequestHandler, body: bytes, token: tuple[str, ...]
    ) -> None:
        content_type = http.headers.get("Content-Type", "")
        encrypted = content_type.lower().startswith("multipart/encrypted")
        if encrypted:
            try:
                body = http.auth.unwrap(body, content_type)
            except Exception:
                http.reply(400)
                return
        elif not body:
            http.reply(200, headers=token)  # the blank POST that sets up encryption
            return
        elif not self.basic_allowed:
            http.reply(401, headers=self._challenge())  # AllowUnencrypted=false
            return
        reply = self._dispatch(body, http.auth.username or "", http.client_address[0])
        try:
            if reply.drop:
                http.drop()
                return
            payload, content_type = reply.body, reply.content_type
            if encrypted:
                content_type, payload = http.auth.wrap(payload)
            http.reply(reply.status, payload, (f"Content-Type: {content_type}", *token))
        finally:
            # Pipelines start after their Command was answered: their worker threads would
            # otherwise compete for the GIL with the answer being written.
            # (WSManFault: the shell went away meanwhile; the client learns it next request.)
            with contextlib.suppress(WSManFault):
                reply.after()

    def _challenge(self) -> tuple[str, ...]:
        basic = ('WWW-Authenticate: Basic realm="WSMAN"',) if self.basic_allowed else ()
        return ("WWW-Authenticate: Negotiate", *basic)

    # -- WS-Man ------------------------------------------------------------------------------

    def _dispatch(self, data: bytes, username: str, client_ip: str) -> _Reply:
        try:
            request = soap.parse_request(data)
        except WSManFault as fault:
            return self._fault(fault, "")
        with self._lock:
            self._counts[request.name] += 1
        try:
            operation = self._prepare(request, username, client_ip)
        except WSManFault as fault:
            return self._fault(fault, request.message_id)
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

    def _commit(self, request: WSManRequest, operation: _Operation) -> _Reply:
        try:
            body = soap.response(request, operation.commit())
        except WSManFault as fault:
            return self._fault(fault, request.message_id)
        if request.name == "Receive":
            with self._lock:
                self.largest_receive_envelope = max(self.largest_receive_envelope, len(body))
        return _Reply(200, body)

    def _fault(self, fault: WSManFault, relates_to: str) -> _Reply:
        return _Reply(500, soap.fault_envelope(fault, relates_to, self.host_name))

    def _injected(self, rule: FaultRule, request: WSManRequest) -> _Reply:
        if rule.effect is FaultEffect.DROP:
            return _Reply(drop=True)
        if rule.fault_code is None:
            return _Reply(500, b"Internal Server Error", content_type="text/plain")
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
            self.endpoint, request.resource_uri, shell_id
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
        if shell is None:
            raise soap.shell_not_found(shell_id)
        shell.close()
        return ""

    def _command(self, request: WSManRequest, username: str) -> _Operation:
        shell = self._shell(request)
        line = request.body.find("rsp:CommandLine", NS)
        command_id = (line.get("CommandId") if line is not None else None) or str(uuid.uuid4())
        args = line.findall("rsp:Arguments", NS) if line is not None else []
        run = shell.create_pipeline(command_id)
        if not self.faults.inspects_commands:
            # Like Windows, answer at once and decode the pipeline afterwards: the client
            # prepares its Receive meanwhile.
            return _Operation(
                commit=lambda: _command_response(run),
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
        if command_id:
            run = shell.run_for(command_id)
            if code.endswith("terminate"):
                shell.terminate(run)
            elif code.endswith(("ctrl_c", "ctrl_break")):
                shell.stop(run)
        return "<rsp:SignalResponse/>"


def _token_header(step: AuthStep) -> tuple[str, ...]:
    if not step.out_token:
        return ()
    return (f"WWW-Authenticate: Negotiate {base64.b64encode(step.out_token).decode()}",)


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
