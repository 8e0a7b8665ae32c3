"""HTTPS validates the certificate against the lab's address, and says clearly when the
certificate has no SAN for it (OpenSSL's verify code, not its message text)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hvlab.powershell.command import Command, Pipeline
from hvlab.powershell.credentials import ResolvedCredential, Secret
from hvlab.powershell.errors import CertificateMismatch
from hvlab.powershell.session import Endpoint, SessionPool


def _name(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def _pem(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _certificates(tmp: Path, san: list[x509.GeneralName]) -> tuple[Path, Path, Path]:
    """A test CA and a listener certificate it signed with the given SAN."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("hvlab test CA"))
          .issuer_name(_name("hvlab test CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(hours=1))
          .not_valid_after(now + dt.timedelta(hours=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name("svr1.kosa.vm"))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return (_pem(tmp / "ca.pem", ca.public_bytes(pem)), _pem(tmp / "cert.pem", cert.public_bytes(pem)),
            _pem(tmp / "key.pem", key_pem))


class _Listener(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.send_response(401)
        self.send_header("WWW-Authenticate", "Negotiate")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


def _serve(cert: Path, key: Path) -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Listener)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def https_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """An HTTPS listener whose certificate (from a CA the client trusts) names only
    svr1.kosa.vm, as an auto-enrolled computer certificate does."""
    ca, cert, key = _certificates(tmp_path, [x509.DNSName("svr1.kosa.vm")])
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca))
    yield from _serve(cert, key)


def _run(address: str, port: int) -> None:
    pool = SessionPool(lambda name: ResolvedCredential("Administrator", Secret("p")),
                       connection_timeout=5)
    endpoint = Endpoint(host="SVR1", address=address, port=port, scheme="https",
                        auth="negotiate", credential="local-admin")
    try:
        pool.run(endpoint, Pipeline.one(Command.of("Get-Date")))
    finally:
        pool.close()


def test_an_ip_address_without_a_matching_san_is_named(https_by_name: int) -> None:
    """Reaching the listener by IP while its certificate names only the FQDN fails as
    CertificateMismatch naming the address, with the lab-file fix; not as a generic TLS or
    transient error."""
    with pytest.raises(CertificateMismatch) as caught:
        _run("127.0.0.1", https_by_name)
    error = caught.value
    assert "no subject alternative name matching the IP address '127.0.0.1'" in str(error)
    assert "connection.address" in error.fix and "transport: http" in error.fix
    assert not error.retryable


def test_an_untrusted_certificate_is_not_called_a_name_mismatch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chain the worker does not trust is another failure: it is not reported as a SAN
    mismatch (the verify code differs)."""
    _ca, cert, key = _certificates(tmp_path, [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    other = tmp_path / "other"
    other.mkdir()
    other_ca, _, _ = _certificates(other, [x509.DNSName("x")])
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(other_ca))
    for port in _serve(cert, key):
        with pytest.raises(Exception) as caught:
            _run("127.0.0.1", port)
        assert not isinstance(caught.value, CertificateMismatch)
