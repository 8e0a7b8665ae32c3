"""Process handling of the dev stack without a server: pid files, fleet stop, pid reuse."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hvlab.devstack import (
    DevConfig,
    read_pid,
    server_argv,
    server_startup_failure,
    status,
    stop,
    write_pid,
)
from hvlab.settings import get_settings
from tests.runtime.procs import listen_port, running

pytestmark = pytest.mark.integration

SLEEPER = "import time\nwhile True: time.sleep(1)"


@pytest.fixture
def spawned() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts; killed and reaped at the end."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        proc.kill()
        proc.wait()


def _spawn(procs: list[subprocess.Popen[bytes]], *argv: str) -> int:
    proc = subprocess.Popen([sys.executable, "-c", SLEEPER, *argv], start_new_session=True)
    procs.append(proc)
    return proc.pid


def test_stop_ends_a_simulated_fleet_from_its_pid_file(
    tmp_path: Path, spawned: list[subprocess.Popen[bytes]]
) -> None:
    """`stop` signals the fleet's process group named in sim/sim.pid and cleans its files."""
    cfg = DevConfig(home=tmp_path)
    pid = _spawn(spawned, "hvlab", "sim", "serve")
    write_pid(tmp_path / "sim" / "sim.pid", pid)
    (tmp_path / "sim" / "control.json").write_text("{}")
    assert status(cfg).fleet.alive
    stopped = stop(cfg, timeout=5)
    assert [(p.name, p.pid) for p in stopped] == [("fleet", pid)]
    spawned[0].wait(timeout=5)
    assert not running(pid)
    assert not (tmp_path / "sim" / "sim.pid").exists()
    assert not (tmp_path / "sim" / "control.json").exists()


def test_stop_never_signals_a_process_that_reused_a_pid(
    tmp_path: Path, spawned: list[subprocess.Popen[bytes]]
) -> None:
    """A stale pid file naming an unrelated process is removed, the process is left alone."""
    cfg = DevConfig(home=tmp_path)
    stranger = _spawn(spawned, "unrelated")
    write_pid(cfg.pid_file("temporal"), stranger)
    write_pid(cfg.pid_file("worker"), stranger)
    assert not status(cfg).server.alive
    assert stop(cfg, timeout=1) == []
    assert running(stranger)
    assert read_pid(cfg.pid_file("temporal")) is None


def test_pid_files_round_trip_and_tolerate_garbage(tmp_path: Path) -> None:
    """write_pid/read_pid agree; a missing or garbled file reads as no pid."""
    path = tmp_path / "dev" / "x.pid"
    assert read_pid(path) is None
    write_pid(path, 4242)
    assert read_pid(path) == 4242
    path.write_text("not a pid")
    assert read_pid(path) is None


def test_dev_config_and_server_flags_follow_settings(
    hvlab_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ports come from HVLAB_* (options win); the server gets pinned ports, fast queues, WAL."""
    monkeypatch.setenv("HVLAB_DEV_PORT", "17111")
    monkeypatch.setenv("HVLAB_DEV_HTTP_PORT", "17112")
    cfg = DevConfig.from_settings(get_settings(), ui_port=18111)
    assert (cfg.home, cfg.port, cfg.ui_port, cfg.http_port) == (hvlab_home, 17111, 18111, 17112)
    assert cfg.db_file == hvlab_home / "dev" / "temporal.db"
    argv = " ".join(server_argv(cfg))
    for flag in (
        f"--db-filename {cfg.db_file}",
        "--ip 127.0.0.1 --port 17111 --ui-port 18111 --http-port 17112 --metrics-port 7244",
        "--ui-disable-news-fetch",
        "--sqlite-pragma journal_mode=wal",
        "--sqlite-pragma synchronous=normal",
    ):
        assert flag in argv
    for queue in ("transfer", "timer", "visibility", "outbound"):
        assert f"history.{queue}ProcessorMaxPollRPS=1000" in argv


# The head of what `temporal server start-dev` (server 1.32) wrote when its gRPC port was
# taken between hvlab's check and its own bind (seen in CI): no error line, only a panic.
PANIC_LOG = """\
panic: runtime error: invalid memory address or nil pointer dereference
[signal SIGSEGV: segmentation violation code=0x1 addr=0x20 pc=0x2bb0889]

goroutine 1 [running]:
go.temporal.io/server/service/frontend.NewHTTPAPIServer(0x28e27d59b688, {0x8cdb, 0x0}, ...)
\t/home/runner/go/pkg/mod/go.temporal.io/server@v1.32.0/service/frontend/http_api_server.go:83
go.temporal.io/server/service/frontend.HTTPAPIServerProvider(0x28e27cf84a08, ...)
"""


def test_startup_failure_names_a_taken_port_and_the_panic(
    hvlab_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that died starting: the port now held by another process, the panic's line."""
    port = listen_port()
    monkeypatch.setenv("HVLAB_DEV_PORT", str(port))
    cfg = DevConfig.from_settings(get_settings())
    log = cfg.log_file("temporal")
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(PANIC_LOG)
    with socket.create_server(("127.0.0.1", port)):
        message = server_startup_failure(cfg)
    assert f"port {port} (--port (gRPC)) was taken by another process" in message
    assert ("panic: runtime error: invalid memory address or nil pointer dereference in "
            "go.temporal.io/server/service/frontend.NewHTTPAPIServer") in message
    assert "goroutine" not in message and str(log) in message
    # with the port free again and a JSON error line, that line is the reason given
    log.write_text('{"level":"info","msg":"starting"}\n'
                   '{"level":"fatal","msg":"Failed to open database","error":"disk I/O error"}\n')
    message = server_startup_failure(cfg)
    assert "was taken" not in message
    assert "its log says: Failed to open database: disk I/O error" in message
