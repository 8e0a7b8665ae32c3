"""`hvlab doctor FILE --sim` checks every host of the lab over WinRM."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hvlab.hostcheck import HostChecker
from hvlab.spec import LabSpec
from hvlab.specfile import load_lab
from simulator.fleet import Fleet

ROOT = Path(__file__).resolve().parents[2]
SEED_FILE = ROOT / "examples" / "classroom-lab.yaml"


@pytest.fixture
def seed() -> LabSpec:
    return load_lab(SEED_FILE)


@pytest.fixture
def fleet(seed: LabSpec, tmp_path: Path) -> Iterator[Fleet]:
    with Fleet(seed, tmp_path, speed=0, fresh=True, port=0, control=False,
               max_receive_wait=2.0) as running:
        yield running


def _rows(seed: LabSpec, fleet: Fleet) -> dict[tuple[str, str], tuple[bool | None, str, str]]:
    checker = HostChecker(seed, sim=True, home=fleet.home)
    try:
        return {(r.host, r.check): (r.ok, r.detail, r.fix) for r in checker.run()}
    finally:
        checker.close()


def test_every_host_reachable_and_clocks_in_step(seed: LabSpec, fleet: Fleet) -> None:
    """Bare hosts answer over WinRM; Hyper-V not yet installed is information, not failure."""
    rows = _rows(seed, fleet)
    for host in ("DC1", "SVR1", "SVR2"):
        assert rows[(host, "WinRM")][0] is True
        assert "Windows PowerShell 5.1" in rows[(host, "Windows")][1]
    assert rows[("SVR1", "Hyper-V module")][0] is None
    assert rows[("SVR2", "clock vs DC")][0] is True


def test_clock_skew_beyond_five_minutes_fails_with_fix(seed: LabSpec, fleet: Fleet) -> None:
    """A host 10 minutes off the DC fails the Kerberos clock check and names the fix."""
    fleet.world.host("SVR2").clock_skew = 600.0  # type: ignore[union-attr]
    ok, detail, fix = _rows(seed, fleet)[("SVR2", "clock vs DC")]
    assert ok is False and "600 s" in detail and "w32tm" in fix


def test_wrong_password_names_the_credential(seed: LabSpec, fleet: Fleet) -> None:
    """A rejected credential fails the WinRM check and says which credential to fix."""
    endpoints = fleet.home / "sim" / "endpoints.json"
    data = json.loads(endpoints.read_text())
    data["secrets"] = {reference: "wrong" for reference in data["secrets"]}
    endpoints.write_text(json.dumps(data))
    ok, detail, fix = _rows(seed, fleet)[("SVR1", "WinRM")]
    assert ok is False and "401" in detail and "credential 'domain-admin'" in fix
    assert "wrong" not in detail + fix


@pytest.mark.integration
def test_doctor_cli_reports_hosts(seed: LabSpec, fleet: Fleet) -> None:
    """The CLI shows a row per host check (Temporal is not running here, so it exits 1)."""
    env = {**os.environ, "HVLAB_HOME": str(fleet.home),
           "HVLAB_TEMPORAL_ADDRESS": "127.0.0.1:1", "HVLAB_CONNECT_TIMEOUT": "1"}
    result = subprocess.run([str(Path(sys.executable).parent / "hvlab"), "doctor",
                             str(SEED_FILE), "--sim"], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1
    for host in ("DC1", "SVR1", "SVR2"):
        assert f"{host}: WinRM" in result.stdout
