"""A WinRM connection cut mid-step ends in a Temporal retry that does not repeat the change."""

from __future__ import annotations

import uuid

from temporalio.client import Client

from hvlab.spec import LabSpec
from simulator.fleet import Fleet
from simulator.winrm import FaultEffect, FaultRule
from tests.workflows.conftest import lab_worker
from workflows.lab_build import LabBuildInput, LabBuildWorkflow


async def test_dropped_connection_after_new_vmswitch_is_retried_once(
    client: Client, task_queue: str, fleet: Fleet, seed: LabSpec
) -> None:
    """SVR1 runs New-VMSwitch but the answer is lost; the activity fails as transient, Temporal
    retries it, the retry finds the switch and creates nothing: one New-VMSwitch per switch."""
    rule = FaultRule(FaultEffect.DROP, action="Command", command="New-VMSwitch", nth=2,
                     count=1, after_processing=True)
    fleet.servers["SVR1"].faults.add(rule)
    spec = seed.model_copy(update={"vms": [], "nat": [], "replication": [], "checkpoints": []})
    async with lab_worker(client, task_queue, fleet):
        result = await client.execute_workflow(
            LabBuildWorkflow.run, LabBuildInput(spec=spec, only=["host-prep"]),
            id=f"fault-{uuid.uuid4().hex[:6]}", task_queue=task_queue)
    assert set(result.units.values()) == {"done"}
    assert rule.fired == 1
    counters = fleet.state()["counters"]["SVR1"]
    assert counters["New-VMSwitch"] == 4
    assert set(fleet.state()["hosts"]["SVR1"]["switches"]) == {
        "External", "Internal", "Private", "Internal2"}
