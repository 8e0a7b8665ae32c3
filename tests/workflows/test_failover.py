"""PlannedFailoverWorkflow over the simulated fleet: Linux01 (replicated SVR2 -> SVR1) fails
over with reverse replication and runs on SVR1 as the primary; the approval gate lets it on
(and rejects an approval nobody waits for) or times out and cancels the prepared failover;
a cancel after prepare runs Stop-VMFailover and restarts the primary; a test failover
creates and removes the test VM."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import (
    Client,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.worker import Replayer

from hvlab.spec import LabSpec
from simulator.engine import Sim
from simulator.fleet import Fleet
from simulator.world import REPLICA_HTTP_RULE
from starter.cli import run as cli
from tests.sim.conftest import run
from tests.workflows.test_migration import count, eventually, lab_vm, ops_worker, ready_hosts
from tests.workflows.test_replication import relationship
from workflows.failover import (
    Approval,
    PlannedFailoverInput,
    PlannedFailoverResult,
    PlannedFailoverWorkflow,
)
from workflows.registry import ALL_WORKFLOWS

PORT = 8080


def replicating(sim: Sim, spec: LabSpec) -> None:
    """Linux01 runs on SVR2 and replicates to SVR1 (port 8080), Replicating/Normal."""
    ready_hosts(sim)
    lab_vm(sim, spec, "Linux01")
    for host in ("SVR1", "SVR2"):
        assert run(sim, host, "Set-VMReplicationServer", ReplicationEnabled=True,
                   AllowedAuthenticationType="Kerberos", KerberosAuthenticationPort=PORT,
                   ReplicationAllowedFromAnyServer=True,
                   DefaultStorageLocation="C:\\Hyper-V\\Replica").ok
        assert run(sim, host, "Set-NetFirewallRule", Name=REPLICA_HTTP_RULE,
                   LocalPort=[str(PORT)]).ok
        assert run(sim, host, "Enable-NetFirewallRule", Name=REPLICA_HTTP_RULE).ok
    assert run(sim, "SVR2", "Enable-VMReplication", VMName="Linux01",
               ReplicaServerName="svr1.kosa.vm", ReplicaServerPort=PORT,
               AuthenticationType="Kerberos", ReplicationFrequencySec=300).ok
    assert run(sim, "SVR2", "Start-VMInitialReplication", VMName="Linux01").ok


@pytest.fixture
def linux01(fleet: Fleet, seed: LabSpec) -> str:
    replicating(fleet.sim, seed)
    assert relationship(fleet, "SVR2") == ("Primary", "Replicating", "Normal")
    return "Linux01"


def state(fleet: Fleet, host: str, vm: str = "Linux01") -> str | None:
    found = fleet.sim.host(host).vm(vm)
    return None if found is None else str(found.state)


async def start(client: Client, task_queue: str, seed: LabSpec, **options: Any
                ) -> WorkflowHandle[Any, PlannedFailoverResult]:
    request = PlannedFailoverInput(spec=seed, vm="Linux01", poll_seconds=0.02, **options)
    return await client.start_workflow(
        PlannedFailoverWorkflow.run, request, task_queue=task_queue,
        id=f"{seed.lab}-failover-Linux01-{uuid.uuid4().hex[:6]}")


async def waiting_for_approval(handle: WorkflowHandle[Any, Any]) -> None:
    async def waiting() -> bool:
        progress = await handle.query(PlannedFailoverWorkflow.progress)
        return any(s.name == "approval" and s.state == "running" for s in progress.steps)

    await eventually(waiting)


async def test_planned_failover_with_reverse(
    client: Client, task_queue: str, fleet: Fleet, seed: LabSpec, linux01: str
) -> None:
    """Stop, prepare, fail over, complete, reverse, connect the replica's unconnected NIC,
    start: Linux01 runs on SVR1 as the primary on External, SVR2 holds the replica, both
    Replicating/Normal."""
    async with ops_worker(client, task_queue, fleet):
        result = await (await start(client, task_queue, seed)).result()
    assert (result.primary, result.replica, result.state) == ("SVR1", "SVR2",
                                                              "Replicating/Normal")
    assert relationship(fleet, "SVR1") == ("Primary", "Replicating", "Normal")
    assert relationship(fleet, "SVR2") == ("Replica", "Replicating", "Normal")
    assert state(fleet, "SVR1") == "Running" and state(fleet, "SVR2") == "Off"
    nic = fleet.sim.host("SVR1").vm(linux01).nics[0]  # type: ignore[union-attr]
    assert nic.switch == "External"
    steps = {s.name: s.state for s in result.progress.steps}
    assert steps.pop("wait-normal") == "unchanged" and set(steps.values()) == {"done"}, steps


async def test_approval_lets_the_failover_go_on(
    client: Client, task_queue: str, fleet: Fleet, seed: LabSpec, linux01: str,
    temporal_address: str, hvlab_home: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    """The failover waits prepared until `hvlab approve ID`; a second approval is rejected
    (exit 2) because nothing waits any more; the history replays."""
    monkeypatch.setenv("HVLAB_TEMPORAL_ADDRESS", temporal_address)
    async with ops_worker(client, task_queue, fleet):
        handle = await start(client, task_queue, seed, approval_timeout=60, reverse=False)
        await waiting_for_approval(handle)
        assert relationship(fleet, "SVR2") == ("Primary", "PreparedForFailover", "Normal")
        assert count(fleet, "SVR1", "Start-VMFailover") == 0
        assert await asyncio.to_thread(cli, ["approve", handle.id, "--by", "alice"]) == 0
        assert "approved by alice" in capsys.readouterr().out
        with pytest.raises(WorkflowUpdateFailedError) as rejected:
            await handle.execute_update(PlannedFailoverWorkflow.approve, Approval(by="bob"))
        assert "not waiting" in str(rejected.value.cause)
        assert await asyncio.to_thread(cli, ["approve", handle.id]) == 2
        rejected_text = capsys.readouterr().err  # the run may have finished by now
        assert "not waiting" in rejected_text or "already completed" in rejected_text
        result = await handle.result()
    await Replayer(workflows=ALL_WORKFLOWS, data_converter=pydantic_data_converter
                   ).replay_workflow(await handle.fetch_history())
    assert result.approved_by == "alice" and result.primary == "SVR1"
    assert state(fleet, "SVR1") == "Running"
    assert relationship(fleet, "SVR1") == ("Replica", "FailedOver", "Warning")


async def test_approval_timeout_cancels_the_prepared_failover(
    client: Client, task_queue: str, fleet: Fleet, seed: LabSpec, linux01: str
) -> None:
    """Without an approval in time Stop-VMFailover cancels the prepare on SVR2, Linux01
    runs there again and the workflow fails as ApprovalTimeout."""
    async with ops_worker(client, task_queue, fleet):
        handle = await start(client, task_queue, seed, approval_timeout=0.5)
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "ApprovalTimeout"
    assert "Stop-VMFailover" in cause.message
    assert count(fleet, "SVR2", "Stop-VMFailover") == 1
    assert count(fleet, "SVR1", "Start-VMFailover") == 0
    assert relationship(fleet, "SVR2") == ("Primary", "Replicating", "Normal")
    assert state(fleet, "SVR2") == "Running"


async def test_cancel_after_prepare_stops_the_failover(
    client: Client, task_queue: str, fleet: Fleet, seed: LabSpec, linux01: str
) -> None:
    """A cancel while the failover is prepared runs Stop-VMFailover on the primary and starts
    Linux01 there again; the replica never failed over."""
    async with ops_worker(client, task_queue, fleet):
        handle = await start(client, task_queue, seed, approval_timeout=60)
        await waiting_for_approval(handle)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
    assert isinstance(failed.value.cause, CancelledError)
    assert count(fleet, "SVR2", "Stop-VMFailover") == 1
    assert count(fleet, "SVR1", "Start-VMFailover") == 0
    assert relationship(fleet, "SVR2") == ("Primary", "Replicating", "Normal")
    assert relationship(fleet, "SVR1") == ("Replica", "Replicating", "Normal")
    assert state(fleet, "SVR2") == "Running"


async def test_test_failover_creates_and_removes_the_test_vm(
    client: Client, task_queue: str, fleet: Fleet, seed: LabSpec, linux01: str
) -> None:
    """A test failover starts 'Linux01 - Test' on SVR1 and removes it again; the primary
    keeps running and the replication stays as it was."""
    async with ops_worker(client, task_queue, fleet):
        result = await (await start(client, task_queue, seed, test=True)).result()
    assert result.test and result.state == "test VM Linux01 - Test removed"
    assert count(fleet, "SVR1", "Start-VMFailover") == 1
    assert count(fleet, "SVR1", "Stop-VMFailover") == 1
    assert state(fleet, "SVR1", "Linux01 - Test") is None
    assert state(fleet, "SVR2") == "Running"
    assert relationship(fleet, "SVR1") == ("Replica", "Replicating", "Normal")
