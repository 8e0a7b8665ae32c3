"""LiveMigrationWorkflow over the simulated fleet: one Move-VM per migration (also across a
worker restart mid-job, resumed from the poll's heartbeat), missing delegation fails fast with
the VM still running on its source, a cancelled move leaves the VM where it was; CLI checks."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError
from temporalio.worker import Replayer

from activities.models import static_mac
from hvlab.spec import LabSpec
from simulator.clock import Clock
from simulator.engine import Sim
from simulator.fleet import Fleet
from tests.activities.test_migration_activities import JobDriver, share_vm_storage
from tests.sim.conftest import SEED, delegate, hyperv_ready, join_domain, run
from tests.workflows.conftest import hvlab, lab_worker
from workflows.migration import LiveMigrationInput, LiveMigrationResult, LiveMigrationWorkflow
from workflows.registry import ALL_WORKFLOWS

FAST = {"poll_seconds": 0.05, "progress_seconds": 0.2}


# -- lab state straight in the simulator (no workflow needed to get there) -------------------


def ready_hosts(sim: Sim) -> None:
    """SVR1/SVR2 joined, Hyper-V with the lab's folders and switches, migration on with
    Kerberos and the seed's KCD both ways."""
    join_domain(sim, "SVR1", "SVR2")
    hyperv_ready(sim, "SVR1", "SVR2")
    for name in ("SVR1", "SVR2"):
        assert run(sim, name, "Enable-VMMigration").ok
        assert run(sim, name, "Set-VMHost", VirtualMachineMigrationAuthenticationType="Kerberos").ok
    delegate(sim, "SVR1", "SVR2")
    delegate(sim, "SVR2", "SVR1")


def lab_vm(sim: Sim, spec: LabSpec, name: str) -> None:
    """The lab file's VM on its host, running, its NICs named as in the lab file."""
    vm = spec.vm(name)
    disk = spec.vm_disk_path(vm)
    golden = spec.golden(vm.disk.golden).path
    assert run(sim, vm.host, "Copy-Item", Path=golden, Destination=disk).ok
    assert run(sim, vm.host, "New-VM", Name=vm.name, Generation=vm.generation,
               MemoryStartupBytes=vm.memory, VHDPath=disk, Path=spec.vm_config_path(vm)).ok
    assert run(sim, vm.host, "Remove-VMNetworkAdapter", VMName=vm.name,
               Name="Network Adapter").ok
    for nic in vm.nics:
        assert run(sim, vm.host, "Add-VMNetworkAdapter", VMName=vm.name, Name=nic.name,
                   SwitchName=nic.switch, IsLegacy=nic.legacy,
                   StaticMacAddress=static_mac(vm.name, nic.name)).ok
    assert run(sim, vm.host, "Start-VM", Name=vm.name).ok


def on_host(fleet: Fleet, host: str, vm: str) -> Any:
    return fleet.sim.host(host).vm(vm)


def count(fleet: Fleet, host: str, cmdlet: str) -> int:
    return int(fleet.state()["counters"].get(host, {}).get(cmdlet, 0))


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    """Return once ``check`` holds (re-evaluated every 20 ms), or fail the test."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        await asyncio.sleep(0.02)


@pytest.fixture
def svr1_vm(fleet: Fleet, seed: LabSpec) -> str:
    """win2003-2 runs on SVR1; both hosts are ready for live migration."""
    ready_hosts(fleet.sim)
    lab_vm(fleet.sim, seed, "win2003-2")
    return "win2003-2"


@pytest.fixture
def driver(fleet: Fleet, svr1_vm: str) -> Iterator[JobDriver]:
    """Migration jobs advance only when the test releases their steps."""
    yield JobDriver(fleet)
    fleet.sim.clock = Clock(0)


def move(seed: LabSpec, vm: str, **extra: Any) -> LiveMigrationInput:
    return LiveMigrationInput(spec=seed, vm=vm, destination="SVR2", **{**FAST, **extra})


async def start(client: Client, task_queue: str, request: LiveMigrationInput
                ) -> WorkflowHandle[Any, LiveMigrationResult]:
    return await client.start_workflow(
        LiveMigrationWorkflow.run, request, task_queue=task_queue,
        id=f"{request.spec.lab}-migrate-{request.vm}-{uuid.uuid4().hex[:6]}")


# the lab registry parses each lab once, so the worker tests use the shared lab worker
ops_worker = lab_worker


def quick_beat_worker(client: Client, task_queue: str, fleet: Fleet
                      ) -> AbstractAsyncContextManager[None]:
    """A worker that sends heartbeats at once (no 16 s throttle), so the server holds the
    poll's latest percent when the worker goes away."""
    quick = timedelta(milliseconds=50)
    return ops_worker(client, task_queue, fleet, max_heartbeat_throttle_interval=quick,
                      default_heartbeat_throttle_interval=quick)


async def heartbeat_percent(handle: WorkflowHandle[Any, Any]) -> int | None:
    """The percent in the pending migration.poll_job's last recorded heartbeat."""
    description = await handle.describe()
    for pending in description.raw_description.pending_activities:
        if pending.activity_type.name != "migration.poll_job":
            continue
        for payload in pending.heartbeat_details.payloads:
            details = json.loads(payload.data)
            if isinstance(details, dict) and "percent" in details:
                return int(details["percent"])
    return None


# -- tests ---------------------------------------------------------------------------------


async def test_shared_nothing_migration_moves_once(
    client: Client, task_queue: str, fleet: Fleet, seed: LabSpec, svr1_vm: str
) -> None:
    """win2003-2 moves with its disk to SVR2's VM folder, still running, with exactly one
    Move-VM; a second run finds it there and sends nothing."""
    async with ops_worker(client, task_queue, fleet):
        result = await (await start(client, task_queue, move(seed, svr1_vm))).result()
        assert result.moved and result.source == "SVR1" and result.host == "SVR2"
        assert result.state == "Running" and result.downtime_seconds is None
        assert result.disks and all(d.startswith("C:\\Hyper-V\\win2003-2\\")
                                    for d in result.disks)
        assert on_host(fleet, "SVR1", svr1_vm) is None
        assert on_host(fleet, "SVR2", svr1_vm).state == "Running"
        assert fleet.state()["counters"]["SVR1"]["Move-VM"] == 1
        again = await (await start(client, task_queue, move(seed, svr1_vm))).result()
        assert not again.moved and again.host == "SVR2"
        assert [s.state for s in again.progress.steps][1:4] == ["skipped"] * 3
    assert count(fleet, "SVR1", "Move-VM") == 1 and count(fleet, "SVR2", "Move-VM") == 0


async def test_storage_to_the_share_then_compute_only_move(
    client: Client, task_queue: str, fleet: Fleet, seed: LabSpec, svr1_vm: str
) -> None:
    """A compute-only (smb) move of a VM on local disks fails before any move; after a
    storage move to \\\\DC1\\smb the smb move runs it on SVR2 with its files still there."""
    share_vm_storage(fleet)
    async with ops_worker(client, task_queue, fleet):
        with pytest.raises(WorkflowFailureError) as local:
            await (await start(client, task_queue, move(seed, svr1_vm, mode="smb"))).result()
        assert isinstance(local.value.cause, ApplicationError)
        assert local.value.cause.type == "InvalidParameter"
        assert "SMB share" in local.value.cause.message
        to_share = LiveMigrationInput(spec=seed, vm=svr1_vm, mode="storage",
                                      storage_path="\\\\DC1\\smb\\win2003-2", **FAST)
        stored = await (await start(client, task_queue, to_share)).result()
        assert stored.host == "SVR1" and stored.path == "\\\\DC1\\smb\\win2003-2"
        result = await (await start(client, task_queue, move(seed, svr1_vm, mode="smb"))).result()
    assert result.moved and result.host == "SVR2" and result.state == "Running"
    assert result.path == "\\\\DC1\\smb\\win2003-2"
    assert all(d.startswith("\\\\DC1\\smb\\") for d in result.disks)
    assert count(fleet, "SVR1", "Move-VM") == 1 and count(fleet, "SVR1", "Move-VMStorage") == 1


async def test_worker_restart_mid_job_resumes_without_second_move(
    client: Client, task_queue: str, fleet: Fleet, seed: LabSpec, svr1_vm: str,
    driver: JobDriver
) -> None:
    """The worker goes away while the job runs; a new worker resumes polling from the
    heartbeated percent and the VM arrives on SVR2 after one Move-VM; the history replays."""
    async with quick_beat_worker(client, task_queue, fleet):
        handle = await start(client, task_queue, move(seed, svr1_vm))
        await asyncio.to_thread(driver.advance, 6)

        async def beat_seen() -> bool:
            return (await heartbeat_percent(handle) or 0) >= 25

        await eventually(beat_seen)
    await asyncio.to_thread(driver.advance, 4)  # the host-side job goes on without a worker
    async with quick_beat_worker(client, task_queue, fleet):
        await asyncio.to_thread(driver.finish)
        result = await handle.result()
    assert result.moved and result.host == "SVR2" and not result.reattached
    assert result.resumed_from is not None and result.resumed_from >= 25
    assert on_host(fleet, "SVR2", svr1_vm).state == "Running"
    assert count(fleet, "SVR1", "Move-VM") == 1
    await Replayer(workflows=ALL_WORKFLOWS, data_converter=pydantic_data_converter
                   ).replay_workflow(await handle.fetch_history())


async def test_new_run_reattaches_to_a_running_job(
    client: Client, task_queue: str, fleet: Fleet, seed: LabSpec, svr1_vm: str,
    driver: JobDriver
) -> None:
    """A run terminated mid-job leaves the host-side job running; the next run skips the
    pre-flight, re-attaches to that job and finishes the move without a second Move-VM."""
    async with ops_worker(client, task_queue, fleet):
        first = await start(client, task_queue, move(seed, svr1_vm))
        await asyncio.to_thread(driver.advance, 3)
        await first.terminate("operator gave up")
        second = await start(client, task_queue, move(seed, svr1_vm))

        async def attached() -> bool:
            progress = await second.query(LiveMigrationWorkflow.progress)
            return any(s.name == "job" and s.state == "running" for s in progress.steps)

        await eventually(attached)
        await asyncio.to_thread(driver.finish)
        result = await second.result()
    assert result.moved and result.reattached and result.host == "SVR2"
    assert result.progress.steps[1].state == "skipped"
    assert count(fleet, "SVR1", "Move-VM") == 1 and count(fleet, "SVR1", "Compare-VM") == 1


async def test_cancel_mid_job_leaves_the_vm_on_its_source(
    client: Client, task_queue: str, fleet: Fleet, seed: LabSpec, svr1_vm: str,
    driver: JobDriver
) -> None:
    """Cancelling the workflow while the job runs terminates the job; the VM keeps running
    on SVR1 and nothing of it is on SVR2."""
    async with ops_worker(client, task_queue, fleet):
        handle = await start(client, task_queue, move(seed, svr1_vm))
        await asyncio.to_thread(driver.advance, 3)
        await handle.cancel()

        async def cancel_requested() -> bool:
            return any(j.cancel_requested for j in fleet.sim.world.jobs.values())

        await eventually(cancel_requested)
        await asyncio.to_thread(driver.release)
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
    assert isinstance(failed.value.cause, CancelledError)
    assert on_host(fleet, "SVR1", svr1_vm).state == "Running"
    assert on_host(fleet, "SVR2", svr1_vm) is None
    assert count(fleet, "SVR1", "Move-VM") == 1


async def test_missing_delegation_fails_fast_and_vm_stays(
    client: Client, task_queue: str, fleet: Fleet, seed: LabSpec, svr1_vm: str
) -> None:
    """Without the migration-service KCD the pre-flight fails as DelegationMissing (not
    retried), no Move-VM is sent and the VM still runs on SVR1."""
    computer = fleet.sim.world.ad.computer("SVR1")
    assert computer is not None
    computer.allowed_to_delegate_to = ["cifs/SVR2", "cifs/DC1"]
    async with ops_worker(client, task_queue, fleet):
        handle = await start(client, task_queue, move(seed, svr1_vm))
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
    cause = failed.value.cause
    assert isinstance(cause, ActivityError) and isinstance(cause.cause, ApplicationError)
    assert cause.cause.type == "DelegationMissing" and "0x8009030E" in cause.cause.message
    assert count(fleet, "SVR1", "Move-VM") == 0
    assert on_host(fleet, "SVR1", svr1_vm).state == "Running"
    history = await handle.fetch_history()
    attempts = [e.activity_task_started_event_attributes.attempt for e in history.events
                if e.HasField("activity_task_started_event_attributes")]
    assert max(attempts) == 1


async def test_incompatible_destination_is_reported_as_data(
    client: Client, task_queue: str, fleet: Fleet, seed: LabSpec, svr1_vm: str
) -> None:
    """A destination without the VM's switch fails before any move, listing Compare-VM's
    incompatibility (33012) in the message and the details."""
    assert run(fleet.sim, "SVR2", "Remove-VMSwitch", Name="Internal", Force=None).ok
    async with ops_worker(client, task_queue, fleet):
        handle = await start(client, task_queue, move(seed, svr1_vm))
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "MigrationIncompatible"
    assert "33012" in cause.message and "Internal" in cause.message
    assert cause.details[0]["incompatibilities"][0]["message_id"] == 33012
    assert count(fleet, "SVR1", "Move-VM") == 0


async def test_cli_storage_migration_with_watch(
    client: Client, task_queue: str, fleet: Fleet, svr1_vm: str, cli_env: None
) -> None:
    """`hvlab migrate FILE VM --mode storage --storage-path P --sim --watch` moves the VM's
    files on SVR1 with one Move-VMStorage under the id <lab>-migrate-<vm> and exits 0."""
    target = "C:\\Hyper-V\\Moved\\win2003-2"
    async with ops_worker(client, task_queue, fleet):
        assert await hvlab("migrate", str(SEED), svr1_vm, "--mode", "storage",
                           "--storage-path", target, "--sim", "--watch") == 0
        handle = client.get_workflow_handle_for(LiveMigrationWorkflow.run,
                                                f"sim.classroom-migrate-{svr1_vm}")
        result = await handle.result()
    assert result.moved and result.host == "SVR1" and result.path == target
    assert result.disks and all(d.startswith(target + "\\") for d in result.disks)
    assert on_host(fleet, "SVR1", svr1_vm).state == "Running"
    assert count(fleet, "SVR1", "Move-VMStorage") == 1 and count(fleet, "SVR1", "Move-VM") == 0


@pytest.mark.parametrize(("argv", "field"), [
    (["migrate", "examples/classroom-lab.yaml", "nosuchvm", "--to", "SVR2"], "VM"),
    (["migrate", "examples/classroom-lab.yaml", "win2003-2", "--to", "SVR9"], "--to"),
    (["migrate", "examples/classroom-lab.yaml", "win2003-2", "--to", "DC1"], "--to"),
    (["migrate", "examples/classroom-lab.yaml", "win2003-2", "--mode", "storage"],
     "--storage-path"),
    (["replicate", "examples/classroom-lab.yaml", "Linux01", "--to", "SVR2"], "--to"),
    (["failover", "examples/classroom-lab.yaml", "win2003-1"], "VM"),
])
def test_cli_rejects_unknown_names_before_starting(
    argv: list[str], field: str, hvlab_home: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown VM or host (or a missing storage path) exits 2 naming the field; nothing
    is registered or started."""
    from starter.cli import run as cli

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    argv = [os.path.join(root, a) if a.startswith("examples/") else a for a in argv]
    assert cli(argv) == 2
    assert f"{field}:" in capsys.readouterr().err
    assert not (hvlab_home / "labs").exists()



async def test_job_failed_at_half_way_leaves_the_vm_on_its_source(
    client: Client, task_queue: str, fleet: Fleet, seed: LabSpec, svr1_vm: str
) -> None:
    """The host's migration job fails at 50 %: the workflow fails, the VM still runs on
    SVR1, nothing of it is on SVR2, and Move-VM was sent once."""
    from simulator.faults import FaultPlan

    fleet.set_faults(FaultPlan.parse([{"type": "fail_job", "host": "SVR1", "at_percent": 50}]))
    async with ops_worker(client, task_queue, fleet):
        handle = await start(client, task_queue, move(seed, svr1_vm))
        with pytest.raises(WorkflowFailureError):
            await handle.result()
    assert fleet.plan.faults[0].fired == 1
    assert on_host(fleet, "SVR1", svr1_vm).state == "Running"
    assert on_host(fleet, "SVR2", svr1_vm) is None
    assert count(fleet, "SVR1", "Move-VM") == 1
