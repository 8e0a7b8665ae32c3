"""The lab's reset schedule through the CLI against the test dev server: create, trigger (a
LabResetWorkflow run restores the checkpoint and re-converges), pause, list, delete."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from temporalio.client import Client, ScheduleActionExecutionStartWorkflow, ScheduleOverlapPolicy
from temporalio.service import RPCError, RPCStatusCode

from hvlab.spec import LabSpec
from hvlab.specfile import dump_lab
from simulator.fleet import Fleet
from tests.workflows.conftest import hvlab, lab_worker
from tests.workflows.test_reset import assert_restored, build, drift, linux01, svr2_lab
from workflows.reset import LabResetResult

SCHEDULE = "sim.classroom-reset-schedule"


async def scheduled_run(client: Client, timeout: float = 20.0) -> str:
    """The workflow id of the schedule's first action, once it has one."""
    handle = client.get_schedule_handle(SCHEDULE)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for done in (await handle.describe()).info.recent_actions:
            if isinstance(done.action, ScheduleActionExecutionStartWorkflow):
                return done.action.workflow_id
        await asyncio.sleep(0.05)
    pytest.fail(f"{SCHEDULE} started nothing within {timeout} s")


async def test_triggered_schedule_resets_the_lab(
    client: Client, task_queue: str, fleet: Fleet, seed: LabSpec, tmp_path: Path,
    cli_env: None, capsys: pytest.CaptureFixture[str],
) -> None:
    """`hvlab schedule reset` without --cron creates <lab>-reset-schedule on the lab file's
    reset.cron in its zone (Asia/Seoul: 06:00 there, 21:00 UTC the day before; overlap skip);
    `trigger` starts a LabResetWorkflow, printing its id, that brings the drifted VM back to
    its checkpoint and re-converges; pause/unpause work by id; `list` shows the cron as the
    lab file says it (the server keeps it as calendar ranges); after `delete` describe says
    not found."""
    spec = svr2_lab(seed)
    lab = tmp_path / "svr2.yaml"
    lab.write_text(dump_lab(spec))
    async with lab_worker(client, task_queue, fleet):
        await build(client, task_queue, fleet, spec)
        checkpointed = linux01(fleet)
        drift(fleet)
        assert spec.reset is not None and spec.reset.cron == "0 6 * * 1-5"
        assert await hvlab("schedule", "reset", str(lab), "--sim") == 0
        described = await client.get_schedule_handle(SCHEDULE).describe()
        assert described.schedule.policy.overlap is ScheduleOverlapPolicy.SKIP
        assert described.schedule.spec.time_zone_name == "Asia/Seoul"
        upcoming = described.info.next_action_times[0].astimezone(ZoneInfo("Asia/Seoul"))
        assert described.info.next_action_times[0].astimezone(UTC).hour == 21
        assert (upcoming.hour, upcoming.minute, upcoming.weekday() < 5) == (6, 0, True)
        capsys.readouterr()
        assert await hvlab("schedule", "trigger", SCHEDULE) == 0
        workflow_id = await scheduled_run(client)
        assert f"workflow {workflow_id}" in capsys.readouterr().out
        handle = client.get_workflow_handle(workflow_id, result_type=LabResetResult)
        result = await asyncio.wait_for(handle.result(), timeout=30)
    assert workflow_id.startswith("sim.classroom-reset")
    assert (result.checkpoint, result.restored) == ("baseline", ["Linux01"])
    assert set(result.converged) == {"host-prep:SVR2"}
    assert_restored(fleet, checkpointed)
    assert await hvlab("schedule", "pause", SCHEDULE) == 0
    assert (await client.get_schedule_handle(SCHEDULE).describe()).schedule.state.paused
    assert await hvlab("schedule", "unpause", SCHEDULE) == 0
    capsys.readouterr()
    assert await hvlab("schedule", "list", "--json") == 0
    listed = {row["id"]: row for row in json.loads(capsys.readouterr().out)}
    assert listed[SCHEDULE]["cron"] == "0 6 * * 1-5 (Asia/Seoul)"
    assert listed[SCHEDULE]["state"] == "active"
    assert await hvlab("schedule", "list") == 0
    assert "0 6 * * 1-5 (Asia/Seoul)" in capsys.readouterr().out
    assert await hvlab("schedule", "delete", SCHEDULE) == 0
    with pytest.raises(RPCError) as info:
        await client.get_schedule_handle(SCHEDULE).describe()
    assert info.value.status == RPCStatusCode.NOT_FOUND
    assert await hvlab("schedule", "trigger", SCHEDULE) == 2
