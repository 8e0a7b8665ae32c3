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
import logging
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import Any
from urllib.parse import urlsplit

from simulator.protocol import Handler
from simulator.winrm.auth import AuthFailed, AuthStep, ConnectionAuth, UserDirectory
from simulator.winrm.faults import FaultHooks
from simulator.winrm.service import Quotas, WSManService
from simulator.winrm.soap import WSManFault

log = logging.getLogger(__name__)

_POLL_INTERVAL = 0.05


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
    """One listening socket; a daemon thread per connection."""

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
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _RequestHandler(BaseHTTPRequestHandler):
    """One client connection: HTTP/1.1 keep-alive, with its own authentication state."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _HTTPServer

    def setup(self) -> None:
        app = self.server.app
        super().setup()
        self.peer = f"{self.client_address[0]}:{self.client_address[1]}"
        log.debug("%s: connection from %s", app.host_name, self.peer)
        # Like HTTP.sys, close idle connections (and with them their NTLM context).
        self.connection.settimeout(app.idle_timeout)
        app._count_connection()
        self.auth = ConnectionAuth(app.users, app.basic_allowed)
        self.server.connections.add(self.connection)

    def finish(self) -> None:
        log.debug("%s: connection from %s closed", self.server.app.host_name, self.peer)
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
    """WinRM/PSRP listener of one simulated Windows host on ``address:port`` at ``/wsman``.

    Args:
        address: IP to bind; give each host its own loopback address (127.0.0.x).
        port: TCP port; 0 binds a free one (read it back from :attr:`port`).
        host_name: The host's name, in invocations and fault ``Machine`` attributes.
        handler: Executes every pipeline (one worker thread per running pipeline).
        users: Local accounts, username -> password. Clients may log on as ``user``,
            ``DOMAIN\\user`` or ``user@realm``; the user part matches case-insensitively and
            :attr:`Invocation.username` is the configured name. Or a :class:`UserDirectory`
            that decides per logon (the fleet's accounts).
        allow_basic: Accept Basic auth and unencrypted bodies (only if ``address`` is loopback).
        faults: Fault-injection rules (:mod:`simulator.winrm.faults`), changeable at any time.
        max_receive_wait: Upper bound of a Receive long-poll (the client's OperationTimeout
            applies when shorter); then the OperationTimeout fault 2150858793 is answered.
        idle_timeout: Idle keep-alive connections are closed after this (HTTP.sys: 120 s); an
            NTLM client's session dies with its connection, as against Windows.
        quotas: The WinRM quotas enforced (MaxShellsPerUser, MaxConcurrentOperationsPerUser).
    """

    def __init__(
        self,
        address: str,
        port: int,
        host_name: str,
        handler: Handler,
        users: dict[str, str] | UserDirectory,
        *,
        allow_basic: bool = True,
        faults: FaultHooks | None = None,
        max_receive_wait: float = 20.0,
        idle_timeout: float = 120.0,
        quotas: Quotas | None = None,
    ) -> None:
        self.address = address
        self.host_name = host_name
        self.users = users if isinstance(users, UserDirectory) else UserDirectory(users)
        self.idle_timeout = idle_timeout
        self.connections_accepted = 0
        self.auth_failures = 0  # logons refused (bad account or password), answered with 401
        self.basic_allowed = allow_basic and ipaddress.ip_address(address).is_loopback
        self.service = WSManService(
            host_name,
            handler,
            faults if faults is not None else FaultHooks(),
            max_receive_wait,
            lambda: self.endpoint,
            quotas,
        )
        self.logons_refused_starting = 0  # 401s answered while the host was still starting
        self._refuse_logons_until = 0.0
        self._port = port
        self._lock = threading.Lock()
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
        self.service.discard_shells()

    def come_up(self) -> None:
        """Reopen the listener on the same address and port after :meth:`go_down`."""
        self.start()

    def refuse_logons(self, seconds: float) -> None:
        """For ``seconds`` (real) from now, answer every logon with 401: the host has booted
        and its listener is up, but the services a logon needs (LSA, Netlogon and the domain
        controller's secure channel) are still starting."""
        with self._lock:
            self._refuse_logons_until = time.time() + max(0.0, seconds)

    # -- statistics --------------------------------------------------------------------------

    @property
    def faults(self) -> FaultHooks:
        """The fault-injection rules applied to this host's requests."""
        return self.service.faults

    @property
    def request_counts(self) -> dict[str, int]:
        """Authenticated WS-Man requests seen, per short action name."""
        return self.service.request_counts

    @property
    def fault_counts(self) -> dict[int, int]:
        """WSManFaults answered, per fault code (e.g. 2150858793 for Receive timeouts)."""
        return self.service.fault_counts

    @property
    def largest_receive_envelope(self) -> int:
        """Size in bytes of the largest Receive response envelope sent so far."""
        return self.service.largest_receive_envelope

    def open_shells(self) -> int:
        """Number of live shells (runspace pools)."""
        return self.service.open_shells()

    def _count_connection(self) -> None:
        with self._lock:
            self.connections_accepted += 1

    # -- HTTP --------------------------------------------------------------------------------

    def _serve(self, http: _RequestHandler) -> None:
        length = int(http.headers.get("Content-Length") or 0)
        body = http.rfile.read(length) if length else b""
        if urlsplit(http.path).path.rstrip("/").lower() != "/wsman":
            http.reply(404)
            return
        with self._lock:
            starting = time.time() < self._refuse_logons_until
            if starting:
                self.logons_refused_starting += 1
        if starting:
            http.reply(401, headers=self._challenge())
            return
        try:
            step = http.auth.authorize(http.headers.get("Authorization"))
        except AuthFailed:
            with self._lock:
                self.auth_failures += 1
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
            except Exception as exc:
                log.info("%s: cannot decrypt a request from %s: %s", self.host_name, http.peer, exc)
                http.reply(400)
                return
        elif not body:
            http.reply(200, headers=token)  # the blank POST that sets up encryption
            return
        elif not self.basic_allowed:
            http.reply(401, headers=self._challenge())  # AllowUnencrypted=false
            return
        reply = self.service.dispatch(body, http.auth.username or "", http.client_address[0])
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


def _token_header(step: AuthStep) -> tuple[str, ...]:
    if not step.out_token:
        return ()
    return (f"WWW-Authenticate: Negotiate {base64.b64encode(step.out_token).decode()}",)
