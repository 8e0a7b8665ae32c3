"""The hvlab worker (``worker.py``, same settings) plus the bench's chain and timer workflows.

``worker.build_worker`` is replaced so the worker is built exactly as ``hvlab dev`` builds it
(activities, interceptor, thread-pool executor, ``max_concurrent_activities``, graceful
shutdown) with :mod:`bench.chain` registered on top.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

import worker
from activities.context import LabContextInterceptor
from activities.registry import build_activities
from bench.chain import BenchChainWorkflow, BenchTimerLoopWorkflow, noop
from hvlab.settings import Settings
from workflows.registry import ALL_WORKFLOWS


def build_worker(settings: Settings, client: Client, executor: ThreadPoolExecutor) -> Worker:
    """``worker.build_worker`` (keep in step with it) with the bench workflows added."""
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[*ALL_WORKFLOWS, BenchChainWorkflow, BenchTimerLoopWorkflow],
        activities=[*build_activities(settings), noop],
        activity_executor=executor,
        interceptors=[LabContextInterceptor()],
        max_concurrent_activities=settings.max_concurrent_activities,
        graceful_shutdown_timeout=timedelta(seconds=settings.graceful_shutdown_seconds),
    )


worker.build_worker = build_worker  # type: ignore[assignment]

if __name__ == "__main__":
    worker.main()
