"""An External switch on the adapter that carries a host's management address, over real WinRM.

With -AllowManagementOS $false the address is gone: New-VMSwitch (or Set-VMSwitch) answers, then
the host's listener goes down and stays down until the address is back (the switch removed, or
AllowManagementOS $true, from the console, i.e. in process). With $true the address moves to
'vEthernet (External)' and the host stays reachable (reference §6, §17).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from hvlab.spec import LabSpec
from simulator.fleet import Fleet
from tests.sim.conftest import PS, props, run

ADDRESS = "192.168.1.110"  # SVR1's management address in the seed lab


def endpoint(fleet: Fleet, host: str = "SVR1") -> dict[str, Any]:
    return json.loads((fleet.dir / "endpoints.json").read_text())["hosts"][host]


def with_hyperv(fleet: Fleet, host: str = "SVR1") -> None:
    """Hyper-V installed and the host rebooted (in process, instant clock)."""
    assert run(
        fleet.sim, host, "Install-WindowsFeature", Name="Hyper-V", IncludeManagementTools=None
    ).ok
    assert run(fleet.sim, host, "Restart-Computer", Force=None).ok


@pytest.fixture
def went_down(fleet: Fleet) -> Iterator[threading.Event]:
    """Set when the fleet takes a host's listener down (after the fleet's own handler ran)."""
    event = threading.Event()
    inner = fleet.sim.on_host_down

    def down(name: str) -> None:
        inner(name)
        event.set()

    fleet.sim.on_host_down = down
    yield event


def refused(ep: dict[str, Any]) -> bool:
    try:
        PS(ep).close()
    except requests.exceptions.ConnectionError:
        return True
    return False


def probe(fleet: Fleet, src: str = "SVR2") -> bool:
    """SVR1's WinRM port as another host of the lab sees it."""
    result = run(fleet.sim, src, "Test-NetConnection", ComputerName=ADDRESS, Port=5985,
                 InformationLevel="Quiet")  # fmt: skip
    assert result.terminating is None and len(result.output) == 1
    return result.output[0] is True


def test_without_management_os_the_host_answers_then_is_cut_off(
    fleet: Fleet, went_down: threading.Event
) -> None:
    with_hyperv(fleet)
    ep = endpoint(fleet)
    ps = PS(ep)
    created = ps.run(
        "New-VMSwitch", Name="External", NetAdapterName="Ethernet0", AllowManagementOS=False
    )
    assert created.errors == [] and not created.had_errors
    assert props(created.output_objects[0])["AllowManagementOS"] is False
    assert went_down.wait(10)
    assert not fleet.servers["SVR1"].is_up
    with pytest.raises(requests.exceptions.ConnectionError):
        ps.run("Get-VMSwitch")
    assert refused(ep)
    assert not probe(fleet)  # the address is gone for the other hosts too
    assert not PS(endpoint(fleet, "SVR2")).run("Get-Service", Name="WinRM").had_errors

    # from the console: the switch goes, Ethernet0 has its address again, WinRM answers
    assert run(fleet.sim, "SVR1", "Remove-VMSwitch", Name="External", Force=None).ok
    assert fleet.servers["SVR1"].is_up
    again = PS(ep)
    assert again.run("Get-VMSwitch").output_objects == []
    again.close()
    assert probe(fleet)


def test_with_management_os_the_host_stays_reachable(fleet: Fleet) -> None:
    with_hyperv(fleet)
    ep = endpoint(fleet)
    ps = PS(ep)
    created = ps.run(
        "New-VMSwitch", Name="External", NetAdapterName="Ethernet0", AllowManagementOS=True
    )
    assert not created.had_errors
    assert "SVR1" not in fleet.sim.cut_off  # decided with the command, nothing pending
    vnic = fleet.sim.host("SVR1").adapters["vEthernet (External)"]
    assert [ip.address for ip in vnic.ips] == [f"{ADDRESS}/24"]
    assert not ps.run("Get-VMSwitch", Name="External").had_errors
    other = PS(ep)
    assert not other.run("Get-VMHost").had_errors
    other.close()
    assert probe(fleet)


def test_set_vmswitch_without_management_os_cuts_off_until_set_back(
    fleet: Fleet, went_down: threading.Event
) -> None:
    with_hyperv(fleet)
    ep = endpoint(fleet)
    ps = PS(ep)
    assert not ps.run(
        "New-VMSwitch", Name="External", NetAdapterName="Ethernet0", AllowManagementOS=True
    ).had_errors
    changed = ps.run("Set-VMSwitch", Name="External", AllowManagementOS=False)
    assert changed.errors == [] and not changed.had_errors
    assert went_down.wait(10)
    assert refused(ep)
    assert "vEthernet (External)" not in fleet.sim.host("SVR1").adapters

    assert run(fleet.sim, "SVR1", "Set-VMSwitch", Name="External", AllowManagementOS=True).ok
    again = PS(ep)
    switch = again.run("Get-VMSwitch", Name="External").output_objects[0]
    assert props(switch)["AllowManagementOS"] is True
    again.close()
    assert probe(fleet)


def test_a_reboot_does_not_bring_a_cut_off_host_back(
    fleet: Fleet, went_down: threading.Event
) -> None:
    """The end of a reboot (or of a ``down`` fault) reopens the listener only when the host's
    address is reachable."""
    with_hyperv(fleet)
    assert run(
        fleet.sim,
        "SVR1",
        "New-VMSwitch",
        Name="External",
        NetAdapterName="Ethernet0",
        AllowManagementOS=False,
    ).ok
    assert went_down.wait(10)
    fleet.sim.on_host_up("SVR1")  # what boot._cycle and Sim.host_down's timer call at the end
    assert not fleet.servers["SVR1"].is_up
    assert refused(endpoint(fleet))


def test_reset_and_reload_follow_the_address(lab_spec: LabSpec, tmp_path: Path) -> None:
    """A reloaded world whose host is cut off starts with that listener down; a reset gives
    the host its address back and the listener comes up."""
    with Fleet(
        lab_spec, tmp_path, fresh=True, port=0, control=False, max_receive_wait=2.0
    ) as fleet:
        with_hyperv(fleet)
        assert run(
            fleet.sim,
            "SVR1",
            "New-VMSwitch",
            Name="External",
            NetAdapterName="Ethernet0",
            AllowManagementOS=False,
        ).ok
    with Fleet(lab_spec, tmp_path, port=0, control=False, max_receive_wait=2.0) as fleet:
        assert "External" in fleet.state()["hosts"]["SVR1"]["switches"]
        assert not fleet.servers["SVR1"].is_up and fleet.servers["SVR2"].is_up
        assert refused(endpoint(fleet))
        fleet.reset()
        assert fleet.servers["SVR1"].is_up and fleet.sim.cut_off == set()
        ps = PS(endpoint(fleet))
        assert not ps.run("Get-Service", Name="WinRM").had_errors
        ps.close()
