"""Every operation, cancelled, says in its memo what it undid and what it kept: a saga's undo
steps (VmDeploy), a teardown's removals and the units it had not undone yet, a reset's VMs
turned off and restored but not started again."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle

from hvlab.spec import LabSpec
from simulator.fleet import Fleet
from simulator.winrm import FaultEffect, FaultRule
from tests.workflows.conftest import lab_worker
from tests.workflows.test_build_cancel import memo, svr2_lab, until
from tests.workflows.test_reset import build
from tests.workflows.test_reset import svr2_lab as reset_lab
from workflows.lab_build import LabBuildInput, LabBuildWorkflow
from workflows.outcome import Compensation
from workflows.reset import LabResetInput, LabResetWorkflow
from workflows.teardown import LabTeardownInput, LabTeardownWorkflow
from workflows.vm_deploy import VmDeployInput, VmDeployWorkflow


def slow(fleet: Fleet, command: str) -> None:
    """SVR2's next ``command`` takes 2 s, so a cancel finds its step running."""
    fleet.servers["SVR2"].faults.add(FaultRule(FaultEffect.DELAY, action="Command",
                                               command=command, delay=2.0))


async def cancelled(handle: WorkflowHandle[Any, Any]) -> Compensation:
    """Cancel the workflow, wait for it to close, return its account."""
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    account = await memo(handle)
    assert account is not None, f"{handle.id} wrote no account"
    return account


async def test_cancelled_vm_deploy_says_what_its_saga_undid(
    client: Client, task_queue: str, fleet: Fleet, seed: LabSpec
) -> None:
    """A VmDeploy cancelled during New-VM records that it removed the VM again."""
    spec = svr2_lab(seed, second_vm=False)
    async with lab_worker(client, task_queue, fleet):
        await client.execute_workflow(
            LabBuildWorkflow.run, LabBuildInput(spec=spec, only=["host-prep"]),
            id=f"prep-{uuid.uuid4().hex[:6]}", task_queue=task_queue)
        slow(fleet, "New-VM")
        handle = await client.start_workflow(
            VmDeployWorkflow.run, VmDeployInput(spec=spec, vm="Linux01"),
            id=f"deploy-{uuid.uuid4().hex[:6]}", task_queue=task_queue)
        await until(handle, "ran New-VM", lambda s: s.get("create") == "running")
        account = await cancelled(handle)
    assert "Linux01" not in fleet.state()["hosts"]["SVR2"]["vms"]
    assert account == Compensation(undone=["remove Linux01"])


async def test_cancelled_teardown_says_what_it_removed_and_what_is_left(
    client: Client, task_queue: str, fleet: Fleet, seed: LabSpec
) -> None:
    """A teardown cancelled while it removes Linux01 puts nothing back (the checkpoint it
    removed stays removed) and lists the units it had not undone, with `hvlab down` as the way
    on."""
    spec = reset_lab(seed)
    async with lab_worker(client, task_queue, fleet):
        await build(client, task_queue, fleet, spec)
        slow(fleet, "Remove-VM")
        handle = await client.start_workflow(
            LabTeardownWorkflow.run, LabTeardownInput(spec=spec),
            id=f"down-{uuid.uuid4().hex[:6]}", task_queue=task_queue)
        await until(handle, "removed Linux01", lambda s: s.get("vm-deploy:Linux01") == "running")
        account = await cancelled(handle)
    svr2 = fleet.state()["hosts"]["SVR2"]
    assert "External" in svr2["switches"]
    assert "checkpoint:baseline: checkpoint.remove SVR2 Linux01 baseline" in account.undone
    assert "host-prep:SVR2: not undone yet" in account.kept
    assert "hvlab down" in account.next


async def test_cancelled_reset_says_what_it_left_off(
    client: Client, task_queue: str, fleet: Fleet, seed: LabSpec
) -> None:
    """A reset cancelled while it restores the checkpoint says it turned Linux01 off and did
    not start it again, and that running the reset again finishes it."""
    spec = reset_lab(seed)
    async with lab_worker(client, task_queue, fleet):
        await build(client, task_queue, fleet, spec)
        slow(fleet, "Restore-VMSnapshot")
        handle = await client.start_workflow(
            LabResetWorkflow.run, LabResetInput(spec=spec),
            id=f"reset-{uuid.uuid4().hex[:6]}", task_queue=task_queue)
        await until(handle, "restored Linux01", lambda s: s.get("restore:Linux01") == "running")
        account = await cancelled(handle)
    assert account.kept == ["turn off Linux01", "not started again: Linux01"]
    assert "hvlab reset" in account.next
