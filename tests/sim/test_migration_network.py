"""Live migration over the network (reference §11, §12.2): the destination's migration networks
with UseAnyNetworkForMigration off, and TCP 6600 ('Hyper-V (MIG-TCP-In)') from the source."""

from __future__ import annotations

from simulator.engine import Sim
from simulator.pstypes import prop
from simulator.world import MIGRATION_RULE
from tests.sim.conftest import lab_with_vm, run
from tests.sim.test_hyperv_migration import compare_vm, move

REFUSED = (
    "No connection could be made because the target machine actively refused it. (0x8007274D)."
)
TIMED_OUT = (
    "A connection attempt failed because the connected party did not properly respond after "
    "a period of time, or established connection failed because connected host has failed "
    "to respond. (0x8007274C)."
)


def connect_failed(sim: Sim, reason: str) -> str:
    vm_id = sim.host("SVR2").vm("Linux01").id.upper()
    return (
        "Virtual machine migration operation for 'Linux01' failed at migration source 'SVR2'. "
        f"(Virtual machine ID {vm_id})\nFailed to establish a connection with host 'SVR1': "
        f"{reason}"
    )


def migration_networks(sim: Sim, host: str, *subnets: str) -> None:
    """hvlab's host settings: UseAnyNetworkForMigration off and these networks only."""
    assert run(sim, host, "Set-VMHost", UseAnyNetworkForMigration=False).ok
    for priority, subnet in enumerate(subnets, start=1):
        assert run(sim, host, "Add-VMMigrationNetwork", Subnet=subnet, Priority=priority).ok


def assert_not_moved(sim: Sim) -> None:
    assert sim.host("SVR2").vm("Linux01") is not None
    assert sim.host("SVR1").vm("Linux01") is None


def test_seed_migration_network_moves(sim: Sim) -> None:
    """The seed lab's settings (192.168.1.0/24 only) contain both hosts' addresses."""
    lab_with_vm(sim)
    for host in ("SVR1", "SVR2"):
        migration_networks(sim, host, "192.168.1.0/24")
    result = move(sim)
    assert result.ok, result.failure
    assert sim.host("SVR1").vm("Linux01") is not None


def test_destination_without_an_address_in_its_migration_networks_refuses(sim: Sim) -> None:
    """With UseAnyNetworkForMigration off the destination listens only on addresses inside
    its MigrationNetworks; a wrong subnet leaves none, so the move fails until it is fixed."""
    lab_with_vm(sim)
    migration_networks(sim, "SVR1", "10.10.10.0/24")
    result = move(sim)
    assert result.errors == [connect_failed(sim, REFUSED)]
    assert "0x8009030E" not in result.failure
    assert_not_moved(sim)
    assert run(sim, "SVR1", "Add-VMMigrationNetwork", Subnet="192.168.1.0/24", Priority=2).ok
    result = move(sim)
    assert result.ok, result.failure


def test_use_any_network_ignores_the_list(sim: Sim) -> None:
    """UseAnyNetworkForMigration on: a list that matches nothing does not matter."""
    lab_with_vm(sim)
    migration_networks(sim, "SVR1", "10.10.10.0/24")
    assert run(sim, "SVR1", "Set-VMHost", UseAnyNetworkForMigration=True).ok
    result = move(sim)
    assert result.ok, result.failure


def test_source_networks_do_not_limit_the_destination(sim: Sim) -> None:
    """The setting governs incoming traffic: the source's own list plays no part."""
    lab_with_vm(sim)
    migration_networks(sim, "SVR2", "10.10.10.0/24")
    result = move(sim)
    assert result.ok, result.failure


def test_migration_network_on_a_vnic_the_source_cannot_reach_times_out(sim: Sim) -> None:
    """A host vNIC's address counts (here vEthernet (Internal)), but an Internal switch is
    local to SVR1, so SVR2 has no route to it."""
    lab_with_vm(sim)
    assert run(
        sim,
        "SVR1",
        "New-NetIPAddress",
        InterfaceAlias="vEthernet (Internal)",
        IPAddress="172.16.50.1",
        PrefixLength=24,
    ).ok
    migration_networks(sim, "SVR1", "172.16.50.0/24")
    result = move(sim)
    assert result.errors == [connect_failed(sim, TIMED_OUT)]
    assert_not_moved(sim)


def test_disabled_mig_tcp_in_rule_blocks_the_move(sim: Sim) -> None:
    """TCP 6600 dropped by the destination's firewall: Move-VM and Compare-VM fail alike (same
    error id as an unreachable destination, no delegation code) until the rule is back on."""
    lab_with_vm(sim)
    assert run(sim, "SVR1", "Disable-NetFirewallRule", DisplayName=MIGRATION_RULE).ok
    expected = connect_failed(sim, TIMED_OUT)
    result = move(sim)
    assert result.errors == [expected]
    assert "0x8009030E" not in result.failure
    assert_not_moved(sim)
    unreachable = run(sim, "SVR2", "Move-VM", Name="Linux01", DestinationHost="nosuchhost.kosa.vm")
    assert result.error_ids == unreachable.error_ids
    compared = compare_vm(sim)
    assert compared.errors == [expected] and compared.output == []
    assert run(sim, "SVR1", "Enable-NetFirewallRule", DisplayName=MIGRATION_RULE).ok
    result = move(sim)
    assert result.ok, result.failure


def test_destination_that_is_down_times_out(sim: Sim) -> None:
    """A destination off the network (``down`` fault) does not answer on 6600: the move
    times out and nothing moves; once it is back the same move succeeds."""
    lab_with_vm(sim)
    sim.host_down("SVR1", 3600)
    try:
        result = move(sim)
        assert result.errors == [connect_failed(sim, TIMED_OUT)]
        assert_not_moved(sim)
    finally:
        sim.host_up("SVR1")
    result = move(sim)
    assert result.ok, result.failure


def test_compare_vm_reports_no_problem_when_the_network_is_right(sim: Sim) -> None:
    lab_with_vm(sim)
    migration_networks(sim, "SVR1", "192.168.1.0/24")
    compared = compare_vm(sim)
    assert compared.ok, compared.failure
    assert prop(compared.output[0], "Incompatibilities") == []


def test_storage_move_ignores_migration_networks_and_port(sim: Sim) -> None:
    """Move-VMStorage stays on the host: no migration network, no TCP 6600."""
    lab_with_vm(sim)
    migration_networks(sim, "SVR2", "10.10.10.0/24")
    assert run(sim, "SVR2", "Disable-NetFirewallRule", DisplayName=MIGRATION_RULE).ok
    assert run(sim, "SVR2", "New-Item", ItemType="Directory", Path="C:\\Moved").ok
    result = run(
        sim, "SVR2", "Move-VMStorage", Name="Linux01", DestinationStoragePath="C:\\Moved\\Linux01"
    )
    assert result.ok, result.failure
    assert sim.host("SVR2").vm("Linux01").disks[0].path == "C:\\Moved\\Linux01\\Linux01.vhdx"
