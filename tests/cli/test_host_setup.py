"""`hvlab host-setup FILE HOST`: the one-time PowerShell for a fresh host's console."""

from __future__ import annotations

from pathlib import Path

import pytest

from hvlab.hostsetup import setup_commands, setup_script
from hvlab.powershell.catalog import Catalog
from hvlab.spec import Host, Transport
from hvlab.specfile import load_lab
from starter.cli import run
from tests.activities.test_catalogue import as_bound

SEED_FILE = Path(__file__).resolve().parents[2] / "examples" / "classroom-lab.yaml"
SEED = load_lab(SEED_FILE)


def _https(name: str) -> Host:
    host = SEED.host(name)
    conn = host.connection.model_copy(update={"transport": Transport.https,
                                              "address": "svr1.kosa.vm"})
    return host.model_copy(update={"connection": conn})


def test_prints_the_first_contact_for_a_hyperv_host(capsys: pytest.CaptureFixture[str]) -> None:
    """Name, network profile, Enable-PSRemoting, the firewall scope for the worker, the clock
    at the DC; exit 0."""
    assert run(["host-setup", str(SEED_FILE), "svr1", "--worker", "192.168.1.50"]) == 0
    text = capsys.readouterr().out
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines == [
        "if ($env:COMPUTERNAME -ne 'SVR1') { Rename-Computer -NewName SVR1 -Restart }",
        "Get-NetConnectionProfile | Where-Object NetworkCategory -eq 'Public' | "
        "Set-NetConnectionProfile -NetworkCategory Private",
        "Enable-PSRemoting -Force",
        "Set-NetFirewallRule -Name WINRM-HTTP-In-TCP,WINRM-HTTP-In-TCP-PUBLIC "
        "-RemoteAddress 192.168.1.50",
        "w32tm /config /manualpeerlist:192.168.1.100 /syncfromflags:manual /update",
        "w32tm /resync /force",
    ]
    assert "http://192.168.1.110:5985" in text
    assert "accepts only its local accounts" in text


def test_the_dc_gets_no_clock_or_bootstrap_lines() -> None:
    """The DC is the time and domain reference: no w32tm to itself, no bootstrap note."""
    text = setup_script(SEED, SEED.host("DC1"))
    assert "w32tm" not in text and "local accounts" not in text
    assert "Set-NetFirewallRule" not in text  # no --worker: Enable-PSRemoting's scope stays


def test_https_adds_the_listener_for_the_certificate_name() -> None:
    """With `transport: https` the listener takes the certificate whose SAN holds the
    lab's address, and TCP 5986 is opened."""
    text = setup_script(SEED, _https("SVR1"), "192.168.1.50")
    assert "$_.DnsNameList.Unicode -contains 'svr1.kosa.vm'" in text
    assert ("New-Item -Path WSMan:\\localhost\\Listener -Transport HTTPS -Address * "
            "-CertificateThumbPrint $cert.Thumbprint -Force") in text
    assert "-LocalPort 5986 -Action Allow -RemoteAddress 192.168.1.50" in text


def test_a_bootstrap_account_other_than_administrator_needs_the_token_policy() -> None:
    """A local admin other than the built-in Administrator gets a filtered token over the
    network (UAC remote restrictions): the script says how to lift it."""
    credentials = {**SEED.credentials,
                   "svr1-local": SEED.credentials["local-admin"].model_copy(
                       update={"username": "labadmin"})}
    spec = SEED.model_copy(update={"credentials": credentials})
    host = SEED.host("SVR1").model_copy(update={"bootstrap_credential": "svr1-local"})
    text = setup_script(spec, host)
    assert "bootstrap credential (labadmin)" in text
    assert "LocalAccountTokenFilterPolicy -Value 1" in text
    admin = SEED.host("SVR1").model_copy(update={"bootstrap_credential": "local-admin"})
    assert "LocalAccountTokenFilterPolicy" not in setup_script(SEED, admin)


@pytest.mark.parametrize("https", [False, True])
def test_catalogued_lines_bind(https: bool) -> None:
    """The script's cmdlet lines bind against the cmdlet catalogue (Get/Set-
    NetConnectionProfile and the WSMan listener's dynamic parameters are not catalogued:
    they are written as text)."""
    host = _https("SVR1") if https else SEED.host("SVR1")
    for command in setup_commands(SEED, host, "192.168.1.50"):
        Catalog.load().bind(command.cmdlet, {k: as_bound(v)
                                             for k, v in command.parameters.items()})


@pytest.mark.parametrize(("argv", "needle"), [
    (["SVR9"], "host 'SVR9' is not in"),
    (["SVR1", "--worker", "not-an-ip"], "--worker 'not-an-ip' is not an IP address"),
])
def test_bad_input_exits_2_naming_it(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown host or a bad worker address: exit 2, a message naming it, no script."""
    assert run(["host-setup", str(SEED_FILE), *argv]) == 2
    captured = capsys.readouterr()
    assert needle in captured.err and captured.out == ""
