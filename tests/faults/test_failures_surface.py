"""Failures reach the operator (issue 12, item 8): `hvlab history` of a parent shows its
children's steps (and theirs), `--watch` shows a step that keeps failing while Temporal retries
it, and a failed workflow's report says where it failed, why, and what to fix.

Real Temporal, a real worker, the CLI in-process and the simulated fleet over real WinRM; a
host "down" is its WinRM listener refusing connections (``WinRMServer.go_down``), what the
fleet's ``down`` fault does to a host.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import threading
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from rich.console import Console
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from hvlab.spec import LabSpec
from hvlab.specfile import dump_lab
from simulator.fleet import Fleet
from starter import runs
from starter.inspection import Watcher, timeline
from tests.faults.test_fault_matrix import cli_text
from tests.sim.conftest import hyperv_ready, join_domain
from tests.workflows.conftest import hvlab, lab_worker
from workflows.lab_build import LabBuildInput, LabBuildWorkflow
from workflows.reset import LabResetInput, LabResetWorkflow

MAX_POLLS = 10  # progress polls of --watch (runs.WATCH_INTERVAL apart) to see the failure
UNREACHABLE_FIX = "fix: check that the host is running and on the network"


def svr2_lab(seed: LabSpec, tmp_path: Path, **update: object) -> Path:
    """The seed reduced to DC1 and SVR2 (no VMs): its build is one unit, host-prep:SVR2."""
    svr2 = seed.host("SVR2").model_copy(update={"migration": None})
    spec = seed.model_copy(update={
        "hosts": [seed.host("DC1"), svr2], "vms": [], "nat": [], "shares": [],
        "delegation": [], "replication": [], "checkpoints": [], "reset": None, "exercises": [], **update})
    path = tmp_path / "svr2.yaml"
    path.write_text(dump_lab(spec))
    return path


@pytest.fixture
async def build_ends(client: Client) -> AsyncIterator[None]:
    """The tests start `sim.classroom-build` through the CLI; one a failed check leaves running
    (on this test's task queue, soon without a worker) is terminated, so a later test's `hvlab
    up` does not attach to it."""
    yield
    handle = client.get_workflow_handle("sim.classroom-build")
    with contextlib.suppress(RPCError):
        if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            await handle.terminate("test over")


class Screen(io.StringIO):
    """What a Console printed so far, readable from another thread while the CLI writes."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()

    def write(self, text: str) -> int:
        with self.lock:
            return super().write(text)

    def text(self) -> str:
        with self.lock:
            return self.getvalue()


async def test_host_down_reaches_the_watch_within_a_few_polls(
    client: Client, task_queue: str, fleet: Fleet, seed: LabSpec, tmp_path: Path,
    cli_env: None, build_ends: None, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SVR2 refuses connections. `hvlab up FILE --sim` starts the build; within MAX_POLLS
    progress polls the watch sees host-prep:SVR2's first step failing and being retried, and
    shows the host, the cause (connection refused at its address) and the fix, with the
    attempt and the next try (so does the running build's history); `hvlab watch` prints it
    as a line while the build still runs.
    Once SVR2 answers again the build completes and the watch exits 0."""
    join_domain(fleet.sim, "SVR2")
    hyperv_ready(fleet.sim, "SVR2")
    lab = svr2_lab(seed, tmp_path)
    address = json.loads((fleet.dir / "endpoints.json").read_text())["hosts"]["SVR2"]
    where = f"{address['address']}:{address['port']}"
    fleet.servers["SVR2"].go_down()
    async with lab_worker(client, task_queue, fleet):
        assert await hvlab("up", str(lab), "--sim", "--no-wait") == 0
        watcher = Watcher(client, "sim.classroom-build")
        view = await watcher.poll()
        while not view.new and watcher.polls < MAX_POLLS:
            await asyncio.sleep(runs.WATCH_INTERVAL)
            view = await watcher.poll()
        assert view.new, f"no failing step seen in {watcher.polls} polls"
        assert view.running
        failing = view.new[0]
        # the build observes the lab first: its own first step meets SVR2 refusing
        assert (failing.workflow_id, failing.activity) == ("sim.classroom-build", "lab.observe")
        assert failing.failed_attempt in (1, 2) and failing.maximum_attempts == 8
        assert failing.cause.startswith("HostUnreachable: SVR2: Get-VM")
        assert f"connection refused at {where}" in failing.cause
        assert UNREACHABLE_FIX in failing.cause
        shown = Console(file=io.StringIO(), width=300, record=True)
        shown.print(runs.live_view(view))
        live = shown.export_text()
        assert "sim.classroom-build > lab.observe" in live
        assert f"connection refused at {where}" in live and UNREACHABLE_FIX in live
        assert "attempt 1 of 8" in live or "attempt 2 of 8" in live
        # `hvlab history` of the running build: the child's step is retrying, with its cause
        running = await timeline(client, "sim.classroom-build")
        step = next(r for r in running.rows if r.step == "lab.observe")
        assert (running.status, step.depth, step.ended) == ("running", 0, None)
        assert step.outcome.startswith("retrying (attempt "), step.outcome
        assert step.cause.startswith("HostUnreachable: SVR2") and UNREACHABLE_FIX in step.cause

        # the CLI's own watch, while SVR2 is still down: the line comes before the end
        screen = Screen()
        monkeypatch.setattr(runs, "out", Console(file=screen, width=300, soft_wrap=True))
        watching = asyncio.ensure_future(hvlab("watch", "sim.classroom-build"))
        try:
            for _ in range(MAX_POLLS * 10):
                if "retrying:" in screen.text() or watching.done():
                    break
                await asyncio.sleep(runs.WATCH_INTERVAL / 10)
            printed = screen.text()
            assert "retrying: sim.classroom-build > lab.observe: attempt" in printed
            assert not watching.done()
            fleet.servers["SVR2"].come_up()
            assert await watching == 0
        finally:  # a failed check must not leave the watch polling a build nobody runs
            if not watching.done():
                await client.get_workflow_handle("sim.classroom-build").terminate("test over")
                await watching
    printed = screen.text()
    assert "Traceback" not in printed
    line = next(line for line in printed.splitlines() if line.startswith("retrying:"))
    assert "HostUnreachable: SVR2" in line and f"connection refused at {where}" in line
    assert UNREACHABLE_FIX in line and ("next try in" in line or "retrying now" in line)
    assert printed.index("retrying:") < printed.index("sim.classroom-build completed")


async def test_failed_build_reports_unit_step_and_fix_and_history_lists_children(
    client: Client, task_queue: str, fleet: Fleet, seed: LabSpec, tmp_path: Path,
    cli_env: None, build_ends: None, capsys: pytest.CaptureFixture[str],
) -> None:
    """The worker's password for the domain account is wrong (not retried): SVR2 is reached
    as its local Administrator, and its domain join refuses the domain credential. `hvlab up FILE --sim
    --watch` exits 1 and names the unit workflow and its step with the host's error and the
    fix; `hvlab history sim.classroom-build` of the parent (which runs no activity itself) lists
    the child with its steps, the failed one numbered, and the cause below the table."""
    path = fleet.home / "sim" / "endpoints.json"
    endpoints = json.loads(path.read_text())
    endpoints["secrets"]["env:HVLAB_DOMAIN_ADMIN_PASSWORD"] = "not-the-password"
    path.write_text(json.dumps(endpoints))
    lab = svr2_lab(seed, tmp_path)
    async with lab_worker(client, task_queue, fleet):
        code = await hvlab("up", str(lab), "--sim", "--watch")
        watched = cli_text(capsys)
        assert code == 1, watched
        assert await hvlab("history", "sim.classroom-build") == 0
        shown = cli_text(capsys)
        tree = await timeline(client, "sim.classroom-build")
    reason = watched[watched.index("sim.classroom-build ended failed"):]
    # the join refuses the domain password: the host's message, no id, so not retried
    assert ("sim.classroom-build/host-prep:SVR2 > host.domain_join: RemoteCommandFailed: SVR2: "
            "Add-Computer") in reason
    # the parent's history: the child, its failed step (attempt 1 only), the cause
    assert tree.status == "failed" and tree.workflow_type == "LabBuildWorkflow"
    rows = [(r.depth, r.step, r.outcome, r.child) for r in tree.rows]
    child = next(r for r in rows if r[1] == "sim.classroom-build/host-prep:SVR2")
    assert child == (0, "sim.classroom-build/host-prep:SVR2", "failed", True)
    failed = next(r for r in tree.rows if r.step == "host.domain_join")
    assert (failed.depth, failed.outcome) == (1, "failed")
    assert failed.cause.startswith("RemoteCommandFailed: SVR2: Add-Computer")
    assert "sim.classroom-build (LabBuildWorkflow): failed" in shown
    assert "HostPrepWorkflow" in shown and "host.domain_join" in shown and "failed [1]" in shown
    assert "\n[1] RemoteCommandFailed: SVR2: Add-Computer" in shown
    assert ("sim.classroom-build failed: sim.classroom-build/host-prep:SVR2 > host.domain_join "
            "[1]") in shown


async def test_reset_history_reaches_the_units_of_its_converge_build(
    client: Client, task_queue: str, fleet: Fleet, seed: LabSpec, tmp_path: Path,
    cli_env: None, capsys: pytest.CaptureFixture[str],
) -> None:
    """A reset's history lists its own steps, its converge build (a child) and that build's
    unit workflows (grandchildren) with their steps, each level indented one deeper."""
    join_domain(fleet.sim, "SVR2")
    hyperv_ready(fleet.sim, "SVR2")
    svr2 = seed.host("SVR2").model_copy(update={"migration": None})
    spec = seed.model_copy(update={
        "hosts": [seed.host("DC1"), svr2], "vms": [seed.vm("Linux01")], "nat": [],
        "shares": [], "delegation": [], "replication": []})
    reset_id = f"{spec.lab}-reset-{uuid.uuid4().hex[:6]}"
    async with lab_worker(client, task_queue, fleet):
        await client.execute_workflow(
            LabBuildWorkflow.run, LabBuildInput(spec=spec, only=["vm-deploy", "checkpoint"]),
            id=f"{spec.lab}-build-{uuid.uuid4().hex[:6]}", task_queue=task_queue)
        await client.execute_workflow(
            LabResetWorkflow.run, LabResetInput(spec=spec, only=["host-prep"]),
            id=reset_id, task_queue=task_queue)
        capsys.readouterr()
        assert await hvlab("history", reset_id) == 0
        shown = cli_text(capsys)
        tree = await timeline(client, reset_id)
    assert tree.status == "completed" and tree.workflow_type == "LabResetWorkflow"
    depths = {(r.step, r.depth) for r in tree.rows}
    assert (f"{reset_id}/converge", 0) in depths
    assert (f"{reset_id}/converge/host-prep:SVR2", 1) in depths
    assert ("host.dns", 2) in depths and ("host.switch", 2) in depths
    own = [r.step for r in tree.rows if r.depth == 0 and not r.child]
    assert own, "the reset's own steps (stop, restore, start) are listed"
    assert all(r.outcome.startswith("ok") for r in tree.rows), tree.rows
    assert f"{reset_id}/converge" in shown and "LabBuildWorkflow" in shown
    assert "HostPrepWorkflow" in shown  # the grandchild (its long id may wrap in the table)
    assert "    host.dns" in shown
