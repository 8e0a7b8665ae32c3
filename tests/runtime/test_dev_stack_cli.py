"""`hvlab dev`, `hvlab doctor`, `hvlab dev stop` through the real console script.

One stack (temp HVLAB_HOME, free ports) serves the module; the tests run in file order:
doctor before start, start, start again, status, doctor, doctor x50 under CPU load, stop.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.runtime.procs import HVLAB, Stack, http_get, running, wait_for

pytestmark = pytest.mark.integration

SEED = Path(__file__).resolve().parents[2] / "examples" / "classroom-lab.yaml"
# 50 back-to-back runs (the acceptance figure; ~2 minutes with both cores busy). Measured
# without an os._exit guard: a process still holding a Client at exit died by SIGABRT in 4 of
# 30 runs under this load (50 runs miss that with p < 0.1 %). HVLAB_STABILITY_RUNS overrides.
STABILITY_RUNS = int(os.environ.get("HVLAB_STABILITY_RUNS") or 50)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A dev-stack home for this module; whatever is left running is killed at the end."""
    home = tmp_path_factory.mktemp("dev-stack") / "home"
    stack = Stack(home=home)
    yield stack
    stack.hvlab("dev", "stop")
    stack.kill_leftovers()


def test_doctor_without_a_server_fails_fast_and_names_the_fix(stack: Stack) -> None:
    """With nothing running, `hvlab doctor` exits 1 within seconds and says to run `hvlab dev`."""
    started = time.monotonic()
    result = stack.hvlab("doctor")
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stdout + result.stderr
    assert elapsed < 8, f"doctor took {elapsed:.1f} s"
    assert "not reachable" in result.stdout and "hvlab dev" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_dev_detach_starts_server_ui_and_worker(stack: Stack) -> None:
    """`hvlab dev --detach` returns with the server, its Web UI and a polling worker up."""
    result = stack.hvlab("dev", "--detach", *stack.dev_options)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"http://127.0.0.1:{stack.ui_port}" in result.stdout
    server, worker = stack.pid("temporal"), stack.pid("worker")
    assert server and worker and running(server) and running(worker)
    assert (stack.home / "dev" / "temporal.db").exists()
    status, page = http_get(f"http://127.0.0.1:{stack.ui_port}/")
    assert status == 200 and "<html" in page.lower()
    assert http_get(f"http://127.0.0.1:{stack.worker_metrics_port}/healthz")[0] == 200


def test_worker_metrics_endpoint_serves_sdk_and_hvlab_families(stack: Stack) -> None:
    """The dev worker's /metrics holds Temporal SDK families and hvlab's own, parseable."""
    status, text = http_get(f"http://127.0.0.1:{stack.worker_metrics_port}/metrics")
    assert status == 200
    names = {family.name for family in text_string_to_metric_families(text)}
    assert any(name.startswith("temporal_") for name in names), sorted(names)
    # activity-registry families are there from the start; workflow metrics (migrations,
    # compensations) appear once a workflow records them (tests/cli/test_demo.py)
    assert {"hvlab_worker_info", "hvlab_step_duration_seconds", "hvlab_winrm_requests"} <= names


def test_dev_detach_twice_reuses_the_running_stack(stack: Stack) -> None:
    """A second `hvlab dev --detach` exits 0 and keeps the same processes."""
    before = (stack.pid("temporal"), stack.pid("worker"))
    result = stack.hvlab("dev", "--detach", *stack.dev_options)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("already running") == 2
    assert (stack.pid("temporal"), stack.pid("worker")) == before


def test_dev_status_reports_both_processes_running(stack: Stack) -> None:
    """`hvlab dev status` exits 0 and lists the server and worker pids."""
    result = stack.hvlab("dev", "status")
    assert result.returncode == 0, result.stdout + result.stderr
    assert str(stack.pid("temporal")) in result.stdout and str(stack.pid("worker")) in result.stdout
    assert f"127.0.0.1:{stack.port} answers" in result.stdout


def test_doctor_reports_the_polling_worker(stack: Stack) -> None:
    """`hvlab doctor` exits 0 and names the dev worker (pid@host) as poller and executor."""
    result = stack.hvlab("doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{stack.pid('worker')}@" in result.stdout
    assert "DoctorWorkflow ran on" in result.stdout
    assert "FAIL" not in result.stdout


def test_doctor_with_a_lab_file_adds_host_rows_and_rejects_bad_files(
    stack: Stack, tmp_path: Path
) -> None:
    """`hvlab doctor FILE --sim` without a running fleet fails the host row and names the fix
    (per-host checks against a fleet: tests/cli/test_doctor_hosts.py); an invalid FILE exits 2
    at once."""
    result = stack.hvlab("doctor", str(SEED), "--sim")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "hosts of lab classroom" in result.stdout and "hvlab sim serve" in result.stdout
    assert "Traceback" not in result.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("hosts: [\n")
    bad = stack.hvlab("doctor", str(broken))
    assert bad.returncode == 2 and "invalid lab file" in bad.stderr
    assert "Temporal reachable" not in bad.stdout


@pytest.fixture
def busy_cores() -> Iterator[None]:
    """Two processes spinning on both cores for the duration of the test."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(2)]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


@pytest.fixture
def own_stack(tmp_path: Path) -> Iterator[Stack]:
    """A detached dev stack of the test's own: the soak tier runs this test apart from the
    file's other tests, so it cannot rely on the module's stack having been started."""
    stack = Stack(home=tmp_path / "home")
    started = stack.hvlab("dev", "--detach", *stack.dev_options)
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        yield stack
    finally:
        stack.hvlab("dev", "stop")
        stack.kill_leftovers()


@pytest.mark.soak
def test_doctor_is_stable_under_cpu_load(own_stack: Stack, busy_cores: None) -> None:
    """`hvlab doctor` run back to back under full CPU load always exits 0, never by a signal."""
    codes, durations, failed = [], [], ""
    for _ in range(STABILITY_RUNS):
        started = time.monotonic()
        result = own_stack.hvlab("doctor")
        durations.append(time.monotonic() - started)
        codes.append(result.returncode)
        assert result.returncode >= 0, f"killed by signal {-result.returncode}: {result.stderr}"
        failed = failed or (result.stdout + result.stderr if result.returncode else "")
    failures = [code for code in codes if code != 0]
    durations.sort()
    print(f"\n{STABILITY_RUNS} doctor runs: median {durations[len(durations) // 2]:.2f} s")
    assert not failures, f"{codes}\nfirst failure:\n{failed}"


def test_dev_stop_leaves_no_process(stack: Stack) -> None:
    """`hvlab dev stop` ends server and worker, removes pid files, frees the ports."""
    pids = [stack.pid("temporal"), stack.pid("worker")]
    result = stack.hvlab("dev", "stop")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "worker" in result.stdout and "temporal" in result.stdout
    assert not any(running(pid) for pid in pids if pid)
    assert stack.leftovers() == []
    assert stack.pid("temporal") is None and stack.pid("worker") is None
    for port in (stack.port, stack.ui_port, stack.worker_metrics_port):
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still open"


def test_after_stop_status_and_doctor_exit_1(stack: Stack) -> None:
    """Once stopped, `dev status` and `doctor` both exit 1; `dev stop` again is harmless."""
    assert stack.hvlab("dev", "status").returncode == 1
    assert stack.hvlab("doctor").returncode == 1
    again = stack.hvlab("dev", "stop")
    assert again.returncode == 0 and "nothing was running" in again.stdout


def test_dev_refuses_a_busy_port_and_leaves_nothing(tmp_path: Path) -> None:
    """A port in use makes `hvlab dev --detach` exit 1 with the port named, nothing started."""
    stack = Stack(home=tmp_path / "home")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", stack.ui_port))
        squatter.listen()
        result = stack.hvlab("dev", "--detach", *stack.dev_options)
    assert result.returncode == 1
    assert f"port {stack.ui_port}" in result.stderr and "Traceback" not in result.stderr
    assert stack.pid("temporal") is None and stack.leftovers() == []


def test_dev_refuses_a_port_held_by_an_outgoing_connection(tmp_path: Path) -> None:
    """A port that refuses connections but is the local end of one still cannot be served.

    The server's bind would fail and the Temporal CLI would panic; `hvlab dev` names the port.
    """
    stack = Stack(home=tmp_path / "home")
    with socket.create_server(("127.0.0.1", 0)) as peer, socket.socket() as held:
        held.bind(("127.0.0.1", stack.http_port))
        held.connect(peer.getsockname())
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", stack.http_port)) != 0  # nothing listens
        result = stack.hvlab("dev", "--detach", *stack.dev_options)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"port {stack.http_port} (HVLAB_DEV_HTTP_PORT) is already in use" in result.stderr
    assert "panic" not in result.stderr and "Traceback" not in result.stderr
    assert stack.pid("temporal") is None and stack.leftovers() == []


def test_foreground_dev_stops_everything_on_sigterm(tmp_path: Path) -> None:
    """`hvlab dev` in the foreground prints the UI address; SIGTERM stops all, exit 0."""
    stack = Stack(home=tmp_path / "home")
    log = tmp_path / "dev.out"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [HVLAB, "dev", *stack.dev_options], env=stack.env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        def ready() -> bool:
            assert proc.poll() is None, f"hvlab dev exited {proc.returncode}:\n{log.read_text()}"
            return "Press Ctrl-C" in log.read_text()

        wait_for(ready, 45, "the dev stack to be ready")
        assert f"http://127.0.0.1:{stack.ui_port}" in log.read_text()
        pids = [stack.pid("temporal"), stack.pid("worker")]
        assert all(pid and running(pid) for pid in pids)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()
        assert not any(pid and running(pid) for pid in pids)
        assert stack.leftovers() == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stack.kill_leftovers()


def test_two_concurrent_dev_starts_share_one_stack(tmp_path: Path) -> None:
    """Two `hvlab dev --detach` at once both exit 0 with one server and one worker."""
    stack = Stack(home=tmp_path / "home")
    argv = [HVLAB, "dev", "--detach", *stack.dev_options]
    try:
        procs = [
            subprocess.Popen(argv, env=stack.env, stdout=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        outputs = [proc.communicate(timeout=60)[0] for proc in procs]
        assert [proc.returncode for proc in procs] == [0, 0], outputs
        assert sum(text.count("started, ready") for text in outputs) == 2  # server + worker
        servers = [p for p in stack.leftovers() if "start-dev" in p[1]]
        assert [pid for pid, _ in servers] == [stack.pid("temporal")]
        assert stack.hvlab("dev", "stop").returncode == 0
        assert stack.leftovers() == []
    finally:
        stack.kill_leftovers()
