"""CLI stability: client-creating commands run back to back under full CPU load all end
cleanly (never by a signal: no 134/SIGABRT or 139/SIGSEGV at interpreter teardown).

A mix of commands against the session's dev server with a worker on the test's queue:
``status``, ``status --json``, ``history`` and ``watch`` of a finished workflow, ``schedule
list``, ``doctor`` (a real workflow round trip) and ``cancel`` of an unknown id (exit 2, the
CLI's bad-input code). ``HVLAB_CLI_RUNS`` sets the number of runs (default 30 in `make test`;
200 for the acceptance figure). The 50 back-to-back ``doctor`` runs against a detached dev
stack are tests/runtime/test_dev_stack_cli.py::test_doctor_is_stable_under_cpu_load.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import Client

from activities.registry import build_activities
from hvlab.settings import Settings
from tests.conftest import WorkerRunner, wait_for_pollers
from workflows.doctor import DoctorInput, DoctorWorkflow
from workflows.registry import ALL_WORKFLOWS

pytestmark = pytest.mark.soak

HVLAB = str(Path(sys.executable).parent / "hvlab")
RUNS = int(os.environ.get("HVLAB_CLI_RUNS") or 30)


@pytest.fixture
def busy_cores() -> Iterator[int]:
    """One process spinning per core for the duration of the test."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while 1: pass"])
            for _ in range(os.cpu_count() or 2)]
    try:
        yield len(hogs)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


async def hvlab(env: dict[str, str], *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        HVLAB, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return proc.returncode, (out + err).decode(errors="replace")


async def test_client_commands_are_stable_under_cpu_load(
    client: Client, temporal_address: str, task_queue: str, worker_runner: WorkerRunner,
    tmp_path: Path, busy_cores: int
) -> None:
    """RUNS commands in a row, rotating over the mix, each exits with its expected code."""
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HVLAB_")}
    env.update(HVLAB_HOME=str(home), HVLAB_TEMPORAL_ADDRESS=temporal_address,
               HVLAB_TASK_QUEUE=task_queue, HVLAB_CONNECT_TIMEOUT="10")
    settings = Settings(home=home, temporal_address=temporal_address, task_queue=task_queue)
    finished = f"doctor-{uuid.uuid4().hex[:8]}"
    mix: list[tuple[list[str], int]] = [
        (["status"], 0),
        (["history", finished], 0),
        (["schedule", "list"], 0),
        (["doctor"], 0),
        (["cancel", f"no-such-workflow-{uuid.uuid4().hex[:6]}"], 2),
        (["status", "--json"], 0),
        (["watch", finished], 0),
    ]
    async with worker_runner(workflows=ALL_WORKFLOWS, activities=build_activities(settings)):
        await wait_for_pollers(client, task_queue)
        await client.execute_workflow(DoctorWorkflow.run, DoctorInput(nonce="stability"),
                                      id=finished, task_queue=task_queue,
                                      execution_timeout=timedelta(seconds=60))
        outcomes: list[tuple[str, int, int]] = []
        for run in range(RUNS):
            argv, expected = mix[run % len(mix)]
            code, output = await hvlab(env, *argv)
            outcomes.append((argv[0], code, expected))
            assert code >= 0 and code not in (134, 139), (
                f"run {run} `hvlab {' '.join(argv)}` died ({code}):\n{output}")
            assert "Traceback" not in output, output
            assert code == expected, f"run {run} `hvlab {' '.join(argv)}` exit {code}:\n{output}"
            if argv[0] == "cancel":
                assert "cannot cancel" in output
    assert len(outcomes) == RUNS and busy_cores >= 1
    print(f"\n{RUNS} CLI runs under load on {busy_cores} busy cores: all clean")
