"""The hvlab Temporal worker: ``python worker.py``, ``python -m worker`` or ``hvlab worker``.

It configures logging, serves ``/metrics`` and ``/healthz`` at ``HVLAB_METRICS_ADDRESS``
(SDK and hvlab metrics together), connects to ``HVLAB_TEMPORAL_ADDRESS`` and polls
``HVLAB_TASK_QUEUE`` with every registered workflow and activity. SIGTERM or SIGINT drains
it: polling stops, running activities get ``graceful_shutdown_seconds`` to finish, exit 0.
Exit 1 when Temporal cannot be reached or the worker fails.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import NoReturn

import structlog
from prometheus_client import disable_created_metrics
from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.worker import Worker

from activities.context import LabContextInterceptor
from activities.registry import build_activities
from hvlab.metrics import set_worker_info
from hvlab.settings import Settings, get_settings
from hvlab.telemetry import MetricsServer, configure_logging, hvlab_version, start_metrics_server
from hvlab.temporal import (
    CodecUnavailable,
    TemporalUnavailable,
    build_metrics_runtime,
    build_runtime,
    connect,
)
from workflows.registry import ALL_WORKFLOWS

log = structlog.get_logger("hvlab.worker")
HEARTBEAT_FLUSH = timedelta(seconds=2)


class _State:
    """What ``/healthz`` reports: whether the worker is polling."""

    running = False


def _start_metrics(settings: Settings) -> tuple[Runtime, MetricsServer | None]:
    """The SDK runtime and, unless disabled, the public metrics endpoint."""
    if not settings.metrics_address:
        return build_runtime(), None
    disable_created_metrics()  # type: ignore[no-untyped-call]
    set_worker_info(hvlab_version())
    runtime, sdk_url = build_metrics_runtime()
    server = start_metrics_server(
        settings.metrics_address, sdk_metrics_url=sdk_url, healthy=lambda: _State.running
    )
    return runtime, server


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)


async def _serve(worker: Worker, stop: asyncio.Event) -> None:
    """Run ``worker`` until ``stop`` is set or it fails; then drain it."""
    running = asyncio.create_task(worker.run())
    stopping = asyncio.create_task(stop.wait())
    _State.running = True
    try:
        await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        _State.running = False
        stopping.cancel()
    if running.done():
        running.result()  # a worker that stopped on its own failed: raise its error
        return
    grace = worker.config().get("graceful_shutdown_timeout")
    log.info("worker draining", grace_s=grace.total_seconds() if grace else 0.0)
    await worker.shutdown()
    await running


def build_worker(settings: Settings, client: Client, executor: ThreadPoolExecutor) -> Worker:
    """The worker for ``settings.task_queue`` with every workflow and activity."""
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=ALL_WORKFLOWS,
        activities=build_activities(settings),
        activity_executor=executor,
        interceptors=[LabContextInterceptor()],
        max_concurrent_activities=settings.max_concurrent_activities,
        graceful_shutdown_timeout=timedelta(seconds=settings.graceful_shutdown_seconds),
        # Heartbeat details reach the server within this (the SDK's default is 80 % of the
        # heartbeat timeout, 48 s for most steps): a worker killed meanwhile would leave its
        # retry without the details that say what the step already did (host.reboot).
        max_heartbeat_throttle_interval=HEARTBEAT_FLUSH,
    )


def _log_started(settings: Settings, client: Client, metrics: MetricsServer | None) -> None:
    log.info(
        "worker started",
        task_queue=settings.task_queue,
        namespace=settings.namespace,
        temporal_address=settings.temporal_address,
        metrics_address=metrics.address if metrics else None,
        identity=client.identity,
        pid=os.getpid(),
        version=hvlab_version(),
    )


async def _connect_and_serve(
    settings: Settings, runtime: Runtime, metrics: MetricsServer | None, stop: asyncio.Event
) -> int:
    try:
        client = await connect(settings, runtime=runtime)
    except CodecUnavailable as exc:
        log.error("payload codec unusable", reason=exc.reason)
        return 1
    except TemporalUnavailable as exc:
        log.error("cannot reach Temporal", address=exc.address, reason=exc.reason)
        return 1
    threads = settings.max_concurrent_activities
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="activity") as executor:
        worker = build_worker(settings, client, executor)
        _log_started(settings, client, metrics)
        try:
            await _serve(worker, stop)
        except Exception:
            log.exception("worker failed")
            return 1
    log.info("worker stopped")
    return 0


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> int:
    """Run the worker until SIGTERM/SIGINT (or ``stop``); return the exit code."""
    stop = stop if stop is not None else asyncio.Event()
    _stop_on_signals(stop)
    try:
        runtime, metrics = _start_metrics(settings)
    except (OSError, ValueError) as exc:  # port in use, bad host:port
        log.error("cannot serve metrics", metrics_address=settings.metrics_address, reason=str(exc))
        return 1
    try:
        return await _connect_and_serve(settings, runtime, metrics, stop)
    finally:
        if metrics is not None:
            metrics.close()


def run(settings: Settings | None = None) -> int:
    """Configure logging and run the worker; the exit code."""
    settings = settings or get_settings()
    configure_logging(settings.log_format, settings.log_level)
    return asyncio.run(run_worker(settings))


def main() -> NoReturn:
    """Process entry point: run, flush, leave without interpreter teardown (SDK exit crash)."""
    code = run()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
