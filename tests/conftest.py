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
"""

from __future__ import annotations

import asyncio
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

from hvlab.devstack import dynamic_config_args, temporal_binary
from hvlab.settings import get_settings

WorkerRunner = Callable[..., AbstractAsyncContextManager[Worker]]


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
