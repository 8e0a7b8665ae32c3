"""A lab file's exercise as one durable workflow (issue 15): ``hvlab run FILE [EXERCISE]``.

The seed's exercise (build, three moves, replicate, failover, verify, checkpoint) ships as
data in examples/classroom-lab.yaml; here it runs through the CLI on the seed and on a copy
with every host, VM and the domain renamed, twice in a row on the same lab; a cancelled run
says what remains and ``--from`` resumes it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import (
    Client,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
    ScheduleOverlapPolicy,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.service import RPCError

from hvlab.spec import ApprovalStep, ExerciseStep, LabSpec
from hvlab.specfile import dump_lab
from simulator.fleet import Fleet
from tests.workflows.conftest import hvlab, lab_worker, mutating_counts
from tests.workflows.test_lesson_loop import primary_of, running_copies
from tests.workflows.test_lesson_loop import seed as seed  # the seed and its renamed copy
from workflows.progress import Progress

pytestmark = [pytest.mark.integration]
HVLAB = str(Path(sys.executable).parent / "hvlab")
ROOT = Path(__file__).resolve().parents[2]


def seed_end_state(seed: LabSpec, fleet: Fleet) -> None:
    """Where the seed's exercise leaves the lab, in the lab's own names."""
    gateway, telnet, rdp, linux = (v.name for v in seed.vms)
    one, two = (h.name for h in seed.hyperv_hosts)
    share = f"\\\\{seed.domain.dc}\\smb"
    assert {n: hs for n, hs in running_copies(fleet).items()} == {
        gateway: [two], telnet: [one], rdp: [two], linux: [one]}
    hosts = fleet.state()["hosts"]
    assert all(d["path"].startswith(share) for d in hosts[one]["vms"][telnet]["disks"])
    assert hosts[two]["vms"][rdp]["path"].startswith(share)
    assert all(d["path"].startswith("C:\\") for d in hosts[two]["vms"][gateway]["disks"])
    assert primary_of(fleet, linux) == one
    primary = hosts[one]["replication"][linux]
    assert (primary["state"], primary["health"]) == ("Replicating", "Normal")
    for host, vm in ((two, gateway), (one, telnet), (two, rdp), (one, linux)):
        assert hosts[host]["vms"][vm]["state"] == "Running", vm
    baseline = seed.checkpoints[0].name
    for host, vm in ((two, gateway), (one, telnet), (two, rdp), (one, linux)):
        assert baseline in hosts[host]["vms"][vm]["checkpoints"], vm


def _recap(out: str) -> dict[str, str]:
    return {s["step"]: s["state"] for s in json.loads(out.strip().splitlines()[-1])["steps"]}


@pytest.mark.parametrize("seed", ["seed", "renamed"], indirect=True)
async def test_exercise_runs_twice_on_any_topology(
        client: Client, task_queue: str, fleet: Fleet, seed: LabSpec, cli_env: None,
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`hvlab run FILE --sim` runs the lab's first exercise to the seed's end state under the
    lab's own names, and exits 0; run again right after, every step starts from where the
    lab is now (the VMs moved, the failover done) and passes without moving anything."""
    (tmp_path / "lab.yaml").write_text(dump_lab(seed))
    lab = str(tmp_path / "lab.yaml")
    async with lab_worker(client, task_queue, fleet):
        capsys.readouterr()
        assert await hvlab("run", lab, "--sim", "--json") == 0, capsys.readouterr()
        first = _recap(capsys.readouterr().out)
        assert set(first.values()) <= {"done", "unchanged"} and len(first) == 8
        assert first[f"migrate-{seed.vms[0].name}"] == "done"
        assert first[f"failover-{seed.vms[3].name}"] == "done"
        seed_end_state(seed, fleet)
        moves = mutating_counts(fleet)

        assert await hvlab("run", lab, "seed", "--sim", "--json") == 0, capsys.readouterr()
        second = _recap(capsys.readouterr().out)
        for vm in seed.vms[:3]:
            assert second[f"migrate-{vm.name}"] == "unchanged"
        assert second[f"failover-{seed.vms[3].name}"] == "unchanged"
        assert second[f"checkpoint-{seed.checkpoints[0].name}"] == "unchanged"
        seed_end_state(seed, fleet)
        after = mutating_counts(fleet)
        for host in moves:
            for command in ("Move-VM", "Move-VMStorage", "Start-VMFailover", "Checkpoint-VM"):
                assert after[host].get(command) == moves[host].get(command), (host, command)


@pytest.mark.parametrize("seed", ["seed"], indirect=True)
async def test_cancel_says_what_remains_and_from_resumes(
        client: Client, task_queue: str, fleet: Fleet, seed: LabSpec, cli_env: None,
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Cancelled while a step waits for the teacher's go, the exercise ends cancelled; its
    memo keeps the completed steps and names the steps not run and the `--from` command; the
    approval Update then lets a resumed run (`--from`) go on and complete."""
    text = dump_lab(seed) + """
- name: gate
  steps:
  - checkpoint: {name: baseline}
  - approval: {message: go}
  - migrate: {vm: win2003-1, to: SVR2}
"""
    (tmp_path / "lab.yaml").write_text(text)
    lab = str(tmp_path / "lab.yaml")
    workflow_id = f"sim.{seed.lab}-exercise-gate"
    async with lab_worker(client, task_queue, fleet):
        assert await hvlab("up", lab, "--sim", "--watch") == 0
        capsys.readouterr()
        assert await hvlab("run", lab, "seed", "--sim", "--from", "checkpoint-baseline",
                           "--json") == 0
        resumed = _recap(capsys.readouterr().out)
        assert list(resumed.values()) == ["skipped"] * 7 + ["unchanged"]  # up took it

        assert await hvlab("run", lab, "gate", "--sim", "--no-wait") == 0
        handle = client.get_workflow_handle(workflow_id)
        while not await _waiting(handle):
            await asyncio.sleep(0.2)
        capsys.readouterr()
        assert await hvlab("cancel", workflow_id) == 0
        said = capsys.readouterr().out
        assert "kept: step checkpoint-baseline (take checkpoint baseline): unchanged" in said
        assert "not run: approval, migrate-win2003-1" in said
        assert "--sim --from approval" in said
        assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED

        assert await hvlab("run", lab, "gate", "--sim", "--from", "approval", "--no-wait") == 0
        while not await _waiting(handle):
            await asyncio.sleep(0.2)
        assert await hvlab("approve", workflow_id, "--by", "teacher") == 0
        assert await hvlab("watch", workflow_id) == 0
    assert running_copies(fleet)["win2003-1"] == ["SVR2"]


async def _waiting(handle: WorkflowHandle[Any, Any], quiet: bool = False) -> bool:
    """The exercise waits for the teacher's go (quiet: not started yet counts as not)."""
    try:
        progress = await handle.query("progress", result_type=Progress)
    except (RPCError, WorkflowQueryFailedError):
        if not quiet:
            raise
        return False
    current = progress.current
    return current is not None and current.name == "approval"



@pytest.mark.parametrize("seed", ["seed"], indirect=True)
async def test_schedule_runs_an_exercise(client: Client, fleet: Fleet, seed: LabSpec,
                                         cli_env: None, tmp_path: Path) -> None:
    """`hvlab schedule run FILE EXERCISE --cron` puts the exercise on a schedule beside the
    reset schedule (the lab file's time zone, overlap skip) whose runs are the exercise's
    workflow; `hvlab down` deletes it with the lab's other schedules."""
    (tmp_path / "lab.yaml").write_text(dump_lab(seed))
    lab = str(tmp_path / "lab.yaml")
    schedule_id = "sim.classroom-exercise-seed-schedule"
    assert await hvlab("schedule", "run", lab, "nope", "--cron", "0 7 * * 1", "--sim") == 2
    assert await hvlab("schedule", "run", lab, "seed", "--cron", "7 * *", "--sim") == 2
    assert await hvlab("schedule", "run", lab, "seed", "--cron", "0 7 * * 1", "--sim") == 0
    assert await hvlab("schedule", "reset", lab, "--cron", "0 6 * * 1-5", "--sim") == 0
    described = await client.get_schedule_handle(schedule_id).describe()
    [calendar] = described.schedule.spec.calendars  # the server keeps crons as calendars
    assert ([r.start for r in calendar.hour], [r.start for r in calendar.day_of_week]) == (
        [7], [1])
    assert described.schedule.state.note == "exercise seed of sim.classroom"
    assert described.schedule.spec.time_zone_name == seed.reset.timezone  # type: ignore[union-attr]
    assert described.schedule.policy.overlap is ScheduleOverlapPolicy.SKIP
    action = described.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert (action.workflow, action.id) == ("ExerciseWorkflow", "sim.classroom-exercise-seed")
    await client.get_schedule_handle(schedule_id).trigger()
    started = ""
    while not started:  # the schedule's first action (its id gets the start time appended)
        for done in (await client.get_schedule_handle(schedule_id).describe()).info \
                .recent_actions:
            if isinstance(done.action, ScheduleActionExecutionStartWorkflow):
                started = done.action.workflow_id
        await asyncio.sleep(0.05)
    assert started.startswith("sim.classroom-exercise-seed-")
    handle = client.get_workflow_handle(started)
    assert (await handle.describe()).workflow_type == "ExerciseWorkflow"
    await handle.terminate("test: no worker")

    assert await hvlab("down", lab, "--sim", "--yes", "--no-wait") == 0  # no worker here
    await client.get_workflow_handle("sim.classroom-down").terminate("test: no worker")
    for gone in (schedule_id, "sim.classroom-reset-schedule"):
        with pytest.raises(RPCError):
            await client.get_schedule_handle(gone).describe()


@pytest.mark.parametrize("seed", ["seed"], indirect=True)
async def test_the_exercise_outlives_the_cli(
        client: Client, task_queue: str, temporal_address: str, fleet: Fleet, seed: LabSpec,
        cli_env: None, tmp_path: Path) -> None:
    """SIGKILL `hvlab run` in the middle of the exercise (after the build, while the teacher's
    go is awaited): the exercise goes on in Temporal, takes the go (`hvlab approve ID`) and
    completes with the seed's end state, and `hvlab watch ID` on its id exits 0."""
    exercise = seed.exercises[0]
    steps = [exercise.steps[0], ExerciseStep(approval=ApprovalStep(message="go on")),
             *exercise.steps[1:]]
    gated = seed.model_copy(update={"exercises": [exercise.model_copy(update={"steps": steps})]})
    (tmp_path / "lab.yaml").write_text(dump_lab(gated))
    workflow_id = "sim.classroom-exercise-seed"
    env = {**os.environ, "HVLAB_TEMPORAL_ADDRESS": temporal_address,
           "HVLAB_TASK_QUEUE": task_queue, "HVLAB_HOME": str(fleet.home),
           "PYTHONPATH": str(ROOT)}  # this checkout's code, whichever one is installed
    async with lab_worker(client, task_queue, fleet):
        cli = subprocess.Popen([HVLAB, "run", str(tmp_path / "lab.yaml"), "--sim"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            handle = client.get_workflow_handle(workflow_id)
            while not await _waiting(handle, quiet=True):
                assert cli.poll() is None, "hvlab run ended before the exercise got going"
                await asyncio.sleep(0.1)
            cli.send_signal(signal.SIGKILL)
            assert cli.wait(timeout=30) == -signal.SIGKILL
        finally:
            if cli.poll() is None:
                cli.kill()
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
        assert await hvlab("approve", workflow_id) == 0
        assert await hvlab("watch", workflow_id) == 0
        if os.environ.get("HVLAB_RECORD_EXERCISE"):  # refresh tests/histories' saved run
            history = await handle.fetch_history()
            (ROOT / "tests" / "histories" / "ExerciseWorkflow.json").write_text(
                history.to_json())
    seed_end_state(seed, fleet)


@pytest.mark.parametrize("seed", ["seed"], indirect=True)
async def test_a_failing_step_exits_1_with_its_cause(
        client: Client, task_queue: str, fleet: Fleet, seed: LabSpec, cli_env: None,
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`hvlab run` (waiting) exits 1 when a step fails, printing the step's own cause (not
    "child workflow failed"), the recap and which steps were not run."""
    text = dump_lab(seed) + "- name: broken\n  steps:\n  - verify: {timeout: 2}\n  - checkpoint: {name: baseline}\n"
    (tmp_path / "lab.yaml").write_text(text)
    async with lab_worker(client, task_queue, fleet):
        capsys.readouterr()
        assert await hvlab("run", str(tmp_path / "lab.yaml"), "broken", "--sim") == 1
    said = capsys.readouterr()
    errors = " ".join(said.err.split())
    assert "sim.classroom-exercise-broken ended failed" in errors
    assert "cause: guest.check_connectivity: VerificationFailed:" in errors
    assert "not run: verify, checkpoint-baseline" in errors
    assert "--sim --from verify" in errors
    assert "failed" in said.out and "pending" in said.out  # the recap
