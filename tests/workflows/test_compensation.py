"""Compensation: a VmDeploy stopped at any step leaves the host as before; a cancelled build
compensates its running units; an unexpected host reboot during HostPrep is waited out."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle

from hvlab.spec import LabSpec
from simulator.faults import FaultPlan
from simulator.fleet import Fleet
from simulator.winrm import FaultEffect, FaultRule
from tests.workflows.conftest import lab_worker
from workflows.lab_build import LabBuildInput, LabBuildWorkflow
from workflows.progress import Progress
from workflows.vm_deploy import VmDeployInput, VmDeployWorkflow

# the step of VmDeploy(Linux01) and the command that does it
STEPS = [("disk", "Copy-Item"), ("create", "New-VM"), ("nic:External", "Add-VMNetworkAdapter"),
         ("start", "Start-VM")]


def svr2_only(seed: LabSpec) -> LabSpec:
    return seed.model_copy(update={"vms": [v for v in seed.vms if v.host == "SVR2"], "nat": [],
                                   "replication": [], "checkpoints": [], "shares": [],
                                   "delegation": []})


async def running_step(handle: WorkflowHandle[Any, Any], name: str, timeout: float = 30) -> None:
    """Wait until the workflow's progress shows ``name`` running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            progress = await handle.query("progress", result_type=Progress)
            if any(s.name == name and s.state == "running" for s in progress.steps):
                return
        except Exception:  # not started yet
            pass
        await asyncio.sleep(0.05)
    pytest.fail(f"step {name} never ran")


def linux01_files(fleet: Fleet) -> list[str]:
    host = fleet.world.host("SVR2")
    assert host is not None
    return [p for p in host.files if "linux01" in p.lower() and "golden" not in p.lower()]


@pytest.mark.parametrize(("step", "command"), STEPS, ids=[s for s, _ in STEPS])
async def test_cancel_at_each_vm_deploy_step_leaves_the_host_as_before(
    client: Client, task_queue: str, fleet: Fleet, seed: LabSpec, step: str, command: str
) -> None:
    """The step's command is slowed down; the workflow is cancelled while it runs; the saga
    removes the VM and its disk, so SVR2 has neither afterwards."""
    spec = svr2_only(seed)
    async with lab_worker(client, task_queue, fleet):
        await client.execute_workflow(
            LabBuildWorkflow.run, LabBuildInput(spec=spec, only=["host-prep"]),
            id=f"prep-{uuid.uuid4().hex[:6]}", task_queue=task_queue)
        fleet.servers["SVR2"].faults.add(FaultRule(FaultEffect.DELAY, action="Command",
                                                   command=command, delay=2.0))
        handle = await client.start_workflow(
            VmDeployWorkflow.run, VmDeployInput(spec=spec, vm="Linux01"),
            id=f"deploy-{step}-{uuid.uuid4().hex[:6]}", task_queue=task_queue)
        await running_step(handle, step)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
    assert "Linux01" not in fleet.state()["hosts"]["SVR2"]["vms"]
    assert linux01_files(fleet) == []


async def test_cancelled_build_compensates_running_units(
    client: Client, task_queue: str, fleet: Fleet, seed: LabSpec
) -> None:
    """Cancelling LabBuild while VMs deploy cancels those children, which remove their VMs."""
    spec = svr2_only(seed)
    fleet.servers["SVR2"].faults.add(FaultRule(FaultEffect.DELAY, action="Command",
                                               command="New-VM", delay=2.0))
    async with lab_worker(client, task_queue, fleet):
        handle = await client.start_workflow(
            LabBuildWorkflow.run, LabBuildInput(spec=spec, only=["host-prep", "vm-deploy"]),
            id=f"build-{uuid.uuid4().hex[:6]}", task_queue=task_queue)
        await running_step(handle, "vm-deploy:Linux01", timeout=60)
        child = client.get_workflow_handle(f"{handle.id}/vm-deploy:Linux01")
        await running_step(child, "create")
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        with pytest.raises(WorkflowFailureError):
            await child.result()
    assert "Linux01" not in fleet.state()["hosts"]["SVR2"]["vms"]
    assert linux01_files(fleet) == []


async def test_unexpected_reboot_during_host_prep_is_waited_out(
    client: Client, task_queue: str, fleet: Fleet, seed: LabSpec
) -> None:
    """SVR2 reboots on its own in the middle of the switches; the step fails as transient,
    Temporal retries once the host answers again, and HostPrep completes."""
    fleet.set_faults(FaultPlan.parse([{"type": "reboot", "host": "SVR2", "after_commands": 25}]))
    spec = svr2_only(seed).model_copy(update={"vms": []})
    async with lab_worker(client, task_queue, fleet):
        result = await client.execute_workflow(
            LabBuildWorkflow.run, LabBuildInput(spec=spec, only=["host-prep"]),
            id=f"reboot-{uuid.uuid4().hex[:6]}", task_queue=task_queue)
    assert set(result.units.values()) == {"done"}
    assert fleet.plan.faults[0].fired == 1
    assert set(fleet.state()["hosts"]["SVR2"]["switches"]) == {
        "External", "Internal", "Private", "Internal2"}
