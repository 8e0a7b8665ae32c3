"""Starting and following a workflow, for every command that starts one.

The Temporal client (an unreachable server or a bad codec keyring is a usage problem, exit 2),
the Web UI link, the lab's registration for the workers, start-or-attach under a deterministic
id, and following a run until it closes: live progress bars (the steps being retried shown as
they happen), then how it ended, what it undid and kept (its compensation memo) and its recap.

Workflow ids are derived from the lab id and the operation (``<lab>-build``), so starting the
same operation twice attaches to the running one instead of running it twice.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import typer
from pydantic import BaseModel
from rich.console import Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowHandle,
)
from temporalio.common import WorkflowIDConflictPolicy

from hvlab.labs import LabRegistry
from hvlab.settings import get_settings
from hvlab.spec import LabSpec
from hvlab.temporal import CodecUnavailable, TemporalUnavailable, connect
from starter.console import UsageProblem, err, out
from starter.inspection import Watcher, WatchView
from starter.recap import Outcome, outcome
from workflows.outcome import MEMO_KEY, Compensation
from workflows.progress import Progress as WorkflowProgress

LAB_UI = "http://127.0.0.1:{port}/namespaces/{ns}/workflows/{id}"
WATCH_INTERVAL = 0.5  # seconds between two progress polls of --watch


async def temporal_client() -> Client:
    """The Temporal client of the settings; a usage problem (exit 2) saying how to start the
    server, or what is wrong with the codec keyring, when there is none."""
    try:
        return await connect(get_settings())
    except CodecUnavailable as exc:  # a settings problem, not a server to start
        raise UsageProblem(str(exc)) from None
    except TemporalUnavailable as exc:
        raise UsageProblem(f"{exc} — start it with `hvlab dev --detach`") from None


def ui_link(workflow_id: str) -> str:
    """The workflow's page in the Temporal Web UI."""
    settings = get_settings()
    return LAB_UI.format(port=settings.ui_port, ns=settings.namespace, id=workflow_id)


def register_lab(spec: LabSpec, sim: bool) -> LabSpec:
    """Store the (validated) lab file where the workers read it, as its registration in this
    mode; returns the spec to give the workflows (lab id ``sim.<lab>`` with ``--sim``, so the
    two modes' workflow and schedule ids and registrations never meet)."""
    return LabRegistry(get_settings().home_dir).register(spec, sim=sim).spec


async def start_or_attach(workflow: Any, arg: Any, workflow_id: str, summary: str
                          ) -> WorkflowHandle[Any, Any]:
    """Start ``workflow`` as ``workflow_id``, or attach to the run of that id already going."""
    client = await temporal_client()
    return await client.start_workflow(
        workflow, arg, id=workflow_id, task_queue=get_settings().task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING, static_summary=summary)


# --------------------------------------------------------------------------- follow


def _bar_rows(progress: WorkflowProgress) -> list[tuple[str, int, str]]:
    rows: list[tuple[str, int, str]] = []
    for step in progress.steps:
        percent = 100 if step.state in ("done", "unchanged", "skipped") else 0
        if step.state == "running":
            percent = 50
        rows.append((step.title, percent, step.state))
    return rows


def _render(progress: WorkflowProgress) -> Progress:
    bars = Progress(TextColumn("{task.description:<40}"), BarColumn(),
                    TextColumn("{task.fields[state]}"), expand=False)
    bars.add_task(f"[bold]{progress.workflow} {progress.target}", total=100,
                  completed=progress.percent, state=progress.phase)
    for title, percent, state in _bar_rows(progress):
        bars.add_task(title[:40], total=100, completed=percent, state=state)
    return bars


async def _watch(workflow_id: str, as_json: bool = False) -> int:
    """Follow the workflow until it closes, then print how it ended and its recap; 0 when it
    completed, 1 otherwise. With ``as_json`` nothing but the outcome goes to stdout (the
    retried steps go to stderr as they happen)."""
    client = await temporal_client()
    watcher = Watcher(client, workflow_id)
    if as_json:
        view = await _poll_quietly(watcher)
    else:
        view = await _poll_live(watcher)
    compensation: list[str] = []
    if view.status == WorkflowExecutionStatus.CANCELED:
        compensation = await compensation_lines(await watcher.handle.describe())
    found = await outcome(client, workflow_id, compensation)
    if as_json:
        sys.stdout.write(json.dumps(found.to_json(), indent=2, default=str) + "\n")
    else:
        print_outcome(found)
    return 0 if found.ok else 1


async def _poll_live(watcher: Watcher) -> WatchView:
    with Live(refresh_per_second=4, console=out, transient=False) as live:
        while True:
            view = await watcher.poll()
            for item in view.new:  # above the live view, so it stays in the scrollback
                live.console.print(f"[yellow]retrying:[/] {escape(item.line())}")
            if view.progress is not None or view.retrying:
                live.update(live_view(view))
            if not view.running:
                break
            await asyncio.sleep(WATCH_INTERVAL)
    if not out.is_terminal:
        out.line()  # Live's last frame ends without a newline when not on a terminal
    return view


async def _poll_quietly(watcher: Watcher) -> WatchView:
    while True:
        view = await watcher.poll()
        for item in view.new:
            err.print(f"retrying: {item.line()}", markup=False)
        if not view.running:
            return view
        await asyncio.sleep(WATCH_INTERVAL)


def print_outcome(found: Outcome) -> None:
    """How the workflow ended (its cause and what it undid when it did not complete), then
    the recap: one row per unit or VM and the counts."""
    _report_outcome(found.workflow_id, found.status, found.cause)
    for line in found.notes:
        err.print(line, markup=False)
    if not found.rows:
        return
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(overflow="fold")
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    styles = {"changed": "yellow", "unchanged": "green", "failed": "red"}
    for row in found.rows:
        style = styles.get(row.outcome, "dim")
        table.add_row(f"  {escape(row.subject)}", f"[{style}]{row.outcome}[/]",
                      escape(row.detail))
    out.print("recap:")
    out.print(table)
    out.print(f"  {found.summary()}")


def live_view(view: WatchView) -> RenderableType:
    """The progress bars, and below them each step that is failing and being retried."""
    parts: list[RenderableType] = []
    if view.progress is not None:
        parts.append(_render(view.progress))
    if view.retrying:
        table = Table("retrying", "attempt", "cause", "next", title_justify="left",
                      show_edge=False)
        for item in view.retrying:
            table.add_row(f"{item.workflow_id} > {item.activity}", item.attempts, item.cause,
                          item.next_try())
        parts.append(table)
    return Group(*parts)


def _report_outcome(workflow_id: str, status: str, reason: str = "") -> None:
    if status == "completed":
        out.print(f"[green]{workflow_id} completed[/]")
        return
    err.print(f"[red]{workflow_id} ended {status}[/]; see `hvlab history {workflow_id}`")
    if reason:
        err.print(reason, markup=False)


def follow(workflow_id: str, *, what: str = "", no_wait: bool = False, as_json: bool = False
           ) -> None:
    """After an operation started (``what``: its announcement, with the id and Web UI link):
    wait for it with live progress and leave with its outcome (exit 0 completed, 1 failed,
    cancelled, terminated or timed out), or with ``no_wait`` say how to follow it and leave at
    once. Ctrl-C stops the waiting, not the work (exit 130)."""
    try:
        if what:
            announce(workflow_id, what, as_json)
        _follow(workflow_id, no_wait, as_json)
    except KeyboardInterrupt:
        err.print(f"stopped waiting: {workflow_id} goes on in Temporal. Follow it with "
                  f"`hvlab watch {workflow_id}`; stop it with `hvlab cancel {workflow_id}`",
                  markup=False)
        raise typer.Exit(130) from None


def _follow(workflow_id: str, no_wait: bool, as_json: bool) -> None:
    if no_wait:
        if as_json:
            sys.stdout.write(json.dumps({"workflow_id": workflow_id, "status": "running",
                                         "follow": f"hvlab watch {workflow_id}"}) + "\n")
        else:
            out.print(f"started; follow it with `hvlab watch {workflow_id}`, cancel it with "
                      f"`hvlab cancel {workflow_id}`")
        return
    raise typer.Exit(asyncio.run(_watch(workflow_id, as_json)))


def announce(workflow_id: str, what: str, as_json: bool = False) -> None:
    """The started workflow's id and Web UI link (on stderr with ``--json``: stdout is the
    outcome's)."""
    console = err if as_json else out
    console.print(f"{what}: workflow {workflow_id}")
    console.print(f"Web UI: {ui_link(workflow_id)}")


def wait_mode(watch: bool, no_wait: bool) -> None:
    """``--watch`` (the default now, kept for scripts) and ``--no-wait`` contradict."""
    if watch and no_wait:
        raise UsageProblem("--watch, --no-wait: operations wait by default (--watch is that "
                           "default); pass only --no-wait to return after the start")


async def compensation_lines(description: WorkflowExecutionDescription) -> list[str]:
    """What a closed workflow undid and kept (its memo), as lines; none if it wrote none."""
    try:
        summary = await description.memo_value(MEMO_KEY, None, type_hint=Compensation)
    except Exception:  # an unreadable memo (older run, other codec key): nothing to show
        return []
    return summary.lines() if isinstance(summary, Compensation) else []


def launch(workflow: Any, arg: BaseModel, workflow_id: str, summary: str, *, no_wait: bool,
           as_json: bool, what: str = "") -> None:
    """Start ``workflow`` as ``workflow_id`` (or attach to the run going) and follow it:
    ``summary`` is its Web UI summary, ``what`` the announcement (else the summary)."""
    handle = asyncio.run(start_or_attach(workflow, arg, workflow_id, summary))
    follow(handle.id, what=what or summary, no_wait=no_wait, as_json=as_json)
