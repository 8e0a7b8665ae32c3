"""Workflow tests: a real Temporal dev server, an in-process worker, the simulated fleet."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from activities.context import LabContextInterceptor
from activities.registry import remote_activities
from hvlab.labs import LabRegistry, for_mode
from hvlab.powershell.endpoints import WorkerLab
from hvlab.powershell.session import SessionPool
from hvlab.settings import get_settings
from hvlab.spec import LabSpec
from hvlab.specfile import load_lab
from simulator import engine
from simulator.fleet import Fleet
from tests.conftest import running_worker
from tests.sim.conftest import SEED
from workflows.registry import ALL_WORKFLOWS


def mutating_counts(fleet: Fleet) -> dict[str, dict[str, int]]:
    """Per host, the counts of commands that change something (their handlers' flag)."""
    return engine.mutating_counts(fleet.sim.registry, fleet.state()["counters"])


@pytest.fixture
def seed() -> LabSpec:
    """The seed lab as `--sim` commands hand it to workflows: lab id ``sim.classroom``, the
    simulated fleet's registration (``fleet`` registers it)."""
    return for_mode(load_lab(SEED), sim=True)


@pytest.fixture
def fleet(seed: LabSpec, tmp_path: Path) -> Iterator[Fleet]:
    with Fleet(for_mode(seed, sim=False), tmp_path, speed=0, fresh=True, port=0,
               control=False, max_receive_wait=2.0) as running:
        LabRegistry(tmp_path).register(seed, sim=True)
        yield running


@asynccontextmanager
async def lab_worker(client: Client, task_queue: str, fleet: Fleet, **options: Any
                     ) -> AsyncIterator[Any]:
    """A worker with every workflow and the remote activities, on the fleet's home, as
    worker.py builds it; ``options`` go to the Worker."""
    lab = WorkerLab(fleet.home, dict(os.environ))
    sessions = SessionPool(lab)
    activities = remote_activities(sessions, lab)
    try:
        async with running_worker(client, task_queue, workflows=ALL_WORKFLOWS,
                                  activities=activities,
                                  interceptors=[LabContextInterceptor()],
                                  **options) as worker:
            yield worker
    finally:
        sessions.close()


@pytest.fixture
def cli_env(temporal_address: str, task_queue: str, fleet: Fleet,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The ``hvlab`` CLI talks to the test server, starts work on the test's task queue and
    registers labs in the fleet's home (run it with :func:`hvlab`)."""
    monkeypatch.setenv("HVLAB_TEMPORAL_ADDRESS", temporal_address)
    monkeypatch.setenv("HVLAB_TASK_QUEUE", task_queue)
    monkeypatch.setenv("HVLAB_HOME", str(fleet.home))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


async def hvlab(*args: str) -> int:
    """Run the CLI (``starter.cli.run``) in a thread, as it runs its own event loop."""
    from starter.cli import run

    return await asyncio.to_thread(run, list(args))
