"""Hyper-V Replica: replica servers, enabling, initial replication, planned failover, reverse."""

from __future__ import annotations

from simulator.engine import Sim
from simulator.pstypes import prop
from simulator.world import REPLICA_HTTP_RULE
from tests.sim.conftest import lab_with_vm, run

PORT = 8080


def replica_server(sim: Sim, host: str, firewall: bool = True) -> None:
    assert run(
        sim,
        host,
        "Set-VMReplicationServer",
        ReplicationEnabled=True,
        AllowedAuthenticationType="Kerberos",
        KerberosAuthenticationPort=PORT,
        ReplicationAllowedFromAnyServer=True,
        DefaultStorageLocation="C:\\Hyper-V\\Replica",
    ).ok
    rule = sim.world.firewall_rule(sim.host(host), REPLICA_HTTP_RULE)
    assert rule is not None and not rule.enabled  # the role creates it disabled
    rule.enabled, rule.local_port = firewall, str(PORT)


def enable(sim: Sim) -> object:
    return run(
        sim,
        "SVR2",
        "Enable-VMReplication",
        VMName="Linux01",
        ReplicaServerName="svr1.kosa.vm",
        ReplicaServerPort=PORT,
        AuthenticationType="Kerberos",
        ReplicationFrequencySec=300,
    )


def state(sim: Sim, host: str) -> tuple[str, str, str]:
    out = run(sim, host, "Get-VMReplication", VMName="Linux01").output[0]
    return prop(out, "Mode").name, prop(out, "State").name, prop(out, "Health").name


def replicating(sim: Sim) -> None:
    lab_with_vm(sim)
    replica_server(sim, "SVR1")
    replica_server(sim, "SVR2")
    assert enable(sim).ok
    assert run(sim, "SVR2", "Start-VMInitialReplication", VMName="Linux01").ok


def test_enable_needs_the_replica_firewall_rule(sim: Sim) -> None:
    """Replication fails while the replica's listener rule is disabled."""
    lab_with_vm(sim)
    replica_server(sim, "SVR1", firewall=False)
    result = enable(sim)
    assert "could not be established" in result.failure
    test = run(
        sim,
        "SVR2",
        "Test-VMReplicationConnection",
        ReplicaServerName="svr1.kosa.vm",
        ReplicaServerPort=PORT,
        AuthenticationType="Kerberos",
    )
    assert test.errors


def test_enable_needs_matching_port(sim: Sim) -> None:
    lab_with_vm(sim)
    replica_server(sim, "SVR1")
    result = run(
        sim,
        "SVR2",
        "Test-VMReplicationConnection",
        ReplicaServerName="SVR1",
        ReplicaServerPort=80,
        AuthenticationType="Kerberos",
    )
    assert result.errors
    ok = run(
        sim,
        "SVR2",
        "Test-VMReplicationConnection",
        ReplicaServerName="SVR1",
        ReplicaServerPort=PORT,
        AuthenticationType="Kerberos",
    )
    assert ok.output == [
        "The connection to the specified Replica server with the specified "
        "parameters was successful."
    ]


def test_initial_replication_reaches_replicating_normal(sim: Sim) -> None:
    """Ready -> (initial replication) -> Replicating/Normal on both sides; replica NICs unplugged."""
    lab_with_vm(sim)
    replica_server(sim, "SVR1")
    assert enable(sim).ok
    assert state(sim, "SVR2") == ("Primary", "ReadyForInitialReplication", "Normal")
    assert state(sim, "SVR1") == ("Replica", "WaitingForInitialReplication", "Normal")
    assert sim.host("SVR1").vm("Linux01").nics[0].switch is None
    assert run(sim, "SVR2", "Start-VMInitialReplication", VMName="Linux01").ok
    assert state(sim, "SVR2") == ("Primary", "Replicating", "Normal")
    assert state(sim, "SVR1") == ("Replica", "Replicating", "Normal")
    replica_disk = sim.host("SVR1").vm("Linux01").disks[0].path
    assert sim.host("SVR1").file(replica_disk).size == 2 * 1024**3


def test_replica_vm_cannot_start_before_failover(sim: Sim) -> None:
    replicating(sim)
    assert "Replica virtual machine" in run(sim, "SVR1", "Start-VM", Name="Linux01").failure


def test_planned_failover_reverse_and_start(sim: Sim) -> None:
    """§13.3: stop, prepare, fail over, reverse, connect, start."""
    replicating(sim)
    prepare = run(sim, "SVR2", "Start-VMFailover", VMName="Linux01", Prepare=None, Confirm=False)
    assert "not turned off" in prepare.failure
    assert run(sim, "SVR2", "Stop-VM", Name="Linux01").ok
    assert run(sim, "SVR2", "Start-VMFailover", VMName="Linux01", Prepare=None, Confirm=False).ok
    assert state(sim, "SVR2")[1] == "PreparedForFailover"
    assert run(sim, "SVR1", "Start-VMFailover", VMName="Linux01", Confirm=False).ok
    assert state(sim, "SVR1")[1] == "FailedOverWaitingCompletion"
    assert run(sim, "SVR1", "Set-VMReplication", VMName="Linux01", Reverse=None).ok
    assert state(sim, "SVR1") == ("Primary", "Replicating", "Normal")
    assert state(sim, "SVR2") == ("Replica", "Replicating", "Normal")
    assert run(sim, "SVR1", "Connect-VMNetworkAdapter", VMName="Linux01", SwitchName="External").ok
    assert run(sim, "SVR1", "Start-VM", Name="Linux01").ok
    assert sim.host("SVR1").vm("Linux01").state == "Running"


def test_reverse_needs_old_primary_to_accept_replication(sim: Sim) -> None:
    replicating(sim)
    sim.host("SVR2").replica_server.enabled = False
    assert run(sim, "SVR2", "Stop-VM", Name="Linux01").ok
    assert run(sim, "SVR2", "Start-VMFailover", VMName="Linux01", Prepare=None).ok
    assert run(sim, "SVR1", "Start-VMFailover", VMName="Linux01").ok
    result = run(sim, "SVR1", "Set-VMReplication", VMName="Linux01", Reverse=None)
    assert "could not be established" in result.failure


def test_cancel_prepared_failover_and_test_failover(sim: Sim) -> None:
    replicating(sim)
    assert run(sim, "SVR1", "Start-VMFailover", VMName="Linux01", AsTest=None).ok
    assert sim.host("SVR1").vm("Linux01 - Test") is not None
    assert run(sim, "SVR1", "Stop-VMFailover", VMName="Linux01").ok
    assert sim.host("SVR1").vm("Linux01 - Test") is None
    assert run(sim, "SVR2", "Stop-VM", Name="Linux01").ok
    assert run(sim, "SVR2", "Start-VMFailover", VMName="Linux01", Prepare=None).ok
    assert run(sim, "SVR2", "Stop-VMFailover", VMName="Linux01").ok
    assert state(sim, "SVR2")[1] == "Replicating"


def test_remove_replication_on_each_side(sim: Sim) -> None:
    replicating(sim)
    assert run(sim, "SVR2", "Remove-VMReplication", VMName="Linux01").ok
    assert run(sim, "SVR2", "Get-VMReplication").output == []
    assert state(sim, "SVR1")[0] == "Replica"
    assert run(sim, "SVR1", "Remove-VMReplication", VMName="Linux01").ok
    assert sim.host("SVR1").vm("Linux01") is not None  # the replica VM stays
