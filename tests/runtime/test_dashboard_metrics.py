"""Every Grafana panel and alert queries metrics a real worker exports.

A worker built as ``worker.py`` builds it (the SDK runtime's Prometheus exporter behind hvlab's
``/metrics`` endpoint, with ``hvlab.metrics.REGISTRY``) runs a probe workflow that records the
workflow metrics through ``workflows.metrics``, retries a failing activity and fails once, so
the SDK creates the series it creates only when such things happen. The metric names the
dashboard (``deploy/grafana/hvlab-dashboard.json``) and the alert rules query must be among
the names that scrape exposes; the only others allowed are the Temporal server's own (its
``temporal-server`` scrape job: ``SERVER_METRICS`` of tests/deploy/test_deploy_files.py) and
Prometheus's ``up``.
"""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
import uuid
from datetime import timedelta
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from temporalio import activity, workflow
from temporalio.client import WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.worker import UnsandboxedWorkflowRunner

from hvlab.settings import Settings
from tests.deploy.test_deploy_files import (
    ALERTS,
    DASHBOARD,
    HISTOGRAM_SUFFIXES,
    PROMETHEUS_METRICS,
    SERVER_METRICS,
    _panels,
    load_yaml,
    promql_metric_names,
)
from tests.runtime.test_metrics import metrics_worker
from workflows import metrics as wf_metrics

# the names prometheus_client gives the samples of a family of each type
TYPE_SUFFIXES = {"histogram": HISTOGRAM_SUFFIXES, "counter": ("_total",), "info": ("_info",),
                 "summary": ("_count", "_sum"), "gauge": ("",)}
SAMPLE_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


@activity.defn(name="dashboard.flaky")
def flaky() -> str:
    """Fails its first attempt (temporal_activity_execution_failed), then succeeds."""
    if activity.info().attempt == 1:
        raise ApplicationError("first attempt fails")
    return "ok"


@workflow.defn(name="DashboardProbeWorkflow")
class DashboardProbeWorkflow:
    """Records every workflow metric as hvlab's workflows do, runs the flaky activity and
    fails when asked (temporal_workflow_failed)."""

    @workflow.run
    async def run(self, fail: bool) -> None:
        wf_metrics.compensations_seen()
        wf_metrics.compensation_ran()
        wf_metrics.migration_finished("smb", "ok", timedelta(seconds=3))
        await workflow.execute_activity(
            flaky, start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=50),
                                     maximum_attempts=3))
        if fail:
            raise ApplicationError("asked to fail", non_retryable=True)


def exposed_names(text: str) -> set[str]:
    """Every sample name the scrape exposes, read from the exposition text as Prometheus
    stores it (prometheus_client's parser would rename a counter's samples to ``_total``,
    which the SDK's are not); for a family without a series yet (a labelled metric of hvlab's
    registry nothing recorded), the names prometheus_client gives its samples."""
    assert list(text_string_to_metric_families(text))  # well-formed, no duplicate family
    names: set[str] = set()
    declared: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            declared[name] = kind
        elif line.strip() and not line.startswith("#"):
            match = SAMPLE_NAME.match(line)
            assert match, line
            names.add(match.group(0))
    for name, kind in declared.items():
        base = name.removesuffix("_total") if kind == "counter" else name
        derived = {base + suffix for suffix in TYPE_SUFFIXES.get(kind, ("",))}
        if not (derived | {name}) & names:
            names |= derived
    return names


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def queried_names() -> dict[str, set[str]]:
    """Metric name -> the panels and alerts that query it."""
    users: dict[str, set[str]] = {}
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    for panel in _panels(dashboard):
        for target in panel.get("targets", []):
            for name in promql_metric_names(target["expr"]):
                users.setdefault(name, set()).add(f"panel {panel['title']!r}")
    for group in load_yaml(ALERTS)["groups"]:
        for rule in group["rules"]:
            for name in promql_metric_names(rule["expr"]):
                users.setdefault(name, set()).add(f"alert {rule['alert']}")
    return users


async def test_panels_and_alerts_query_only_what_the_worker_exports(
    temporal_address: str, task_queue: str, tmp_path: Path
) -> None:
    settings = Settings(home=tmp_path, temporal_address=temporal_address, task_queue=task_queue)
    # unsandboxed: this module imports what the sandbox refuses (urllib, the deploy tests)
    async with metrics_worker(settings, [DashboardProbeWorkflow], [flaky],
                              workflow_runner=UnsandboxedWorkflowRunner()) as (client, url):
        for fail in (False, True):
            try:
                await client.execute_workflow(
                    DashboardProbeWorkflow.run, fail, id=f"dashboard-{uuid.uuid4().hex}",
                    task_queue=task_queue, execution_timeout=timedelta(seconds=60))
            except WorkflowFailureError:
                assert fail
        text = await asyncio.to_thread(_scrape, url)
    exported = exposed_names(text)
    server_side = {n + s for n in SERVER_METRICS for s in ("", *HISTOGRAM_SUFFIXES)}
    unknown = {name: sorted(users) for name, users in queried_names().items()
               if name not in exported | server_side | PROMETHEUS_METRICS}
    assert not unknown, f"queried but not exported by the worker: {unknown}"
    # the workflow metrics come through the SDK exporter under the names workflows record
    assert {"hvlab_migrations_total", "hvlab_compensations_total",
            "hvlab_migration_duration_seconds_bucket"} <= exported
