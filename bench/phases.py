"""Benchmarks 1 and 3-6 on one embedded-settings stack (see ``bench/run_all.py``)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC
from pathlib import Path
from typing import Any

from temporalio.client import Client

from activities.migration import get_vmhost_command
from bench import builds, serial
from bench.builds import Build, analyse, build, chains, critical_path, register, unit_busy
from bench.common import (
    FleetProc,
    Stack,
    cpu_seconds,
    lab_copy,
    load_average,
    log,
    percentile,
    r,
    rss_mb,
)
from hvlab.labs import CURRENT_LAB
from hvlab.plan import BuildPlan
from hvlab.powershell.command import Pipeline
from hvlab.powershell.endpoints import WorkerLab
from hvlab.powershell.session import SessionPool
from workflows.kinds import build_plan
from workflows.migration import LiveMigrationInput, LiveMigrationWorkflow, migration_id
from workflows.options import LONG_JOB

# ------------------------------------------------------------------------------- 1 overhead


def pipeline_latency(home: Path, lab: str, host: str, calls: int) -> dict[str, Any]:
    """One read-only pipeline (Get-VMHost) through the worker's SessionPool, ``calls`` times:
    the cost of one remote step's round trip with nothing else around it."""
    pool = SessionPool(WorkerLab(home, {"HVLAB_HOME": str(home)}))
    token = CURRENT_LAB.set(lab)
    try:
        endpoint = WorkerLab(home, {}).endpoint(host)
        pipeline = Pipeline.one(get_vmhost_command())
        pool.run(endpoint, pipeline)  # open the pool
        samples = []
        for _ in range(calls):
            t0 = time.perf_counter()
            pool.run(endpoint, pipeline)
            samples.append(1000 * (time.perf_counter() - t0))
    finally:
        CURRENT_LAB.reset(token)
        pool.close()
    return {"calls": calls, "median_ms": r(percentile(samples, 0.5), 2),
            "p95_ms": r(percentile(samples, 0.95), 2)}


async def overhead(stack: Stack, client: Client, quick: bool) -> dict[str, Any]:
    """Seed build at infinite speed per activity / bare chain per activity (same stack)."""
    home = stack.home
    files = [lab_copy(0, home / "labfiles", rename=False)]
    specs = register(home, files)
    runs: list[dict[str, Any]] = []
    chain_ms: list[float] = []
    fleet_state: dict[str, Any] = {}
    for index in range(1 if quick else 3):
        fleet = FleetProc(home, 0, files)
        try:
            chain_ms.append((await chains(client, 20, 3))["per_activity_ms"])
            result = analyse(await build(client, specs[0]))
            chain_ms.append((await chains(client, 20, 3))["per_activity_ms"])
            fleet_state = fleet.state()
            if index == 0:
                rtt = await asyncio.to_thread(pipeline_latency, home, specs[0].lab, "SVR1",
                                              50 if quick else 200)
        finally:
            fleet.stop()
        runs.append(result)
        log(f"overhead: build {result['makespan_s']:.2f} s, {result['activities']} activities")
    best = sorted(runs, key=lambda x: x["makespan_s"])[len(runs) // 2]  # median build
    chain = sorted(chain_ms)[len(chain_ms) // 2]
    n = best["activities"]
    per_activity = 1000 * best["makespan_s"] / n
    winrm = fleet_state["winrm"]
    requests = sum(h["requests_total"] for h in winrm.values())
    pipelines = sum(h["requests"].get("Command", 0) for h in winrm.values())
    gaps = best["step_gaps_s"]
    gap_ms = 1000 * sum(gaps) / len(gaps)
    return {
        "build_makespan_s": r(best["makespan_s"]),
        "builds_s": [r(x["makespan_s"]) for x in runs],
        "activities": n,
        "child_workflows": best["workflows"] - 1,
        "build_per_activity_ms": r(per_activity, 1),
        "chain_per_activity_ms": r(chain, 1),
        "chain_samples_ms": [r(c, 1) for c in chain_ms],
        "ratio": r(per_activity / chain, 2),
        "mean_activity_exec_ms": r(1000 * best["activity_exec_s"] / n, 1),
        "winrm_requests": requests,
        "winrm_requests_per_activity": r(requests / n, 1),
        "pipeline_round_trip": rtt,
        "pipelines_per_activity": r(pipelines / n, 2),
        "winrm_estimate_per_activity_ms": r(pipelines / n * rtt["median_ms"], 1),
        "step_gap_ms": r(gap_ms, 1),
        "step_gap_p50_ms": r(1000 * percentile(gaps, 0.5), 1),
        "step_gaps_counted": len(gaps),
        "orchestration_ratio": r(gap_ms / chain, 2),
        "winrm_share_of_activity_time": r(1 - gap_ms / (gap_ms + 1000 * best["activity_exec_s"]
                                                         / n), 2),
    }


# ------------------------------------------------------------------------------- 3+4 makespan


def host_limited_schedule(plan: BuildPlan, weight: dict[str, float], limit: int) -> float:
    """Makespan of LabBuildWorkflow's own policy with zero overhead: a unit starts when its
    dependencies are done and every host it touches has one of ``limit`` slots free, units
    considered in ``plan.order()`` (as the workflow's semaphores grant them)."""
    done: dict[str, float] = {}
    busy: dict[str, list[float]] = {}
    now = 0.0
    pending = plan.order()
    running: list[tuple[float, str, list[str]]] = []
    while pending or running:
        started = True
        while started:
            started = False
            for unit in list(pending):
                if not all(d in done for d in unit.depends_on):
                    continue
                hosts = sorted({h.lower() for h in unit.hosts})
                if any(len(busy.get(h, [])) >= limit for h in hosts):
                    continue
                end = now + weight.get(unit.id, 0.0)
                running.append((end, unit.id, hosts))
                for h in hosts:
                    busy.setdefault(h, []).append(end)
                pending.remove(unit)
                started = True
        if not running:
            break
        running.sort()
        end, unit_id, hosts = running.pop(0)
        now = end
        done[unit_id] = end
        for h in hosts:
            busy[h].remove(end)
    return max(done.values(), default=0.0)


async def makespan(stack: Stack, client: Client, speed: float) -> dict[str, Any]:
    """Build with realistic durations at ``speed``; critical path; serial replay; WinRM."""
    home = stack.home
    files = [lab_copy(0, home / "labfiles", rename=False)]
    specs = register(home, files)
    fleet = FleetProc(home, speed, files)
    try:
        b: Build = await build(client, specs[0])
        state = fleet.state()
    finally:
        fleet.stop()
    a = analyse(b)
    plan = build_plan(b.spec)
    weight = unit_busy(b)
    limited = host_limited_schedule(plan, weight, 2)
    unlimited_check, _ = critical_path(plan, weight)
    activities = b.run.all_activities()
    log(f"makespan: build {a['makespan_s']:.1f} s, critical path {a['critical_path_s']:.1f} s; "
        "serial replay next")
    fleet = FleetProc(home, speed, files)
    try:
        serial_result = await asyncio.to_thread(serial.run_serial, home, plan,
                                                activities, fleet)
    finally:
        fleet.stop()
    per_host = {
        host: {"shells_created": h["shells_created"], "connections": h["connections"],
               "requests": h["requests_total"], "commands": h["requests"].get("Command", 0)}
        for host, h in state["winrm"].items()}
    reboots = {host: sum(1 for x in activities if x.activity_type == "host.reboot"
                         and host.lower() in str(_payload_host(x)).lower())
               for host in per_host}
    return {
        "speed": speed,
        "makespan_s": r(a["makespan_s"], 2),
        "activities": a["activities"],
        "activity_exec_sum_s": r(a["activity_exec_s"], 2),
        "critical_path_s": r(a["critical_path_s"], 2),
        "critical_path": a["critical_path"],
        "ratio_to_critical_path": r(a["makespan_s"] / a["critical_path_s"], 3),
        "host_limited_bound_s": r(limited, 2),
        "ratio_to_host_limited_bound": r(a["makespan_s"] / limited, 3),
        "dag_parallelism": r(sum(weight.values()) / unlimited_check, 2),
        "unit_busy_s": a["unit_busy_s"],
        "serial_s": r(serial_result["wall_s"], 2),
        "serial_retries": serial_result["retries"],
        "serial_retried": serial_result["retried"],
        "speedup": r(serial_result["wall_s"] / a["makespan_s"], 2),
        "speedup_bound": r(serial_result["wall_s"] / limited, 2),
        "winrm_per_host": per_host,
        "reboots_per_host": reboots,
        "winrm_per_step": serial_result["per_type"],
        "serial_fleet": {h: {"shells_created": v["shells_created"],
                             "requests": v["requests_total"]}
                         for h, v in serial_result["fleet"].items()},
    }


def _payload_host(item: Any) -> str:
    try:
        return item.input.payloads[0].data.decode()
    except (AttributeError, IndexError, UnicodeDecodeError):
        return ""


# ------------------------------------------------------------------------------- 5 classroom


async def classroom(stack: Stack, client: Client, sizes: list[int], speed: float,
                    offset: int = 0, extend_to: int | None = None) -> dict[str, Any]:
    """``n`` renamed copies of the seed lab built at once, for each n in ``sizes``."""
    home = stack.home
    steps: list[dict[str, Any]] = []
    assert stack.worker is not None
    pid = stack.worker.pid
    sizes = list(sizes)
    while sizes:
        n = sizes.pop(0)
        files = [lab_copy(offset + k + 1, home / "labfiles") for k in range(n)]
        specs = register(home, files)
        fleet = FleetProc(home, speed, files)
        rss_peak = rss_mb(pid)
        try:
            others = {"server": stack.server.pid if stack.server else 0,
                      "fleet": fleet.proc.pid}
            others0 = {k: cpu_seconds(v) for k, v in others.items()}
            cpu0, t0 = cpu_seconds(pid), time.monotonic()
            task = asyncio.ensure_future(builds.builds(client, specs, timeout=900.0))
            while not task.done():
                await asyncio.wait([task], timeout=0.5)
                rss_peak = max(rss_peak, rss_mb(pid))
            results = task.result()
            wall = time.monotonic() - t0
            cpu = cpu_seconds(pid) - cpu0
            other_cores = {k: (cpu_seconds(v) - others0[k]) for k, v in others.items()}
            winrm = fleet.state()["winrm"]
        finally:
            fleet.stop()
        ok = [x for x in results if isinstance(x, Build)]
        failed = [repr(x)[:300] for x in results if not isinstance(x, Build)]
        times = [x.seconds for x in ok]
        acts = sum(len(x.run.all_activities()) for x in ok)
        # first build started -> last build finished (the batch's wall includes reading
        # every history afterwards)
        span = (max(x.run.closed or 0 for x in ok) - min(x.run.started for x in ok)) if ok \
            else wall
        step = {"labs": n, "succeeded": len(ok), "failed": failed,
                "p50_s": r(percentile(times, 0.5), 2) if times else None,
                "p95_s": r(percentile(times, 0.95), 2) if times else None,
                "wall_s": r(wall, 2), "activities": acts,
                "builds_span_s": r(span, 2),
                "load_average_after": load_average(),
                "activities_per_s": r(acts / span, 1),
                "worker_cpu_s": r(cpu, 1), "worker_cpu_cores": r(cpu / span, 2),
                "worker_rss_peak_mb": rss_peak,
                "server_cpu_cores": r(other_cores["server"] / span, 2),
                "fleet_cpu_cores": r(other_cores["fleet"] / span, 2),
                "shells_per_host": {"dc_max": max(v["shells_created"] for h, v in winrm.items()
                                                  if h.endswith("DC1")),
                                    "hyperv_max": max(v["shells_created"] for h, v in
                                                      winrm.items() if not h.endswith("DC1"))},
                "winrm_requests_per_lab": r(sum(v["requests_total"] for v in winrm.values())
                                            / n, 1)}
        steps.append(step)
        log(f"classroom {n} labs: {len(ok)} ok, p50 {step['p50_s']} s, p95 {step['p95_s']} s, "
            f"{step['activities_per_s']} activities/s, worker {step['worker_cpu_cores']} cores "
            f"{rss_peak} MB")
        offset += n
        base = steps[0]["p95_s"] or float("nan")
        knee = next((s["labs"] for s in steps if (s["p95_s"] or 0) >= 2 * base), None)
        if not sizes and knee is None and extend_to and n < extend_to:
            sizes.append(extend_to)  # the knee is further out: one more step
    knee = next((s["labs"] for s in steps if (s["p95_s"] or 0) >= 2 * base), None)
    return {"speed": speed, "steps": steps, "knee_labs": knee,
            "knee_rule": "first step whose p95 is at least twice the 1-lab p95"}


# ------------------------------------------------------------------------------- 6 resume


async def _pending(handle: Any, activity_type: str) -> Any:
    description = await handle.describe()
    for pending in description.raw_description.pending_activities:
        if pending.activity_type.name == activity_type:
            return pending
    return None


async def resume(stack: Stack, client: Client, migrate_speed: float) -> dict[str, Any]:
    """SIGKILL the worker while it polls a live migration job; time until the job is polled
    again by the new worker; Move-VM count afterwards."""
    home = stack.home
    files = [lab_copy(0, home / "labfiles", rename=False)]
    specs = register(home, files)
    fleet = FleetProc(home, 0, files)
    try:
        await build(client, specs[0])
        fleet.call("speed", speed=migrate_speed)
        spec = specs[0]
        request = LiveMigrationInput(spec=spec, vm="win2003-1", mode="shared-nothing",
                                     destination="SVR2")
        handle = await client.start_workflow(
            LiveMigrationWorkflow.run, request, id=migration_id(spec.lab, "win2003-1"),
            task_queue="hvlab")
        deadline = time.monotonic() + 60
        pending = None
        while time.monotonic() < deadline:
            pending = await _pending(handle, "migration.poll_job")
            if pending is not None and pending.heartbeat_details.payloads:
                break
            await asyncio.sleep(0.1)
        if pending is None:
            raise RuntimeError("migration.poll_job never heartbeated")
        await asyncio.sleep(1.0)
        before = await _pending(handle, "migration.poll_job")
        last_beat = before.last_heartbeat_time.ToDatetime(tzinfo=UTC).timestamp() \
            if before.HasField("last_heartbeat_time") else None
        killed_at = stack.kill_worker()
        counts_at_kill = fleet.state()["commands"].get("SVR1", {})
        stack.start_worker()
        ready_s = await stack.wait_worker(client)
        resumed = None
        while time.monotonic() < deadline + 120:
            p = await _pending(handle, "migration.poll_job")
            if p is not None and p.attempt >= 2 and p.HasField("last_started_time"):
                started_at = p.last_started_time.ToDatetime(tzinfo=UTC).timestamp()
                if started_at > killed_at:
                    resumed = started_at - killed_at
                    break
            await asyncio.sleep(0.1)
        fleet.call("speed", speed=0)  # let the job finish now
        result = await handle.result()
        commands = fleet.state()["commands"]
    finally:
        fleet.stop()
    heartbeat = LONG_JOB.get("heartbeat_timeout")
    timeout_s = heartbeat.total_seconds() if heartbeat else float("nan")
    beat_age = None if last_beat is None else killed_at - last_beat
    out = {
        "heartbeat_timeout_s": timeout_s,
        "migrate_speed": migrate_speed,
        "last_heartbeat_age_at_kill_s": r(beat_age, 2),
        "new_worker_ready_s": r(ready_s, 2),
        "kill_to_repoll_s": r(resumed, 2) if resumed is not None else None,
        "target_s": timeout_s + 2,
        "move_vm_on_source": commands.get("SVR1", {}).get("Move-VM", 0),
        "move_vm_at_kill": counts_at_kill.get("Move-VM", 0),
        "duplicate_move_vm": max(0, commands.get("SVR1", {}).get("Move-VM", 0) - 1),
        "migration_result": {"moved": result.moved, "host": result.host,
                             "reattached": result.reattached,
                             "resumed_from": result.resumed_from},
    }
    log(f"resume: kill -> re-poll {out['kill_to_repoll_s']} s (heartbeat timeout {timeout_s} s)"
        f", Move-VM {out['move_vm_on_source']}")
    return out

