"""Temporal client and SDK runtime for hvlab processes.

Every hvlab process talks to Temporal through :func:`connect`: the pydantic data converter,
TLS/mTLS and API key from :class:`~hvlab.settings.Settings`, a bounded connect time, and one
exception, :class:`TemporalUnavailable`, when the server cannot be reached.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import socket
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)
from temporalio.service import TLSConfig

from hvlab.codec import KeyringError, codec_from_settings
from hvlab.settings import Settings

CORE_LOGGER = "temporalio.core"
#: Buckets of the histograms workflow code records through the SDK meter (seconds).
WORKFLOW_HISTOGRAM_BUCKETS: dict[str, list[float]] = {
    "hvlab_migration_duration_seconds": [1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600,
                                         7200],
}


class TemporalUnavailable(Exception):
    """The Temporal frontend at ``address`` could not be reached (``reason`` says why)."""

    def __init__(self, address: str, reason: str) -> None:
        self.address = address
        self.reason = reason
        super().__init__(f"Temporal is not reachable at {address}: {reason}")


class CodecUnavailable(TemporalUnavailable):
    """``HVLAB_CODEC_ENABLED`` is true but the keyring cannot be loaded (``reason`` says why).

    A :class:`TemporalUnavailable` so every caller that reports an unusable client (exit 2 in
    the CLI, exit 1 in the worker) reports this too; its message names the setting.
    """

    def __str__(self) -> str:
        return f"HVLAB_CODEC_ENABLED is true but the payload codec cannot be set up: {self.reason}"


def data_converter(settings: Settings) -> DataConverter:
    """The pydantic data converter, with the AES-GCM payload codec when it is enabled.

    Raises :class:`hvlab.codec.KeyringError` when the codec is enabled without usable keys.
    """
    if not settings.codec_enabled:
        return pydantic_data_converter
    return dataclasses.replace(pydantic_data_converter, payload_codec=codec_from_settings(settings))


def process_identity() -> str:
    """The identity this process shows to Temporal (``pid@hostname``, the SDK's format)."""
    return f"{os.getpid()}@{socket.gethostname()}"


def _read(path: Path | None) -> bytes | None:
    return path.expanduser().read_bytes() if path is not None else None


def tls_config(settings: Settings) -> TLSConfig | bool:
    """TLS settings for the client: mTLS when a cert is set, plain TLS for a CA or API key."""
    wants_tls = any(
        (settings.temporal_tls_cert, settings.temporal_tls_ca, settings.temporal_tls_server_name)
    )
    if not wants_tls:
        return bool(settings.temporal_api_key)
    return TLSConfig(
        server_root_ca_cert=_read(settings.temporal_tls_ca),
        domain=settings.temporal_tls_server_name,
        client_cert=_read(settings.temporal_tls_cert),
        client_private_key=_read(settings.temporal_tls_key),
    )


_REASONS = (
    ("connection refused", "connection refused"),
    ("timed out", "timed out"),
    ("dns error", "the host name does not resolve"),
    ("certificate", "TLS certificate problem"),
    ("unauthenticated", "unauthenticated (check the API key or client certificate)"),
)


def _reason(exc: BaseException) -> str:
    """A one-line cause from a core connect error (drops the Rust debug noise)."""
    text = str(exc) or type(exc).__name__
    for marker, reason in _REASONS:
        if marker in text.lower():
            return reason
    return text.splitlines()[0][:200]


async def connect(
    settings: Settings,
    *,
    runtime: Runtime | None = None,
    timeout: float | None = None,
) -> Client:
    """Connect to ``settings.temporal_address`` or raise :class:`TemporalUnavailable`.

    ``timeout`` (seconds, default ``settings.connect_timeout``) bounds the whole attempt.
    """
    seconds = timeout if timeout is not None else settings.connect_timeout
    address = settings.temporal_address
    try:
        tls = tls_config(settings)
    except OSError as exc:
        raise TemporalUnavailable(address, f"cannot read TLS file: {exc}") from exc
    try:
        converter = data_converter(settings)
    except KeyringError as exc:
        raise CodecUnavailable(address, str(exc)) from None
    attempt = Client.connect(
        address,
        namespace=settings.namespace,
        api_key=settings.temporal_api_key,
        tls=tls,
        data_converter=converter,
        runtime=runtime,
        identity=process_identity(),
        connect_timeout=timedelta(seconds=seconds),
    )
    try:
        return await asyncio.wait_for(attempt, timeout=seconds)
    except TimeoutError as exc:
        raise TemporalUnavailable(address, f"no answer within {seconds:g} s") from exc
    except RuntimeError as exc:
        raise TemporalUnavailable(address, _reason(exc)) from exc


def free_local_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (for internal listeners)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def build_runtime(prometheus_bind: str | None = None) -> Runtime:
    """An SDK runtime whose core logs go to stdlib logging (and so through structlog).

    With ``prometheus_bind`` (``host:port``) the SDK serves its metrics there; hvlab's
    public endpoint (:func:`hvlab.telemetry.start_metrics_server`) merges them with its own.
    """
    metrics = (PrometheusConfig(bind_address=prometheus_bind,
                                histogram_bucket_overrides=WORKFLOW_HISTOGRAM_BUCKETS)
               if prometheus_bind else None)
    logging_config = LoggingConfig(
        filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
        forwarding=LogForwardingConfig(logger=logging.getLogger(CORE_LOGGER)),
    )
    return Runtime(telemetry=TelemetryConfig(logging=logging_config, metrics=metrics))


def build_metrics_runtime() -> tuple[Runtime, str]:
    """A runtime serving SDK metrics on an ephemeral loopback port; returns it and its URL."""
    bind = f"127.0.0.1:{free_local_port()}"
    return build_runtime(bind), f"http://{bind}/metrics"
