"""Shared fixtures: one real Temporal dev server per session, fresh task queues, workers.

- ``temporal_env``: session-wide :class:`WorkflowEnvironment` (in-memory dev server from the
  venv's ``temporal`` binary, pydantic data converter, fast history queue readers).
- ``client``: its client. ``temporal_address``: its ``host:port``.
- ``task_queue``: a new, unique task queue name for each test.
- ``worker_runner``: ``async with worker_runner(workflows=[...], activities=[...]):`` runs an
  in-process worker on the test's task queue (sync activities run in a thread pool).
  :func:`running_worker` is the same for any client and task queue;
  :func:`wait_for_pollers` waits until the server sees a worker poll both task-queue types.
- ``hvlab_home``: ``HVLAB_HOME`` set to a fresh temp dir, settings cache cleared around it.

Tiers (``pytest -m fast``, ``-m integration``, ``-m soak``; see the README):

- *fast*: in-process only (the simulated fleet on threads, real pypsrp over loopback); no dev
  server, no child process. Every test that is not marked otherwise is fast, and a fast test
  that starts a process fails at once (:func:`_fast_tests_start_no_process`).
- *integration*: a Temporal dev server, a worker, a fleet or the CLI as processes. Any test
  that uses ``temporal_env`` (directly or through another fixture) is marked so here; a module
  that starts processes itself says ``pytestmark = pytest.mark.integration``.
- *soak*: long randomized or repeated runs (worker kills, commands under CPU load). ``make
  test`` runs them with the smaller counts set in the Makefile; ``make chaos`` the full ones.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from hvlab.devstack import dynamic_config_args, temporal_binary
from hvlab.settings import get_settings

WorkerRunner = Callable[..., AbstractAsyncContextManager[Worker]]

TIERS = ("fast", "integration", "soak")
SERVER_FIXTURES = frozenset({"temporal_env"})


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fast: in-process only, no server or child process")
    config.addinivalue_line("markers", "integration: dev server, worker, fleet or CLI processes")
    config.addinivalue_line("markers", "soak: long randomized or repeated runs")


def tier_of(item: pytest.Item) -> str:
    """The test's tier: soak or integration when marked (or when it needs the dev server)."""
    marked = {mark.name for mark in item.iter_markers() if mark.name in TIERS}
    if "soak" in marked:
        return "soak"
    if "integration" in marked or SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
        return "integration"
    return "fast"


# Per-test time limits by tier (pytest-timeout; a test may set its own with
# ``pytest.mark.timeout``): a hang fails with every thread's stack instead of eating CI's time.
# Each is several times the slowest test of its tier on the 2-core machine under both xdist
# workers (fast 7 s, integration 30 s; the short chaos run 100 s).
# HVLAB_TEST_TIMEOUT_SCALE multiplies them where everything runs slower on purpose (`make
# mutation` sets 10: mutmut's trampolines and a loaded machine stretched a 5 s test past 30 s).
TIER_TIMEOUT = {"fast": 30.0, "integration": 180.0, "soak": 900.0}
TIMEOUT_SCALE = float(os.environ.get("HVLAB_TEST_TIMEOUT_SCALE") or 1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give every test exactly one tier marker, so ``-m fast`` selects by name, and its tier's
    time limit unless it sets its own."""
    for item in items:
        tier = tier_of(item)
        if not item.get_closest_marker(tier):
            item.add_marker(getattr(pytest.mark, tier))
        if not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(TIER_TIMEOUT[tier] * TIMEOUT_SCALE))


# Test files that must not run at the same time as each other under pytest-xdist, by the
# resource they share. `hvlab demo` serves its fleet on the default WinRM port 5985 of
# 127.0.0.10-12 (as a user's would); two demos at once would find each other's hosts there.
SHARED_SCOPES = {
    "tests/cli/test_demo.py": "winrm-5985",
    "tests/security/test_secret_scan.py": "winrm-5985",
}


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadfile``, except that the files of one SHARED_SCOPES entry share a worker
    (and run one after another); every other file keeps its own scope."""
    if config.getoption("dist", None) != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SharedFileScheduling(LoadFileScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return SHARED_SCOPES.get(path, path)

    return SharedFileScheduling(config, log)


class ProcessInFastTest(AssertionError):
    """A fast-tier test started a process; it belongs to the integration tier."""


@pytest.fixture(autouse=True)
def _fast_tests_start_no_process(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fast tests run in-process: starting any child process (a dev server, the CLI, a tool)
    fails the test and names the tier it belongs to."""
    if tier_of(request.node) != "fast":
        return
    import subprocess

    def refuse(self: object, args: Any, *rest: Any, **kwargs: Any) -> None:
        raise ProcessInFastTest(
            f"{request.node.nodeid} starts a process ({args!r}): mark it "
            "pytest.mark.integration (or move the process into an integration test)")

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    """One real Temporal dev server for the whole test session."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(temporal_binary()),
        data_converter=pydantic_data_converter,
        dev_server_extra_args=dynamic_config_args(),
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def client(temporal_env: WorkflowEnvironment) -> Client:
    """A client of the session's dev server (pydantic data converter)."""
    return temporal_env.client


@pytest.fixture
def temporal_address(client: Client) -> str:
    """``host:port`` of the session's dev server."""
    return client.service_client.config.target_host


@pytest.fixture
def task_queue(request: pytest.FixtureRequest) -> str:
    """A task queue no other test uses."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", request.node.name)[:40]
    return f"t-{stem}-{uuid.uuid4().hex[:8]}"


def sandbox_runner() -> SandboxedWorkflowRunner:
    """The default workflow sandbox, with ``mutmut`` passed through: under `make mutation`
    every mutated function (workflow code included) reads the mutant to run from
    ``os.environ`` through mutmut's trampoline, which the sandbox forbids to its own modules."""
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules("mutmut"))


@asynccontextmanager
async def running_worker(
    client: Client,
    task_queue: str,
    *,
    workflows: Sequence[type] = (),
    activities: Sequence[Callable[..., Any]] = (),
    **options: Any,
) -> AsyncIterator[Worker]:
    """Run a worker in this process for the duration of the block."""
    with ThreadPoolExecutor(max_workers=16, thread_name_prefix="test-activity") as executor:
        worker = Worker(
            client,
            task_queue=task_queue,
            workflows=list(workflows),
            activities=list(activities),
            activity_executor=executor,
            **options,
        )
        async with worker:
            yield worker


async def _polled(client: Client, task_queue: str, queue_type: TaskQueueType.ValueType) -> bool:
    request = DescribeTaskQueueRequest(
        namespace=client.namespace,
        task_queue=TaskQueue(name=task_queue),
        task_queue_type=queue_type,
    )
    return bool((await client.workflow_service.describe_task_queue(request)).pollers)


async def wait_for_pollers(client: Client, task_queue: str, timeout: float = 10.0) -> None:
    """Return once workflow and activity pollers show on ``task_queue`` (or fail the test)."""
    kinds = (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all([await _polled(client, task_queue, kind) for kind in kinds]):
            return
        await asyncio.sleep(0.02)
    pytest.fail(f"no worker polled {task_queue!r} within {timeout} s")


@pytest.fixture
def worker_runner(client: Client, task_queue: str) -> WorkerRunner:
    """``async with worker_runner(workflows=..., activities=...)`` on the test's task queue."""

    def run(**kwargs: Any) -> AbstractAsyncContextManager[Worker]:
        return running_worker(client, task_queue, **kwargs)

    return run


@pytest.fixture
def hvlab_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh ``HVLAB_HOME``; ``get_settings()`` reads it during the test."""
    home = tmp_path / "hvlab-home"
    home.mkdir()
    monkeypatch.setenv("HVLAB_HOME", str(home))
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()
