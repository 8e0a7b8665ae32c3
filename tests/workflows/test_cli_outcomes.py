"""Operations wait and exit with their workflow's outcome (issue 15, item 5 and acceptance
line 4), through the CLI against the test server and the simulated fleet: a failing operation
started without --no-wait exits 1 and prints its cause and a recap; --json prints the outcome;
--no-wait returns at once with the id and how to follow it; Ctrl-C while waiting leaves the
workflow running and says how to follow and cancel it (exit 130); `checkpoint --replace`
retakes a checkpoint; `status` shows whole ids, top-level workflows unless --all, per lab."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from hvlab.spec import LabSpec
from hvlab.specfile import dump_lab, load_lab
from simulator.fleet import Fleet
from tests.sim.conftest import SEED, hyperv_ready, join_domain
from tests.workflows.conftest import hvlab, lab_worker, mutating_counts
from tests.workflows.test_reset import build, linux01, svr2_lab

ROOT = Path(__file__).resolve().parents[2]


def _lab_file(tmp_path: Path, spec: LabSpec, name: str = "lab") -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(dump_lab(spec))
    return str(path)


async def _terminate(client: Client, workflow_id: str) -> None:
    handle = client.get_workflow_handle(workflow_id)
    if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
        await handle.terminate("test cleanup")


async def test_failing_operation_exits_1_with_its_cause_and_recap(
    client: Client, task_queue: str, fleet: Fleet, seed: LabSpec, tmp_path: Path,
    cli_env: None, capsys: pytest.CaptureFixture[str],
) -> None:
    """`hvlab checkpoint FILE baseline --sim` (no --watch, no --no-wait) of a VM that does not
    exist waits for the workflow, exits 1 and prints where and why it failed (the classified
    error with its host) and the recap row of the VM as failed."""
    join_domain(fleet.sim, "SVR2")
    hyperv_ready(fleet.sim, "SVR2")
    lab = _lab_file(tmp_path, svr2_lab(seed))
    async with lab_worker(client, task_queue, fleet):
        capsys.readouterr()
        code = await hvlab("checkpoint", lab, "baseline", "--sim")
    said = capsys.readouterr()
    assert code == 1, said
    assert "sim.classroom-checkpoint-baseline ended failed" in said.err
    cause = said.err.split("ended failed", 1)[1]
    assert "checkpoint.create" in cause or "SVR2" in cause, cause
    assert "Linux01" in cause, cause
    assert "recap:" in said.out
    recap = said.out.split("recap:", 1)[1]
    assert "checkpoint:Linux01" in recap and "failed" in recap and "1 failed" in recap


async def test_json_recap_replace_and_status(
    client: Client, task_queue: str, fleet: Fleet, seed: LabSpec, tmp_path: Path,
    cli_env: None, capsys: pytest.CaptureFixture[str],
) -> None:
    """After a build: `hvlab checkpoint ... --json` prints the outcome as JSON (completed, the
    VM unchanged: its checkpoint exists); with --replace the checkpoint is removed and taken
    again (one Remove-VMSnapshot, one Checkpoint-VM) and the recap says retaken. `hvlab status
    --lab` lists the build by its whole id and none of its units; --all lists the units too."""
    spec = svr2_lab(seed)
    lab = _lab_file(tmp_path, spec)
    async with lab_worker(client, task_queue, fleet):
        built = await build(client, task_queue, fleet, spec)
        assert built.units["checkpoint:baseline"] == "done"
        capsys.readouterr()
        assert await hvlab("checkpoint", lab, "baseline", "--sim", "--json") == 0
        again = json.loads(capsys.readouterr().out)
        before = mutating_counts(fleet)["SVR2"]
        assert await hvlab("checkpoint", lab, "baseline", "--sim", "--replace", "--json") == 0
        retaken = json.loads(capsys.readouterr().out)
    after = mutating_counts(fleet)["SVR2"]
    assert (again["status"], again["workflow_type"]) == ("completed", "CheckpointWorkflow")
    assert [(r["subject"], r["outcome"]) for r in again["recap"]] == [("Linux01", "unchanged")]
    assert again["result"]["created"] == [] and again["summary"] == "1 unchanged"
    assert retaken["status"] == "completed"
    assert retaken["result"]["replaced"] == ["Linux01"]
    assert [(r["subject"], r["outcome"], r["detail"]) for r in retaken["recap"]] == [
        ("Linux01", "changed", "checkpoint baseline retaken")]
    assert after.get("Remove-VMSnapshot", 0) == before.get("Remove-VMSnapshot", 0) + 1
    assert after.get("Checkpoint-VM", 0) == before.get("Checkpoint-VM", 0) + 1
    assert linux01(fleet)["checkpoints"] == ["baseline"]

    [build_id] = [w.id async for w in client.list_workflows(
        f"WorkflowType = 'LabBuildWorkflow' AND TaskQueue = '{task_queue}'")]
    unit = f"{build_id}/vm-deploy:Linux01"
    deadline = time.monotonic() + 30  # visibility is eventually consistent
    while not [w async for w in client.list_workflows(f"WorkflowId = '{unit}'")]:
        assert time.monotonic() < deadline, f"{unit} not listed"
        await asyncio.sleep(0.1)
    assert await hvlab("status", "--lab", "sim.classroom") == 0
    top = capsys.readouterr().out
    assert build_id in top and unit not in top
    assert "sim.classroom-checkpoint-baseline" in top
    assert await hvlab("status", "--lab", "classroom", "--all", "--limit", "200") == 0
    every = capsys.readouterr().out
    assert unit in every  # the whole id, on one line, though the console is 80 columns
    assert await hvlab("status", "--lab", "another-lab", "--json") == 0
    assert json.loads(capsys.readouterr().out) == []


async def test_no_wait_returns_with_the_id_and_how_to_follow(
    client: Client, fleet: Fleet, tmp_path: Path, cli_env: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No worker on the queue: `hvlab up FILE --sim --no-wait` exits 0 at once, printing the
    workflow id and `hvlab watch ID`; the workflow is running."""
    spec = load_lab(SEED).model_copy(update={"lab": f"nowait{uuid.uuid4().hex[:6]}"})
    lab = _lab_file(tmp_path, spec)
    workflow_id = f"sim.{spec.lab}-build"
    try:
        capsys.readouterr()
        assert await hvlab("up", lab, "--sim", "--no-wait") == 0
        said = capsys.readouterr().out
        assert f"workflow {workflow_id}" in said and f"hvlab watch {workflow_id}" in said
        described = await client.get_workflow_handle(workflow_id).describe()
        assert described.status == WorkflowExecutionStatus.RUNNING
    finally:
        await _terminate(client, workflow_id)


async def test_ctrl_c_while_waiting_leaves_the_work_running(
    client: Client, fleet: Fleet, tmp_path: Path, cli_env: None,
) -> None:
    """`hvlab up FILE --sim` waits (no worker: it never ends); SIGINT (Ctrl-C) stops the
    waiting, not the work: exit 130, the workflow still runs, and the CLI says how to follow
    it (`hvlab watch ID`) and cancel it (`hvlab cancel ID`)."""
    spec = load_lab(SEED).model_copy(update={"lab": f"ctrlc{uuid.uuid4().hex[:6]}"})
    lab = _lab_file(tmp_path, spec)
    workflow_id = f"sim.{spec.lab}-build"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from starter.cli import main; main()", "up", lab, "--sim",
        cwd=ROOT, env=dict(os.environ), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        seen = b""
        while f"workflow {workflow_id}".encode() not in seen:
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=120)
            assert line, f"the CLI ended before starting: {await proc.stderr.read()!r}"
            seen += line
        proc.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(proc.communicate(), timeout=60)
        said = stderr.decode()
        assert proc.returncode == 130, said
        assert f"hvlab watch {workflow_id}" in said and f"hvlab cancel {workflow_id}" in said
        assert "goes on" in said
        described = await client.get_workflow_handle(workflow_id).describe()
        assert described.status == WorkflowExecutionStatus.RUNNING
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await _terminate(client, workflow_id)
