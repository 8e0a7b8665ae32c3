"""Temporal client TLS/mTLS and API key (HVLAB_TEMPORAL_TLS_*, HVLAB_TEMPORAL_API_KEY): what
connect() hands the SDK, and a real mTLS handshake against a TLS listener that requires a
client certificate from our CA."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from temporalio.service import TLSConfig

import hvlab.temporal
from hvlab.codec import EncryptionCodec, new_key_line
from hvlab.settings import Settings
from hvlab.temporal import TemporalUnavailable, connect

SERVER_NAME = "temporal.lab.local"


def _cert(name: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[x509.Name, Any] | None,
          ca: bool = False) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name, issuer_key = issuer or (subject, key)
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(now + dt.timedelta(hours=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]),
                                        critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _pki(tmp_path: Path) -> dict[str, Path]:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("hvlab test CA", ca_key, None, ca=True)
    files: dict[str, Path] = {"ca": tmp_path / "ca.pem"}
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for name, cn in (("server", SERVER_NAME), ("client", "hvlab-worker")):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(cn, key, (ca.subject, ca_key))
        files[name] = tmp_path / f"{name}.pem"
        files[name].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        files[f"{name}-key"] = tmp_path / f"{name}.key"
        files[f"{name}-key"].write_bytes(_pem_key(key))
    return files


async def test_connect_passes_api_key_tls_and_codec_to_the_sdk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """API key and mTLS files reach Client.connect as given; with the codec on, the data
    converter carries it; nothing else is invented."""
    seen: dict[str, Any] = {}

    async def fake_connect(target: str, **kwargs: Any) -> object:
        seen.update(kwargs, target=target)
        return object()

    monkeypatch.setattr(hvlab.temporal.Client, "connect", fake_connect)
    files = _pki(tmp_path)
    settings = Settings(
        home=tmp_path, temporal_address="temporal.example:7233", namespace="labs",
        temporal_api_key="api-key-123", temporal_tls_cert=files["client"],
        temporal_tls_key=files["client-key"], temporal_tls_ca=files["ca"],
        temporal_tls_server_name=SERVER_NAME, codec_enabled=True,
        codec_keys=new_key_line("k"),
    )
    await connect(settings)
    assert (seen["target"], seen["namespace"], seen["api_key"]) == (
        "temporal.example:7233", "labs", "api-key-123")
    tls = seen["tls"]
    assert isinstance(tls, TLSConfig) and tls.domain == SERVER_NAME
    assert tls.client_cert == files["client"].read_bytes()
    assert tls.client_private_key == files["client-key"].read_bytes()
    assert tls.server_root_ca_cert == files["ca"].read_bytes()
    assert isinstance(seen["data_converter"].payload_codec, EncryptionCodec)
    assert "api-key-123" not in repr(settings)


class _TlsListener:
    """A TLS listener that requires a client certificate; records what each handshake saw."""

    def __init__(self, files: dict[str, Path]) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(files["server"], files["server-key"])
        self.context.load_verify_locations(files["ca"])
        self.context.verify_mode = ssl.CERT_REQUIRED
        self.context.set_alpn_protocols(["h2"])
        self.sni: list[str | None] = []
        self.context.sni_callback = lambda sock, name, ctx: self.sni.append(name)  # type: ignore[assignment,misc]
        self.peers: list[str] = []
        self.errors: list[str] = []
        self.refused = threading.Event()  # set once a handshake has been refused
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            try:
                with self.context.wrap_socket(conn, server_side=True) as tls:
                    subject = dict(x[0] for x in tls.getpeercert()["subject"])  # type: ignore[index,misc]
                    self.peers.append(str(subject["commonName"]))
            except (ssl.SSLError, OSError) as exc:
                self.errors.append(str(exc))
                self.refused.set()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


async def test_mtls_handshake_presents_the_client_certificate(tmp_path: Path) -> None:
    """With HVLAB_TEMPORAL_TLS_* set, the client verifies the server against our CA, sends the
    server name, and presents its certificate (the listener is not gRPC, so connect then
    fails with TemporalUnavailable); without the client cert the server refuses it."""
    files = _pki(tmp_path)
    listener = _TlsListener(files)
    try:
        base = dict(home=tmp_path, temporal_address=listener.address,
                    temporal_tls_ca=files["ca"], temporal_tls_server_name=SERVER_NAME)
        mtls = Settings(**base, temporal_tls_cert=files["client"],
                        temporal_tls_key=files["client-key"])
        with pytest.raises(TemporalUnavailable):
            await connect(mtls, timeout=3)
        assert "hvlab-worker" in listener.peers, (listener.peers, listener.errors)
        assert SERVER_NAME in listener.sni
        peers = len(listener.peers)
        listener.refused.clear()
        with pytest.raises(TemporalUnavailable):
            await connect(Settings(**base), timeout=3)
        # The client can see the refusal before the listener thread has recorded it: wait for
        # the thread's own event rather than reading the list at once.
        assert listener.refused.wait(15), (listener.peers, listener.errors)
        assert len(listener.peers) == peers  # no certificate, no accepted handshake
    finally:
        listener.close()
