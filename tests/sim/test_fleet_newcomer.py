"""The newcomer scenario over real WinRM: pypsrp + endpoints.json only."""

from __future__ import annotations

import json
import stat

from pypsrp.serializer import TaggedValue

from simulator.fleet import Fleet
from tests.sim.conftest import GB, PS, props


def test_endpoints_file_is_private_and_complete(fleet: Fleet) -> None:
    """endpoints.json names every host with its loopback address, port and an account that logs
    on to it joined or not (a member's local Administrator, the DC's domain admin), and the
    passwords the fleet generated, by reference."""
    path = fleet.dir / "endpoints.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    hosts = json.loads(path.read_text())["hosts"]
    assert set(hosts) == {"DC1", "SVR1", "SVR2"}
    assert hosts["SVR1"]["address"] == "127.0.0.11"
    assert hosts["SVR1"]["username"] == "Administrator"
    assert hosts["DC1"]["username"] == "KOSA\\Administrator"
    generated = json.loads(path.read_text())["secrets"]
    assert hosts["SVR1"]["password"] == generated["env:HVLAB_LOCAL_ADMIN_PASSWORD"]
    assert hosts["DC1"]["password"] == generated["env:HVLAB_DOMAIN_ADMIN_PASSWORD"]
    assert len(set(generated.values())) == len(generated) == 4  # one per reference
    assert hosts["SVR1"]["scheme"] == "http" and hosts["SVR1"]["auth"] == "ntlm"


def test_newcomer_builds_hyperv_host_and_vm(fleet: Fleet) -> None:
    """Install Hyper-V, reboot, create the four switches and a 4 GB VM; state_json shows them."""
    endpoints = json.loads((fleet.dir / "endpoints.json").read_text())["hosts"]
    ps = PS(endpoints["SVR1"])
    before = ps.run("Get-VM")
    assert before.had_errors and "is not recognized" in before.errors[0]
    result = ps.run("Install-WindowsFeature", Name="Hyper-V", IncludeManagementTools=None)
    assert str(props(result.output_objects[0])["RestartNeeded"]) == "Yes"
    assert str(props(result.output_objects[0])["ExitCode"]) == "SuccessRestartRequired"
    ps.run("Restart-Computer", Force=None)
    ps.close()
    ps = PS(endpoints["SVR1"])  # sessions are re-created after a reboot
    ps.run("New-VMSwitch", Name="External", NetAdapterName="Ethernet0", AllowManagementOS=True)
    for name, kind in (("Internal", "Internal"), ("Private", "Private"), ("Internal2", "Internal")):
        assert not ps.run("New-VMSwitch", Name=name, SwitchType=kind).had_errors
    vm = ps.run(
        "New-VM",
        Name="big",
        Generation=2,
        SwitchName="Internal",
        MemoryStartupBytes=TaggedValue("I64", 4 * GB),
    )
    assert not vm.had_errors, vm.errors
    shown = props(vm.output_objects[0])
    assert shown["MemoryStartup"] == 4 * GB and str(shown["State"]) == "Off"
    ps.close()
    state = fleet.state()["hosts"]["SVR1"]
    assert {s: v["type"] for s, v in state["switches"].items()} == {
        "External": "External",
        "Internal": "Internal",
        "Private": "Private",
        "Internal2": "Internal",
    }
    assert state["vms"]["big"]["memory"] == 4 * GB
    assert state["vms"]["big"]["nics"][0]["switch"] == "Internal"
    assert fleet.state()["counters"]["SVR1"]["New-VMSwitch"] == 4


def test_int32_overflow_never_reaches_the_host(fleet: Fleet) -> None:
    """A plain Python int above 2**31 goes out as <I32> and the request fails before New-VM."""
    endpoints = json.loads((fleet.dir / "endpoints.json").read_text())["hosts"]
    ps = PS(endpoints["DC1"])
    try:
        failed = False
        try:
            result = ps.run("Get-Service", Name="WinRM", OutBuffer=4 * GB)
            failed = result.had_errors
        except Exception:
            failed = True
        assert failed
    finally:
        ps.close()
