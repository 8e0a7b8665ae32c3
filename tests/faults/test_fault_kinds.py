"""The ``down`` fault kind (simulator/faults.py): a host leaves the network for a while once
a job reaches a percentage; jobs with that host at their other end fail with Hyper-V's
connection error, its WinRM listener refuses connections, and it comes back on its own."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests

from hvlab.specfile import load_lab
from simulator.faults import FaultPlan
from simulator.fleet import Fleet
from tests.sim.conftest import PS, SEED, run
from tests.sim.test_hyperv_replica import enable, lab_with_vm, replica_server, state


def test_plan_parses_down_faults() -> None:
    plan = FaultPlan.parse([{"type": "down", "host": "SVR1", "kind": "replication",
                             "at_percent": 30, "seconds": 2.5}])
    fault = plan.faults[0]
    assert (fault.type, fault.host, fault.kind, fault.at_percent, fault.seconds) == (
        "down", "SVR1", "replication", 30, 2.5)
    with pytest.raises(ValueError):
        FaultPlan.parse([{"type": "offline", "host": "SVR1"}])


def wait_until(check, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_replica_host_down_fails_initial_replication_and_comes_back(tmp_path: Path) -> None:
    """SVR1 goes down when Linux01's seeding reaches 50 %: the seeding job fails with the
    connection error (0x00002EFE), the relationship is in Error/Critical, connections to SVR1
    are refused, and after the window SVR1 answers again; the fault fires once."""
    plan = FaultPlan.parse([{"type": "down", "host": "SVR1", "kind": "replication",
                             "at_percent": 50, "seconds": 1.0}])
    with Fleet(load_lab(SEED), tmp_path, faults=plan, fresh=True, port=0, control=False,
               max_receive_wait=2.0) as fleet:
        sim = fleet.sim
        lab_with_vm(sim)
        replica_server(sim, "SVR1")
        replica_server(sim, "SVR2")
        assert enable(sim).ok
        result = run(sim, "SVR2", "Start-VMInitialReplication", VMName="Linux01")
        assert result.failure == (
            "Hyper-V failed to replicate changes for virtual machine 'Linux01': The connection "
            "with the server was terminated abnormally (0x00002EFE). (Virtual machine ID "
            f"{sim.host('SVR2').vm('Linux01').id.upper()})")  # type: ignore[union-attr]
        assert state(sim, "SVR2") == ("Primary", "Error", "Critical")
        assert fleet.plan.faults[0].fired == 1
        endpoint = json.loads((fleet.dir / "endpoints.json").read_text())["hosts"]["SVR1"]
        assert "SVR1" in sim.down
        with pytest.raises(requests.exceptions.ConnectionError):
            PS(endpoint)
        wait_until(lambda: "SVR1" not in sim.down)
        back = PS(endpoint)
        assert not back.run("Get-VMHost").had_errors
        back.close()
        # a second seeding is not disturbed: the fault fired once
        assert run(sim, "SVR2", "Remove-VMReplication", VMName="Linux01").ok
        assert run(sim, "SVR1", "Remove-VM", Name="Linux01", Force=None).ok
        assert enable(sim).ok
        assert run(sim, "SVR2", "Start-VMInitialReplication", VMName="Linux01").ok
        assert state(sim, "SVR2") == ("Primary", "Replicating", "Normal")
