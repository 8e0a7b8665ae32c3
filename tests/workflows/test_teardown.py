"""LabTeardownWorkflow over the simulated fleet: removes VMs and switches; a rerun only probes."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from hvlab.spec import LabSpec
from hvlab.specfile import dump_lab
from simulator.fleet import Fleet
from tests.workflows.conftest import hvlab, lab_worker, mutating_counts
from tests.workflows.test_reset import build, svr2_lab
from workflows.teardown import LabTeardownInput, LabTeardownResult, LabTeardownWorkflow


async def teardown(client: Client, task_queue: str, spec: LabSpec) -> LabTeardownResult:
    return await client.execute_workflow(
        LabTeardownWorkflow.run, LabTeardownInput(spec=spec),
        id=f"{spec.lab}-down-{uuid.uuid4().hex[:6]}", task_queue=task_queue)


async def test_teardown_removes_vms_and_switches_and_a_rerun_changes_nothing(
    client: Client, task_queue: str, fleet: Fleet, seed: LabSpec, tmp_path: Path, cli_env: None
) -> None:
    """On a half-built lab (SVR2 with Linux01 and its checkpoint; SVR1 without Hyper-V) the
    seed's teardown removes the checkpoint, the VM with its disk and SVR2's switches, says what
    it leaves, and a second one (`hvlab down FILE --sim --watch`) sends no mutating command."""
    async with lab_worker(client, task_queue, fleet):
        await build(client, task_queue, fleet, svr2_lab(seed))
        disk = seed.vm_disk_path(seed.vm("Linux01")).lower()
        assert disk in {f.lower() for f in fleet.state()["hosts"]["SVR2"]["files"]}
        first = await teardown(client, task_queue, seed)
        svr2 = fleet.state()["hosts"]["SVR2"]
        assert svr2["vms"] == {} and svr2["switches"] == {}
        assert disk not in {f.lower() for f in svr2["files"]}
        assert {"checkpoint:baseline", "vm-deploy:Linux01", "host-prep:SVR2"} <= set(first.removed)
        assert "Hyper-V role" in first.left["host-prep:SVR2"]
        assert "router VM" in first.left["nat:router"]
        before = mutating_counts(fleet)
        lab = tmp_path / "lab.yaml"
        lab.write_text(dump_lab(seed))
        assert await hvlab("schedule", "reset", str(lab), "--cron", "0 6 * * 1-5", "--sim") == 0
        assert await hvlab("down", str(lab), "--sim", "--yes") == 0
        with pytest.raises(RPCError) as gone:  # down deleted the lab's reset schedule
            await client.get_schedule_handle("sim.classroom-reset-schedule").describe()
        assert gone.value.status == RPCStatusCode.NOT_FOUND
        second = await client.get_workflow_handle(
            "sim.classroom-down", result_type=LabTeardownResult).result()
    assert mutating_counts(fleet) == before
    assert second.removed == {}
    assert {s.state for s in second.progress.steps} <= {"unchanged", "skipped"}
