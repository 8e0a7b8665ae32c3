"""The remote codec server of ``hvlab codec-server``: payload decoding for the Web UI.

The codec server speaks Temporal's remote codec protocol: ``POST /encode`` and ``POST
/decode`` (also under a namespace segment, ``/{namespace}/decode``, for the CLI's
``--codec-endpoint`` templating), body and answer ``{"payloads": [...]}`` with proto3-JSON
payloads (bytes as base64), ``X-Namespace`` header. Every POST needs ``Authorization: Bearer
<token>`` (the token from ``HVLAB_CODEC_SERVER_TOKEN_FILE``); without a token configured it
serves on a loopback address only. CORS answers the origins in ``HVLAB_CODEC_CORS_ORIGINS``
(the Web UI's) and no other. Neither keys nor the token are ever printed or logged.

Browsers: the Web UI cannot send a fixed bearer token, but with
``TEMPORAL_CODEC_INCLUDE_CREDENTIALS=true`` it sends the codec server's cookies. A person who
holds the token signs in once at ``GET /login`` (a form; ``POST /login``); the server answers
with a session cookie (``HttpOnly``, ``SameSite=Strict``, ``Secure`` behind HTTPS, 12 h) that
carries an expiry and its HMAC under a key derived from the token, never the token itself.
Replacing the token ends every session. ``POST /logout`` clears the cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import ipaddress
import json
import threading
import time
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToDict, Parse, ParseError
from temporalio.api.common.v1 import Payload, Payloads

from hvlab.codec import CodecError, EncryptionCodec, KeyringError, codec_from_settings
from hvlab.settings import Settings
from hvlab.telemetry import split_address

MAX_BODY = 32 * 1024 * 1024
ALLOWED_HEADERS = "Authorization, Content-Type, X-Namespace"
OPERATIONS = ("encode", "decode")
SESSION_COOKIE = "hvlab_codec_session"
SESSION_SECONDS = 12 * 3600
LOGIN_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>hvlab codec server</title>
</head><body style="font-family:sans-serif;max-width:36em;margin:3em auto">
<h1>hvlab codec server</h1><p>{message}</p>
<form method="post" action="/login"><label>Codec server token
<input type="password" name="token" autocomplete="off" autofocus required></label>
<button type="submit">Sign in</button></form>
<form method="post" action="/logout"><button type="submit">Sign out</button></form>
</body></html>"""


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

    def _session_key(self) -> bytes:
        assert self.token is not None
        return hmac.new(self.token.encode(), b"hvlab-codec-session", hashlib.sha256).digest()

    def new_session(self, now: float | None = None) -> str:
        """A cookie value: ``<expiry>.<hmac>`` (no token inside)."""
        expiry = str(int((now if now is not None else time.time()) + SESSION_SECONDS))
        mac = hmac.new(self._session_key(), expiry.encode(), hashlib.sha256).hexdigest()
        return f"{expiry}.{mac}"

    def session_valid(self, value: str, now: float | None = None) -> bool:
        """Whether ``value`` is a session this token issued and it has not expired."""
        if self.token is None:
            return False
        expiry, _, mac = value.partition(".")
        if not expiry.isdigit():
            return False
        wanted = hmac.new(self._session_key(), expiry.encode(), hashlib.sha256).hexdigest()
        fresh = int(expiry) > (now if now is not None else time.time())
        return hmac.compare_digest(mac.encode(), wanted.encode()) and fresh

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

    def _token_matches(self, given: str) -> bool:
        token = self.server.token
        return token is not None and hmac.compare_digest(given.strip().encode(), token.encode())

    def _cookie(self, name: str) -> str | None:
        for part in (self.headers.get("Cookie") or "").split(";"):
            key, _, value = part.strip().partition("=")
            if key == name:
                return value
        return None

    def _authorized(self) -> bool:
        if self.server.token is None:
            return True
        scheme, _, given = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() == "bearer":
            return self._token_matches(given)
        session = self._cookie(SESSION_COOKIE)
        return session is not None and self.server.session_valid(session)

    def _page(self, status: int, message: str, cookie: str | None = None) -> None:
        data = LOGIN_PAGE.format(message=html.escape(message)).encode()
        self.send_response(status)
        if cookie is not None:
            self.send_header("Set-Cookie", cookie)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _set_cookie(self, value: str, max_age: int) -> str:
        secure = (self.headers.get("X-Forwarded-Proto") or "").lower() == "https"
        return (f"{SESSION_COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; "
                f"SameSite=Strict{'; Secure' if secure else ''}")

    def _login(self) -> None:
        length = min(int(self.headers.get("Content-Length") or 0), 4096)
        form = urllib.parse.parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
        if self.server.token is None:
            self._page(200, "No token is configured on this server: nothing to sign in to.")
        elif self._token_matches((form.get("token") or [""])[0]):
            self._page(200, "Signed in for 12 hours: the Web UI can now decode payloads.",
                       self._set_cookie(self.server.new_session(), SESSION_SECONDS))
        else:
            self.close_connection = True
            self._page(401, "Wrong token.")

    # -- methods
    def do_OPTIONS(self) -> None:
        """CORS preflight: no credentials are sent on it, so none are required."""
        self._reply(204 if self._operation() else 404)

    def do_POST(self) -> None:
        """Encode or decode the body's payloads; sign in or out."""
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/login":
            self._login()
            return
        if path == "/logout":
            self._page(200, "Signed out.", self._set_cookie("", 0))
            return
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
        """The sign-in page at /login; 405 on the codec paths, else 404."""
        if self.path.split("?", 1)[0].rstrip("/") == "/login":
            signed_in = (self._cookie(SESSION_COOKIE) or "") and self._authorized()
            self._page(200, "You are signed in." if signed_in else
                       "Sign in with the codec server's token so the Temporal Web UI can decode "
                       "hvlab payloads in this browser.")
            return
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
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              name="hvlab-codec", daemon=True)
    thread.start()
    return thread
