"""hvlab.temporal: TLS settings, and one clear error when Temporal cannot be reached."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from temporalio.service import TLSConfig

from hvlab.settings import Settings
from hvlab.temporal import TemporalUnavailable, connect, free_local_port, tls_config


def test_tls_config_follows_the_settings(tmp_path: Path) -> None:
    """No TLS by default, plain TLS with only an API key, mTLS with cert, key, CA, name."""
    assert tls_config(Settings(home=tmp_path)) is False
    assert tls_config(Settings(home=tmp_path, temporal_api_key="k")) is True
    for name in ("cert", "key", "ca"):
        (tmp_path / f"{name}.pem").write_bytes(f"{name}-bytes".encode())
    mtls = tls_config(
        Settings(
            home=tmp_path,
            temporal_tls_cert=tmp_path / "cert.pem",
            temporal_tls_key=tmp_path / "key.pem",
            temporal_tls_ca=tmp_path / "ca.pem",
            temporal_tls_server_name="temporal.lab.local",
        )
    )
    assert isinstance(mtls, TLSConfig)
    assert (mtls.client_cert, mtls.client_private_key) == (b"cert-bytes", b"key-bytes")
    assert (mtls.server_root_ca_cert, mtls.domain) == (b"ca-bytes", "temporal.lab.local")


async def test_connect_refused_raises_temporal_unavailable_at_once(tmp_path: Path) -> None:
    """A closed port gives TemporalUnavailable(address, 'connection refused') quickly."""
    address = f"127.0.0.1:{free_local_port()}"
    started = time.monotonic()
    with pytest.raises(TemporalUnavailable) as caught:
        await connect(Settings(home=tmp_path, temporal_address=address))
    assert time.monotonic() - started < 3
    assert (caught.value.address, caught.value.reason) == (address, "connection refused")
    assert address in str(caught.value)


async def test_connect_to_a_silent_port_times_out(tmp_path: Path) -> None:
    """A listener that never speaks gRPC makes connect give up after the timeout."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(TemporalUnavailable) as caught:
            await connect(Settings(home=tmp_path, temporal_address=address), timeout=0.5)
        elapsed = time.monotonic() - started
    assert elapsed < 3, elapsed
    assert caught.value.address == address


async def test_unreadable_tls_file_is_reported_not_raised(tmp_path: Path) -> None:
    """A missing certificate file is a TemporalUnavailable naming the file problem."""
    settings = Settings(home=tmp_path, temporal_tls_ca=tmp_path / "missing.pem")
    with pytest.raises(TemporalUnavailable, match="cannot read TLS file"):
        await connect(settings)


def test_temporal_address_follows_the_dev_port(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without HVLAB_TEMPORAL_ADDRESS the client targets 127.0.0.1:<HVLAB_DEV_PORT>."""
    monkeypatch.delenv("HVLAB_TEMPORAL_ADDRESS", raising=False)
    monkeypatch.setenv("HVLAB_DEV_PORT", "17999")
    assert Settings().temporal_address == "127.0.0.1:17999"
    monkeypatch.setenv("HVLAB_TEMPORAL_ADDRESS", "temporal.example:7233")
    assert Settings().temporal_address == "temporal.example:7233"
