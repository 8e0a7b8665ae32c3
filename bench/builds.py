"""Seed builds as ``hvlab up --sim`` starts them, the bare chain, and critical-path analysis."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy

from bench.chain import BenchChainWorkflow, ChainInput
from bench.common import TASK_QUEUE, WorkflowRun, union_length, workflow_run
from hvlab.labs import LabRegistry
from hvlab.plan import BuildPlan
from hvlab.spec import LabSpec
from hvlab.specfile import load_lab
from workflows.kinds import build_plan
from workflows.lab_build import LabBuildInput, LabBuildResult, LabBuildWorkflow


@dataclass
class Build:
    lab: str
    spec: LabSpec
    seconds: float  # client: start_workflow call to result
    run: WorkflowRun


def register(home: Path, files: list[Path]) -> list[LabSpec]:
    """``hvlab up FILE --sim`` part one: the lab file copied to the worker's registry."""
    specs = [load_lab(f) for f in files]
    for spec in specs:
        LabRegistry(home).register(spec, sim=True)
    return specs


async def build(client: Client, spec: LabSpec) -> Build:
    """``hvlab up --sim`` part two: start LabBuildWorkflow (id ``<lab>-build``), await it."""
    started = time.monotonic()
    handle = await client.start_workflow(
        LabBuildWorkflow.run, LabBuildInput(spec=spec), id=f"{spec.lab}-build",
        task_queue=TASK_QUEUE, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        static_summary=f"build lab {spec.lab}", result_type=LabBuildResult)
    await handle.result()
    seconds = time.monotonic() - started
    run = await workflow_run(client, handle.id, handle.result_run_id)
    return Build(spec.lab, spec, seconds, run)


async def builds(client: Client, specs: list[LabSpec], timeout: float | None = None
                 ) -> list[Build | BaseException]:
    """Every lab's build at once; a failure or a timeout is returned in its place."""
    return await asyncio.gather(*(asyncio.wait_for(build(client, s), timeout) for s in specs),
                                return_exceptions=True)


async def chain(client: Client, steps: int) -> dict[str, Any]:
    """One bare chain of ``steps`` no-op activities: wall seconds per activity (client side and
    from the history: first activity scheduled to last closed)."""
    started = time.monotonic()
    handle = await client.start_workflow(BenchChainWorkflow.run, ChainInput(steps=steps),
                                         id=f"bench-chain-{uuid.uuid4().hex[:8]}",
                                         task_queue=TASK_QUEUE)
    await handle.result()
    wall = time.monotonic() - started
    run = await workflow_run(client, handle.id, handle.result_run_id)
    acts = run.activities
    span = max(a.closed or 0 for a in acts) - min(a.scheduled for a in acts)
    assert run.closed is not None
    return {"steps": steps, "wall_s": wall, "per_activity_ms": 1000 * (run.closed - run.started)
            / steps, "span_per_activity_ms": 1000 * span / steps}


async def chains(client: Client, steps: int, repeats: int) -> dict[str, Any]:
    """Median of ``repeats`` chains (after one warm-up chain)."""
    await chain(client, 5)
    samples = [await chain(client, steps) for _ in range(repeats)]
    per = sorted(s["per_activity_ms"] for s in samples)
    return {"steps": steps, "repeats": repeats, "per_activity_ms": per[len(per) // 2],
            "samples_ms": [round(p, 2) for p in per]}


# ------------------------------------------------------------------------------- analysis


def unit_of(workflow_id: str) -> str | None:
    """``classroom-build/host-prep:SVR1`` -> ``host-prep:SVR1``."""
    return workflow_id.split("/", 1)[1] if "/" in workflow_id else None


def unit_busy(b: Build) -> dict[str, float]:
    """Seconds each plan unit spent in activities (union of its activity intervals)."""
    busy: dict[str, float] = {}
    for wf in b.run.children:
        unit = unit_of(wf.workflow_id)
        if unit is None:
            continue
        intervals = [(a.started, a.closed) for a in wf.all_activities()
                     if a.started is not None and a.closed is not None]
        busy[unit] = union_length(intervals)
    return busy


def critical_path(plan: BuildPlan, weight: dict[str, float]) -> tuple[float, list[str]]:
    """Longest path through the unit DAG with ``weight`` per unit: (seconds, units)."""
    finish: dict[str, float] = {}
    via: dict[str, str | None] = {}
    for unit in plan.order():
        before = max(unit.depends_on, key=lambda d: finish[d], default=None)
        finish[unit.id] = (finish[before] if before else 0.0) + weight.get(unit.id, 0.0)
        via[unit.id] = before
    end = max(finish, key=lambda u: finish[u])
    path: list[str] = []
    node: str | None = end
    while node is not None:
        path.append(node)
        node = via[node]
    return finish[end], path[::-1]


def step_gaps(run: WorkflowRun) -> list[float]:
    """Per activity: seconds from the previous activity of the same workflow closing (or the
    workflow starting) to this one starting on the worker, i.e. what Temporal and the
    workflow code spend between two steps; the bare chain's per-activity time is the same
    quantity for a no-op."""
    gaps: list[float] = []
    for wf in run.all_workflows():
        previous = wf.started
        for item in sorted(wf.activities, key=lambda a: a.scheduled):
            if item.started is None:
                continue
            if item.scheduled >= previous:  # sequential step (parallel ones overlap)
                gaps.append(item.started - previous)
            previous = max(previous, item.closed or previous)
    return gaps


def analyse(b: Build) -> dict[str, Any]:
    """Makespan (history), per-unit busy time, the critical path and activity counts."""
    run = b.run
    assert run.closed is not None
    plan = build_plan(b.spec)
    busy = unit_busy(b)
    cp, path = critical_path(plan, busy)
    acts = run.all_activities()
    unit_acts = {unit_of(w.workflow_id): len(w.all_activities()) for w in run.children}
    cp_steps = sum(unit_acts.get(u, 0) for u in path)
    exec_s = sum((a.closed or 0) - (a.started or 0) for a in acts if a.started)
    return {
        "makespan_s": run.closed - run.started,
        "client_s": b.seconds,
        "activities": len(acts),
        "attempts": sum(a.attempt for a in acts),
        "workflows": len(run.all_workflows()),
        "critical_path_s": cp,
        "critical_path": path,
        "critical_path_activities": cp_steps,
        "activity_exec_s": exec_s,
        "step_gaps_s": step_gaps(run),
        "unit_busy_s": {u: round(s, 3) for u, s in busy.items()},
    }
