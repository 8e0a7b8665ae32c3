"""Benchmark 2: the dispatch floor and the history queue readers, per dev-server variant.

Per variant (its own dev server + bench worker): the bare chain's latency per activity; 10
chains at once (activities per second: the readers are per shard, shared by every workflow); a
timer check (``timer_workflows`` concurrent workflows each sleeping ``ticks`` x 1 s, the shape
of a workflow-side polling loop such as LiveMigrationWorkflow's 10 s progress sampling, at
classroom scale): how late the timers fire; a visibility check: how long until a just started
workflow is listed by ``list_workflows`` (what ``hvlab status`` reads), alone and in a burst.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from typing import Any

from temporalio.client import Client

from bench.builds import chains
from bench.chain import BenchChainWorkflow, BenchTimerLoopWorkflow, ChainInput, TimerLoopInput
from bench.common import (
    DEFAULT_RPS,
    TASK_QUEUE,
    Stack,
    StackConfig,
    log,
    new_home,
    percentile,
    r,
    remove_home,
)
from hvlab.devstack import DYNAMIC_CONFIG

TRANSFER = "history.transferProcessorMaxPollRPS"
RAISED = dict(DYNAMIC_CONFIG)
TRANSFER_ONLY = {TRANSFER: DYNAMIC_CONFIG[TRANSFER]}

# name -> (config, what it is)
VARIANTS: dict[str, tuple[StackConfig, str]] = {
    "embedded": (StackConfig(), "SQLite file (WAL), all four readers at 1000/s: `hvlab dev`"),
    "file-default": (StackConfig(dynamic={}), "SQLite file (WAL), dev-server defaults (20/s)"),
    "file-transfer-only": (StackConfig(dynamic=TRANSFER_ONLY),
                           "SQLite file (WAL), transfer 1000/s, timer/visibility/outbound 20/s"),
    "memory": (StackConfig(db_file=False), "in-memory, all four readers at 1000/s"),
    "memory-default": (StackConfig(db_file=False, dynamic={}), "in-memory, defaults (20/s)"),
}


async def throughput(client: Client, chains_at_once: int, steps: int) -> dict[str, Any]:
    """``chains_at_once`` bare chains at the same time (one shard's readers serve them all):
    activities per second through the server."""
    tag = uuid.uuid4().hex[:6]
    t0 = time.monotonic()
    handles = await asyncio.gather(*(
        client.start_workflow(BenchChainWorkflow.run, ChainInput(steps=steps),
                              id=f"bench-tput-{tag}-{i}", task_queue=TASK_QUEUE)
        for i in range(chains_at_once)))
    await asyncio.gather(*(h.result() for h in handles))
    wall = time.monotonic() - t0
    return {"chains": chains_at_once, "steps": steps,
            "activities_per_s": r(chains_at_once * steps / wall, 1)}


async def timers(client: Client, workflows: int, ticks: int) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:6]
    handles = await asyncio.gather(*(
        client.start_workflow(BenchTimerLoopWorkflow.run, TimerLoopInput(ticks=ticks),
                              id=f"bench-timer-{tag}-{i}", task_queue=TASK_QUEUE)
        for i in range(workflows)))
    late = [x for result in await asyncio.gather(*(h.result() for h in handles)) for x in result]
    return {"workflows": workflows, "ticks": ticks, "late_p50_ms": r(percentile(late, 0.5), 1),
            "late_p95_ms": r(percentile(late, 0.95), 1), "late_max_ms": r(max(late), 1)}


async def _visible(client: Client, ids: set[str], timeout: float = 30.0) -> dict[str, float]:
    """Seconds until each of ``ids`` is listed (polled every 20 ms)."""
    seen: dict[str, float] = {}
    started = time.monotonic()
    while len(seen) < len(ids) and time.monotonic() - started < timeout:
        async for execution in client.list_workflows(page_size=1000):
            if execution.id in ids and execution.id not in seen:
                seen[execution.id] = time.monotonic() - started
        await asyncio.sleep(0.02)
    return seen


async def visibility(client: Client, singles: int, burst: int) -> dict[str, Any]:
    """Start -> listed, for ``singles`` workflows one at a time and a ``burst`` at once."""
    one: list[float] = []
    for _ in range(singles):
        wid = f"bench-vis-{uuid.uuid4().hex[:8]}"
        t0 = time.monotonic()
        await client.start_workflow(BenchTimerLoopWorkflow.run, TimerLoopInput(ticks=1,
                                    seconds=0.1), id=wid, task_queue=TASK_QUEUE)
        start_call = time.monotonic() - t0
        seen = await _visible(client, {wid})
        one.append(1000 * (seen.get(wid, float("nan")) + start_call))
        await asyncio.sleep(0.3)
    tag = uuid.uuid4().hex[:6]
    ids = {f"bench-visb-{tag}-{i}" for i in range(burst)}
    t0 = time.monotonic()
    await asyncio.gather(*(client.start_workflow(
        BenchTimerLoopWorkflow.run, TimerLoopInput(ticks=1, seconds=0.1), id=wid,
        task_queue=TASK_QUEUE) for wid in ids))
    start_call = time.monotonic() - t0
    seen = await _visible(client, ids)
    all_in = max(seen.values()) + start_call if len(seen) == len(ids) else float("nan")
    return {"single_p50_ms": r(percentile(one, 0.5), 1), "single_max_ms": r(max(one), 1),
            "burst": burst, "burst_all_listed_ms": r(1000 * all_in, 1)}


async def variant(name: str, quick: bool) -> dict[str, Any]:
    config, what = VARIANTS[name]
    home = new_home(f"dispatch-{name}")
    stack = Stack(home, config)
    try:
        client = await stack.start()
        result: dict[str, Any] = {"what": what, "dynamic_config": config.dynamic
                                  if config.dynamic is not None else RAISED}
        result["chain"] = await chains(client, 20, 3 if quick else 5)
        # past the limiter's burst of 20: the sustained rate of a long sequential chain
        result["long_chain"] = await chains(client, 60, 1 if quick else 2)
        result["throughput"] = await throughput(client, 10, 10 if quick else 20)
        result["timers"] = await timers(client, 10 if quick else 30, 3 if quick else 5)
        result["visibility"] = await visibility(client, 3 if quick else 5, 10 if quick else 30)
        log(f"dispatch {name}: chain {result['chain']['per_activity_ms']:.1f} ms/activity "
            f"(60 steps: {result['long_chain']['per_activity_ms']:.1f}), "
            f"{result['throughput']['activities_per_s']} activities/s with 10 chains, "
            f"timers p95 late {result['timers']['late_p95_ms']} ms, visibility "
            f"{result['visibility']['single_p50_ms']} ms / burst "
            f"{result['visibility']['burst_all_listed_ms']} ms")
        return result
    finally:
        stack.stop()
        remove_home(home)


async def run(quick: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"default_rps": DEFAULT_RPS, "variants": {}}
    for name in VARIANTS:
        out["variants"][name] = await variant(name, quick)
    v = out["variants"]
    out["ratios"] = {
        "file_default_over_embedded": r(v["file-default"]["chain"]["per_activity_ms"]
                                        / v["embedded"]["chain"]["per_activity_ms"], 2),
        "memory_over_embedded": r(v["memory"]["chain"]["per_activity_ms"]
                                  / v["embedded"]["chain"]["per_activity_ms"], 2),
        "long_chain_default_over_embedded": r(
            v["file-default"]["long_chain"]["per_activity_ms"]
            / v["embedded"]["long_chain"]["per_activity_ms"], 2),
        "throughput_embedded_over_default": r(
            v["embedded"]["throughput"]["activities_per_s"]
            / v["file-default"]["throughput"]["activities_per_s"], 2),
    }
    return out


if __name__ == "__main__":  # python bench/dispatch.py [--quick]
    import json
    import sys

    result = asyncio.run(run("--quick" in sys.argv))
    print(json.dumps(result, indent=2))
    sys.stdout.flush()
    os._exit(0)
