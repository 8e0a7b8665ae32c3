"""ReplicationWorkflow over the simulated fleet: Linux01 replicates from SVR2 to SVR1 (the
seed's port 8080) until Replicating/Normal, a rerun changes nothing, and a failed initial
replication removes what the run set up on both hosts."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

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


async def test_health_check_reads_the_primary_and_publishes_the_gauge(
    client: Client, task_queue: str, fleet: Fleet, seed: LabSpec, linux01: str
) -> None:
    """ReplicationHealthWorkflow reads both hosts, reports the Primary side's state/health and
    sets hvlab_replication_health; a Critical relationship, and one removed from the
    primary, are problems (gauge 2). It changes nothing on any host."""
    from hvlab.metrics import REGISTRY
    from workflows.replica_health import ReplicationHealthInput, ReplicationHealthWorkflow

    def gauge() -> float | None:
        return REGISTRY.get_sample_value("hvlab_replication_health", {"vm": linux01})

    async def check() -> tuple[str | None, str, str, list[str]]:
        result = await client.execute_workflow(
            ReplicationHealthWorkflow.run, ReplicationHealthInput(spec=seed),
            id=f"health-{uuid.uuid4().hex[:6]}", task_queue=task_queue)
        [vm] = result.vms
        return vm.primary, vm.state, vm.health, result.problems

    async with ops_worker(client, task_queue, fleet):
        await replicate(client, task_queue, seed, linux01)
        before = mutating_counts(fleet)
        assert await check() == ("SVR2", "Replicating", "Normal", [])
        assert gauge() == 0
        rule = fleet.sim.world.firewall_rule(fleet.sim.host("SVR1"), REPLICA_HTTP_RULE)
        assert rule is not None
        rule.enabled = False  # SVR1's listener off: the due replication cycles fail
        assert await check() == ("SVR2", "Replicating", "Critical", [linux01])
        assert gauge() == 2
        rule.enabled = True
        assert (await check())[2] == "Normal" and gauge() == 0
        fleet.sim.host("SVR2").vm(linux01).replication = None  # type: ignore[union-attr]
        assert await check() == (None, "NotConfigured", "Critical", [linux01])
        assert gauge() == 2
        assert mutating_counts(fleet) == before


async def test_health_cli_and_schedule(
    client: Client, task_queue: str, fleet: Fleet, seed: LabSpec, linux01: str,
    cli_env: None, capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    """`hvlab health FILE --sim` prints the primary's view and exits 0 when Normal, 1 when
    not; `hvlab schedule health --every 1m` creates <lab>-replication-health-schedule whose
    triggered run reads health; bad --every and a lab without replication exit 2."""
    from datetime import timedelta

    from temporalio.client import ScheduleActionExecutionStartWorkflow

    from hvlab.specfile import dump_lab
    from tests.sim.conftest import SEED
    from tests.workflows.conftest import hvlab
    from workflows.replica_health import ReplicationHealthResult

    schedule_id = "sim.classroom-replication-health-schedule"
    async with ops_worker(client, task_queue, fleet):
        await replicate(client, task_queue, seed, linux01)
        capsys.readouterr()
        assert await hvlab("health", str(SEED), "--sim") == 0
        printed = capsys.readouterr().out
        assert "Linux01" in printed and "Replicating" in printed and "Normal" in printed
        rule = fleet.sim.world.firewall_rule(fleet.sim.host("SVR1"), REPLICA_HTTP_RULE)
        assert rule is not None
        rule.enabled = False  # SVR1's listener off: the due replication cycles fail
        assert await hvlab("health", str(SEED), "--sim") == 1
        assert await hvlab("schedule", "health", str(SEED), "--every", "1m", "--sim") == 0
        handle = client.get_schedule_handle(schedule_id)
        described = await handle.describe()
        assert [i.every for i in described.schedule.spec.intervals] == [timedelta(minutes=1)]
        await handle.trigger()
        started = None
        for _ in range(400):
            actions = (await handle.describe()).info.recent_actions
            started = next((a.action.workflow_id for a in actions if isinstance(
                a.action, ScheduleActionExecutionStartWorkflow)), None)
            if started:
                break
            await asyncio.sleep(0.05)
        assert started is not None
        result = await client.get_workflow_handle(
            started, result_type=ReplicationHealthResult).result()
        assert result.problems == [linux01] and result.vms[0].health == "Critical"
        await handle.delete()
    assert await hvlab("schedule", "health", str(SEED), "--every", "5x", "--sim") == 2
    assert await hvlab("schedule", "health", str(SEED), "--every", "10s", "--sim") == 2
    bare = tmp_path / "no-replication.yaml"
    bare.write_text(dump_lab(seed.model_copy(update={"replication": [], "exercises": []})))
    assert await hvlab("health", str(bare), "--sim") == 2
    assert "no replication entries" in capsys.readouterr().err
