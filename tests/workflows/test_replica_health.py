"""ReplicationHealthWorkflow over the simulated fleet once replication has settled: the
relationship's health follows the replication cycles (reference §13.2), so switching SVR1's
replica listener rule off shows up as Warning, then Critical, and switching it back on as
Normal again, in the workflow's result and in ``hvlab_replication_health``.

The fleet runs at instant speed (every due cycle has run by the next read: Critical at once);
:class:`tests.sim.test_replica_health.ManualClock` moves simulated time step by step for the
Warning stage. Nothing here waits on real time."""

from __future__ import annotations

import uuid

import pytest
from temporalio.client import Client

from hvlab.metrics import REGISTRY
from hvlab.spec import LabSpec
from simulator.fleet import Fleet
from simulator.world import REPLICA_HTTP_RULE
from tests.sim.test_replica_health import ManualClock
from tests.workflows.conftest import mutating_counts
from tests.workflows.test_migration import lab_vm, ops_worker, ready_hosts
from tests.workflows.test_replication import replicate
from workflows.replica_health import ReplicationHealthInput, ReplicationHealthWorkflow

VM = "Linux01"


@pytest.fixture
def replicating(fleet: Fleet, seed: LabSpec) -> Fleet:
    """Both hosts ready; Linux01 runs on SVR2 (its primary in the lab file)."""
    ready_hosts(fleet.sim)
    lab_vm(fleet.sim, seed, VM)
    return fleet


async def check(client: Client, task_queue: str, seed: LabSpec
                ) -> tuple[str, str, list[str], float | None]:
    """Run the health workflow: (state, health, problems, gauge) for Linux01."""
    result = await client.execute_workflow(
        ReplicationHealthWorkflow.run, ReplicationHealthInput(spec=seed),
        id=f"health-{uuid.uuid4().hex[:6]}", task_queue=task_queue)
    [vm] = result.vms
    assert (vm.vm, vm.primary) == (VM, "SVR2")
    gauge = REGISTRY.get_sample_value("hvlab_replication_health", {"vm": VM})
    return vm.state, vm.health, result.problems, gauge


def listener(fleet: Fleet, enabled: bool) -> None:
    """SVR1's replica HTTP listener rule, switched in-process."""
    with fleet.sim.lock:
        rule = fleet.sim.world.firewall_rule(fleet.sim.host("SVR1"), REPLICA_HTTP_RULE)
        assert rule is not None
        rule.enabled = enabled


async def test_health_goes_critical_while_the_listener_is_off_at_instant_speed(
    client: Client, task_queue: str, replicating: Fleet, seed: LabSpec
) -> None:
    """Instant speed: with the rule off the next health run finds the missed cycles
    (Critical, gauge 2, a problem); with it back on, Normal and gauge 0. The health
    workflow sends no mutating command."""
    fleet = replicating
    async with ops_worker(client, task_queue, fleet):
        await replicate(client, task_queue, seed, VM)
        assert await check(client, task_queue, seed) == ("Replicating", "Normal", [], 0)
        before = mutating_counts(fleet)
        listener(fleet, False)
        assert await check(client, task_queue, seed) == ("Replicating", "Critical", [VM], 2)
        listener(fleet, True)
        assert await check(client, task_queue, seed) == ("Replicating", "Normal", [], 0)
        assert mutating_counts(fleet) == before


async def test_health_warns_after_one_missed_cycle_then_goes_critical(
    client: Client, task_queue: str, replicating: Fleet, seed: LabSpec
) -> None:
    """Simulated time, 5-minute cycles: with the rule off, one missed cycle is Warning
    (gauge 1), two are Critical (gauge 2); rule back on, the next cycle makes it Normal."""
    fleet = replicating
    async with ops_worker(client, task_queue, fleet):
        await replicate(client, task_queue, seed, VM)
        fleet.sim.clock = clock = ManualClock()
        listener(fleet, False)
        assert await check(client, task_queue, seed) == ("Replicating", "Normal", [], 0)
        clock.advance(301)
        assert await check(client, task_queue, seed) == ("Replicating", "Warning", [VM], 1)
        clock.advance(300)
        assert await check(client, task_queue, seed) == ("Replicating", "Critical", [VM], 2)
        listener(fleet, True)
        clock.advance(300)
        assert await check(client, task_queue, seed) == ("Replicating", "Normal", [], 0)
