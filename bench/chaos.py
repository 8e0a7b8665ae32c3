"""``make chaos``: the seed scenario under worker SIGKILLs and a Temporal dev server restart.

Each run gets a fresh ``HVLAB_HOME`` and its own embedded stack (dev server on a SQLite file,
worker subprocess, simulated fleet at ``--speed``), registers the lab and drives the seed
scenario's phases (:mod:`starter.scenario`: the same workflows, ids and inputs as ``hvlab
demo``) plus the weekday reset schedule. Meanwhile a controller SIGKILLs the worker's process
group at seeded random moments (``--kills`` per run) and starts a new worker at once; with
``--server-restart`` it also SIGKILLs the dev server once mid-run and starts it again on the
same database file. Before each kill the dev server is asked what ran on the worker (open
workflows, ``describe`` -> ``pending_activities``), which gives the kill points covered.

The driver here, not the Rich one in ``starter.scenario``, runs the phases, because it must
survive the server going away: it starts each workflow once (``REJECT_DUPLICATE`` on a fresh
database, so a retried start can never run a phase twice), then waits for its result, retrying
on ``RPCError`` (Temporal unavailable) with a reconnect.

Run 0 has no kills: its world is the reference. After every run the world
(``hvlab sim state --json``, read from the fleet's control API) must equal the reference's
canonical projection exactly (VMs per host with state, paths, disks, NICs, checkpoints; guests,
switches, files, folders, shares and ACLs, AD delegation, replication relationships, NAT,
finished jobs, ...), satisfy the hand-written key facts of the seed (:func:`key_facts`), have
no workflow left open, and its mutating command counters (see :func:`mutating_counts`) must
equal the reference's: a retry may repeat probes, never a change (the exceptions,
:data:`ALLOWED_REPEATS` and, bounded by what the kills cut, :data:`CUT_REPEATS`, are reported
per run).

Kill moments are progress points (after a random number of finished activities, see
:func:`make_plan`), so each kill lands in a fresh part of the scenario even though the one
before stalled it for a timeout; a run takes 2-4 min, mostly waiting, so ``--jobs`` runs go
at once, each with its own home, ports (``--base-port`` + 10 per slot) and fleet port.

    python bench/chaos.py --runs 20 --seed 1 --jobs 3   # what `make chaos` runs
    python bench/chaos.py --runs 1 --seed 7 --burst     # the short version (tests/chaos)

Results: ``bench/results/chaos-<timestamp>.json`` (gitignored) and a copy as
``bench/results/chaos-latest.json``. Exit 0 only if every run passes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import functools
import json
import os
import queue
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from temporalio.client import Client, WorkflowFailureError  # noqa: E402
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy  # noqa: E402
from temporalio.exceptions import WorkflowAlreadyStartedError  # noqa: E402
from temporalio.service import RPCError  # noqa: E402

from hvlab import devstack  # noqa: E402
from hvlab.devstack import DevConfig  # noqa: E402
from hvlab.labs import LabRegistry  # noqa: E402
from hvlab.spec import LabSpec  # noqa: E402
from hvlab.specfile import load_lab  # noqa: E402
from hvlab.temporal import TemporalUnavailable, connect  # noqa: E402
from simulator.core import Registry  # noqa: E402
from simulator.engine import default_registry  # noqa: E402
from simulator.engine import mutating_counts as engine_mutating_counts  # noqa: E402
from starter.scenario import Phase, Scenario  # noqa: E402
from starter.schedules import put_reset_schedule  # noqa: E402

LAB = ROOT / "examples" / "classroom-lab.yaml"
RESULTS = ROOT / "bench" / "results"
RUN_TIMEOUT = 600.0
HOSTNAME = socket.gethostname()


# --------------------------------------------------------------------------- the stack


@dataclass
class Stack:
    """One run's embedded stack: dev server + worker (hvlab.devstack) and a simulated fleet."""

    home: Path
    base_port: int
    speed: float
    cfg: DevConfig = field(init=False)
    start_retries: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.move_ports(0)

    def move_ports(self, by: int) -> None:
        self.base_port += by
        p = self.base_port
        self.cfg = DevConfig(home=self.home, port=p, ui_port=p + 1, http_port=p + 2,
                             metrics_port=p + 3, worker_metrics_address=f"127.0.0.1:{p + 4}")

    # -- processes
    def start_stack(self) -> dict[str, float]:
        """Start (or reuse) server and worker; seconds from spawn to ready of what started."""
        return devstack.start(self.cfg).started

    def restart_stack(self) -> dict[str, float]:
        """:meth:`start_stack` after a kill, tried 3 times (a start can fail on this busy
        machine: 'dev server exited during start-up' was seen 3 times in 60 restarts)."""
        for attempt in range(3):
            try:
                return self.start_stack()
            except devstack.DevStackError as exc:
                if attempt == 2:
                    raise
                self.start_retries.append(str(exc)[:300])
        raise AssertionError("unreachable")

    def start_fleet(self) -> None:
        sim = self.home / "sim"
        sim.mkdir(parents=True, exist_ok=True)
        # A fixed port of our own: with the default (5985, else ephemeral) a simulated reboot
        # frees 127.0.0.1x:5985 and another fleet starting then takes it (its hosts answer
        # our worker with 401).
        argv = [sys.executable, "-m", "starter.commands.sim", "serve", str(LAB), "--speed",
                str(self.speed), "--fresh", "--port", str(self.base_port + 5)]
        env = {**os.environ, "HVLAB_HOME": str(self.home)}
        with (sim / "serve.log").open("ab") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                    start_new_session=True, cwd=ROOT, env=env)
        (sim / "sim.pid").write_text(str(proc.pid))
        deadline = time.monotonic() + 60
        while not ((sim / "endpoints.json").exists() and (sim / "control.json").exists()):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the simulated fleet did not start; see {sim / 'serve.log'}")
            time.sleep(0.05)

    def pid(self, name: str) -> int | None:
        return devstack.read_pid(self.cfg.pid_file(name))

    def sigkill(self, name: str) -> int | None:
        """SIGKILL ``name``'s process group (``worker`` or ``temporal``); its pid."""
        pid = self.pid(name)
        if pid is None:
            return None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while devstack.process_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        # The leader is a zombie before its last thread has closed the listening sockets.
        while any(devstack.port_open(port) for port in self.ports(name)) and \
                time.monotonic() < deadline:
            time.sleep(0.02)
        return pid

    def ports(self, name: str) -> list[int]:
        cfg = self.cfg
        if name == "worker":
            return [int(cfg.worker_metrics_address.rsplit(":", 1)[1])]
        return [cfg.port, cfg.ui_port, cfg.http_port, cfg.metrics_port]

    def stop(self) -> None:
        devstack.stop(self.cfg)

    def leftovers(self) -> list[int]:
        """Pids of processes still mentioning this run's home (should be none)."""
        found = []
        marker = str(self.home).encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                if marker in (entry / "cmdline").read_bytes() or marker in (
                        entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
        return found

    # -- the simulated world (what `hvlab sim state --json` prints)
    def world(self) -> dict[str, Any]:
        info = json.loads((self.home / "sim" / "control.json").read_text())
        request = urllib.request.Request(f"http://127.0.0.1:{info['port']}/state",
                                         headers={"X-Hvlab-Token": info["token"]})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- kill points


async def running_now(client: Client, worker_identity: str) -> dict[str, Any]:
    """Open workflows and their pending activities, as the dev server sees them."""
    workflows: list[dict[str, Any]] = []
    async for execution in client.list_workflows('ExecutionStatus="Running"'):
        desc = await client.get_workflow_handle(execution.id).describe()
        pending = []
        for act in desc.raw_description.pending_activities:
            pending.append({
                "activity": act.activity_type.name,
                "state": {1: "scheduled", 2: "started", 3: "cancel_requested", 4: "paused",
                          5: "pause_requested"}.get(int(act.state), str(act.state)),
                "attempt": act.attempt,
                "on_killed_worker": act.last_worker_identity == worker_identity,
            })
        workflows.append({"workflow": execution.workflow_type, "id": execution.id,
                          "pending": pending})
    return {"workflows": workflows}


def kill_point(snapshot: dict[str, Any] | None) -> list[str]:
    """What the kill interrupted: the activity types started on the killed worker, else
    ``(workflow task/idle: <workflow types>)``, or ``(unknown)`` without a snapshot."""
    if snapshot is None:
        return ["(unknown: server not answering)"]
    hit = sorted(p["activity"] for w in snapshot["workflows"] for p in w["pending"]
                 if p["state"] == "started" and p["on_killed_worker"])
    if hit:
        return hit
    types = sorted({w["workflow"] for w in snapshot["workflows"]})
    return [f"(no activity running: {', '.join(types) or 'no open workflow'})"]


# --------------------------------------------------------------------------- the driver


@dataclass
class PhaseOutcome:
    name: str
    workflow_id: str
    ok: bool
    seconds: float
    detail: str = ""
    rpc_retries: int = 0


class Driver:
    """Runs the scenario's phases in order, surviving a dev server restart."""

    def __init__(self, cfg: DevConfig, spec: LabSpec) -> None:
        self.settings = cfg.client_settings()
        self.spec = spec
        self.scenario = Scenario(spec, cfg.task_queue).build()
        self.client: Client | None = None
        self.outcomes: list[PhaseOutcome] = []
        self.current = ""

    async def _client(self, fresh: bool = False) -> Client:
        while self.client is None or fresh:
            try:
                self.client = await connect(self.settings, timeout=2.0)
                fresh = False
            except TemporalUnavailable:
                await asyncio.sleep(0.5)
        return self.client

    async def _retrying(self, what: str, call: Any, outcome: PhaseOutcome | None) -> Any:
        """``await call(client)``, retried while Temporal is unavailable (reconnecting)."""
        failures = 0
        while True:
            client = await self._client(fresh=failures >= 3)
            try:
                return await call(client)
            except (RPCError, TemporalUnavailable) as exc:
                if isinstance(exc, RPCError) and exc.status.name not in (
                        "UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED", "UNKNOWN",
                        "INTERNAL", "RESOURCE_EXHAUSTED"):
                    raise
                failures += 1
                if outcome is not None:
                    outcome.rpc_retries += 1
                await asyncio.sleep(min(0.25 * failures, 2.0))

    async def run_phase(self, phase: Phase) -> PhaseOutcome:
        started = time.monotonic()
        outcome = PhaseOutcome(phase.name, phase.workflow_id, False, 0.0)
        self.current = phase.workflow_id

        async def start(client: Client) -> None:
            # WorkflowAlreadyStartedError: an earlier attempt started it and it has already
            # finished (REJECT_DUPLICATE): follow it, never run the phase a second time.
            with contextlib.suppress(WorkflowAlreadyStartedError):
                await client.start_workflow(
                    phase.workflow, phase.make_input(), id=phase.workflow_id,
                    task_queue=self.scenario.task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    static_summary=phase.name)

        async def result(client: Client) -> Any:
            handle = client.get_workflow_handle(phase.workflow_id, result_type=phase.result_type)
            return await handle.result()

        try:
            await self._retrying("start", start, outcome)
            value = await self._retrying("result", result, outcome)
            outcome.ok, outcome.detail = True, phase.after(value)
        except WorkflowFailureError as exc:
            outcome.detail = str(exc.cause or exc)[:500]
        except RPCError as exc:
            outcome.detail = f"RPCError {exc.status.name}: {exc.message}"[:500]
        outcome.seconds = time.monotonic() - started
        return outcome

    async def run(self) -> bool:
        for phase in self.scenario.phases:
            outcome = await self.run_phase(phase)
            self.outcomes.append(outcome)
            if not outcome.ok:
                return False
        reset = self.spec.reset
        if reset is not None:
            started = time.monotonic()
            outcome = PhaseOutcome("weekday reset schedule", "schedule", False, 0.0)
            self.current = "schedule"

            async def put(client: Client) -> None:
                await put_reset_schedule(client, self.spec, reset.cron, reset.checkpoint,
                                         self.scenario.task_queue)

            await self._retrying("schedule", put, outcome)
            outcome.ok, outcome.seconds = True, time.monotonic() - started
            self.outcomes.append(outcome)
        self.current = "done"
        return True


# --------------------------------------------------------------------------- the chaos


@dataclass
class Kill:
    at: float
    planned: int
    """The planned progress point: finished activities (-1: a later kill of a burst)."""
    worker_pid: int | None
    phase: str
    killed_during: list[str]
    snapshot: dict[str, Any] | None
    restart_seconds: float = 0.0


@dataclass
class ServerRestart:
    at: float
    planned: float
    server_pid: int | None
    phase: str
    killed_during: list[str]
    down_seconds: float = 0.0
    worker_restarted: bool = False


@dataclass
class Plan:
    kill_after_steps: list[int]
    """Kill when the workers have finished this many activities (progress, not wall time)..."""
    kill_delays: list[float]
    """... and this many seconds more (so the kill lands inside the next activities)."""
    burst_gaps: list[float]
    """With ``--burst``: further kills this many seconds after the previous kill's restart."""
    server_restart: float | None
    """Seconds after the scenario starts."""

    @property
    def kills(self) -> int:
        return len(self.kill_after_steps) + len(self.burst_gaps)


BURST_GAP = (1.5, 4.0)
STEPS_HINT, SPAN_HINT = 100, 24.0
"""Plan parameters for a burst run that starts before run 0 has measured them."""


def make_plan(rng: random.Random, kills: int, server_restart: bool, steps: int,
              span: float, *, burst: bool = False) -> Plan:
    """Seeded kill moments spread over the scenario's progress.

    A kill is placed after a uniformly random number of finished activities (of the ``steps``
    the undisturbed run finished) plus 0-1 s, not at a wall-clock time: a kill during an
    activity stalls its workflow until the activity's timeout notices the dead worker (60 s
    for remote steps, probes and reboot waits, 20 s for host-side jobs), so wall-clock moments
    after the first kill would mostly land in that stall. Counting activities, every kill
    lands in a fresh part of the scenario and over many runs every phase is covered. The
    server restart is at a uniformly random moment of the undisturbed run's ``span``.
    """
    if burst:
        points = [rng.randrange(1, max(int(steps * 0.6), 2))]
        gaps = [round(rng.uniform(*BURST_GAP), 3) for _ in range(kills - 1)]
    else:
        # up to 80 %: retried steps are not counted twice, so the last ones may never come
        points = sorted(rng.sample(range(1, max(int(steps * 0.8), kills + 1)), kills))
        gaps = []
    delays = [round(rng.uniform(0.0, 1.0), 3) for _ in points]
    restart = round(rng.uniform(0.5, max(span * 0.85, 2.0)), 3) if server_restart else None
    return Plan(points, delays, gaps, restart)


STEP_EVENTS = (b'"event": "step finished"', b'"event": "step failed"')


def finished_steps(log: Path) -> int:
    """Activities finished (or failed) so far by every worker of the run (worker.log)."""
    try:
        data = log.read_bytes()
    except OSError:
        return 0
    return sum(data.count(marker) for marker in STEP_EVENTS)


class Chaos:
    """Carries out a :class:`Plan` against a running stack while the driver runs."""

    def __init__(self, stack: Stack, driver: Driver, plan: Plan) -> None:
        self.stack, self.driver, self.plan = stack, driver, plan
        self.kills: list[Kill] = []
        self.restart: ServerRestart | None = None
        self.t0 = time.monotonic()

    async def _snapshot(self, worker_pid: int | None) -> dict[str, Any] | None:
        client = self.driver.client
        if client is None:
            return None
        try:
            return await asyncio.wait_for(
                running_now(client, f"{worker_pid}@{HOSTNAME}"), timeout=3.0)
        except (RPCError, TimeoutError):
            return None

    async def kill_worker(self, planned: int) -> None:
        pid = self.stack.pid("worker")
        snapshot = await self._snapshot(pid)
        killed_at = time.monotonic() - self.t0
        self.stack.sigkill("worker")
        kill = Kill(killed_at, planned, pid, self.driver.current, kill_point(snapshot), snapshot)
        started = time.monotonic()
        await asyncio.to_thread(self.stack.restart_stack)
        kill.restart_seconds = time.monotonic() - started
        self.kills.append(kill)

    async def restart_server(self, planned: float) -> None:
        worker = self.stack.pid("worker")
        snapshot = await self._snapshot(worker)
        restart = ServerRestart(time.monotonic() - self.t0, planned, self.stack.pid("temporal"),
                                self.driver.current, kill_point(snapshot))
        started = time.monotonic()
        self.stack.sigkill("temporal")
        started_now = await asyncio.to_thread(self.stack.restart_stack)
        restart.down_seconds = time.monotonic() - started
        restart.worker_restarted = "worker" in started_now
        self.restart = restart

    async def run(self, done: asyncio.Event) -> None:
        """Kill at the planned progress points and restart the server at its moment."""
        points = list(zip(self.plan.kill_after_steps, self.plan.kill_delays, strict=True))
        gaps = list(self.plan.burst_gaps)
        server = self.plan.server_restart
        log = self.stack.cfg.log_file("worker")
        next_burst: float | None = None
        while (points or next_burst is not None or server is not None) and not done.is_set():
            now = time.monotonic() - self.t0
            if server is not None and now >= server:
                await self.restart_server(server)
                server = None
            elif next_burst is not None and now >= next_burst:
                await self.kill_worker(-1)
                next_burst = time.monotonic() - self.t0 + gaps.pop(0) if gaps else None
            elif points and finished_steps(log) >= points[0][0]:
                steps, delay = points.pop(0)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), timeout=delay)
                if done.is_set():
                    return
                await self.kill_worker(steps)
                if not points and gaps:
                    next_burst = time.monotonic() - self.t0 + gaps.pop(0)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), timeout=0.05)


# --------------------------------------------------------------------------- checking


def _canonical(value: Any) -> Any:
    """Dicts with canonical values; lists sorted (order is not meaningful in this state)."""
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        items = [_canonical(v) for v in value]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    return value


VOLATILE_VM_KEYS = ("id",)
AVHDX_GUID = re.compile(r"_[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-"
                        r"[0-9A-Fa-f]{12}\.avhdx")
"""Generated afresh by every run of the simulator (a VM's GUID)."""


def projection(state: dict[str, Any]) -> dict[str, Any]:
    """The world without what differs between two identical runs: VM GUIDs, job ids (jobs
    become a multiset), the counters (compared separately)."""
    world = copy.deepcopy(state)
    world.pop("counters", None)
    for host in world["hosts"].values():
        for vm in host["vms"].values():
            for key in VOLATILE_VM_KEYS:
                vm.pop(key, None)
    world["jobs"] = list(world.get("jobs", {}).values())
    # a checkpoint's differencing disk is named <vm>_<new GUID>.avhdx (a file name and a key)
    world = json.loads(AVHDX_GUID.sub(r"_<GUID>.avhdx", json.dumps(world)))
    return _canonical(world)  # type: ignore[no-any-return]


def diff(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Every difference as ``path: expected != actual`` (missing/extra keys named)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        out: list[str] = []
        for key in sorted(set(expected) | set(actual)):
            where = f"{path}.{key}" if path else str(key)
            if key not in actual:
                out.append(f"{where}: missing (expected {json.dumps(expected[key])[:200]})")
            elif key not in expected:
                out.append(f"{where}: extra {json.dumps(actual[key])[:200]}")
            else:
                out += diff(expected[key], actual[key], where)
        return out
    if expected != actual:
        return [f"{path}: expected {json.dumps(expected)[:300]}, got {json.dumps(actual)[:300]}"]
    return []


@functools.cache
def _registry() -> Registry:
    return default_registry()


def mutating_counts(state: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Per host, how often each command that changes something ran (the simulator counts
    every invocation under its canonical cmdlet name, ``script@``-less script name or
    ``<program>.exe``; whether it changes something is its handler's flag)."""
    counts = engine_mutating_counts(_registry(), state.get("counters", {}))
    return {host: dict(sorted(kept.items())) for host, kept in counts.items() if kept}


ALLOWED_REPEATS = {
    "host/offline-guest-config": (
        "guest.offline_config writes the same first-boot configuration into the disk of a VM "
        "that is still off and marks it done in the VM's Notes afterwards; a worker killed "
        "while the script runs leaves no mark, so the retry writes it again (same content, "
        "applied once at first boot: the world check stays exact). No read-only probe of a "
        "disk's pending configuration exists yet."),
    "host/purge-tickets": (
        "directory.purge_tickets (klist purge of the host's machine tickets so changed "
        "delegation applies without a reboot) has nothing to probe and always runs, by design: "
        "a retry after a kill purges again, which is harmless."),
}
"""Mutating commands a retry may legitimately repeat: reported, not failed."""


CUT_REPEATS = {
    "Copy-Item": ("vm.disk", (
        "vm.disk copies the golden disk to <path>.hvlab-partial and renames it when complete; "
        "a worker killed during the copy closes its session, which cuts the copy (a real "
        "host's CopyFileEx leaves the partly written file: docs/simulator-fidelity.md, 'A cut "
        "copy leaves a truncated file'), so the retry copies again. There is nothing to resume "
        "in-session.")),
    "Remove-Item": ("vm.disk", (
        "the retry of a cut vm.disk drops the truncated <path>.hvlab-partial before it copies "
        "again (it never renames a cut copy into place).")),
}
"""Mutating commands a step cut by a kill must redo: allowed only in a run whose kills cut that
step, at most once per execution cut (counted over all hosts); reported, not failed."""


def cut_steps(kills: list[dict[str, Any]]) -> Counter[str]:
    """Activity type -> executions of it running when a kill landed (``killed_during``)."""
    cut: Counter[str] = Counter()
    for kill in kills:
        cut.update(kill["killed_during"])
    return cut


def counter_diffs(expected: dict[str, dict[str, int]], actual: dict[str, dict[str, int]],
                  allowed: list[str] | None = None,
                  cut: Counter[str] | None = None) -> list[str]:
    """Mutating counts that differ; repeats of :data:`ALLOWED_REPEATS`, and those of
    :data:`CUT_REPEATS` within what the run's kills ``cut``, go to ``allowed``."""
    hosts = sorted(set(expected) | set(actual))
    excess: Counter[str] = Counter()
    short: set[str] = set()
    for host in hosts:
        for name, count in actual.get(host, {}).items():
            excess[name] += max(0, count - expected.get(host, {}).get(name, 0))
        short |= {name for name, count in expected.get(host, {}).items()
                  if actual.get(host, {}).get(name, 0) < count}
    redone = {name for name, (step, _) in CUT_REPEATS.items()
              if allowed is not None and cut is not None and name not in short
              and 0 < excess[name] <= cut[step]}
    out = []
    for host in hosts:
        exp, act = expected.get(host, {}), actual.get(host, {})
        for name in sorted(set(exp) | set(act)):
            if (name in ALLOWED_REPEATS or name in redone) and allowed is not None and \
                    act.get(name, 0) > exp.get(name, 0):
                allowed.append(f"{host} {name}: {act[name]} (undisturbed run: "
                               f"{exp.get(name, 0)})")
                continue
            if exp.get(name, 0) != act.get(name, 0):
                kind = "duplicated" if act.get(name, 0) > exp.get(name, 0) else "missing"
                out.append(f"{host} {name}: {kind}, {act.get(name, 0)} (undisturbed run: "
                           f"{exp.get(name, 0)})")
    return out


def _disks_in(vm: dict[str, Any], folder: str) -> bool:
    """The VM has one disk and it lies in ``folder``: after the checkpoint it runs on the
    checkpoint's differencing disk (``<vm>_<GUID>.avhdx``) next to its VHDX, which moved with
    it (docs/simulator-fidelity.md, "Checkpoints follow storage moves")."""
    disks = [d["path"] for d in vm.get("disks", [])]
    return len(disks) == 1 and disks[0].startswith(folder + "\\") \
        and disks[0].endswith((".vhdx", ".avhdx"))


def key_facts(state: dict[str, Any]) -> list[str]:
    """The seed scenario's end state, written by hand (independent of the reference run)."""
    problems: list[str] = []

    def want(what: str, ok: bool) -> None:
        if not ok:
            problems.append(f"key fact: {what}")

    hosts = state["hosts"]
    svr1, svr2, dc1 = hosts["SVR1"], hosts["SVR2"], hosts["DC1"]
    want("SVR1 has exactly win2003-2 and Linux01 (primary after failover)",
         set(svr1["vms"]) == {"win2003-2", "Linux01"})
    want("SVR2 has exactly win2003-1, win2003-3 and the Linux01 replica",
         set(svr2["vms"]) == {"win2003-1", "win2003-3", "Linux01"})
    want("DC1 has no VM", not dc1["vms"])
    for host, vm in (("SVR1", "win2003-2"), ("SVR1", "Linux01"), ("SVR2", "win2003-1"),
                     ("SVR2", "win2003-3")):
        want(f"{vm} running on {host}", hosts[host]["vms"].get(vm, {}).get("state") == "Running")
    want("Linux01 replica on SVR2 is off",
         svr2["vms"].get("Linux01", {}).get("state") == "Off")
    w1 = svr2["vms"].get("win2003-1", {})
    want("win2003-1 (shared-nothing) has its files in C:\\Hyper-V\\win2003-1 on SVR2",
         w1.get("path") == "C:\\Hyper-V\\win2003-1"
         and _disks_in(w1, "C:\\Hyper-V\\win2003-1"))
    w3 = svr2["vms"].get("win2003-3", {})
    want("win2003-3 (SMB) still on \\\\DC1\\smb",
         w3.get("path") == "\\\\DC1\\smb\\win2003-3"
         and _disks_in(w3, "\\\\DC1\\smb\\win2003-3"))
    w2 = svr1["vms"].get("win2003-2", {})
    want("win2003-2 (storage) moved to \\\\DC1\\smb\\win2003-2",
         w2.get("path") == "\\\\DC1\\smb\\win2003-2"
         and _disks_in(w2, "\\\\DC1\\smb\\win2003-2"))
    for host, vms in (("SVR1", svr1["vms"]), ("SVR2", svr2["vms"])):
        for name, vm in vms.items():
            replica = host == "SVR2" and name == "Linux01"  # a replica takes no checkpoint
            want(f"{host}/{name} has exactly the checkpoint(s) {[] if replica else ['baseline']}",
                 vm.get("checkpoints") == ([] if replica else ["baseline"]))
    rep1, rep2 = svr1["replication"], svr2["replication"]
    want("replication: only Linux01, Primary on SVR1 -> SVR2, Replicating/Normal",
         set(rep1) == {"Linux01"} and set(rep2) == {"Linux01"}
         and (rep1["Linux01"]["mode"], rep1["Linux01"]["state"], rep1["Linux01"]["health"],
              rep1["Linux01"]["peer"].split(".")[0].upper()) ==
         ("Primary", "Replicating", "Normal", "SVR2")
         and rep2["Linux01"]["mode"] == "Replica")
    nat = svr2["guests"].get("win2003-1", {}).get("nat_mappings", [])
    want("NAT on win2003-1: exactly 23 -> 10.10.10.2 and 35000 -> 10.10.20.2",
         sorted((m["public_port"], m["private_ip"], m["private_port"]) for m in nat)
         == [(23, "10.10.10.2", 23), (35000, "10.10.20.2", 35000)])
    for name, host in (("SVR1", svr1), ("SVR2", svr2)):
        want(f"{name} has exactly the switches External, Internal, Internal2, Private",
             sorted(host["switches"]) == ["External", "Internal", "Internal2", "Private"])
    computers = state["ad"]["computers"]
    for me, peer in (("SVR1", "SVR2"), ("SVR2", "SVR1")):
        allowed = computers[me]["allowed_to_delegate_to"]
        want(f"KCD {me}: cifs and migration to {peer}, cifs to DC1, nothing twice",
             sorted(allowed) == sorted([f"cifs/{peer}", f"cifs/{peer}.kosa.vm",
                                        f"Microsoft Virtual System Migration Service/{peer}",
                                        f"Microsoft Virtual System Migration Service/{peer}"
                                        ".kosa.vm", "cifs/DC1", "cifs/DC1.kosa.vm"]))
    smb = state["shares"]["DC1"].get("smb", {})
    want("\\\\DC1\\smb grants KOSA\\SVR1$ and KOSA\\SVR2$ once each",
         sorted(a["account"] for a in smb.get("share_acl", []))
         == ["BUILTIN\\Administrators", "KOSA\\SVR1$", "KOSA\\SVR2$"])
    jobs = Counter((j["host"], j["kind"], j["vm"], j["state"]) for j in state["jobs"].values())
    want("one completed job per move and the initial replication, no other",
         jobs == Counter({("SVR1", "migration", "win2003-1", 7): 1,
                          ("SVR1", "migration", "win2003-3", 7): 1,
                          ("SVR1", "storage", "win2003-2", 7): 1,
                          ("SVR2", "replication", "Linux01", 7): 1}))
    counts = state["counters"]
    for host, name, n in (("SVR1", "Move-VM", 2), ("SVR1", "Move-VMStorage", 1),
                          ("SVR2", "Move-VM", 0), ("SVR2", "Move-VMStorage", 0),
                          ("SVR1", "New-VM", 3), ("SVR2", "New-VM", 1),
                          ("SVR2", "Enable-VMReplication", 1),
                          ("SVR2", "Start-VMInitialReplication", 1),
                          ("SVR2", "Start-VMFailover", 1), ("SVR1", "Start-VMFailover", 1),
                          ("SVR1", "Complete-VMFailover", 1),
                          ("SVR1", "Set-VMReplication", 1),  # the -Reverse, on the new primary
                          ("SVR1", "Checkpoint-VM", 2), ("SVR2", "Checkpoint-VM", 2)):
        want(f"{host} ran {name} {n} time(s), ran {counts.get(host, {}).get(name, 0)}",
             counts.get(host, {}).get(name, 0) == n)
    return problems


@dataclass
class Reference:
    projection: dict[str, Any]
    counts: dict[str, dict[str, int]]
    span: float
    steps: int

    @classmethod
    def load(cls, path: Path) -> Reference:
        data = json.loads(path.read_text())
        return cls(data["projection"], data["counts"], data["span"], data["steps"])

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=1, sort_keys=True) + "\n")


# --------------------------------------------------------------------------- one run


@dataclass
class RunResult:
    run: int
    seed: int
    ok: bool
    seconds: float
    scenario_seconds: float
    plan: dict[str, Any]
    kills: list[dict[str, Any]]
    server_restart: dict[str, Any] | None
    phases: list[dict[str, Any]]
    open_workflows: list[str]
    diffs: list[str]
    counter_diffs: list[str]
    key_fact_problems: list[str]
    leftover_pids: list[int]
    home: str
    steps: int = 0
    """Activities finished or failed, by all the run's workers."""
    allowed_repeats: list[str] = field(default_factory=list)
    start_retries: list[str] = field(default_factory=list)
    error: str = ""


async def _open_workflows(client: Client | None) -> list[str]:
    if client is None:
        return ["(no client)"]
    return [f"{e.workflow_type} {e.id}"
            async for e in client.list_workflows('ExecutionStatus="Running"')]


async def _run(stack: Stack, spec: LabSpec, plan: Plan | None
               ) -> tuple[Driver, Chaos | None, dict[str, Any], list[str], float]:
    for attempt in range(3):
        try:
            await asyncio.to_thread(stack.start_stack)
            break
        except devstack.DevStackError as exc:
            if attempt == 2:
                raise
            stack.start_retries.append(str(exc)[:300])
            # The default ports lie below Linux's ephemeral range (32768-60999), where only an
            # explicit bind can take them; if one is taken anyway, move 300 ports up.
            if "already in use" in str(exc):
                stack.move_ports(300)
    await asyncio.to_thread(stack.start_fleet)
    spec = LabRegistry(stack.home).register(spec, sim=True).spec  # sim.<lab>: the mode's key
    driver = Driver(stack.cfg, spec)
    await driver._client()
    chaos = Chaos(stack, driver, plan) if plan is not None else None
    done = asyncio.Event()
    started = time.monotonic()
    drive = asyncio.ensure_future(asyncio.wait_for(driver.run(), timeout=RUN_TIMEOUT))
    controller = asyncio.ensure_future(chaos.run(done)) if chaos else None
    try:
        await asyncio.wait({drive} | ({controller} if controller else set()),
                           return_when=asyncio.FIRST_COMPLETED)
        if controller is not None and controller.done() and controller.exception():
            drive.cancel()
            await controller  # raises: the chaos itself failed (a restart did not work)
        await drive
    finally:
        done.set()
        drive.cancel()
        if controller is not None:
            await controller
    scenario_seconds = time.monotonic() - started
    open_workflows = await driver._retrying("list", _open_workflows, None)
    return driver, chaos, stack.world(), open_workflows, scenario_seconds


def run_once(index: int, seed: int, home: Path, base_port: int, speed: float,
             plan: Plan | None) -> tuple[RunResult, dict[str, Any]]:
    """One run (undisturbed without ``plan``); :func:`judge` compares it to the reference."""
    spec = load_lab(LAB)
    stack = Stack(home, base_port, speed)
    started = time.monotonic()
    error, state = "", {}
    driver: Driver | None = None
    chaos: Chaos | None = None
    open_wf: list[str] = []
    scenario_seconds = 0.0
    try:
        driver, chaos, state, open_wf, scenario_seconds = asyncio.run(
            _run(stack, spec, plan))
    except Exception as exc:  # reported in the run's result; the run fails
        error = f"{type(exc).__name__}: {exc}"
    finally:
        with contextlib.suppress(Exception):
            stack.stop()
    leftovers = stack.leftovers()
    facts = key_facts(state) if state else []
    phases = [asdict(o) for o in driver.outcomes] if driver else []
    phases_ok = bool(phases) and all(p["ok"] for p in phases) and len(phases) == (
        len(driver.scenario.phases) + (1 if spec.reset else 0) if driver else 0)
    kills = [asdict(k) for k in chaos.kills] if chaos else []
    enough_kills = plan is None or len(kills) == plan.kills
    restarted = plan is None or plan.server_restart is None or (
        chaos is not None and chaos.restart is not None)
    ok = (not error and bool(state) and phases_ok and not open_wf and not facts
          and not leftovers and enough_kills and restarted)
    if not enough_kills:
        error = error or f"only {len(kills)} of {plan.kills if plan else 0} kills happened"
    if not restarted:
        error = error or "the scenario ended before the planned dev server restart"
    result = RunResult(
        run=index, seed=seed, ok=ok, seconds=round(time.monotonic() - started, 2),
        scenario_seconds=round(scenario_seconds, 2),
        plan=asdict(plan) if plan else {}, kills=kills,
        server_restart=asdict(chaos.restart) if chaos and chaos.restart else None,
        phases=phases, open_workflows=open_wf, diffs=[], counter_diffs=[],
        key_fact_problems=facts, leftover_pids=leftovers, home=str(home),
        steps=finished_steps(stack.cfg.log_file("worker")),
        start_retries=stack.start_retries, error=error)
    return result, state


def judge(result: RunResult, state: dict[str, Any], reference: Reference) -> None:
    """Compare a run's world and mutating counters with the reference's; fails it on a diff."""
    if state:
        result.diffs = diff(reference.projection, projection(state))
        result.counter_diffs = counter_diffs(reference.counts, mutating_counts(state),
                                             result.allowed_repeats, cut_steps(result.kills))
    result.ok = result.ok and not result.diffs and not result.counter_diffs


# --------------------------------------------------------------------------- reporting


def coverage(results: list[RunResult]) -> Counter[str]:
    """Activity type (or idle state) -> times the worker was killed during it."""
    seen: Counter[str] = Counter()
    for result in results:
        for kill in result.kills:
            for what in set(kill["killed_during"]):
                seen[what] += 1
    return seen


def print_summary(results: list[RunResult]) -> None:
    print("\nrun  seed   result  seconds  kills  restart  phase(s) killed during")
    for r in results:
        restart = "-" if r.server_restart is None else f"{r.server_restart['down_seconds']:.1f}s"
        during = "; ".join(",".join(k["killed_during"]) for k in r.kills)[:90]
        print(f"{r.run:>3}  {r.seed:>5}  {'PASS' if r.ok else 'FAIL':>6}  {r.seconds:>7.1f}  "
              f"{len(r.kills):>5}  {restart:>7}  {during}")
        for line in ([r.error] if r.error else []) + r.key_fact_problems + r.diffs[:20] + \
                r.counter_diffs + [f"open workflow: {w}" for w in r.open_workflows] + \
                [f"leftover pid {p}" for p in r.leftover_pids]:
            print(f"      ! {line}")
        for line in r.allowed_repeats:
            print(f"      ~ allowed repeat (see ALLOWED_REPEATS, CUT_REPEATS): {line}")
        for line in r.start_retries:
            print(f"      ~ stack start retried: {line[:150]}")
    table = coverage([r for r in results if r.kills])
    if table:
        print("\nkill points covered (activity running on the killed worker -> kills):")
        width = max(len(k) for k in table)
        for what, n in sorted(table.items(), key=lambda kv: (-kv[1], kv[0])):
            print(f"  {what:<{width}}  {n}")
    restarts = [r.server_restart for r in results if r.server_restart]
    if restarts:
        print("\ndev server restarts (what ran on the worker at the time -> restarts):")
        seen = Counter(w for s in restarts for w in set(s["killed_during"]))
        for what, n in sorted(seen.items(), key=lambda kv: (-kv[1], kv[0])):
            print(f"  {what}  {n}")


def machine() -> dict[str, Any]:
    return {"host": HOSTNAME, "cpus": os.cpu_count(), "python": sys.version.split()[0],
            "load_avg": os.getloadavg()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="chaos runs (after run 0)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the first chaos run")
    parser.add_argument("--kills", type=int, default=3, help="worker SIGKILLs per run")
    parser.add_argument("--server-restart", choices=("every", "first", "none"),
                        default="every", help="dev server restart in every run (default), "
                        "only the first, or none")
    parser.add_argument("--speed", type=float, default=60.0, help="simulator speed (as demo)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="chaos runs at once, each with its own stack (a run mostly waits "
                        "for the timeout that notices a killed worker: ~0.25 core per run)")
    parser.add_argument("--base-port", type=int, default=23300,
                        help="ports base .. base+10*jobs: dev server, UI, HTTP, metrics, worker")
    parser.add_argument("--reference", type=Path, default=None,
                        help="reference file to use instead of (or to write with "
                        "--write-reference) an undisturbed run 0")
    parser.add_argument("--write-reference", action="store_true")
    parser.add_argument("--burst", action="store_true",
                        help="kills as one burst (first at a random progress point, the others "
                        "1.5-4 s after each restart): their stalls overlap; run 0 runs "
                        "alongside (the short version in make test)")
    parser.add_argument("--no-reference-run", action="store_true",
                        help="skip run 0 (needs --reference)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory for the JSON")
    parser.add_argument("--keep-homes", action="store_true", help="keep passing runs' homes")
    args = parser.parse_args(argv)

    started = time.monotonic()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    workdir = Path(tempfile.mkdtemp(prefix=f"chaos-{stamp}-"))
    results: list[RunResult] = []
    reference = Reference.load(args.reference) if (
        args.reference and args.no_reference_run) else None

    def finish_run(result: RunResult) -> None:
        results.append(result)
        status = "PASS" if result.ok else "FAIL"
        kills = ", ".join(f"{k['at']:.1f}s {'/'.join(k['killed_during'])}" for k in result.kills)
        restart = result.server_restart
        extra = f"; server restart at {restart['at']:.1f}s" if restart else ""
        print(f"run {result.run} seed {result.seed}: {status} in {result.seconds:.1f} s "
              f"(scenario {result.scenario_seconds:.1f} s); kills: {kills or '-'}{extra}",
              flush=True)
        if result.ok and not args.keep_homes:
            shutil.rmtree(result.home, ignore_errors=True)

    lock = threading.Lock()
    waiting: list[tuple[RunResult, dict[str, Any]]] = []  # chaos runs done before run 0
    running = threading.Semaphore(args.jobs)
    slots: queue.Queue[int] = queue.Queue()
    for slot in range(args.jobs + 1):
        slots.put(slot)

    def reference_run() -> None:
        nonlocal reference
        slot = slots.get()
        try:
            result, state = run_once(0, 0, workdir / "run0", args.base_port + 10 * slot,
                                     args.speed, None)
        finally:
            slots.put(slot)
        with lock:
            if state and result.ok:
                reference = Reference(projection(state), mutating_counts(state),
                                      result.scenario_seconds, result.steps)
                if args.reference and args.write_reference:
                    reference.save(args.reference)
                elif args.reference:  # the stored reference must still hold
                    judge(result, state, Reference.load(args.reference))
            finish_run(result)
            for run, run_state in waiting:
                if reference is not None:
                    judge(run, run_state, reference)
                else:
                    run.ok, run.error = False, run.error or "no reference"
                finish_run(run)
            waiting.clear()
            reference_done.set()

    def chaos_run(i: int, steps: int, span: float) -> None:
        seed = args.seed + i - 1
        restart = args.server_restart == "every" or (
            args.server_restart == "first" and i == 1)
        plan = make_plan(random.Random(seed), args.kills, restart, steps, span,
                         burst=args.burst)
        with running:  # at most --jobs chaos runs at once (run 0 may run alongside)
            slot = slots.get()  # its own ports while it runs (10 per slot)
            try:
                result, state = run_once(i, seed, workdir / f"run{i}",
                                         args.base_port + 10 * slot, args.speed, plan)
            finally:
                slots.put(slot)
        with lock:
            if reference is None and not reference_done.is_set():
                waiting.append((result, state))
                return
            if reference is not None:
                judge(result, state, reference)
            else:
                result.ok, result.error = False, result.error or "no reference"
            finish_run(result)

    reference_done = threading.Event()
    with ThreadPoolExecutor(max_workers=args.jobs + 1) as pool:
        first = None
        if not args.no_reference_run:
            first = pool.submit(reference_run)
            if not args.burst:  # the plans need the reference's step count and span
                first.result()
        else:
            reference_done.set()
        if reference is None and not args.burst:
            print("no reference: the undisturbed run failed", file=sys.stderr)
        else:
            steps = reference.steps if reference else STEPS_HINT
            span = reference.span if reference else SPAN_HINT
            futures = [pool.submit(chaos_run, i, steps, span) for i in range(1, args.runs + 1)]
            for future in futures:
                future.result()
        if first is not None:
            first.result()
        results.sort(key=lambda r: r.run)

    print_summary(results)
    chaos_runs = [r for r in results if r.run > 0]
    ok = bool(results) and all(r.ok for r in results) and len(chaos_runs) == args.runs
    report = {
        "started": stamp, "seconds": round(time.monotonic() - started, 1), "ok": ok,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": machine(),
        "kill_points": dict(coverage(chaos_runs)),
        "allowed_repeats": ALLOWED_REPEATS,
        "cut_repeats": {name: {"step": step, "why": why}
                        for name, (step, why) in CUT_REPEATS.items()},
        "runs": [asdict(r) for r in results],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"chaos-{stamp}.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    shutil.copyfile(path, args.out / "chaos-latest.json")
    print(f"\n{'all runs passed' if ok else 'FAILED'}: {len(chaos_runs)} chaos runs, "
          f"{sum(len(r.kills) for r in chaos_runs)} worker kills, "
          f"{sum(1 for r in chaos_runs if r.server_restart)} dev server restarts in "
          f"{report['seconds']:.0f} s; results: {path}")
    if ok:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    code = 1
    try:
        code = main()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
