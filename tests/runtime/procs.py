"""Helpers for tests that drive the real ``hvlab`` console script and its processes."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HVLAB = str(Path(sys.executable).parent / "hvlab")

_HANDED_OUT: set[int] = set()
_PICKER = random.Random()


# Ports handed out below: 10000-19999, split between pytest-xdist workers so two workers never
# pick the same one; tests and tools with fixed ports stay above 20000 (test_demo 27533-29564,
# test_secret_scan 31233-31337, the short chaos test 23650-23969, bench/chaos 23300-24300).
PORT_BLOCK = (10000, 20000)


def worker_port_block() -> tuple[int, int]:
    """This process's share of PORT_BLOCK: all of it, or one slice per xdist worker (gwN)."""
    low, high = PORT_BLOCK
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
    if not worker.startswith("gw") or count <= 1:
        return low, high
    size = (high - low) // count
    start = low + int(worker[2:]) * size
    return start, start + size


def listen_port() -> int:
    """A port free on 127.0.0.1 now, below the kernel's ephemeral range, never given twice.

    A port from ``bind(0)`` is in the ephemeral range, which the kernel also hands out as the
    source port of outgoing connections and to other programs' ``bind(0)`` (the Temporal dev
    server picks its internal service ports that way). Between the pick and the server's own
    bind one of those can take it: CI saw ``temporal server start-dev`` die at start-up (a
    nil-pointer panic after its gRPC listen failed) on such a port. Below the range only an
    explicit bind can take it, and each xdist worker picks from its own slice.
    """
    low, high = worker_port_block()
    for _ in range(500):
        port = _PICKER.randrange(low, high)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError(f"no free port in {low}-{high - 1} on 127.0.0.1")


def proc_state(pid: int) -> str | None:
    """State letter of ``pid`` (None: gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return None


def running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (this sandbox's pid 1 never reaps)."""
    return proc_state(pid) not in (None, "Z")


def processes_mentioning(text: str) -> list[tuple[int, str]]:
    """Live processes whose command line or environment contains ``text`` (not this one)."""
    found = []
    needle = text.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if (needle in cmdline or needle in environ) and running(int(entry.name)):
            found.append((int(entry.name), cmdline.replace(b"\0", b" ").decode(errors="replace")))
    return found


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``check`` until true or fail with ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """Status and body of a GET (status 0 when nothing answers)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except OSError:
        return 0, ""


@dataclass
class Stack:
    """A dev stack home with its own free ports, driven through the console script."""

    home: Path
    port: int = field(default_factory=listen_port)
    ui_port: int = field(default_factory=listen_port)
    http_port: int = field(default_factory=listen_port)
    server_metrics_port: int = field(default_factory=listen_port)
    worker_metrics_port: int = field(default_factory=listen_port)

    @property
    def env(self) -> dict[str, str]:
        """The environment for ``hvlab``: this home, these ports, a short connect timeout.

        gRPC and UI ports are *not* in the environment: ``dev`` gets them as options, other
        commands reach the server through HVLAB_TEMPORAL_ADDRESS.
        """
        env = {k: v for k, v in os.environ.items() if not k.startswith("HVLAB_")}
        env.update(
            HVLAB_HOME=str(self.home),
            HVLAB_TEMPORAL_ADDRESS=f"127.0.0.1:{self.port}",
            HVLAB_DEV_HTTP_PORT=str(self.http_port),
            HVLAB_DEV_METRICS_PORT=str(self.server_metrics_port),
            HVLAB_METRICS_ADDRESS=f"127.0.0.1:{self.worker_metrics_port}",
            HVLAB_CONNECT_TIMEOUT="2",
        )
        return env

    @property
    def dev_options(self) -> list[str]:
        """``--port``/``--ui-port`` for ``hvlab dev``."""
        return ["--port", str(self.port), "--ui-port", str(self.ui_port)]

    def hvlab(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run the console script with this stack's environment."""
        return subprocess.run(
            [HVLAB, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def pid(self, name: str) -> int | None:
        """The pid in ``dev/<name>.pid``, if any."""
        path = self.home / "dev" / f"{name}.pid"
        return int(path.read_text()) if path.exists() else None

    def leftovers(self) -> list[tuple[int, str]]:
        """Live processes that belong to this stack."""
        return processes_mentioning(str(self.home))

    def kill_leftovers(self) -> None:
        """Last-resort cleanup after a failed test."""
        for pid, _ in self.leftovers():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
