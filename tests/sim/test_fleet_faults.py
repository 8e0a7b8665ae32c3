"""Fleet behaviour over real WinRM: reboots refuse connections, injected faults, control API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from hvlab.spec import LabSpec
from simulator.faults import FaultPlan
from simulator.fleet import Fleet
from tests.sim.conftest import PS, StepClock, hyperv_ready, lab_with_vm, run


def endpoints(fleet: Fleet) -> dict:
    return json.loads((fleet.dir / "endpoints.json").read_text())["hosts"]


def test_reboot_refuses_connections_until_the_host_is_back(fleet: Fleet) -> None:
    """During a reboot new connections are refused; afterwards the pending feature is active."""
    ep = endpoints(fleet)["SVR1"]
    ps = PS(ep)
    ps.run("Install-WindowsFeature", Name="Hyper-V", IncludeManagementTools=None)
    fleet.sim.clock = clock = StepClock()
    ps.run("Restart-Computer", Force=None)
    assert clock.waiting.acquire(timeout=10)  # the host is down, waiting out its reboot
    with pytest.raises(requests.exceptions.ConnectionError):
        PS(ep)
    clock.held = True
    clock.step(settle=False)
    assert fleet.sim.booted("SVR1").wait(10)
    fleet.servers["SVR1"].refuse_logons(0)  # the services a logon needs have started
    again = PS(ep)
    assert not again.run("Get-VMHost").had_errors
    again.close()


def test_logons_are_refused_while_a_rebooted_host_starts(fleet: Fleet) -> None:
    """Right after a reboot the listener is back before logons work: for the simulated
    ``logon_settle`` every logon gets HTTP 401 (pypsrp: AuthenticationError), with the same
    credentials that work before and after."""
    from pypsrp.exceptions import AuthenticationError

    ep = endpoints(fleet)["SVR1"]
    PS(ep).close()
    fleet.sim.clock = clock = StepClock()
    PS(ep).run("Restart-Computer", Force=None)
    assert clock.waiting.acquire(timeout=10)
    clock.held = True
    clock.step(settle=False)
    assert fleet.sim.booted("SVR1").wait(10)
    server = fleet.servers["SVR1"]
    with pytest.raises(AuthenticationError):
        PS(ep)
    assert server.logons_refused_starting >= 1
    assert server.auth_failures == 0  # not a wrong password: the host was still starting
    server.refuse_logons(0)
    again = PS(ep)
    assert not again.run("Get-CimInstance", ClassName="Win32_OperatingSystem").had_errors
    again.close()


def test_instant_reboot_ends_the_old_boot_s_shells(fleet: Fleet) -> None:
    """At speed 0 a reboot happens inside Restart-Computer and the host never refuses
    connections, but the shells of the old boot still die, as on a real host: the restart's
    answer arrives, the next command on that shell gets the shell-not-found fault, and a new
    shell works (and sees the new boot)."""
    from pypsrp.exceptions import WSManFaultError

    ep = endpoints(fleet)["SVR1"]
    ps = PS(ep)
    before = ps.run("Get-CimInstance", ClassName="Win32_OperatingSystem").output_objects
    restart = ps.run("Restart-Computer", Force=None)
    assert restart.errors == []
    with pytest.raises(WSManFaultError) as caught:
        ps.run("Get-Date")
    assert "shell" in str(caught.value).lower()
    assert fleet.servers["SVR1"].open_shells() == 0
    again = PS(ep)
    after = again.run("Get-CimInstance", ClassName="Win32_OperatingSystem").output_objects
    assert str(after[0].adapted_properties["LastBootUpTime"]) != str(
        before[0].adapted_properties["LastBootUpTime"])
    again.close()


def test_drop_fault_cuts_the_nth_matching_request(lab_spec: LabSpec, tmp_path: Path) -> None:
    plan = FaultPlan.parse([{"type": "drop", "host": "DC1", "command": "Get-Service", "nth": 1}])
    with Fleet(
        lab_spec, tmp_path, faults=plan, fresh=True, port=0, control=False, max_receive_wait=2.0
    ) as fleet:
        ep = endpoints(fleet)["DC1"]
        ps = PS(ep)
        with pytest.raises(Exception):  # noqa: B017 - pypsrp raises a transport error
            ps.run("Get-Service", Name="WinRM")
        ps = PS(ep)
        assert not ps.run("Get-Service", Name="WinRM").had_errors
        assert fleet.state()["counters"]["DC1"]["Get-Service"] == 1  # the dropped one never ran


def test_job_fault_fails_the_migration_at_n_percent(sim) -> None:  # type: ignore[no-untyped-def]
    lab_with_vm(sim)
    sim.faults.replace(
        FaultPlan.parse([{"type": "fail_job", "kind": "migration", "at_percent": 40}])
    )
    result = run(
        sim,
        "SVR2",
        "Move-VM",
        Name="Linux01",
        DestinationHost="SVR1",
        IncludeStorage=None,
        DestinationStoragePath="C:\\Hyper-V\\Linux01",
    )
    assert "failed at 40 percent" in result.failure
    assert (
        sim.host("SVR2").vm("Linux01") is not None and not sim.host("SVR2").vm("Linux01").migrating
    )


def test_reboot_fault_after_n_commands(sim) -> None:  # type: ignore[no-untyped-def]
    run(sim, "SVR1", "Install-WindowsFeature", Name="Hyper-V", IncludeManagementTools=None)
    sim.faults.replace(FaultPlan.parse([{"type": "reboot", "host": "SVR1", "after_commands": 2}]))
    run(sim, "SVR1", "Get-Service", Name="WinRM")
    assert sim.host("SVR1").pending_features
    run(sim, "SVR1", "Get-Service", Name="WinRM")
    assert sim.host("SVR1").has_feature("Hyper-V")


def test_control_api_state_reset_and_persistence(lab_spec: LabSpec, tmp_path: Path) -> None:
    """state/reset through the control API; the world reloads from disk on restart."""
    with Fleet(lab_spec, tmp_path, fresh=True, port=0, max_receive_wait=2.0) as fleet:
        hyperv_ready(fleet.sim, "SVR1")
        info = json.loads((fleet.dir / "control.json").read_text())
        url = f"http://127.0.0.1:{info['port']}"
        headers = {"X-Hvlab-Token": info["token"]}
        assert requests.get(f"{url}/state", timeout=5).status_code == 403
        state = requests.get(f"{url}/state", headers=headers, timeout=5).json()
        assert "Internal2" in state["hosts"]["SVR1"]["switches"]
    with Fleet(lab_spec, tmp_path, port=0, max_receive_wait=2.0) as fleet:
        assert "Internal2" in fleet.state()["hosts"]["SVR1"]["switches"]
        info = json.loads((fleet.dir / "control.json").read_text())
        url = f"http://127.0.0.1:{info['port']}"
        requests.post(f"{url}/reset", headers={"X-Hvlab-Token": info["token"]}, timeout=5)
        assert fleet.state()["hosts"]["SVR1"]["switches"] == {}
