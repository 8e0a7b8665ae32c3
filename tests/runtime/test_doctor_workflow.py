"""DoctorWorkflow and the doctor's Temporal checks against the session's real dev server."""

from __future__ import annotations

import os
import uuid
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from activities.registry import build_activities
from hvlab.settings import Settings
from hvlab.telemetry import hvlab_version
from starter.checks import temporal_checks
from tests.conftest import WorkerRunner, wait_for_pollers
from workflows.doctor import DoctorInput, DoctorResult, DoctorWorkflow
from workflows.registry import ALL_WORKFLOWS


def _settings(address: str, task_queue: str, home: Path) -> Settings:
    return Settings(home=home, temporal_address=address, task_queue=task_queue, connect_timeout=2)


async def test_doctor_workflow_runs_its_probe_on_a_real_worker(
    client: Client, task_queue: str, worker_runner: WorkerRunner, tmp_path: Path
) -> None:
    """The workflow returns the probe's answer from the worker that ran the activity."""
    workflow_id = f"doctor-{uuid.uuid4().hex}"
    settings = _settings("unused:1", task_queue, tmp_path)
    async with worker_runner(workflows=ALL_WORKFLOWS, activities=build_activities(settings)):
        result = await client.execute_workflow(
            DoctorWorkflow.run,
            DoctorInput(nonce="n-42"),
            id=workflow_id,
            task_queue=task_queue,
            execution_timeout=timedelta(seconds=20),
        )
    assert isinstance(result, DoctorResult)
    assert result.workflow_id == workflow_id
    assert result.probe.nonce == "n-42"
    assert result.probe.pid == os.getpid()
    assert result.probe.task_queue == task_queue
    assert result.probe.worker_identity == client.identity
    assert result.probe.hvlab_version == hvlab_version()
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    replayer = Replayer(workflows=[DoctorWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)


async def test_doctor_checks_pass_with_a_polling_worker(
    client: Client,
    temporal_address: str,
    task_queue: str,
    worker_runner: WorkerRunner,
    tmp_path: Path,
) -> None:
    """With a worker on the queue every check is OK and the worker's identity is reported."""
    settings = _settings(temporal_address, task_queue, tmp_path)
    async with worker_runner(workflows=ALL_WORKFLOWS, activities=build_activities(settings)):
        await wait_for_pollers(client, task_queue)
        rows = await temporal_checks(settings)
    by_name = {row.check: row for row in rows}
    assert [row.ok for row in rows] == [True] * 5, rows
    assert str(os.getpid()) in by_name["workflow pollers"].detail
    assert str(os.getpid()) in by_name["activity pollers"].detail
    assert "DoctorWorkflow ran on" in by_name["round trip"].detail


async def test_doctor_names_the_fix_when_no_worker_polls(
    temporal_address: str, task_queue: str, tmp_path: Path
) -> None:
    """Without a worker the poller checks fail, name `hvlab worker`, and skip the round trip."""
    rows = await temporal_checks(_settings(temporal_address, task_queue, tmp_path))
    by_name = {row.check: row for row in rows}
    assert by_name["Temporal reachable"].ok and by_name["namespace"].ok
    assert by_name["workflow pollers"].ok is False
    assert f"no worker polls task queue '{task_queue}'" in by_name["workflow pollers"].fix
    assert "hvlab worker" in by_name["workflow pollers"].fix
    assert by_name["round trip"].ok is None


async def test_doctor_reports_a_missing_namespace(
    temporal_address: str, task_queue: str, tmp_path: Path
) -> None:
    """An unknown namespace fails its check with a fix, and later checks are skipped."""
    settings = _settings(temporal_address, task_queue, tmp_path)
    rows = await temporal_checks(settings.model_copy(update={"namespace": "no-such-ns"}))
    assert [row.ok for row in rows] == [True, False, None, None, None]
    assert "HVLAB_NAMESPACE" in rows[1].fix
