"""The worker as a process: `python worker.py` and `hvlab worker` run work, log JSON, drain."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from hvlab.temporal import free_local_port
from tests.conftest import wait_for_pollers
from tests.runtime.procs import HVLAB, http_get, listen_port
from workflows.doctor import DoctorInput, DoctorWorkflow

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ENTRY_POINTS = {
    "python worker.py": [sys.executable, str(ROOT / "worker.py")],
    "hvlab worker": [HVLAB, "worker"],
}


def _json_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
async def test_worker_process_runs_work_and_drains_on_sigterm(
    entry: str, client: Client, temporal_address: str, task_queue: str, tmp_path: Path
) -> None:
    """The worker polls, runs DoctorWorkflow, serves /healthz, logs JSON, exits 0 on SIGTERM."""
    metrics = f"127.0.0.1:{listen_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HVLAB_")}
    env.update(
        HVLAB_HOME=str(tmp_path),
        HVLAB_TEMPORAL_ADDRESS=temporal_address,
        HVLAB_TASK_QUEUE=task_queue,
        HVLAB_METRICS_ADDRESS=metrics,
    )
    log = tmp_path / "worker.log"
    with log.open("w") as out:
        proc = subprocess.Popen(ENTRY_POINTS[entry], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        await wait_for_pollers(client, task_queue, timeout=30)
        result = await client.execute_workflow(
            DoctorWorkflow.run,
            DoctorInput(nonce=entry),
            id=f"worker-process-{task_queue}",
            task_queue=task_queue,
            execution_timeout=timedelta(seconds=20),
        )
        assert result.probe.pid == proc.pid
        assert (await asyncio.to_thread(http_get, f"http://{metrics}/healthz"))[0] == 200
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    events = {line["event"]: line for line in _json_lines(log)}
    started = events["worker started"]
    assert (started["task_queue"], started["metrics_address"]) == (task_queue, metrics)
    assert started["namespace"] == "default" and started["pid"] == proc.pid
    assert "worker stopped" in events


async def test_worker_exits_1_when_temporal_is_unreachable(tmp_path: Path) -> None:
    """With no server at the address the worker logs why and exits 1 (no traceback)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HVLAB_")}
    env.update(
        HVLAB_HOME=str(tmp_path),
        HVLAB_TEMPORAL_ADDRESS=f"127.0.0.1:{free_local_port()}",
        HVLAB_METRICS_ADDRESS="",
        HVLAB_CONNECT_TIMEOUT="2",
    )
    result = await asyncio.to_thread(
        subprocess.run, [sys.executable, str(ROOT / "worker.py")], env=env,
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 1
    [line] = [json.loads(x) for x in result.stderr.splitlines() if x.startswith("{")]
    assert line["event"] == "cannot reach Temporal" and line["reason"] == "connection refused"


async def test_worker_flushes_heartbeat_details_within_two_seconds(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    """The worker caps the SDK's heartbeat throttle (80 % of the heartbeat timeout, 48 s for
    most steps) at 2 s: a step's 'restart sent' details reach the server before a worker kill
    can lose them (host.reboot's retry reads them; `make chaos` saw a third restart without)."""
    from concurrent.futures import ThreadPoolExecutor

    from hvlab.settings import Settings
    from worker import build_worker

    settings = Settings(home=tmp_path, task_queue=task_queue)
    with ThreadPoolExecutor(max_workers=2) as executor:
        worker = build_worker(settings, client, executor)
    assert worker.config().get("max_heartbeat_throttle_interval") == timedelta(seconds=2)
