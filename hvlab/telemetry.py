"""Logging and the metrics endpoint of hvlab processes.

Library modules never call these; entry points (the worker, the CLI) do.

- :func:`configure_logging`: structlog for hvlab code *and* stdlib logging (temporalio, the
  SDK core through :data:`hvlab.temporal.CORE_LOGGER`), rendered as JSON lines when the
  stream is not a terminal (or ``format="json"``), as console text on a terminal. Context
  bound with ``structlog.contextvars.bind_contextvars`` (``workflow_id``, ``host``, ``vm``)
  is merged into every event.
- :func:`start_metrics_server`: one HTTP endpoint at ``settings.metrics_address`` (default
  ``127.0.0.1:9464``) serving ``/metrics`` (the Temporal SDK runtime metrics, fetched from
  the SDK's internal Prometheus exporter on each scrape, followed by hvlab's own registry)
  and ``/healthz`` (200 while the worker runs, 503 otherwise).
"""

from __future__ import annotations

import logging
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from typing import Any, Literal, TextIO

import structlog
from prometheus_client import CollectorRegistry, generate_latest
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import Processor

from hvlab.metrics import REGISTRY

LogFormat = Literal["auto", "json", "console"]
QUIET_LOGGERS = ("pypsrp", "urllib3", "spnego", "requests_ntlm", "psrpcore")
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
_HANDLER_NAME = "hvlab"


@cache
def hvlab_version() -> str:
    """The installed hvlab version (``0+unknown`` when running from a bare checkout)."""
    try:
        return metadata.version("hvlab")
    except metadata.PackageNotFoundError:
        return "0+unknown"


# --------------------------------------------------------------------------- logging


def _is_tty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _wants_json(fmt: str, stream: TextIO) -> bool:
    if fmt == "json":
        return True
    return False if fmt == "console" else not _is_tty(stream)


def _shared_processors() -> list[Processor]:
    """Processors for structlog events and foreign (stdlib) records alike."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]


def _formatter(as_json: bool, colors: bool) -> structlog.stdlib.ProcessorFormatter:
    renderer: Processor
    if as_json:
        renderer = structlog.processors.JSONRenderer()
        # Tracebacks as dicts, never with frame locals: a frame of the session pool holds the
        # resolved credential, and structlog's default shows locals.
        tracebacks = structlog.processors.ExceptionRenderer(
            ExceptionDictTransformer(show_locals=False, max_frames=20))
        finishing: list[Processor] = [tracebacks, renderer]
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=colors,
            exception_formatter=structlog.dev.RichTracebackFormatter(show_locals=False))
        finishing = [renderer]
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_shared_processors(), structlog.stdlib.ExtraAdder()],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *finishing],
    )


def _install_handler(handler: logging.Handler, level: str | int) -> None:
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.name == _HANDLER_NAME]:
        root.removeHandler(old)
    handler.name = _HANDLER_NAME
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def configure_logging(
    fmt: LogFormat | str = "auto", level: str | int = "INFO", *, stream: TextIO | None = None
) -> None:
    """Route structlog and stdlib logging to ``stream`` (stderr) as JSON lines or console text.

    Calling it again replaces the previous configuration (no duplicate handlers).
    """
    target = stream if stream is not None else sys.stderr
    as_json = _wants_json(fmt, target)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(target)
    handler.setFormatter(_formatter(as_json, colors=_is_tty(target)))
    _install_handler(handler, level)


# --------------------------------------------------------------------------- metrics


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` (or ``[v6]:port``) to a (host, port) pair."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"expected host:port, got {address!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def fetch_sdk_metrics(url: str | None, timeout: float = 2.0) -> str:
    """The SDK exporter's text, or a comment saying why it is missing."""
    if not url:
        return ""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            text: str = response.read().decode("utf-8")
    except (urllib.error.URLError, OSError) as exc:
        return f"# hvlab: Temporal SDK metrics unavailable: {exc}\n"
    return text if text.endswith("\n") or not text else text + "\n"


class _Endpoint(BaseHTTPRequestHandler):
    """Serves ``/metrics`` and ``/healthz``; configured through class attributes."""

    sdk_metrics_url: str | None = None
    registry: CollectorRegistry = REGISTRY
    healthy: Callable[[], bool] = staticmethod(lambda: True)

    def do_GET(self) -> None:
        """Answer a scrape or a health probe."""
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            body = fetch_sdk_metrics(self.sdk_metrics_url).encode() + generate_latest(self.registry)
            self._send(200, body, PROMETHEUS_TEXT)
        elif path == "/healthz":
            ok = self.healthy()
            self._send(200 if ok else 503, b"ok\n" if ok else b"not running\n", "text/plain")
        else:
            self._send(404, b"not found: try /metrics or /healthz\n", "text/plain")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not worth a log line."""


class MetricsServer:
    """A running metrics endpoint; :meth:`close` stops it."""

    def __init__(self, httpd: ThreadingHTTPServer, thread: threading.Thread) -> None:
        self._httpd = httpd
        self._thread = thread

    @property
    def address(self) -> str:
        """The bound ``host:port`` (the real port when 0 was asked for)."""
        host, port = self._httpd.server_address[:2]
        return f"{host!s}:{port}"

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:9464``."""
        return f"http://{self.address}"

    def close(self) -> None:
        """Stop serving and release the port."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def start_metrics_server(
    address: str,
    *,
    sdk_metrics_url: str | None = None,
    registry: CollectorRegistry = REGISTRY,
    healthy: Callable[[], bool] = lambda: True,
) -> MetricsServer:
    """Serve ``/metrics`` (SDK text + ``registry``) and ``/healthz`` at ``address``.

    Runs in a daemon thread; ``address`` may use port 0 (see :attr:`MetricsServer.address`).
    """
    handler = type(
        "MetricsEndpoint",
        (_Endpoint,),
        {
            "sdk_metrics_url": sdk_metrics_url,
            "registry": registry,
            "healthy": staticmethod(healthy),
        },
    )
    httpd = ThreadingHTTPServer(split_address(address), handler)
    httpd.daemon_threads = True
    # a short poll so close() returns at once (the default 0.5 s showed in every test teardown)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1},
                              name="hvlab-metrics", daemon=True)
    thread.start()
    return MetricsServer(httpd, thread)
