"""Object shapes, first boots, WinRM quotas and cut copies, through pypsrp to the fleet.

Each test fails when its rule (docs/simulator-fidelity.md) is removed:

- what Windows returns as an array stays one (the port filter's LocalPort is ``string[]``);
- FileSystem items found through a UNC path keep the UNC FullName;
- WinRM's MaxShellsPerUser and MaxConcurrentOperationsPerUser answer the QuotaLimit fault;
- a copy cut short leaves a truncated destination file that Get-VHD refuses;
- a sysprepped guest's first boot takes minutes of simulated time, and a Windows Server 2003
  guest (no integration services) never reports a heartbeat or addresses to the host, while
  what its first-boot commands configure answers once mini-setup has ended.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from pypsrp.exceptions import WSManFaultError
from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.wsman import WSMan

from simulator.clock import Clock
from simulator.fleet import Fleet
from simulator.winrm.faults import FaultRule
from simulator.winrm.service import Quotas
from simulator.winrm.soap import QUOTA_MAX_OPERATIONS, QUOTA_MAX_SHELLS
from simulator.world import SimFile
from tests.sim.conftest import GB, StepClock, hyperv_ready, props, run
from tests.sim.test_network import (
    SEED_CONFIG,
    Remote,
    offline_config,
    seed_guests,
    teluser_credential,
)


@pytest.fixture
def svr1(fleet: Fleet) -> Iterator[Remote]:
    remote = Remote(fleet, "SVR1")
    yield remote
    remote.close()


@pytest.fixture
def dc1(fleet: Fleet) -> Iterator[Remote]:
    remote = Remote(fleet, "DC1")
    yield remote
    remote.close()


def _wsman(fleet: Fleet, host: str) -> WSMan:
    ep = fleet.endpoints[host]
    return WSMan(ep["address"], port=ep["port"], username=ep["username"],
                 password=ep["password"], ssl=False, auth="ntlm", cert_validation=False,
                 connection_timeout=5, read_timeout=30)


# ---------------------------------------------------------------- arrays stay arrays


def test_port_filter_local_port_is_a_string_array(svr1: Remote) -> None:
    """MSFT_NetProtocolPortFilter.LocalPort is string[]: one port is a one-element array (a
    client comparing it with "5985" as a string fails on Windows)."""
    filters = svr1.cmd("Get-NetFirewallPortFilter").output
    winrm = next(props(f) for f in filters if props(f)["InstanceID"] == "WINRM-HTTP-In-TCP")
    assert winrm["LocalPort"] == ["5985"]
    assert winrm["RemotePort"] == ["Any"]
    assert svr1.cmd("Set-NetFirewallRule", Name="WINRM-HTTP-In-TCP",
                    LocalPort=["5985", "5986"]).errors == []
    filters = svr1.cmd("Get-NetFirewallPortFilter").output
    winrm = next(props(f) for f in filters if props(f)["InstanceID"] == "WINRM-HTTP-In-TCP")
    assert winrm["LocalPort"] == ["5985", "5986"]


# ---------------------------------------------------------------- UNC FullName


def test_items_under_a_unc_path_keep_the_unc_full_name(fleet: Fleet, dc1: Remote) -> None:
    """Get-ChildItem/Get-Item/New-Item through \\\\DC1\\smb report \\\\DC1\\smb\\..., as the
    FileSystem provider does; never the share's local folder C:\\smb."""
    assert run(fleet.sim, "DC1", "New-Item", Path="C:\\smb", ItemType="Directory").ok
    assert run(fleet.sim, "DC1", "New-SmbShare", Name="smb", Path="C:\\smb",
               FullAccess=["Administrators"]).ok
    fleet.sim.host("DC1").put_file(SimFile(path="C:\\smb\\x\\disk.vhdx", size=GB))
    listed = dc1.cmd("Get-ChildItem", Path="\\\\DC1\\smb").output
    assert [props(i)["FullName"] for i in listed] == ["\\\\DC1\\smb\\x"]
    item = dc1.cmd("Get-Item", Path="\\\\DC1\\smb\\x\\disk.vhdx").output
    assert props(item[0])["FullName"] == "\\\\DC1\\smb\\x\\disk.vhdx"
    assert props(item[0])["DirectoryName"] == "\\\\DC1\\smb\\x"
    made = dc1.cmd("New-Item", Path="\\\\DC1\\smb\\y", ItemType="Directory").output
    assert props(made[0])["FullName"] == "\\\\DC1\\smb\\y"
    local = dc1.cmd("Get-Item", Path="C:\\smb\\x").output
    assert props(local[0])["FullName"] == "C:\\smb\\x"


# ---------------------------------------------------------------- WinRM quotas


def test_max_shells_per_user_is_enforced_with_the_quota_fault(fleet: Fleet) -> None:
    """winrs/MaxShellsPerUser (default 30): the 31st shell of one user gets
    ERROR_WSMAN_QUOTA_MAX_SHELLS (0x803381A5) with the wsman:QuotaLimit subcode; closing one
    makes room."""
    server = fleet.servers["SVR1"]
    assert server.service.quotas.max_shells_per_user == 30
    wsman = _wsman(fleet, "SVR1")
    pools = []
    for _ in range(30):
        pool = RunspacePool(wsman)
        pool.open()
        pools.append(pool)
    extra = RunspacePool(wsman)
    with pytest.raises(WSManFaultError) as caught:
        extra.open()
    assert caught.value.code == QUOTA_MAX_SHELLS
    assert "maximum number of 30 concurrent shells" in str(caught.value.message)
    pools.pop().close()
    again = RunspacePool(wsman)
    again.open()
    for pool in [*pools, again]:
        pool.close()


def test_max_concurrent_operations_per_user_is_enforced(fleet: Fleet) -> None:
    """service/MaxConcurrentOperationsPerUser (default 1500; lowered to 1 here): a request
    while another of the same user is still being answered gets
    ERROR_WSMAN_QUOTA_MAX_OPERATIONS (0x803381A6)."""
    server = fleet.servers["SVR1"]
    assert server.service.quotas.max_concurrent_operations_per_user == 1500
    first, second = RunspacePool(_wsman(fleet, "SVR1")), RunspacePool(_wsman(fleet, "SVR1"))
    first.open()
    second.open()
    server.service.quotas = Quotas(max_concurrent_operations_per_user=1)
    release = threading.Event()

    def held(info: Any) -> FaultRule | None:  # hold the first pool's Command in progress
        if info.action == "Command" and not release.is_set():
            release.wait(10)
        return None

    server.faults.callback = held
    busy = PowerShell(first)
    busy.add_cmdlet("Get-Date")
    worker = threading.Thread(target=busy.invoke)
    worker.start()
    with server.service.operations_changed:
        assert server.service.operations_changed.wait_for(
            lambda: sum(server.service._operations.values()) >= 1, timeout=10)
    blocked = PowerShell(second)
    blocked.add_cmdlet("Get-Date")
    try:
        with pytest.raises(WSManFaultError) as caught:
            blocked.invoke()
        assert caught.value.code == QUOTA_MAX_OPERATIONS
    finally:
        release.set()
        worker.join(10)
        server.faults.callback = None
    server.service.quotas = Quotas()
    for pool in (first, second):
        pool.close()


# ---------------------------------------------------------------- cut copies


def test_a_stopped_copy_leaves_a_truncated_destination(fleet: Fleet, svr1: Remote) -> None:
    """Copy-Item writes the destination as it goes: while it runs, and after it was stopped,
    the destination exists, shorter than the source, and Get-VHD refuses it
    (ERROR_FILE_CORRUPT 0x80070570)."""
    hyperv_ready(fleet.sim, "SVR1")
    source = fleet.sim.host("SVR1").file("C:\\Golden\\linux01.vhdx")
    assert source is not None
    svr1.cmd("Get-Date")  # the shell exists before the clock is held
    fleet.sim.clock = clock = StepClock()
    copy = PowerShell(svr1.pool)
    copy.add_cmdlet("Copy-Item").add_parameter("Path", "C:\\Golden\\linux01.vhdx")
    copy.add_parameter("Destination", "C:\\Hyper-V\\VHDs\\cut.vhdx")
    copy.begin_invoke()
    assert clock.waiting.acquire(timeout=10)  # the copy is under way
    clock.held = True
    other = Remote(fleet, "SVR1")
    try:
        assert other.cmd("Test-Path", Path="C:\\Hyper-V\\VHDs\\cut.vhdx").output == [True]
        copy.stop()  # the client gives up (a cancelled activity, a dropped session)
        clock.step(settle=False)
        fleet.sim.clock = Clock(0)
        cut = fleet.sim.host("SVR1").file("C:\\Hyper-V\\VHDs\\cut.vhdx")
        assert cut is not None and cut.truncated and cut.size < source.size
        vhd = other.cmd("Get-VHD", Path="C:\\Hyper-V\\VHDs\\cut.vhdx")
        assert vhd.output == [] and "0x80070570" in vhd.errors[0]
    finally:
        other.close()
    whole = svr1.cmd("Copy-Item", Path="C:\\Golden\\linux01.vhdx",
                     Destination="C:\\Hyper-V\\VHDs\\whole.vhdx")
    assert whole.errors == []
    done = fleet.sim.host("SVR1").file("C:\\Hyper-V\\VHDs\\whole.vhdx")
    assert done is not None and not done.truncated and done.size == source.size


# ---------------------------------------------------------------- first boot


class ManualClock(Clock):
    """Non-instant simulated time that moves only when the test says (no real waits)."""

    def __init__(self, start: float) -> None:
        super().__init__(speed=1.0)
        self.at = start

    def now(self) -> float:
        return self.at

    def sleep(self, sim_seconds: float) -> None:
        return None


def start_seed_guests(fleet: Fleet) -> ManualClock:
    """The seed's legacy guests created and configured offline at instant speed, then started
    under a manual clock (their first boot)."""
    seed_guests(fleet.sim)
    for vm, config in SEED_CONFIG.items():
        extra = {"UserCredential": [teluser_credential()]} if "users" in config else {}
        assert not offline_config(fleet.sim, vm, config, **extra).had_errors
    clock = ManualClock(fleet.sim.clock.now())
    fleet.sim.clock = clock
    for vm in SEED_CONFIG:
        assert run(fleet.sim, "SVR1", "Start-VM", Name=vm).ok
    return clock


def test_first_boot_of_a_sysprepped_legacy_guest_takes_minutes(
    fleet: Fleet, svr1: Remote
) -> None:
    """win2003-1 (sysprepped image, configured offline) boots for the first time: Telnet behind
    the router's forward answers only after specialize and mini-setup (minutes), never at
    once; a 2003 guest has no integration services, so the host sees no heartbeat and no
    addresses even then."""
    clock = start_seed_guests(fleet)
    started = clock.at
    first_boot = clock.d.first_boot
    assert first_boot >= 120  # minutes, not the 30 s of a normal boot

    def forward_answers() -> bool:
        reply = svr1.cmd("Test-NetConnection", ComputerName="192.168.1.111", Port=23,
                         InformationLevel="Quiet")
        return reply.output == [True]

    assert not forward_answers()
    clock.at = started + first_boot - 10
    assert not forward_answers()
    vm = props(svr1.cmd("Get-VM", Name="win2003-1").output[0])
    assert str(vm["State"]) == "Running"
    clock.at = started + first_boot + 1
    assert forward_answers()
    vm = props(svr1.cmd("Get-VM", Name="win2003-1").output[0])
    assert str(vm["Heartbeat"]) == "NoContact"
    nics = svr1.cmd("Get-VMNetworkAdapter", VMName="win2003-1").output
    assert nics and all(props(n)["IPAddresses"] in ([], None) for n in nics)


def test_second_boot_is_an_ordinary_boot(fleet: Fleet, svr1: Remote) -> None:
    """Once specialized, a guest boots in the ordinary ``guest_boot`` time."""
    clock = start_seed_guests(fleet)
    clock.at += clock.d.first_boot + 1
    assert run(fleet.sim, "SVR1", "Stop-VM", Name="win2003-2", TurnOff=None).ok
    assert run(fleet.sim, "SVR1", "Start-VM", Name="win2003-2").ok
    vm = fleet.sim.host("SVR1").vm("win2003-2")
    assert vm is not None and vm.ready_at is not None
    assert vm.ready_at - clock.at == pytest.approx(clock.d.guest_boot)
