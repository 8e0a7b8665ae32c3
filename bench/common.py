"""Shared bench harness: machine details, a private Temporal dev server + bench worker, the
simulated fleet process, lab copies, and reading activity timings out of histories.

Everything runs on 127.0.0.1 ports 24200-24299 (Temporal, UI, worker metrics) and 127.0.34.x
(simulated hosts, ephemeral ports) under a private ``HVLAB_HOME`` (``/tmp/hvlab-bench-*``), so
it does not meet ``hvlab dev`` or the tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from temporalio.api.enums.v1 import EventType, TaskQueueType  # noqa: E402
from temporalio.api.taskqueue.v1 import TaskQueue  # noqa: E402
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest  # noqa: E402
from temporalio.client import Client  # noqa: E402

from hvlab import devstack  # noqa: E402
from hvlab.settings import Settings  # noqa: E402
from hvlab.temporal import connect  # noqa: E402

SEED_LAB = ROOT / "examples" / "classroom-lab.yaml"
PYTHON = sys.executable
GRPC_PORT, UI_PORT, HTTP_PORT, METRICS_PORT, WORKER_METRICS_PORT = (
    24233, 24234, 24243, 24244, 24264)  # below the ephemeral range (32768-)
TASK_QUEUE = "hvlab"
DEFAULT_RPS = 20  # the dev server's default for every history queue reader


_CHILDREN: list[subprocess.Popen[Any]] = []  # every process the bench started (own session)


def started(proc: subprocess.Popen[Any]) -> subprocess.Popen[Any]:
    _CHILDREN.append(proc)
    return proc


def kill_children() -> None:
    """SIGKILL every process group the bench started that still runs (on Ctrl-C/SIGTERM)."""
    for proc in _CHILDREN:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------- machine


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    temporal_cli = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError, devstack.DevStackError):
        temporal_cli = subprocess.run([str(devstack.temporal_binary()), "--version"],
                                      capture_output=True, text=True, timeout=30).stdout.strip()
    commit = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                capture_output=True, text=True, timeout=30).stdout.strip()

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "?"

    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu or platform.processor(),
        "cores": os.cpu_count(),
        "ram_gb": round(mem_kb / 1024 / 1024, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "temporalio": version("temporalio"),
        "pypsrp": version("pypsrp"),
        "temporal_cli": temporal_cli,
        "commit": commit,
    }


# ------------------------------------------------------------------------------- /proc


def cpu_seconds(pid: int) -> float:
    """User+system CPU seconds of ``pid`` (0 when gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


def hwm_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


# ------------------------------------------------------------------------------- stats


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = fraction * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


# ------------------------------------------------------------------------------- labs


def lab_copy(index: int, directory: Path, *, rename: bool = True) -> Path:
    """The seed lab as copy ``index``: lab ``c07``, hosts ``L07DC1``/``L07SVR1``/``L07SVR2``.

    Copies can share one worker, one dev server and one fleet process: workflow ids derive
    from the lab name, and the worker finds a host's endpoint by host name in one
    ``endpoints.json``, so both must differ; every copy has its own simulated world (domain,
    VM names and guest addresses may repeat). ``rename=False`` keeps the seed as it is.
    """
    text = SEED_LAB.read_text()
    if rename:
        tag = f"L{index:02d}"
        text = re.sub(r"\b(DC1|SVR1|SVR2)\b", lambda m: tag + m.group(1), text)
        text = re.sub(r"^lab: classroom$", f"lab: c{index:02d}", text, flags=re.M)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"lab-{index:02d}.yaml"
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------- fleet


class FleetProc:
    """``bench/fleet_proc.py``: N simulated lab copies in one child process."""

    def __init__(self, home: Path, speed: float, labs: Iterable[Path]) -> None:
        self.proc = started(subprocess.Popen(
            [PYTHON, str(ROOT / "bench" / "fleet_proc.py"), str(home), str(speed),
             *map(str, labs)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
            env={**os.environ, "HVLAB_HOME": str(home)}, start_new_session=True))
        ready = self._read()
        if not ready.get("ready"):
            raise RuntimeError(f"fleet did not start: {ready}")
        self.hosts = int(ready["hosts"])

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the fleet process exited")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def call(self, op: str, **fields: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def state(self) -> dict[str, Any]:
        return self.call("state")

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(Exception):
                self.call("stop")
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


# ------------------------------------------------------------------------------- stack


@dataclass
class StackConfig:
    """A dev server variant: file or in-memory db, and the history queue readers' rate."""

    db_file: bool = True
    dynamic: dict[str, int] | None = None  # None: hvlab's DYNAMIC_CONFIG (the embedded stack)
    pragmas: bool = True  # hvlab's SQLite pragmas (file db only)

    def argv(self, home: Path) -> list[str]:
        argv = [str(devstack.temporal_binary()), "server", "start-dev",
                "--ip", "127.0.0.1", "--port", str(GRPC_PORT), "--ui-port", str(UI_PORT),
                "--http-port", str(HTTP_PORT), "--metrics-port", str(METRICS_PORT),
                "--ui-disable-news-fetch", "--log-format", "json", "--log-level", "warn"]
        if self.db_file:
            argv += ["--db-filename", str(home / "dev" / "temporal.db")]
            if self.pragmas:
                for key, value in devstack.SQLITE_PRAGMAS.items():
                    argv += ["--sqlite-pragma", f"{key}={value}"]
        dynamic = devstack.DYNAMIC_CONFIG if self.dynamic is None else self.dynamic
        for key, value in dynamic.items():
            argv += ["--dynamic-config-value", f"{key}={value}"]
        return argv


@dataclass
class Stack:
    """A private Temporal dev server plus the bench worker (``bench/worker_proc.py``)."""

    home: Path
    config: StackConfig = field(default_factory=StackConfig)
    server: subprocess.Popen[bytes] | None = None
    worker: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "HVLAB_HOME": str(self.home),
                "HVLAB_TEMPORAL_ADDRESS": f"127.0.0.1:{GRPC_PORT}",
                "HVLAB_DEV_PORT": str(GRPC_PORT), "HVLAB_UI_PORT": str(UI_PORT),
                "HVLAB_DEV_HTTP_PORT": str(HTTP_PORT),
                "HVLAB_DEV_METRICS_PORT": str(METRICS_PORT),
                "HVLAB_METRICS_ADDRESS": f"127.0.0.1:{WORKER_METRICS_PORT}",
                "HVLAB_TASK_QUEUE": TASK_QUEUE, "HVLAB_LOG_FORMAT": "json"}

    def settings(self) -> Settings:
        return Settings(home=self.home, temporal_address=f"127.0.0.1:{GRPC_PORT}",
                        task_queue=TASK_QUEUE, dev_port=GRPC_PORT)

    def start_server(self) -> None:
        (self.home / "dev").mkdir(parents=True, exist_ok=True)
        for port in (GRPC_PORT, UI_PORT, HTTP_PORT, METRICS_PORT):
            if devstack.port_open(port):
                raise RuntimeError(f"port {port} is in use: is another bench running?")
        out = (self.home / "dev" / "temporal.log").open("ab")
        self.server = started(subprocess.Popen(
            self.config.argv(self.home), stdout=out, stderr=out, stdin=subprocess.DEVNULL,
            start_new_session=True))

    def start_worker(self) -> None:
        out = (self.home / "dev" / "worker.log").open("ab")
        self.worker = started(subprocess.Popen(
            [PYTHON, str(ROOT / "bench" / "worker_proc.py")], stdout=out, stderr=out,
            stdin=subprocess.DEVNULL, env=self.env, cwd=ROOT, start_new_session=True))

    async def client(self) -> Client:
        deadline = time.monotonic() + 60
        while True:
            try:
                return await connect(self.settings(), timeout=2.0)
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)

    async def wait_worker(self, client: Client, timeout: float = 60.0) -> float:
        """Seconds until the current worker process polls the workflow task queue."""
        assert self.worker is not None
        started = time.monotonic()
        request = DescribeTaskQueueRequest(
            namespace=client.namespace, task_queue=TaskQueue(name=TASK_QUEUE),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)
        prefix = f"{self.worker.pid}@"
        while time.monotonic() - started < timeout:
            if self.worker.poll() is not None:
                raise RuntimeError(f"bench worker exited; see {self.home}/dev/worker.log")
            response = await client.workflow_service.describe_task_queue(request)
            if any(p.identity.startswith(prefix) for p in response.pollers):
                return time.monotonic() - started
            await asyncio.sleep(0.05)
        raise RuntimeError("the bench worker does not poll")

    async def start(self) -> Client:
        self.start_server()
        client = await self.client()
        self.start_worker()
        await self.wait_worker(client)
        return client

    def kill_worker(self) -> float:
        """SIGKILL the worker; the wall-clock time of the kill."""
        assert self.worker is not None
        os.killpg(self.worker.pid, signal.SIGKILL)
        at = time.time()
        self.worker.wait()
        return at

    def stop(self) -> None:
        for proc in (self.worker, self.server):
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        self.worker = self.server = None


def new_home(tag: str) -> Path:
    """A private HVLAB_HOME, ``/tmp/hvlab-bench-<tag>-<pid>-*`` (removed afterwards)."""
    return Path(tempfile.mkdtemp(prefix=f"hvlab-bench-{tag}-{os.getpid()}-"))


def remove_home(home: Path) -> None:
    shutil.rmtree(home, ignore_errors=True)


# ------------------------------------------------------------------------------- histories


@dataclass
class ActivityRun:
    workflow_id: str
    activity_type: str
    activity_id: str
    scheduled: float
    started: float | None
    closed: float | None
    attempt: int
    outcome: str
    input: Any  # temporalio Payloads


@dataclass
class WorkflowRun:
    workflow_id: str
    run_id: str
    workflow_type: str
    started: float
    closed: float | None
    activities: list[ActivityRun]
    children: list[WorkflowRun]

    def all_activities(self) -> list[ActivityRun]:
        out = list(self.activities)
        for child in self.children:
            out += child.all_activities()
        return out

    def all_workflows(self) -> list[WorkflowRun]:
        out = [self]
        for child in self.children:
            out += child.all_workflows()
        return out


def _ts(event: Any) -> float:
    return float(event.event_time.ToDatetime(tzinfo=UTC).timestamp())


async def workflow_run(client: Client, workflow_id: str, run_id: str | None = None) -> WorkflowRun:
    """A closed (or running) workflow's activities and children, recursively."""
    history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    events = list(history.events)
    wf_type, started, closed = "", _ts(events[0]), None
    scheduled: dict[int, ActivityRun] = {}
    children: list[tuple[str, str]] = []
    closing = {EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: "completed",
               EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: "failed",
               EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: "timed_out",
               EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED: "canceled"}
    for event in events:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            attributes = event.workflow_execution_started_event_attributes
            wf_type = attributes.workflow_type.name
            run_id = run_id or attributes.original_execution_run_id
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            scheduled[event.event_id] = ActivityRun(
                workflow_id, attrs.activity_type.name, attrs.activity_id, _ts(event), None, None,
                0, "open", attrs.input)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            attrs = event.activity_task_started_event_attributes
            run = scheduled[attrs.scheduled_event_id]
            run.started, run.attempt = _ts(event), attrs.attempt
        elif kind in closing:
            attrs = getattr(event, {
                "completed": "activity_task_completed_event_attributes",
                "failed": "activity_task_failed_event_attributes",
                "timed_out": "activity_task_timed_out_event_attributes",
                "canceled": "activity_task_canceled_event_attributes"}[closing[kind]])
            run = scheduled[attrs.scheduled_event_id]
            run.closed, run.outcome = _ts(event), closing[kind]
        elif kind == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
            execution = event.child_workflow_execution_started_event_attributes.workflow_execution
            children.append((execution.workflow_id, execution.run_id))
        elif kind in (EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
                      EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
                      EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
                      EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
                      EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT):
            closed = _ts(event)
    kids = [await workflow_run(client, wid, rid) for wid, rid in children]
    return WorkflowRun(workflow_id, run_id or "", wf_type, started, closed,
                       list(scheduled.values()), kids)


def union_length(intervals: Iterable[tuple[float, float]]) -> float:
    """Total time covered by at least one interval."""
    total, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if stop <= end:
            continue
        total += stop - max(start, end)
        end = stop
    return total
