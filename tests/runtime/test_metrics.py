"""One /metrics endpoint serves the Temporal SDK's metrics and hvlab's own; /healthz."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client

from activities.registry import build_activities
from hvlab import metrics
from hvlab.settings import Settings
from hvlab.telemetry import MetricsServer, start_metrics_server
from hvlab.temporal import build_metrics_runtime, connect
from tests.conftest import running_worker
from workflows.doctor import DoctorInput, DoctorWorkflow
from workflows.registry import ALL_WORKFLOWS

# The activity registry's families (the parser strips _total). Workflow metrics
# (hvlab.metrics.WORKFLOW_METRICS) appear once a workflow records them: tests/cli/test_demo.py.
HVLAB_FAMILIES = {
    "hvlab_step_duration_seconds",
    "hvlab_migration_downtime_seconds",
    "hvlab_replication_health",
    "hvlab_winrm_sessions_open",
    "hvlab_winrm_requests",
    "hvlab_worker_info",
}


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _families(text: str) -> dict[str, str]:
    """Family name -> type; the parser rejects malformed or duplicated exposition text."""
    return {family.name: family.type for family in text_string_to_metric_families(text)}


@asynccontextmanager
async def metrics_worker(
    settings: Settings, workflows: Sequence[type], activities: Sequence[Callable[..., Any]],
    **options: Any
) -> AsyncIterator[tuple[Client, str]]:
    """A worker whose client's runtime exports the SDK's metrics behind hvlab's /metrics
    endpoint, as worker.py builds it; yields the client and the endpoint's /metrics URL."""
    runtime, sdk_url = build_metrics_runtime()
    server = start_metrics_server("127.0.0.1:0", sdk_metrics_url=sdk_url)
    try:
        client = await connect(settings, runtime=runtime)
        async with running_worker(client, settings.task_queue, workflows=workflows,
                                  activities=activities, **options):
            yield client, f"{server.url}/metrics"
    finally:
        server.close()


async def test_metrics_endpoint_merges_sdk_and_hvlab_metrics(
    temporal_address: str, task_queue: str, tmp_path: Path
) -> None:
    """After a workflow ran, one scrape holds temporal_ SDK families and every hvlab_ family."""
    settings = Settings(home=tmp_path, temporal_address=temporal_address, task_queue=task_queue)
    metrics.set_worker_info("9.9.9-test")
    with metrics.timed_step("doctor", "SVR1"):
        pass
    async with metrics_worker(settings, ALL_WORKFLOWS, build_activities(settings)) as (client, url):
        await client.execute_workflow(
            DoctorWorkflow.run,
            DoctorInput(),
            id=f"metrics-{task_queue}",
            task_queue=task_queue,
            execution_timeout=timedelta(seconds=20),
        )
        status, text = await asyncio.to_thread(_get, url)
    assert status == 200
    families = _families(text)
    sdk = {name for name in families if name.startswith("temporal_")}
    assert "temporal_workflow_completed" in sdk, sorted(sdk)
    assert "temporal_activity_execution_latency" in sdk, sorted(sdk)
    assert set(families) >= HVLAB_FAMILIES, sorted(families)
    assert 'hvlab_worker_info{version="9.9.9-test"} 1.0' in text
    assert 'hvlab_step_duration_seconds_count{host="SVR1",outcome="ok",step="doctor"}' in text


@pytest.fixture
def health_server() -> Iterator[tuple[MetricsServer, list[bool]]]:
    """A metrics server whose health is the first item of the returned list."""
    state = [False]
    server = start_metrics_server("127.0.0.1:0", healthy=lambda: state[0])
    yield server, state
    server.close()


def test_healthz_follows_the_worker_state(health_server: tuple[MetricsServer, list[bool]]) -> None:
    """/healthz answers 503 while the worker is not running and 200 once it is."""
    server, state = health_server
    assert _get(f"{server.url}/healthz")[0] == 503
    state[0] = True
    assert _get(f"{server.url}/healthz") == (200, "ok\n")
    assert _get(f"{server.url}/nope")[0] == 404


def test_metrics_without_sdk_exporter_still_serve_hvlab_metrics() -> None:
    """A missing SDK exporter leaves a comment, not an error: hvlab's families still come."""
    metrics.set_worker_info("9.9.9-test")
    down = start_metrics_server("127.0.0.1:0", sdk_metrics_url="http://127.0.0.1:9/metrics")
    try:
        status, text = _get(f"{down.url}/metrics")
    finally:
        down.close()
    assert status == 200
    assert "# hvlab: Temporal SDK metrics unavailable" in text
    assert set(_families(text)) >= HVLAB_FAMILIES


def test_workflow_metric_names_agree() -> None:
    """The names workflow code records are the ones hvlab.metrics documents, none of them is
    also in the activity registry (a duplicate family breaks the scrape), and every histogram
    has buckets on the runtime."""
    from hvlab.temporal import WORKFLOW_HISTOGRAM_BUCKETS
    from workflows import metrics as wf_metrics

    recorded = {wf_metrics.MIGRATIONS_TOTAL, wf_metrics.MIGRATION_DURATION,
                wf_metrics.COMPENSATIONS_TOTAL}
    assert recorded == set(metrics.WORKFLOW_METRICS)
    registry_names = {m.name for m in metrics.REGISTRY.collect()}
    assert not {n.removesuffix("_total") for n in recorded} & registry_names
    histograms = {n for n, kind in metrics.WORKFLOW_METRICS.items() if kind == "histogram"}
    assert histograms == set(WORKFLOW_HISTOGRAM_BUCKETS)
