"""`hvlab doctor FILE --sim`: the preflight of every host of the lab over WinRM.

Each check has a test in which a simulated fleet starts with the gap a fresh real host may
have (``simulator/gaps.py``) and the check fails with its fix.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hvlab.hostcheck import HostChecker, doctor_commands
from hvlab.powershell.catalog import Catalog
from hvlab.powershell.command import Command
from hvlab.spec import LabSpec
from hvlab.specfile import load_lab
from simulator.faults import FaultPlan
from simulator.fleet import Fleet
from tests.activities.test_catalogue import as_bound

ROOT = Path(__file__).resolve().parents[2]
SEED_FILE = ROOT / "examples" / "classroom-lab.yaml"
SEED = load_lab(SEED_FILE)
Rows = dict[tuple[str, str], tuple[bool | None, str, str]]


@pytest.fixture
def seed() -> LabSpec:
    return SEED


def _fleet(home: Path, gaps: list[dict[str, Any]] | None = None) -> Fleet:
    plan = FaultPlan.parse({"gaps": gaps or []})
    return Fleet(SEED, home, speed=0, fresh=True, port=0, control=False,
                 max_receive_wait=2.0, faults=plan)


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    with _fleet(tmp_path) as running:
        yield running


def _rows(spec: LabSpec, home: Path) -> Rows:
    checker = HostChecker(spec, sim=True, home=home, connect_timeout=2)
    try:
        return {(r.host, r.check): (r.ok, r.detail, r.fix) for r in checker.run()}
    finally:
        checker.close()


CHECKS = ("listener", "domain credential", "WinRM session", "Windows", "host name",
          "network profile")
HYPERV_CHECKS = ("Hyper-V", "free space", "golden images", "DNS", "clock vs DC")


def test_a_ready_lab_passes_every_check(fleet: Fleet) -> None:
    """The seed's fresh hosts pass every check; Hyper-V not installed yet is information."""
    rows = _rows(SEED, fleet.home)
    failed = {key: value for key, value in rows.items() if value[0] is False}
    assert failed == {}
    for host in ("DC1", "SVR1", "SVR2"):
        for check in CHECKS:
            assert (host, check) in rows, (host, check)
    for host in ("SVR1", "SVR2"):
        for check in HYPERV_CHECKS:
            assert (host, check) in rows, (host, check)
    assert "Windows PowerShell 5.1" in rows[("SVR1", "Windows")][1]
    assert rows[("SVR1", "Hyper-V")][0] is None
    assert "not yet registered" in rows[("SVR1", "DNS")][1]


# (gap, the failing row, what its fix says)
GAPS = [
    ({"host": "SVR2", "kind": "listener_down"}, ("SVR2", "listener"),
     "on SVR2: Enable-PSRemoting -Force"),
    ({"host": "SVR1", "kind": "old_windows"}, ("SVR1", "Windows"),
     "Windows Server 2016 or later"),
    ({"host": "SVR1", "kind": "no_virtualization"}, ("SVR1", "Hyper-V"),
     "Set-VMProcessor -VMName SVR1 -ExposeVirtualizationExtensions $true"),
    ({"host": "SVR1", "kind": "disk_free", "size": "5GB"}, ("SVR1", "free space"),
     "point hosts[SVR1].paths"),
    ({"host": "SVR2", "kind": "golden_missing", "path": "C:\\Golden\\linux01.vhdx"},
     ("SVR2", "golden images"),
     "on SVR2: Copy-Item -Path <source>\\linux01.vhdx -Destination C:\\Golden\\linux01.vhdx"),
    ({"host": "SVR2", "kind": "computer_name", "name": "WIN-7Q2K4M1"}, ("SVR2", "host name"),
     "on SVR2: Rename-Computer -NewName SVR2 -Restart"),
    ({"host": "SVR2", "kind": "clock_skew", "seconds": 600}, ("SVR2", "clock vs DC"),
     "on SVR2: w32tm /config /manualpeerlist:192.168.1.100"),
    ({"host": "DC1", "kind": "dns_stopped"}, ("SVR1", "DNS"),
     "on DC1: Get-Service DNS"),
    ({"host": "SVR1", "kind": "network_public"}, ("SVR1", "network profile"),
     "on SVR1: Set-NetConnectionProfile -InterfaceAlias 'Ethernet0' -NetworkCategory Private"),
]


@pytest.mark.parametrize(("gap", "row", "fix"), GAPS, ids=[g[0]["kind"] for g in GAPS])
def test_each_gap_fails_its_check_with_the_fix(
    gap: dict[str, Any], row: tuple[str, str], fix: str, tmp_path: Path
) -> None:
    """A fleet started with one gap fails that check (on that host; every host for the DC's
    DNS) and no other, and the fix names the PowerShell line (on that host) or the lab-file
    change."""
    with _fleet(tmp_path, [gap]):
        rows = _rows(SEED, tmp_path)
    ok, detail, got = rows[row]
    assert ok is False, (row, detail)
    assert fix in got
    failed = {key for key, value in rows.items() if value[0] is False}
    assert {check for _, check in failed} == {row[1]}  # no other check fails
    if gap["kind"] != "dns_stopped":  # every other host asks the DC's DNS server too
        assert failed == {row}


def test_details_say_what_was_found(tmp_path: Path) -> None:
    """The failing rows say what the host reported: its other name, its PowerShell, the
    skew, the free space."""
    gaps = [{"host": "SVR1", "kind": "old_windows"},
            {"host": "SVR2", "kind": "computer_name", "name": "WIN-7Q2K4M1"},
            {"host": "SVR2", "kind": "clock_skew", "seconds": 600},
            {"host": "SVR1", "kind": "disk_free", "size": "5GB"}]
    with _fleet(tmp_path, gaps):
        rows = _rows(SEED, tmp_path)
    assert "6.3.9600, Windows PowerShell 4.0" in rows[("SVR1", "Windows")][1]
    assert "'WIN-7Q2K4M1'" in rows[("SVR2", "host name")][1]
    assert "600 s from DC1" in rows[("SVR2", "clock vs DC")][1]
    assert "C: 5GB free of" in rows[("SVR1", "free space")][1]


def test_wrong_password_names_the_credential(fleet: Fleet) -> None:
    """A rejected credential fails its own check and names it: the bootstrap credential on a
    host still to be joined, the domain credential there and on the DC."""
    endpoints = fleet.home / "sim" / "endpoints.json"
    data = json.loads(endpoints.read_text())
    data["secrets"] = {reference: "wrong" for reference in data["secrets"]}
    endpoints.write_text(json.dumps(data))
    rows = _rows(SEED, fleet.home)
    ok, detail, fix = rows[("SVR1", "bootstrap credential")]
    assert ok is False and "401" in detail and "credential 'local-admin'" in fix
    ok, detail, fix = rows[("SVR1", "domain credential")]
    assert ok is False and "401" in detail and "credential 'domain-admin'" in fix
    dc_ok, _, dc_fix = rows[("DC1", "domain credential")]
    assert dc_ok is False and "bootstrap_credential" not in dc_fix
    assert "wrong" not in detail + fix
    assert ("SVR1", "Windows") not in rows  # nothing more is asked without a session
    assert ("SVR1", "WinRM session") not in rows


def without_bootstrap(spec: LabSpec) -> LabSpec:
    return spec.model_copy(update={"hosts": [h.model_copy(update={"bootstrap_credential": None})
                                             for h in spec.hosts]})


def test_missing_bootstrap_credential_gets_the_lab_file_line(fleet: Fleet) -> None:
    """A host to be joined, without a bootstrap credential, refuses the domain credential
    (BootstrapCredentialMissing): the fix is the lab-file line naming the lab's credential
    for a local Administrator (not the guests' one), under that host."""
    rows = _rows(without_bootstrap(SEED), fleet.home)
    ok, detail, fix = rows[("SVR1", "domain credential")]
    assert ok is False and "401" in detail
    assert "`bootstrap_credential: local-admin` under hosts[SVR1]" in fix
    assert "guest-admin" not in fix
    assert rows[("DC1", "domain credential")][0] is True
    assert ("SVR1", "WinRM session") not in rows


def test_session_row_names_the_credential_the_pool_logged_on_with(fleet: Fleet) -> None:
    """Before the join the worker's session logs on with the bootstrap credential: the doctor
    says so instead of reporting the domain credential as accepted (the domain credential
    alone is refused by a workgroup host whose local password differs)."""
    rows = _rows(SEED, fleet.home)
    assert rows[("SVR1", "bootstrap credential")] == (True, "'local-admin' accepted", "")
    domain = rows[("SVR1", "domain credential")]
    assert domain[0] is None and "not accepted before the join" in domain[1]
    ok, detail, _ = rows[("SVR1", "WinRM session")]
    assert ok is True and detail.startswith("logged on as 'local-admin' (Administrator)")
    assert "after the join hvlab logs on as 'domain-admin'" in detail
    assert rows[("DC1", "WinRM session")] == (
        True, "logged on as 'domain-admin' (KOSA\\Administrator)", "")


def test_every_doctor_command_binds_against_the_catalogue() -> None:
    """Every command the doctor sends exists in the cmdlet catalogue and binds."""
    commands: list[Command] = doctor_commands(SEED)
    assert {"Get-CimInstance", "Get-WindowsFeature", "Test-Path", "Resolve-DnsName"} <= {
        c.cmdlet for c in commands}
    for command in commands:
        Catalog.load().bind(command.cmdlet, {k: as_bound(v)
                                             for k, v in command.parameters.items()})


@pytest.mark.integration
def test_doctor_cli_reports_hosts_as_json(tmp_path: Path) -> None:
    """The CLI's --json gives each host check with status and fix (Temporal is not running
    here, so it exits 1)."""
    with _fleet(tmp_path, [{"host": "SVR2", "kind": "clock_skew", "seconds": 900}]) as fleet:
        env = {**os.environ, "HVLAB_HOME": str(fleet.home),
               "HVLAB_TEMPORAL_ADDRESS": "127.0.0.1:1", "HVLAB_CONNECT_TIMEOUT": "1",
               "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        result = subprocess.run([str(Path(sys.executable).parent / "hvlab"), "doctor",
                                 str(SEED_FILE), "--sim", "--json"], env=env,
                                capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert document["ok"] is False
    by_key = {(c["host"], c["check"]): c for c in document["checks"]}
    for host in ("DC1", "SVR1", "SVR2"):
        assert by_key[(host, "listener")]["status"] == "ok"
    skew = by_key[("SVR2", "clock vs DC")]
    assert skew["status"] == "fail" and "w32tm" in skew["fix"]
    assert by_key[(None, "Temporal reachable")]["status"] == "fail"
