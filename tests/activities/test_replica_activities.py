"""Hyper-V Replica activities against the simulated fleet: replica server and firewall with
their compensations, enabling (and the host's refusal while the listener rule is off), initial
replication with progress heartbeats, planned failover, cancel, complete, reverse, test
failover, and removal on both sides."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.models import (
    HostInput,
    ReplicaFirewallInput,
    ReplicaServerInput,
    ReplicationInput,
    ReplicaVmInput,
    ReplicaWaitInput,
    VmInput,
)
from activities.replica import ReplicaActivities
from activities.vm import VmActivities
from hvlab.powershell.endpoints import SimEndpoints
from hvlab.powershell.session import SessionPool
from hvlab.spec import LabSpec
from simulator.clock import Clock
from simulator.faults import FaultPlan
from simulator.fleet import Fleet
from simulator.world import REPLICA_HTTP_RULE
from tests.activities.conftest import mutations
from tests.activities.test_migration_activities import JobDriver
from tests.sim.conftest import hyperv_ready, lab_with_vm

PORT = 8080
STORAGE = "C:\\Hyper-V\\Replica"


@pytest.fixture
def acts(sessions: SessionPool, fleet: Fleet, lab_spec: LabSpec) -> ReplicaActivities:
    return ReplicaActivities(sessions, SimEndpoints(lab_spec, fleet.home))


@pytest.fixture
def rep(lab_spec: LabSpec) -> ReplicationInput:
    """Linux01 from SVR2 to svr1.kosa.vm:8080 every 5 minutes (the seed's replication)."""
    return ReplicationInput.from_spec(lab_spec, "Linux01")


@pytest.fixture
def lab(fleet: Fleet) -> Iterator[Fleet]:
    lab_with_vm(fleet.sim)
    yield fleet
    fleet.sim.clock = Clock(0)


def accept(acts: ReplicaActivities, *hosts: str) -> None:
    for host in hosts:
        acts.server(ReplicaServerInput(host=host, port=PORT, storage=STORAGE))
        acts.firewall(ReplicaFirewallInput(host=host, port=PORT))


def replicating(acts: ReplicaActivities, rep: ReplicationInput) -> None:
    accept(acts, "SVR1", "SVR2")
    acts.enable(rep)
    acts.start_initial(rep)
    acts.wait_state(ReplicaWaitInput(host="SVR2", vm="Linux01", interval_seconds=0.01))


def state(fleet: Fleet, host: str, vm: str = "Linux01") -> tuple[str, str]:
    found = fleet.sim.host(host).vm(vm)
    assert found is not None and found.replication is not None
    return found.replication.mode, found.replication.state


def test_server_and_firewall_with_compensations(fleet: Fleet, acts: ReplicaActivities) -> None:
    """The replica server and its listener rule (port 8080) are set once; the compensations
    disable both (rule back on port 80) once. The storage folder, missing on a fresh host
    (which refuses Set-VMReplicationServer into it), is created first."""
    hyperv_ready(fleet.sim, "SVR1")
    assert not fleet.sim.host("SVR1").folder_exists(STORAGE)
    server = ReplicaServerInput(host="SVR1", port=PORT, storage=STORAGE)
    first = acts.server(server)
    assert first.changed and first.observed["previous"]["enabled"] is False
    assert first.observed["created_storage"] == STORAGE
    assert fleet.sim.host("SVR1").folder_exists(STORAGE)
    firewall = ReplicaFirewallInput(host="SVR1", port=PORT)
    opened = acts.firewall(firewall)
    assert opened.changed and opened.observed["previous"] == {"enabled": False, "port": "80"}
    host = fleet.sim.host("SVR1")
    rule = fleet.sim.world.firewall_rule(host, REPLICA_HTTP_RULE)
    assert rule is not None and rule.enabled and rule.local_port == "8080"
    assert host.replica_server.enabled and host.replica_server.kerberos_port == PORT
    before = mutations(fleet, "SVR1")
    assert not acts.server(server).changed and not acts.firewall(firewall).changed
    assert mutations(fleet, "SVR1") == before
    assert acts.disable_firewall(ReplicaFirewallInput(host="SVR1")).changed
    assert acts.disable_server(HostInput(host="SVR1")).changed
    assert not rule.enabled and rule.local_port == "80" and not host.replica_server.enabled
    again = acts.server(server)
    assert again.changed and again.observed["created_storage"] is None
    assert acts.disable_server(HostInput(host="SVR1")).changed
    before = mutations(fleet, "SVR1")
    assert not acts.disable_firewall(ReplicaFirewallInput(host="SVR1")).changed
    assert not acts.disable_server(HostInput(host="SVR1")).changed
    assert mutations(fleet, "SVR1") == before


def test_enable_fails_while_the_listener_rule_is_disabled(
    lab: Fleet, acts: ReplicaActivities, rep: ReplicationInput
) -> None:
    """With the replica's firewall rule off the connection test and the enable fail with the
    host's message (ReplicaConnectionFailed, not retried); opening the rule fixes it."""
    acts.server(ReplicaServerInput(host="SVR1", port=PORT, storage=STORAGE))
    for step in (acts.test_connection, acts.enable):
        with pytest.raises(ApplicationError) as caught:
            step(rep)
        assert caught.value.type == "ReplicaConnectionFailed" and caught.value.non_retryable
        assert "could not be established" in caught.value.message
    assert lab.sim.host("SVR2").vm("Linux01").replication is None  # type: ignore[union-attr]
    acts.firewall(ReplicaFirewallInput(host="SVR1", port=PORT))
    assert "successful" in acts.test_connection(rep).observed["message"]
    assert acts.enable(rep).changed


def test_initial_replication_fails_fast_when_the_listener_closes_after_enable(
    lab: Fleet, acts: ReplicaActivities, rep: ReplicationInput
) -> None:
    """The listener rule closed between enable and the initial replication: the start fails
    with the host's connection message as ReplicaConnectionFailed (a fix, not a retry)."""
    accept(acts, "SVR1", "SVR2")
    acts.enable(rep)
    rule = lab.sim.world.firewall_rule(lab.sim.host("SVR1"), REPLICA_HTTP_RULE)
    assert rule is not None
    rule.enabled = False
    with pytest.raises(ApplicationError) as caught:
        acts.start_initial(rep)
    assert caught.value.type == "ReplicaConnectionFailed" and caught.value.non_retryable
    assert state(lab, "SVR2") == ("Primary", "ReadyForInitialReplication")


def test_enable_initial_replication_and_remove(
    lab: Fleet, acts: ReplicaActivities, rep: ReplicationInput
) -> None:
    """Enable once; initial replication heartbeats its progress until Replicating/Normal;
    removal takes the relationship off both sides and the replica VM off SVR1, once."""
    accept(acts, "SVR1")
    enabled = acts.enable(rep)
    assert enabled.changed and enabled.observed["state"] == "ReadyForInitialReplication"
    before = mutations(lab, "SVR2")
    assert not acts.enable(rep).changed
    assert mutations(lab, "SVR2") == before
    driver = JobDriver(lab)
    started = acts.start_initial(rep)
    assert started.changed and started.observed["state"] == "InitialReplicationInProgress"
    assert not acts.start_initial(rep).changed
    env = ActivityEnvironment()
    beats: list[dict[str, Any]] = []

    def on_heartbeat(*details: Any) -> None:
        if details:
            beats.append(details[0])
            driver.advance()

    env.on_heartbeat = on_heartbeat
    done = env.run(acts.wait_state, ReplicaWaitInput(host="SVR2", vm="Linux01",
                                                     interval_seconds=0.01))
    assert (done.observed["state"], done.observed["health"]) == ("Replicating", "Normal")
    percents = [b["percent"] for b in beats if b["percent"] is not None]
    assert percents and percents == sorted(percents) and percents[-1] > percents[0]
    assert state(lab, "SVR1") == ("Replica", "Replicating")
    replica_disk = lab.sim.host("SVR1").vm("Linux01").disks[0].path  # type: ignore[union-attr]
    assert acts.remove(rep).changed
    assert lab.sim.host("SVR1").vm("Linux01") is None
    assert lab.sim.host("SVR1").file(replica_disk) is None
    primary = lab.sim.host("SVR2").vm("Linux01")
    assert primary is not None and primary.replication is None and primary.state == "Running"
    before1, before2 = mutations(lab, "SVR1"), mutations(lab, "SVR2")
    assert not acts.remove(rep).changed
    assert (mutations(lab, "SVR1"), mutations(lab, "SVR2")) == (before1, before2)


def test_failed_initial_replication_is_replication_failed(
    lab: Fleet, acts: ReplicaActivities, rep: ReplicationInput
) -> None:
    """A seeding job that fails (after 10 of its 20 progress steps) leaves Error/Critical:
    wait_state fails as ReplicationFailed, not retried; so does starting it again."""
    accept(acts, "SVR1")
    acts.enable(rep)
    lab.set_faults(FaultPlan.parse([{"type": "fail_job", "host": "SVR2", "kind": "replication",
                                     "at_percent": 50}]))
    driver = JobDriver(lab, sleeps=10)
    assert acts.start_initial(rep).observed["state"] == "InitialReplicationInProgress"
    driver.advance(10)
    driver.wait()
    with pytest.raises(ApplicationError) as waited:
        acts.wait_state(ReplicaWaitInput(host="SVR2", vm="Linux01", interval_seconds=0.01))
    assert waited.value.type == "ReplicationFailed" and waited.value.non_retryable
    assert "Error/Critical" in waited.value.message
    with pytest.raises(ApplicationError) as again:
        acts.start_initial(rep)
    assert again.value.type == "PreconditionFailed"
    assert acts.remove(rep).changed  # the replica VM's disk was never written
    assert lab.sim.host("SVR1").vm("Linux01") is None
    assert lab.sim.host("SVR2").vm("Linux01").replication is None  # type: ignore[union-attr]


def test_planned_failover_cancel_complete_reverse(
    lab: Fleet, acts: ReplicaActivities, rep: ReplicationInput, vm_activities: VmActivities
) -> None:
    """Prepare needs the VM off; prepare and failover are cancelled on the right sides; then
    prepare, fail over, complete and reverse, each once."""
    replicating(acts, rep)
    primary = ReplicaVmInput(host="SVR2", vm="Linux01")
    with pytest.raises(ApplicationError) as running:
        acts.prepare_failover(primary)
    assert running.value.type == "PreconditionFailed" and "vm.stop" in running.value.message
    assert "Start-VMFailover" not in lab.state()["counters"]["SVR2"]
    vm_activities.stop(VmInput(host="SVR2", vm="Linux01"))
    assert acts.prepare_failover(primary).observed["state"] == "PreparedForFailover"
    assert acts.failover(rep).observed["state"] == "FailedOverWaitingCompletion"
    before1, before2 = mutations(lab, "SVR1"), mutations(lab, "SVR2")
    assert not acts.prepare_failover(primary).changed and not acts.failover(rep).changed
    assert (mutations(lab, "SVR1"), mutations(lab, "SVR2")) == (before1, before2)
    assert acts.stop_failover(rep).changed
    assert state(lab, "SVR1") == ("Replica", "Replicating")
    assert state(lab, "SVR2") == ("Primary", "Replicating")
    before1, before2 = mutations(lab, "SVR1"), mutations(lab, "SVR2")
    assert not acts.stop_failover(rep).changed
    assert (mutations(lab, "SVR1"), mutations(lab, "SVR2")) == (before1, before2)
    acts.prepare_failover(primary)
    acts.failover(rep)
    replica = ReplicaVmInput(host="SVR1", vm="Linux01")
    assert acts.complete(replica).observed["state"] == "FailedOver"
    reversed_ = acts.reverse(rep)
    assert reversed_.changed and reversed_.observed["mode"] == "Primary"
    assert reversed_.observed["initial_replication_needed"] is False
    assert state(lab, "SVR1") == ("Primary", "Replicating")
    assert state(lab, "SVR2") == ("Replica", "Replicating")
    before1, before2 = mutations(lab, "SVR1"), mutations(lab, "SVR2")
    assert not acts.complete(replica).changed and not acts.reverse(rep).changed
    assert (mutations(lab, "SVR1"), mutations(lab, "SVR2")) == (before1, before2)


def test_test_failover_and_cleanup(
    lab: Fleet, acts: ReplicaActivities, rep: ReplicationInput
) -> None:
    """A test failover creates 'Linux01 - Test' on the replica once; cleanup removes it once
    and leaves the replication running."""
    replicating(acts, rep)
    replica = ReplicaVmInput(host="SVR1", vm="Linux01")
    started = acts.test_failover(replica)
    assert started.changed and started.observed["test_vm"] == "Linux01 - Test"
    assert lab.sim.host("SVR1").vm("Linux01 - Test") is not None
    before = mutations(lab, "SVR1")
    assert not acts.test_failover(replica).changed
    assert mutations(lab, "SVR1") == before
    assert acts.cleanup_test_failover(replica).changed
    assert lab.sim.host("SVR1").vm("Linux01 - Test") is None
    assert state(lab, "SVR1") == ("Replica", "Replicating")
    before = mutations(lab, "SVR1")
    assert not acts.cleanup_test_failover(replica).changed
    assert mutations(lab, "SVR1") == before


def test_reverse_refused_by_old_primary_then_failover_cancelled(
    lab: Fleet, acts: ReplicaActivities, rep: ReplicationInput, vm_activities: VmActivities
) -> None:
    """SVR2 does not accept replication: the reverse fails with the host's message
    (ReplicaConnectionFailed), and stop_failover undoes the failover and the prepare."""
    accept(acts, "SVR1")
    acts.enable(rep)
    acts.start_initial(rep)
    acts.wait_state(ReplicaWaitInput(host="SVR2", vm="Linux01", interval_seconds=0.01))
    vm_activities.stop(VmInput(host="SVR2", vm="Linux01"))
    acts.prepare_failover(ReplicaVmInput(host="SVR2", vm="Linux01"))
    acts.failover(rep)
    with pytest.raises(ApplicationError) as caught:
        acts.reverse(rep)
    assert caught.value.type == "ReplicaConnectionFailed" and caught.value.non_retryable
    assert "svr2.kosa.vm" in caught.value.message.lower()
    assert state(lab, "SVR1") == ("Replica", "FailedOverWaitingCompletion")
    undone = acts.stop_failover(rep)
    assert undone.changed and undone.observed["primary"]["state"] == "Replicating"
    assert state(lab, "SVR1") == ("Replica", "Replicating")
    assert state(lab, "SVR2") == ("Primary", "Replicating")
