"""ReplicationWorkflow over the simulated fleet: Linux01 replicates from SVR2 to SVR1 (the
seed's port 8080) until Replicating/Normal, a rerun changes nothing, and a failed initial
replication removes what the run set up on both hosts."""

from __future__ import annotations

import uuid

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError

from hvlab.spec import LabSpec
from simulator.faults import FaultPlan
from simulator.fleet import Fleet
from simulator.world import REPLICA_HTTP_RULE
from tests.workflows.conftest import mutating_counts
from tests.workflows.test_migration import lab_vm, ops_worker, ready_hosts
from workflows.replication import (
    ReplicationWorkflow,
    ReplicationWorkflowInput,
    ReplicationWorkflowResult,
)


@pytest.fixture
def linux01(fleet: Fleet, seed: LabSpec) -> str:
    """Both hosts ready; Linux01 runs on SVR2 (its primary in the lab file)."""
    ready_hosts(fleet.sim)
    lab_vm(fleet.sim, seed, "Linux01")
    return "Linux01"


def relationship(fleet: Fleet, host: str, vm: str = "Linux01") -> tuple[str, str, str] | None:
    found = fleet.sim.host(host).vm(vm)
    if found is None or found.replication is None:
        return None
    rep = found.replication
    return rep.mode, rep.state, rep.health


async def replicate(client: Client, task_queue: str, seed: LabSpec, vm: str
                    ) -> ReplicationWorkflowResult:
    return await client.execute_workflow(
        ReplicationWorkflow.run,
        ReplicationWorkflowInput(spec=seed, vm=vm, replica="SVR1", poll_seconds=0.02),
        id=f"{seed.lab}-replicate-{vm}-{uuid.uuid4().hex[:6]}", task_queue=task_queue)


async def test_replication_reaches_replicating_normal(
    client: Client, task_queue: str, fleet: Fleet, seed: LabSpec, linux01: str
) -> None:
    """Replica servers and listener rules (8080) on both hosts, Linux01 Primary on SVR2 and
    Replica on SVR1, both Replicating/Normal; a rerun sends no mutating command."""
    async with ops_worker(client, task_queue, fleet):
        result = await replicate(client, task_queue, seed, linux01)
        assert (result.primary, result.replica) == ("SVR2", "SVR1")
        assert (result.state, result.health) == ("Replicating", "Normal")
        assert relationship(fleet, "SVR2") == ("Primary", "Replicating", "Normal")
        assert relationship(fleet, "SVR1") == ("Replica", "Replicating", "Normal")
        for name in ("SVR1", "SVR2"):
            host = fleet.sim.host(name)
            assert host.replica_server.enabled and host.replica_server.kerberos_port == 8080
            rule = fleet.sim.world.firewall_rule(host, REPLICA_HTTP_RULE)
            assert rule is not None and rule.enabled and rule.local_port == "8080"
        assert set(result.changed) >= {"replica-server:SVR1", "replica-server:SVR2",
                                       "firewall:SVR1", "firewall:SVR2", "enable", "initial"}
        before = mutating_counts(fleet)
        again = await replicate(client, task_queue, seed, linux01)
        assert again.changed == [] and mutating_counts(fleet) == before


async def failed_seeding(client: Client, task_queue: str, fleet: Fleet, seed: LabSpec,
                         vm: str) -> None:
    """Run the workflow with the seeding job failing at 50 % (ReplicationFailed)."""
    fleet.set_faults(FaultPlan.parse([{"type": "fail_job", "host": "SVR2",
                                       "kind": "replication", "at_percent": 50}]))
    async with ops_worker(client, task_queue, fleet):
        with pytest.raises(WorkflowFailureError) as failed:
            await replicate(client, task_queue, seed, vm)
    cause = failed.value.cause
    assert isinstance(cause, ActivityError) and isinstance(cause.cause, ApplicationError)
    assert cause.cause.type == "ReplicationFailed"


async def test_failed_initial_replication_is_undone_on_both_sides(
    client: Client, task_queue: str, fleet: Fleet, seed: LabSpec, linux01: str
) -> None:
    """A failed seeding fails the workflow as ReplicationFailed; the relationship is gone on
    both hosts with the replica VM, the replica servers and listener rules this run turned on
    are off again (rules back on port 80) and the primary keeps running."""
    await failed_seeding(client, task_queue, fleet, seed, linux01)
    assert relationship(fleet, "SVR2") is None
    assert fleet.sim.host("SVR1").vm(linux01) is None
    assert fleet.sim.host("SVR2").vm(linux01).state == "Running"  # type: ignore[union-attr]
    for name in ("SVR1", "SVR2"):
        host = fleet.sim.host(name)
        assert not host.replica_server.enabled
        rule = fleet.sim.world.firewall_rule(host, REPLICA_HTTP_RULE)
        assert rule is not None and not rule.enabled and rule.local_port == "80"
