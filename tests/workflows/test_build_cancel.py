"""A cancelled build undoes what its run created (the units it completed as well as the running
ones), keeps what it says it keeps, leaves what was there before, and `hvlab cancel` prints the
account."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle

from hvlab.spec import LabSpec, Switch, SwitchType
from simulator.fleet import Fleet
from simulator.winrm import FaultEffect, FaultRule
from tests.workflows.conftest import hvlab, lab_worker
from workflows.lab_build import LabBuildInput, LabBuildWorkflow
from workflows.outcome import MEMO_KEY, Compensation
from workflows.progress import Progress

KINDS = ["host-prep", "migration-readiness", "vm-deploy"]


def svr2_lab(seed: LabSpec, *, second_vm: bool) -> LabSpec:
    """SVR2 with Linux01 (and, with ``second_vm``, Linux02 deployed after it)."""
    linux = seed.vm("Linux01")
    vms = [linux]
    if second_vm:
        nic = linux.nics[0].model_copy(update={"ipv4": "192.168.1.131/24"})
        vms.append(linux.model_copy(update={"name": "Linux02", "nics": [nic]}))
    return seed.model_copy(update={"vms": vms, "nat": [], "replication": [], "checkpoints": [],
                                   "shares": [], "delegation": []})


def with_switch(spec: LabSpec, name: str) -> LabSpec:
    host = spec.host("SVR2")
    switch = Switch(name=name, type=SwitchType.Private)
    hosts = [h.model_copy(update={"switches": [*h.switches, switch]}) if h is host else h
             for h in spec.hosts]
    return spec.model_copy(update={"hosts": hosts})


async def until(handle: WorkflowHandle[Any, Any], what: str,
                condition: Callable[[dict[str, str]], bool], timeout: float = 90) -> None:
    """Wait until ``condition`` holds for the workflow's step states (name -> state)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            progress = await handle.query("progress", result_type=Progress)
            if condition({s.name: s.state for s in progress.steps}):
                return
        except Exception:  # not started yet
            pass
        await asyncio.sleep(0.05)
    pytest.fail(f"{handle.id}: never {what}")


async def cancel_during_linux02(client: Client, fleet: Fleet, handle: WorkflowHandle[Any, Any],
                                spec: LabSpec) -> None:
    """Wait until Linux01's unit is done and Linux02's New-VM (slowed down) runs."""
    await until(handle, "deployed Linux01", lambda s: s.get("vm-deploy:Linux01") == "done")
    child = client.get_workflow_handle(f"{handle.id}/vm-deploy:Linux02")
    await until(child, "ran New-VM of Linux02", lambda s: s.get("create") == "running")


def slow_new_vm(fleet: Fleet, nth: int) -> None:
    """The ``nth`` New-VM on SVR2 from now on (Linux02's) takes 2 s, so the cancel finds it
    running (commands to one host run one at a time, so its undo runs after it)."""
    fleet.servers["SVR2"].faults.add(FaultRule(FaultEffect.DELAY, action="Command",
                                               command="New-VM", nth=nth, delay=2.0))


def start(client: Client, task_queue: str, spec: LabSpec, **options: Any
          ) -> Any:
    return client.start_workflow(
        LabBuildWorkflow.run, LabBuildInput(spec=spec, only=KINDS, per_host_limit=1, **options),
        id=f"{spec.lab}-build-{uuid.uuid4().hex[:6]}", task_queue=task_queue)


async def memo(handle: WorkflowHandle[Any, Any]) -> Compensation | None:
    """The build's account of its compensation (None: it wrote none)."""
    value = await (await handle.describe()).memo_value(MEMO_KEY, None, type_hint=Compensation)
    assert value is None or isinstance(value, Compensation)
    return value


async def test_cancelled_build_removes_what_it_created(
    client: Client, task_queue: str, fleet: Fleet, seed: LabSpec, cli_env: None,
    capsys: pytest.CaptureFixture[str]
) -> None:
    """On a bare SVR2, `hvlab cancel` of a build that has prepared the host, set its migration
    settings and deployed Linux01 (while Linux02 is being created) leaves no VM, no disk, no
    switch and migration off; it keeps the Hyper-V role, and the CLI prints what it undid and
    kept."""
    spec = svr2_lab(seed, second_vm=True)
    slow_new_vm(fleet, 2)
    async with lab_worker(client, task_queue, fleet):
        handle = await start(client, task_queue, spec)
        await cancel_during_linux02(client, fleet, handle, spec)
        assert await hvlab("cancel", handle.id) == 0
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        account = await memo(handle)
    svr2 = fleet.state()["hosts"]["SVR2"]
    assert svr2["vms"] == {} and svr2["switches"] == {}
    assert not [f for f in svr2["files"] if "linux0" in f.lower() and "golden" not in f.lower()]
    assert svr2["vmhost"]["migration_enabled"] is False
    assert svr2["vmhost"]["migration_networks"] == []
    assert "Hyper-V" in svr2["features"]  # kept on purpose, and said so
    assert account is not None
    assert any(line.startswith("SVR2:") and "Hyper-V role" in line for line in account.kept)
    undone = "\n".join(account.undone)
    assert "vm-deploy:Linux02: cancelled while running" in undone
    assert "vm-deploy:Linux01: vm.remove" in undone
    assert "host-prep:SVR2: host.remove_switch SVR2 External" in undone
    assert "migration-readiness:SVR2: migration.restore_readiness" in undone
    printed = capsys.readouterr().out
    assert f"{handle.id} ended canceled" in printed
    assert "undone: vm-deploy:Linux01: vm.remove" in printed
    assert "kept: SVR2: " in printed


async def test_cancelled_build_over_a_built_lab_keeps_what_was_there(
    client: Client, task_queue: str, fleet: Fleet, seed: LabSpec
) -> None:
    """A build over a built SVR2 that adds a switch and Linux02, cancelled after Linux01's unit
    (found in place) finished, removes the new switch and Linux02 only: Linux01, its disk, the
    switches and the migration settings that were there stay."""
    first = svr2_lab(seed, second_vm=False)
    async with lab_worker(client, task_queue, fleet):
        await client.execute_workflow(
            LabBuildWorkflow.run, LabBuildInput(spec=first, only=KINDS),
            id=f"first-{uuid.uuid4().hex[:6]}", task_queue=task_queue)
        before = fleet.state()["hosts"]["SVR2"]
        slow_new_vm(fleet, 1)
        handle = await start(client, task_queue, with_switch(svr2_lab(seed, second_vm=True),
                                                             "Lesson"))
        await cancel_during_linux02(client, fleet, handle, first)
        assert "Lesson" in fleet.state()["hosts"]["SVR2"]["switches"]
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        account = await memo(handle)
    after = fleet.state()["hosts"]["SVR2"]
    assert after["switches"] == before["switches"]
    assert after["vms"].keys() == {"Linux01"} and after["vms"]["Linux01"]["state"] == "Running"
    assert after["files"] == before["files"]
    assert after["vmhost"] == before["vmhost"]
    assert account is not None
    assert account.undone == [
        "vm-deploy:Linux02: cancelled while running, undid its own changes",
        "host-prep:SVR2: host.remove_switch SVR2 Lesson"]


async def test_cancelled_build_without_compensation_keeps_and_says_so(
    client: Client, task_queue: str, fleet: Fleet, seed: LabSpec
) -> None:
    """With compensation off the cancelled build removes nothing and its account lists what
    it created, with `hvlab down` as the way to remove it."""
    spec = svr2_lab(seed, second_vm=True)
    slow_new_vm(fleet, 2)
    async with lab_worker(client, task_queue, fleet):
        handle = await start(client, task_queue, spec, compensate=False)
        await cancel_during_linux02(client, fleet, handle, spec)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        account = await memo(handle)
    svr2 = fleet.state()["hosts"]["SVR2"]
    assert "Linux01" in svr2["vms"] and "External" in svr2["switches"]
    assert account is not None
    assert "vm-deploy:Linux01 (SVR2)" in account.kept
    assert "host-prep:SVR2 (External, Internal, Private, Internal2)" in account.kept
    assert "hvlab down" in account.next
