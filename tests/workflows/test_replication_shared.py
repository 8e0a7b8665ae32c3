"""ReplicationWorkflow with replica servers another relationship uses (issue 12, item 3): after
the seed's Linux01 replication (SVR2 -> SVR1, port 8080), replicating win2003-2 to SVR2 leaves
both servers on 8080 and Linux01 Replicating/Normal; a request for port 80 fails as Conflict
naming both VMs and changes nothing."""

from __future__ import annotations

import uuid

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.worker import Replayer

from hvlab.spec import LabSpec, Replication
from simulator.fleet import Fleet
from simulator.world import REPLICA_HTTP_RULE
from tests.conftest import sandbox_runner
from tests.workflows.conftest import mutating_counts
from tests.workflows.test_migration import lab_vm, ops_worker, ready_hosts
from workflows.registry import ALL_WORKFLOWS
from workflows.replication import (
    ReplicationWorkflow,
    ReplicationWorkflowInput,
    ReplicationWorkflowResult,
)

SECOND = "win2003-2"


@pytest.fixture
def two_vms(fleet: Fleet, seed: LabSpec) -> Fleet:
    """Both hosts ready; Linux01 runs on SVR2, win2003-2 on SVR1 (their lab-file hosts)."""
    ready_hosts(fleet.sim)
    lab_vm(fleet.sim, seed, "Linux01")
    lab_vm(fleet.sim, seed, SECOND)
    return fleet


async def replicate(client: Client, task_queue: str, spec: LabSpec, vm: str, replica: str,
                    workflow_id: str | None = None) -> ReplicationWorkflowResult:
    return await client.execute_workflow(
        ReplicationWorkflow.run,
        ReplicationWorkflowInput(spec=spec, vm=vm, replica=replica, poll_seconds=0.02),
        id=workflow_id or f"{spec.lab}-replicate-{vm}-{uuid.uuid4().hex[:6]}",
        task_queue=task_queue)


def relationship(fleet: Fleet, host: str, vm: str) -> tuple[str, str, str, int] | None:
    found = fleet.sim.host(host).vm(vm)
    if found is None or found.replication is None:
        return None
    rep = found.replication
    return rep.mode, rep.state, rep.health, rep.port


def linux01_untouched(fleet: Fleet) -> None:
    """Both replica servers and listener rules on 8080; Linux01 Replicating/Normal."""
    for name in ("SVR1", "SVR2"):
        host = fleet.sim.host(name)
        assert host.replica_server.enabled and host.replica_server.kerberos_port == 8080
        rule = fleet.sim.world.firewall_rule(host, REPLICA_HTTP_RULE)
        assert rule is not None and rule.enabled and rule.local_port == "8080"
    assert relationship(fleet, "SVR2", "Linux01") == ("Primary", "Replicating", "Normal", 8080)
    assert relationship(fleet, "SVR1", "Linux01") == ("Replica", "Replicating", "Normal", 8080)


async def test_second_vm_leaves_linux01_normal_on_8080(
    client: Client, task_queue: str, two_vms: Fleet, seed: LabSpec
) -> None:
    """`hvlab replicate FILE win2003-2 --to SVR2` after Linux01's replication (no lab-file
    entry for win2003-2): it replicates on 8080 (the port of Linux01's entry, which uses the
    same hosts), no replica server or rule changes, Linux01 stays Normal. The run (with the
    replica-servers-shared patch marker) replays without non-determinism."""
    workflow_id = f"{seed.lab}-replicate-{SECOND}-{uuid.uuid4().hex[:6]}"
    async with ops_worker(client, task_queue, two_vms):
        await replicate(client, task_queue, seed, "Linux01", "SVR1")
        linux01_untouched(two_vms)
        result = await replicate(client, task_queue, seed, SECOND, "SVR2", workflow_id)
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    scheduled = [e.activity_task_scheduled_event_attributes.activity_type.name
                 for e in history.events if e.HasField("activity_task_scheduled_event_attributes")]
    # the patched paths: the lab observed first, then the shared settings before any change
    assert next(n for n in scheduled if n != "lab.observe") == "replica.shared_settings"
    replayer = Replayer(workflows=ALL_WORKFLOWS, data_converter=pydantic_data_converter,
                        workflow_runner=sandbox_runner())
    replayed = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert replayed.replay_failure is None, replayed.replay_failure
    assert (result.primary, result.replica) == ("SVR1", "SVR2")
    assert (result.state, result.health) == ("Replicating", "Normal")
    assert set(result.changed) == {"enable", "initial"}
    assert relationship(two_vms, "SVR1", SECOND) == ("Primary", "Replicating", "Normal", 8080)
    assert relationship(two_vms, "SVR2", SECOND) == ("Replica", "Replicating", "Normal", 8080)
    linux01_untouched(two_vms)


async def test_conflicting_port_fails_naming_both_and_changes_nothing(
    client: Client, task_queue: str, two_vms: Fleet, seed: LabSpec
) -> None:
    """win2003-2 asks for port 80 while Linux01 replicates on 8080 through both hosts'
    replica servers: with both entries in the lab file the workflow fails as Conflict before
    any step; with only win2003-2's entry (Linux01's gone from the file) the hosts' report
    fails it as Conflict from replica.shared_settings. Both name win2003-2, Linux01 and the
    port, and no host receives a mutating command. Without any entry, win2003-2 then takes
    the servers' port (8080) and both relationships are Normal."""
    port80 = Replication(vm=SECOND, primary="SVR1", replica="SVR2", port=80)
    both = seed.model_copy(update={"replication": [*seed.replication, port80]})
    only_second = seed.model_copy(update={"replication": [port80]})
    none = seed.model_copy(update={"replication": []})
    async with ops_worker(client, task_queue, two_vms):
        await replicate(client, task_queue, seed, "Linux01", "SVR1")
        before = mutating_counts(two_vms)
        with pytest.raises(WorkflowFailureError) as in_file:
            await replicate(client, task_queue, both, SECOND, "SVR2")
        cause = in_file.value.cause
        assert isinstance(cause, ApplicationError) and cause.type == "Conflict"
        assert cause.non_retryable and SECOND in cause.message and "Linux01" in cause.message
        [details] = cause.details
        assert {(c["host"], c["setting"], c["current"], c["wanted"])
                for c in details["changes"]} == {("SVR1", "port", 8080, 80),
                                                 ("SVR2", "port", 8080, 80)}
        with pytest.raises(WorkflowFailureError) as observed:
            await replicate(client, task_queue, only_second, SECOND, "SVR2")
        activity = observed.value.cause
        assert isinstance(activity, ActivityError)
        error = activity.cause
        assert isinstance(error, ApplicationError) and error.type == "Conflict"
        assert SECOND in error.message and "Linux01" in error.message
        assert {(c["host"], c["setting"], c["current"], c["wanted"])
                for c in error.details[0]["changes"]} == {("SVR1", "port", 8080, 80),
                                                          ("SVR2", "port", 8080, 80)}
        assert mutating_counts(two_vms) == before
        assert relationship(two_vms, "SVR1", SECOND) is None
        linux01_untouched(two_vms)
        result = await replicate(client, task_queue, none, SECOND, "SVR2")
    assert (result.state, result.health) == ("Replicating", "Normal")
    assert relationship(two_vms, "SVR2", SECOND) == ("Replica", "Replicating", "Normal", 8080)
    linux01_untouched(two_vms)
