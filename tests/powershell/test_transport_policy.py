"""WinRM transport policy: Basic or plain HTTP to a real (non-loopback) host is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from hvlab.powershell.command import Command, Pipeline
from hvlab.powershell.credentials import ResolvedCredential, Secret
from hvlab.powershell.endpoints import lab_endpoint
from hvlab.powershell.errors import InsecureTransport
from hvlab.powershell.session import Endpoint, SessionPool
from hvlab.spec import Transport
from hvlab.specfile import load_lab

SEED = load_lab(Path(__file__).resolve().parents[2] / "examples" / "classroom-lab.yaml")


def endpoint(address: str, scheme: str, auth: str, insecure: bool = False) -> Endpoint:
    return Endpoint(host="SVR1", address=address, port=5985, scheme=scheme,  # type: ignore[arg-type]
                    auth=auth, credential="x", insecure=insecure)


@pytest.mark.parametrize(("scheme", "auth"), [("http", "basic"), ("http", "credssp")])
def test_basic_or_credssp_over_http_to_a_remote_host_is_refused(scheme: str, auth: str) -> None:
    """Credentials that would cross the wire readable are refused before any connection."""
    with pytest.raises(InsecureTransport, match="refused"):
        endpoint("192.168.1.110", scheme, auth).check_transport()


@pytest.mark.parametrize("case", [
    endpoint("127.0.0.11", "http", "basic"),            # loopback (the simulator)
    endpoint("192.168.1.110", "http", "credssp", True),  # marked insecure in the lab file
    endpoint("192.168.1.110", "https", "basic"),        # TLS protects it
    endpoint("192.168.1.110", "http", "ntlm"),          # NTLM with message encryption
    endpoint("192.168.1.110", "http", "negotiate"),     # the default
])
def test_allowed_transports(case: Endpoint) -> None:
    case.check_transport()


def test_basic_over_http_is_refused_even_when_marked_insecure() -> None:
    """`insecure: true` never sends a password readable on the wire (Basic over HTTP)."""
    with pytest.raises(InsecureTransport, match="basic over plain HTTP is refused"):
        endpoint("192.168.1.110", "http", "basic", True).check_transport()


def test_lab_defaults_reach_a_fresh_host() -> None:
    """A lab host without transport settings is reached where a fresh Windows Server listens:
    HTTP 5985 (Enable-PSRemoting's only listener), Negotiate, every message encrypted."""
    ep = lab_endpoint(SEED.host("SVR1"))
    assert (ep.scheme, ep.port, ep.auth, ep.insecure) == ("http", 5985, "negotiate", False)
    assert ep.encryption == "always"


def test_https_validates_and_uses_tls_not_message_encryption() -> None:
    """`transport: https` goes to 5986 and validates the certificate; TLS protects it."""
    host = SEED.host("SVR1")
    https = host.connection.model_copy(update={"transport": Transport.https})
    ep = lab_endpoint(host.model_copy(update={"connection": https}))
    assert (ep.scheme, ep.port, ep.validate_certificate, ep.encryption) == (
        "https", 5986, True, "auto")


def test_pool_refuses_before_asking_for_the_secret() -> None:
    """The refusal happens before the credential is resolved or a socket opened."""
    asked: list[str] = []

    def lookup(name: str) -> ResolvedCredential:
        asked.append(name)
        return ResolvedCredential("u", Secret("p"))

    pool = SessionPool(lookup)
    with pytest.raises(InsecureTransport):
        pool.run(endpoint("10.1.2.3", "http", "basic"), Pipeline.one(Command.of("Get-VMHost")))
    assert asked == []
