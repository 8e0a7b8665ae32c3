"""Hyper-V Replica: replica servers, enabling, initial replication, planned failover, reverse."""

from __future__ import annotations

from simulator.cmdlets.hyperv_replica import BAD_STATE
from simulator.engine import Sim
from simulator.pstypes import prop
from simulator.world import REPLICA_HTTP_RULE
from tests.sim.conftest import StepClock, lab_with_vm, run

PORT = 8080
STORAGE = "C:\\Hyper-V\\Replica"


def replica_server(sim: Sim, host: str, firewall: bool = True) -> None:
    assert run(sim, host, "New-Item", ItemType="Directory", Path=STORAGE, Force=None).ok
    assert run(
        sim,
        host,
        "Set-VMReplicationServer",
        ReplicationEnabled=True,
        AllowedAuthenticationType="Kerberos",
        KerberosAuthenticationPort=PORT,
        ReplicationAllowedFromAnyServer=True,
        DefaultStorageLocation=STORAGE,
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


def test_storage_location_must_exist(sim: Sim) -> None:
    """Set-VMReplicationServer creates no folder: a DefaultStorageLocation that does not
    exist on the host fails with ERROR_PATH_NOT_FOUND (0x80070003) and leaves the server as
    it was; once the folder exists the same command succeeds (docs/simulator-fidelity.md)."""
    lab_with_vm(sim)
    host = sim.host("SVR1")
    assert not host.folder_exists(STORAGE)
    before = host.replica_server.model_copy()
    params = {"ReplicationEnabled": True, "AllowedAuthenticationType": "Kerberos",
              "ReplicationAllowedFromAnyServer": True, "DefaultStorageLocation": STORAGE}
    refused = run(sim, "SVR1", "Set-VMReplicationServer", **params)
    assert refused.terminating is not None
    assert "0x80070003" in refused.terminating.message
    assert refused.terminating.category == "ObjectNotFound"
    assert host.replica_server == before
    assert not host.folder_exists(STORAGE)
    assert run(sim, "SVR1", "New-Item", ItemType="Directory", Path=STORAGE, Force=None).ok
    assert run(sim, "SVR1", "Set-VMReplicationServer", **params).ok
    assert host.replica_server.enabled and host.replica_server.default_storage == STORAGE


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


def test_initial_replication_needs_the_replica_listener(sim: Sim) -> None:
    """The listener rule switched off after enabling: Start-VMInitialReplication cannot reach
    the replica server and the relationship stays ReadyForInitialReplication."""
    lab_with_vm(sim)
    replica_server(sim, "SVR1")
    assert enable(sim).ok
    sim.world.firewall_rule(sim.host("SVR1"), REPLICA_HTTP_RULE).enabled = False
    result = run(sim, "SVR2", "Start-VMInitialReplication", VMName="Linux01")
    assert "could not be established" in result.failure and "0x00002EFD" in result.failure
    assert state(sim, "SVR2")[1] == "ReadyForInitialReplication"
    assert not [j for j in sim.world.jobs.values() if j.kind == "replication"]
    sim.world.firewall_rule(sim.host("SVR1"), REPLICA_HTTP_RULE).enabled = True
    assert run(sim, "SVR2", "Start-VMInitialReplication", VMName="Linux01").ok
    assert state(sim, "SVR2") == ("Primary", "Replicating", "Normal")


def test_initial_replication_needs_the_replica_host_up(sim: Sim) -> None:
    lab_with_vm(sim)
    replica_server(sim, "SVR1")
    assert enable(sim).ok
    sim.down.add("SVR1")
    result = run(sim, "SVR2", "Start-VMInitialReplication", VMName="Linux01")
    assert "could not be established" in result.failure
    assert state(sim, "SVR2")[1] == "ReadyForInitialReplication"


def test_prepare_failover_needs_the_replica_listener(sim: Sim) -> None:
    """Start-VMFailover -Prepare sends the pending changes: with the replica server refusing
    it fails with the connection error and the primary stays Replicating."""
    replicating(sim)
    assert run(sim, "SVR2", "Stop-VM", Name="Linux01").ok
    sim.host("SVR1").replica_server.enabled = False
    prepare = run(sim, "SVR2", "Start-VMFailover", VMName="Linux01", Prepare=None, Confirm=False)
    assert "could not be established" in prepare.failure
    assert state(sim, "SVR2")[:2] == ("Primary", "Replicating")
    sim.host("SVR1").replica_server.enabled = True
    assert run(sim, "SVR2", "Start-VMFailover", VMName="Linux01", Prepare=None).ok
    assert state(sim, "SVR2") == ("Primary", "PreparedForFailover", "Normal")


def needs_resync(sim: Sim) -> None:
    """The relationship waits for a resynchronization (as after an abrupt primary stop)."""
    for host in ("SVR2", "SVR1"):
        rep = sim.host(host).vm("Linux01").replication
        rep.state, rep.health = "WaitingForStartResynchronize", "Critical"


def test_resume_needs_resynchronize_to_leave_waiting_for_resync(sim: Sim) -> None:
    """§13.2: WaitingForStartResynchronize is left only with Resume-VMReplication
    -Resynchronize, which needs the replica server and ends Replicating/Normal both sides."""
    replicating(sim)
    needs_resync(sim)
    plain = run(sim, "SVR2", "Resume-VMReplication", VMName="Linux01")
    assert plain.failure == BAD_STATE
    assert state(sim, "SVR2")[1] == "WaitingForStartResynchronize"
    sim.world.firewall_rule(sim.host("SVR1"), REPLICA_HTTP_RULE).enabled = False
    refused = run(sim, "SVR2", "Resume-VMReplication", VMName="Linux01", Resynchronize=None)
    assert "could not be established" in refused.failure
    assert state(sim, "SVR2")[1] == "WaitingForStartResynchronize"
    sim.world.firewall_rule(sim.host("SVR1"), REPLICA_HTTP_RULE).enabled = True
    assert run(sim, "SVR2", "Resume-VMReplication", VMName="Linux01", Resynchronize=None).ok
    assert state(sim, "SVR2") == ("Primary", "Replicating", "Normal")
    assert state(sim, "SVR1") == ("Replica", "Replicating", "Normal")


def test_stop_replication_cancels_a_resynchronization(sim: Sim) -> None:
    """Stop-VMReplication cancels an ongoing resynchronization (§13.2; it does not remove the
    relationship); with none running it is refused."""
    replicating(sim)
    assert run(sim, "SVR2", "Stop-VMReplication", VMName="Linux01").failure == BAD_STATE
    assert state(sim, "SVR2") == ("Primary", "Replicating", "Normal")
    needs_resync(sim)
    sim.clock = clock = StepClock()
    started = run(sim, "SVR2", "Resume-VMReplication", VMName="Linux01", Resync=None, AsJob=None)
    assert started.ok and len(started.output) == 1
    clock.step(2)
    assert state(sim, "SVR2")[1] == "Resynchronizing"
    [job] = [j for j in sim.world.jobs.values() if j.command == "Resume-VMReplication"]
    assert job.job_type == 107 and 0 < job.percent < 100
    assert run(sim, "SVR2", "Stop-VMReplication", VMName="Linux01").ok
    assert state(sim, "SVR2")[1] == "WaitingForStartResynchronize"
    clock.step(settle=False)
    assert sim.job_done(job.id, timeout=10) and job.state == 8
    assert state(sim, "SVR2")[1] == "WaitingForStartResynchronize"
    assert sim.host("SVR1").vm("Linux01").replication is not None
