"""``hvlab codec keygen`` and ``hvlab codec-server``: keys and remote decoding for the Web UI.

The codec server speaks Temporal's remote codec protocol: ``POST /encode`` and ``POST
/decode`` (also under a namespace segment, ``/{namespace}/decode``, for the CLI's
``--codec-endpoint`` templating), body and answer ``{"payloads": [...]}`` with proto3-JSON
payloads (bytes as base64), ``X-Namespace`` header. Every POST needs ``Authorization: Bearer
<token>`` (the token from ``HVLAB_CODEC_SERVER_TOKEN_FILE``); without a token configured it
serves on a loopback address only. CORS answers the origins in ``HVLAB_CODEC_CORS_ORIGINS``
(the Web UI's) and no other. Neither keys nor the token are ever printed or logged.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import signal
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Annotated, Any

import typer
from google.protobuf.json_format import MessageToDict, Parse, ParseError
from temporalio.api.common.v1 import Payload, Payloads

from hvlab.codec import CodecError, EncryptionCodec, KeyringError, codec_from_settings, new_key_line
from hvlab.settings import Settings, get_settings
from hvlab.telemetry import split_address

codec_app = typer.Typer(help="Payload encryption keys (AES-256-GCM).", no_args_is_help=True)
MAX_BODY = 32 * 1024 * 1024
ALLOWED_HEADERS = "Authorization, Content-Type, X-Namespace"
OPERATIONS = ("encode", "decode")


def is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_origins(text: str) -> frozenset[str]:
    """The comma-separated origin list, without blanks or trailing slashes."""
    return frozenset(o.strip().rstrip("/") for o in text.split(",") if o.strip())


def read_token(path: Path) -> str:
    """The bearer token in ``path`` (surrounding whitespace removed); never empty."""
    try:
        token = path.expanduser().read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"HVLAB_CODEC_SERVER_TOKEN_FILE: cannot read {path}: {exc}") from None
    if not token:
        raise ValueError(f"HVLAB_CODEC_SERVER_TOKEN_FILE: {path} is empty")
    return token


class CodecServer(ThreadingHTTPServer):
    """The HTTP server: the codec, the token (or None) and the allowed origins."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        codec: EncryptionCodec,
        token: str | None,
        origins: frozenset[str],
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.codec = codec
        self.token = token
        self.origins = origins
        self.log = log or (lambda line: None)
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        """``http://host:port`` actually bound."""
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def transform(self, operation: str, payloads: Payloads) -> Payloads:
        """Encode or decode every payload."""
        step: Callable[[Payload], Payload] = (
            self.codec.encrypt if operation == "encode" else self.codec.decrypt
        )
        return Payloads(payloads=[step(p) for p in payloads.payloads])


class _Handler(BaseHTTPRequestHandler):
    server: CodecServer
    protocol_version = "HTTP/1.1"

    # -- plumbing
    def log_message(self, format: str, *args: Any) -> None:
        """Request line and status only: never headers (the token) or bodies."""
        namespace = self.headers.get("X-Namespace", "-") if self.headers else "-"
        self.server.log(f"{self.client_address[0]} {format % args} namespace={namespace}")

    def _cors(self) -> None:
        origin = (self.headers.get("Origin") or "").rstrip("/")
        if origin and origin in self.server.origins:
            self.send_header("Access-Control-Allow-Origin", origin)
            self.send_header("Access-Control-Allow-Credentials", "true")
            self.send_header("Access-Control-Allow-Methods", "POST, OPTIONS")
            self.send_header("Access-Control-Allow-Headers", ALLOWED_HEADERS)
            self.send_header("Access-Control-Max-Age", "600")
        self.send_header("Vary", "Origin")

    def _reply(self, status: int, body: dict[str, Any] | None = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self._cors()
        if status == 401:
            self.send_header("WWW-Authenticate", 'Bearer realm="hvlab-codec"')
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _operation(self) -> str | None:
        """``encode``/``decode`` from ``/op`` or ``/{namespace}/op``; None otherwise."""
        parts = [p for p in self.path.split("?", 1)[0].split("/") if p]
        if 1 <= len(parts) <= 2 and parts[-1] in OPERATIONS:
            return parts[-1]
        return None

    def _authorized(self) -> bool:
        token = self.server.token
        if token is None:
            return True
        scheme, _, given = (self.headers.get("Authorization") or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), token.encode()
        )

    # -- methods
    def do_OPTIONS(self) -> None:
        """CORS preflight: no credentials are sent on it, so none are required."""
        self._reply(204 if self._operation() else 404)

    def do_POST(self) -> None:
        """Encode or decode the body's payloads."""
        operation = self._operation()
        if operation is None:
            self._reply(404, {"error": "POST /encode or /decode"})
            return
        if not self._authorized():
            self.close_connection = True
            self._reply(401, {"error": "missing or invalid bearer token"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True
            self._reply(413, {"error": f"body larger than {MAX_BODY} bytes"})
            return
        body = self.rfile.read(length)
        try:
            payloads = Parse(body.decode("utf-8") or "{}", Payloads())
            result = self.server.transform(operation, payloads)
        except (ParseError, UnicodeDecodeError) as exc:
            self._reply(400, {"error": f"not a payloads body: {exc}"})
            return
        except CodecError as exc:
            self._reply(400, {"error": str(exc)})
            return
        answer = MessageToDict(result)
        answer.setdefault("payloads", [])
        self._reply(200, answer)

    def do_GET(self) -> None:
        """Anything but POST/OPTIONS: 405 on the codec paths, else 404."""
        self._reply(405 if self._operation() else 404)


def make_server(
    settings: Settings,
    *,
    address: str | None = None,
    log: Callable[[str], None] | None = None,
) -> CodecServer:
    """A bound (not yet serving) codec server from ``settings``.

    Raises :class:`ValueError` with a one-line reason for a bad keyring, token file or
    address, or a missing token on a non-loopback address.
    """
    host, port = split_address(address or settings.codec_server_address)
    try:
        codec = codec_from_settings(settings)
    except KeyringError as exc:
        raise ValueError(str(exc)) from None
    token = None
    if settings.codec_server_token_file is not None:
        token = read_token(settings.codec_server_token_file)
    elif not is_loopback(host):
        raise ValueError(
            f"refusing to serve on {host}:{port} without a bearer token: anyone who can reach "
            "it could decrypt every payload. Set HVLAB_CODEC_SERVER_TOKEN_FILE, or bind to "
            "127.0.0.1"
        )
    return CodecServer((host, port), codec, token, parse_origins(settings.codec_cors_origins), log)


def serve_in_thread(server: CodecServer) -> threading.Thread:
    """Run ``server`` in a daemon thread (tests; ``server.shutdown()`` stops it)."""
    thread = threading.Thread(target=server.serve_forever, name="hvlab-codec", daemon=True)
    thread.start()
    return thread


def _stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def codec_server(
    address: Annotated[
        str | None,
        typer.Option(help="host:port to listen on [default: HVLAB_CODEC_SERVER_ADDRESS]"),
    ] = None,
) -> None:
    """Serve Temporal's remote codec protocol (/encode, /decode) for the Web UI and CLI."""
    from starter.cli import UsageProblem, out

    settings = get_settings()
    try:
        server = make_server(settings, address=address, log=_stderr)
    except ValueError as exc:
        raise UsageProblem(str(exc)) from None
    except OSError as exc:
        raise UsageProblem(
            f"cannot listen on {address or settings.codec_server_address}: {exc.strerror or exc}"
        ) from None
    keyring = server.codec.keyring
    origins = ", ".join(sorted(server.origins)) or "none"
    auth = "bearer token required" if server.token else "NO TOKEN (loopback only)"
    out.print(
        f"codec server on {server.url}  keys: {', '.join(keyring.ids)} "
        f"(active {keyring.active_id})  auth: {auth}  CORS origins: {origins}",
        markup=False,
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    serve_in_thread(server)
    stop.wait()
    server.shutdown()
    server.server_close()


@codec_app.command("keygen")
def keygen(
    key_id: Annotated[str | None, typer.Option("--id", help="key id [default: random]")] = None,
) -> None:
    """Print a new `keyid:base64` keyring line (append it to HVLAB_CODEC_KEYS_FILE to rotate)."""
    from starter.cli import UsageProblem

    try:
        line = new_key_line(key_id)
    except KeyringError as exc:
        raise UsageProblem(str(exc)) from None
    sys.stdout.write(line + "\n")


def register(app: typer.Typer) -> None:
    """``hvlab codec ...`` and ``hvlab codec-server``."""
    app.add_typer(codec_app, name="codec")
    app.command("codec-server")(codec_server)
