"""The serial baseline: the build's activities called in-process, one after another, through
pypsrp (no Temporal), against a fresh simulated fleet.

The steps and their inputs are the ones the Temporal build ran (taken from its history): the
plan's units in topological order, one after the other, each unit's steps in the order the
build ran them. Each is the real activity function (``activities.*``,
bound to a :class:`SessionPool` like the worker's), with the lab set as the worker's
interceptor sets it; a retryable failure is retried every 1 s (a script waiting for a host
to come back, like ``host.wait_ready`` polls every 1 s).
Between steps the fleet's counters are read, which gives WinRM requests per step type.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError

from activities.registry import remote_activities
from bench.common import ActivityRun, FleetProc
from hvlab.labs import CURRENT_LAB
from hvlab.plan import BuildPlan
from hvlab.powershell.endpoints import WorkerLab
from hvlab.powershell.session import SessionPool

RETRY_FOR = 600.0  # seconds a step is retried (every 1 s) before the replay gives up


def _functions(home: Path) -> tuple[dict[str, Any], SessionPool]:
    lab = WorkerLab(home, {**os.environ, "HVLAB_HOME": str(home)})
    sessions = SessionPool(lab)
    functions: dict[str, Any] = {}
    for fn in remote_activities(sessions, lab):
        definition = activity._Definition.must_from_callable(fn)
        functions[str(definition.name)] = (fn, definition.arg_types or [])
    return functions, sessions


def _totals(state: dict[str, Any]) -> tuple[int, int]:
    winrm = state["winrm"].values()
    return (sum(h["requests_total"] for h in winrm),
            sum(h["requests"].get("Command", 0) for h in winrm))


def serial_order(plan: BuildPlan, steps: list[ActivityRun]) -> list[ActivityRun]:
    """Units in the plan's topological order, each unit's steps in the order the build
    scheduled them: one unit after the other, as a straight script would do it."""
    rank = {f"{plan.lab}-build/{unit.id}": index for index, unit in enumerate(plan.order())}
    return sorted(steps, key=lambda a: (rank.get(a.workflow_id, -1), a.scheduled))


def run_serial(home: Path, plan: BuildPlan, steps: list[ActivityRun], fleet: FleetProc
               ) -> dict[str, Any]:
    """Run ``steps`` serially; wall time, retries and WinRM requests per activity type."""
    lab = plan.lab
    functions, sessions = _functions(home)
    converter = pydantic_data_converter.payload_converter
    per_type: dict[str, list[tuple[int, int, float]]] = defaultdict(list)
    retries: list[str] = []
    token = CURRENT_LAB.set(lab)
    started = time.monotonic()
    try:
        for item in serial_order(plan, steps):
            fn, arg_types = functions[item.activity_type]
            args = converter.from_payloads(list(item.input.payloads), arg_types)
            before = _totals(fleet.state())
            t0 = time.monotonic()
            while True:
                try:
                    fn(*args)
                    break
                except ApplicationError as exc:
                    if exc.non_retryable or time.monotonic() - t0 > RETRY_FOR:
                        raise
                    retries.append(f"{item.activity_type}: {str(exc)[:160]}")
                    time.sleep(1.0)
            seconds = time.monotonic() - t0
            after = _totals(fleet.state())
            per_type[item.activity_type].append(
                (after[0] - before[0], after[1] - before[1], seconds))
        wall = time.monotonic() - started
    finally:
        CURRENT_LAB.reset(token)
        sessions.close()
    table = {
        name: {"count": len(rows),
               "requests_per_step": round(sum(r[0] for r in rows) / len(rows), 1),
               "pipelines_per_step": round(sum(r[1] for r in rows) / len(rows), 1),
               "seconds_per_step": round(sum(r[2] for r in rows) / len(rows), 3)}
        for name, rows in sorted(per_type.items())
    }
    return {"wall_s": wall, "steps": len(steps), "retries": len(retries),
            "retried": retries, "per_type": table,
            "fleet": fleet.state()["winrm"]}
