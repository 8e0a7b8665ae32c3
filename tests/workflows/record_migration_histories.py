"""Record LiveMigrationWorkflow histories of the paths the demo run does not take, for the
fast replay tests (tests/workflows/test_migration_replays.py).

Not collected by a normal run (the file name is not ``test_*``); run it explicitly with the
dev server (integration tier)::

    .venv/bin/python -m pytest -q -p no:cacheprovider tests/workflows/record_migration_histories.py

Each scenario writes ``tests/histories/migration/LiveMigrationWorkflow-<scenario>.json`` and
its workflow id into that folder's ``ids.json`` (replay needs the original id).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle

from hvlab.spec import LabSpec
from simulator.faults import FaultPlan
from simulator.fleet import Fleet
from simulator.winrm import FaultEffect, FaultRule
from tests.activities.test_migration_activities import JobDriver, share_vm_storage
from tests.sim.conftest import run
from tests.workflows import test_migration
from tests.workflows.conftest import lab_worker
from tests.workflows.test_migration import FAST, eventually, move
from workflows.migration import LiveMigrationInput, LiveMigrationWorkflow

pytestmark = pytest.mark.integration

# the migration tests' fixtures: win2003-2 running on SVR1, jobs released step by step
svr1_vm = test_migration.svr1_vm
driver = test_migration.driver

OUT = Path(__file__).resolve().parents[1] / "histories" / "migration"


async def start(client: Client, task_queue: str, request: LiveMigrationInput, scenario: str
                ) -> WorkflowHandle[Any, Any]:
    return await client.start_workflow(
        LiveMigrationWorkflow.run, request, task_queue=task_queue,
        id=f"{request.spec.lab}-migrate-{request.vm}-{scenario}")


async def save(handle: WorkflowHandle[Any, Any], scenario: str) -> None:
    """Write the run's history and its id."""
    OUT.mkdir(parents=True, exist_ok=True)
    stem = f"LiveMigrationWorkflow-{scenario}"
    history = await handle.fetch_history()
    (OUT / f"{stem}.json").write_text(history.to_json())
    ids_file = OUT / "ids.json"
    ids = json.loads(ids_file.read_text()) if ids_file.exists() else {}
    ids[stem] = handle.id
    ids_file.write_text(json.dumps(ids, indent=2, sort_keys=True) + "\n")


async def finish(handle: WorkflowHandle[Any, Any], scenario: str, fails: bool) -> None:
    if fails:
        with pytest.raises(WorkflowFailureError):
            await handle.result()
    else:
        await handle.result()
    await save(handle, scenario)


async def test_record_move_then_noop(client: Client, task_queue: str, fleet: Fleet,
                                     seed: LabSpec, svr1_vm: str) -> None:
    """A shared-nothing move, then a run that finds the VM at the destination already."""
    async with lab_worker(client, task_queue, fleet):
        await finish(await start(client, task_queue, move(seed, svr1_vm), "moved"), "moved",
                     False)
        await finish(await start(client, task_queue, move(seed, svr1_vm), "noop"), "noop",
                     False)
        stopped = run(fleet.sim, "SVR2", "Stop-VM", Name=svr1_vm, Force=None)
        assert stopped.ok
        await finish(await start(client, task_queue, move(seed, svr1_vm, source="SVR1",
                                                          storage_path="D:\\VMs\\x"),
                                 "not-found"), "not-found", True)


async def test_record_storage_and_smb(client: Client, task_queue: str, fleet: Fleet,
                                      seed: LabSpec, svr1_vm: str) -> None:
    """smb on local disks fails, a storage move to the share, then an smb move, then smb
    again (already there)."""
    share_vm_storage(fleet)
    async with lab_worker(client, task_queue, fleet):
        await finish(await start(client, task_queue, move(seed, svr1_vm, mode="smb"),
                                 "smb-local"), "smb-local", True)
        to_share = LiveMigrationInput(spec=seed, vm=svr1_vm, mode="storage",
                                      storage_path="\\\\DC1\\smb\\win2003-2", **FAST)
        await finish(await start(client, task_queue, to_share, "storage"), "storage", False)
        await finish(await start(client, task_queue, move(seed, svr1_vm, mode="smb"), "smb"),
                     "smb", False)
        await finish(await start(client, task_queue, move(seed, svr1_vm, mode="smb"),
                                 "smb-noop"), "smb-noop", False)


async def test_record_incompatible(client: Client, task_queue: str, fleet: Fleet,
                                   seed: LabSpec, svr1_vm: str) -> None:
    """Compare-VM finds an incompatibility (with and without compensation); a stopped VM
    fails the same way."""
    assert run(fleet.sim, "SVR2", "Remove-VMSwitch", Name="Internal", Force=None).ok
    async with lab_worker(client, task_queue, fleet):
        await finish(await start(client, task_queue, move(seed, svr1_vm), "incompatible"),
                     "incompatible", True)
        await finish(await start(client, task_queue, move(seed, svr1_vm, compensate=False),
                                 "no-compensate"), "no-compensate", True)
        assert run(fleet.sim, "SVR1", "Stop-VM", Name=svr1_vm, Force=None).ok
        await finish(await start(client, task_queue, move(seed, svr1_vm, source="SVR1"),
                                 "incompatible-stopped"), "incompatible-stopped", True)


async def test_record_delegation_missing(client: Client, task_queue: str, fleet: Fleet,
                                         seed: LabSpec, svr1_vm: str) -> None:
    """The pre-flight activity fails (no KCD for the migration service)."""
    computer = fleet.sim.world.ad.computer("SVR1")
    assert computer is not None
    computer.allowed_to_delegate_to = ["cifs/SVR2", "cifs/DC1"]
    async with lab_worker(client, task_queue, fleet):
        await finish(await start(client, task_queue, move(seed, svr1_vm), "preflight-error"),
                     "preflight-error", True)


async def test_record_job_failed(client: Client, task_queue: str, fleet: Fleet,
                                 seed: LabSpec, svr1_vm: str) -> None:
    """The host's migration job fails at 50 %."""
    fleet.set_faults(FaultPlan.parse([{"type": "fail_job", "host": "SVR1", "at_percent": 50}]))
    async with lab_worker(client, task_queue, fleet):
        await finish(await start(client, task_queue, move(seed, svr1_vm), "job-failed"),
                     "job-failed", True)


async def test_record_cancel_mid_job(client: Client, task_queue: str, fleet: Fleet,
                                     seed: LabSpec, svr1_vm: str, driver: JobDriver) -> None:
    """Cancelled while the job runs: the job is cancelled, the VM stays on SVR1."""
    async with lab_worker(client, task_queue, fleet):
        handle = await start(client, task_queue, move(seed, svr1_vm), "cancelled")
        await asyncio.to_thread(driver.advance, 3)
        await handle.cancel()

        async def cancel_requested() -> bool:
            return any(j.cancel_requested for j in fleet.sim.world.jobs.values())

        await eventually(cancel_requested)
        await asyncio.to_thread(driver.release)
        await finish(handle, "cancelled", True)


async def test_record_reattach(client: Client, task_queue: str, fleet: Fleet, seed: LabSpec,
                               svr1_vm: str, driver: JobDriver) -> None:
    """A run terminated mid-job; the next one re-attaches to the job with progress samples."""
    async with lab_worker(client, task_queue, fleet):
        first = await start(client, task_queue, move(seed, svr1_vm), "terminated")
        await asyncio.to_thread(driver.advance, 3)
        await first.terminate("operator gave up")
        second = await start(client, task_queue, move(seed, svr1_vm, progress_seconds=0.1),
                             "reattached")

        async def attached() -> bool:
            progress = await second.query(LiveMigrationWorkflow.progress)
            return any(s.name == "job" and s.state == "running" for s in progress.steps)

        await eventually(attached)

        async def sampled() -> bool:
            progress = await second.query(LiveMigrationWorkflow.progress)
            return progress.phase.startswith("migration job ")

        await eventually(sampled)
        await asyncio.to_thread(driver.finish)
        await finish(second, "reattached", False)


async def test_record_undo_fails(client: Client, task_queue: str, fleet: Fleet,
                                 seed: LabSpec, svr1_vm: str, driver: JobDriver) -> None:
    """Cancelled mid-job while the source stops answering job queries: the job's undo fails
    after its retries and the VM's undo still runs."""
    async with lab_worker(client, task_queue, fleet):
        handle = await start(client, task_queue, move(seed, svr1_vm), "undo-fails")
        await asyncio.to_thread(driver.advance, 3)

        async def job_running() -> bool:
            progress = await handle.query(LiveMigrationWorkflow.progress)
            return any(s.name == "job" and s.state == "running" for s in progress.steps)

        await eventually(job_running)
        fleet.servers["SVR1"].faults.add(FaultRule(FaultEffect.HTTP_500, action="Command",
                                                   command="Get-CimInstance", count=0))
        await handle.cancel()
        await finish(handle, "undo-fails", True)
        fleet.servers["SVR1"].faults.clear()
        await asyncio.to_thread(driver.finish)


async def running(handle: WorkflowHandle[Any, Any], name: str) -> None:
    """Wait until the run's progress shows step ``name`` running."""

    async def shown() -> bool:
        progress = await handle.query(LiveMigrationWorkflow.progress)
        return any(s.name == name and s.state == "running" for s in progress.steps)

    await eventually(shown)


async def test_record_vm_stopped_meanwhile(client: Client, task_queue: str, fleet: Fleet,
                                           seed: LabSpec, svr1_vm: str) -> None:
    """The VM stops while Compare-VM runs (slowed down) and finds an incompatibility: the
    undo starts the VM again on SVR1."""
    assert run(fleet.sim, "SVR2", "Remove-VMSwitch", Name="Internal", Force=None).ok
    fleet.servers["SVR1"].faults.add(FaultRule(FaultEffect.DELAY, action="Command",
                                               command="Compare-VM", delay=2.0))
    async with lab_worker(client, task_queue, fleet):
        handle = await start(client, task_queue, move(seed, svr1_vm), "restarted")
        await running(handle, "preflight")
        assert run(fleet.sim, "SVR1", "Stop-VM", Name=svr1_vm, Force=None).ok
        await finish(handle, "restarted", True)
    assert fleet.sim.host("SVR1").vm(svr1_vm).state == "Running"


async def test_record_verify_fails(client: Client, task_queue: str, fleet: Fleet,
                                   seed: LabSpec, svr1_vm: str, driver: JobDriver) -> None:
    """The move finishes but the destination cannot report the VM's disks: the check fails,
    the finished job needs no cancel and the VM, gone from SVR1, runs on SVR2."""
    async with lab_worker(client, task_queue, fleet):
        handle = await start(client, task_queue, move(seed, svr1_vm), "verify-fails")
        await running(handle, "job")
        fleet.servers["SVR2"].faults.add(FaultRule(
            FaultEffect.HTTP_500, action="Command", command="Get-VMHardDiskDrive", count=0))
        await asyncio.to_thread(driver.finish)
        await finish(handle, "verify-fails", True)
        fleet.servers["SVR2"].faults.clear()


async def test_record_storage_already_done(client: Client, task_queue: str, fleet: Fleet,
                                           seed: LabSpec, svr1_vm: str) -> None:
    """A storage move to the folder the VM's files are in already: the start finds the move
    done, the job step is skipped and nothing is moved."""
    here = LiveMigrationInput(spec=seed, vm=svr1_vm, mode="storage",
                              storage_path="C:\\Hyper-V", **FAST)
    async with lab_worker(client, task_queue, fleet):
        await finish(await start(client, task_queue, here, "storage-done"), "storage-done",
                     False)
