"""Operator commands: ``up``, ``watch``, ``status``, ``cancel``, ``history``.

Workflow ids are derived from the lab id and the operation (``<lab>-build``), so starting the
same operation twice attaches to the running one instead of running it twice.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError

from hvlab.labs import LabRegistry
from hvlab.settings import get_settings
from hvlab.spec import LabSpec
from hvlab.specfile import load_lab
from hvlab.temporal import CodecUnavailable, TemporalUnavailable, connect
from starter.cli import UsageProblem, err, out
from starter.inspection import Timeline, Watcher, WatchView, failure_text, timeline
from workflows.lab_build import LabBuildInput, LabBuildWorkflow
from workflows.outcome import MEMO_KEY, Compensation
from workflows.progress import Progress as WorkflowProgress

SimOption = Annotated[bool, typer.Option("--sim", help="use the simulated fleet's endpoints")]
LAB_UI = "http://127.0.0.1:{port}/namespaces/{ns}/workflows/{id}"
WATCH_INTERVAL = 0.5  # seconds between two progress polls of --watch


def build_id(lab: str) -> str:
    return f"{lab}-build"


async def _client() -> Client:
    try:
        return await connect(get_settings())
    except CodecUnavailable as exc:  # a settings problem, not a server to start
        raise UsageProblem(str(exc)) from None
    except TemporalUnavailable as exc:
        raise UsageProblem(f"{exc} — start it with `hvlab dev --detach`") from None


def _ui_link(workflow_id: str) -> str:
    settings = get_settings()
    return LAB_UI.format(port=settings.ui_port, ns=settings.namespace, id=workflow_id)


# --------------------------------------------------------------------------- up


def up(
    file: Annotated[Path, typer.Argument(help="lab file")],
    sim: SimOption = False,
    watch: Annotated[bool, typer.Option("--watch", help="follow progress until the build ends")
                     ] = False,
    no_compensate: Annotated[
        bool, typer.Option("--no-compensate", help="keep partial state on failure (debugging)")
    ] = False,
) -> None:
    """Build (or converge) the lab described by FILE."""
    spec = load_lab(file)
    spec = register_lab(spec, sim)
    request = LabBuildInput(spec=spec, compensate=not no_compensate)
    handle = asyncio.run(start_or_attach(LabBuildWorkflow.run, request, build_id(spec.lab),
                                         f"build lab {spec.lab}"))
    out.print(f"build of lab [bold]{spec.lab}[/]: workflow {handle.id}")
    out.print(f"Web UI: {_ui_link(handle.id)}")
    if watch:
        raise typer.Exit(asyncio.run(_watch(handle.id)))


def register_lab(spec: LabSpec, sim: bool) -> LabSpec:
    """Store the (validated) lab file where the workers read it, as its registration in this
    mode; returns the spec to give the workflows (lab id ``sim.<lab>`` with ``--sim``, so the
    two modes' workflow and schedule ids and registrations never meet)."""
    return LabRegistry(get_settings().home_dir).register(spec, sim=sim).spec


async def start_or_attach(workflow: Any, arg: Any, workflow_id: str, summary: str
                          ) -> WorkflowHandle[Any, Any]:
    """Start ``workflow`` as ``workflow_id``, or attach to the run of that id already going."""
    client = await _client()
    return await client.start_workflow(
        workflow, arg, id=workflow_id, task_queue=get_settings().task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING, static_summary=summary)


# --------------------------------------------------------------------------- watch


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


async def _watch(workflow_id: str) -> int:
    client = await _client()
    watcher = Watcher(client, workflow_id)
    with Live(refresh_per_second=4, console=out, transient=False) as live:
        while True:
            view = await watcher.poll()
            for item in view.new:  # above the live view, so it stays in the scrollback
                live.console.print(f"[yellow]retrying:[/] {escape(item.line())}")
            if view.progress is not None or view.retrying:
                live.update(_view(view))
            if not view.running:
                break
            await asyncio.sleep(WATCH_INTERVAL)
    if not out.is_terminal:
        out.line()  # Live's last frame ends without a newline when not on a terminal
    reason = ""
    if view.status == WorkflowExecutionStatus.FAILED:
        reason = await _failure_reason(watcher.handle)
    elif view.status == WorkflowExecutionStatus.CANCELED:
        reason = "\n".join(await compensation_lines(await watcher.handle.describe()))
    return _report_outcome(workflow_id, view.status, reason)


def _view(view: WatchView) -> RenderableType:
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


async def _failure_reason(handle: WorkflowHandle[Any, Any]) -> str:
    """Where the failed workflow failed and why: the innermost error (the activity's classified
    error with the host's message and its fix), if any."""
    try:
        await handle.result()
    except WorkflowFailureError as exc:
        return failure_text(exc.cause)
    except Exception:
        return ""
    return ""


def _report_outcome(workflow_id: str, status: WorkflowExecutionStatus | None,
                    reason: str = "") -> int:
    name = status.name if status is not None else "UNKNOWN"
    if status == WorkflowExecutionStatus.COMPLETED:
        out.print(f"[green]{workflow_id} completed[/]")
        return 0
    err.print(f"[red]{workflow_id} ended {name.lower()}[/]; see `hvlab history {workflow_id}`")
    if reason:
        err.print(reason, markup=False)
    return 1


def watch(workflow_id: Annotated[str, typer.Argument(help="workflow id")]) -> None:
    """Follow a workflow's progress with bars; exit 0 when it completes, 1 otherwise."""
    raise typer.Exit(asyncio.run(_watch(workflow_id)))


# --------------------------------------------------------------------------- status


async def _status(limit: int) -> list[dict[str, Any]]:
    client = await _client()
    rows: list[dict[str, Any]] = []
    async for execution in client.list_workflows(limit=limit):
        rows.append({
            "id": execution.id, "type": execution.workflow_type,
            "status": execution.status.name if execution.status else "UNKNOWN",
            "started": execution.start_time.isoformat() if execution.start_time else None,
            "closed": execution.close_time.isoformat() if execution.close_time else None,
        })
    return rows


def status(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    limit: Annotated[int, typer.Option(help="most recent N workflows")] = 50,
) -> None:
    """List recent hvlab workflows and their status."""
    rows = asyncio.run(_status(limit))
    if as_json:
        sys.stdout.write(json.dumps(rows) + "\n")
        return
    table = Table("workflow id", "type", "status", "started")
    for row in rows:
        table.add_row(row["id"], row["type"], row["status"], row["started"] or "")
    out.print(table)


# --------------------------------------------------------------------------- cancel, history


async def _cancel(workflow_id: str, wait: float) -> int:
    client = await _client()
    handle = client.get_workflow_handle(workflow_id)
    try:
        await handle.cancel()
    except RPCError as exc:
        raise UsageProblem(f"cannot cancel {workflow_id}: {exc.message}") from None
    out.print(f"cancellation requested for {workflow_id}")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        description = await handle.describe()
        if description.status != WorkflowExecutionStatus.RUNNING:
            break
        if loop.time() >= deadline:
            out.print(f"{workflow_id} is still compensating; follow it with "
                      f"`hvlab watch {workflow_id}`")
            return 0
        await asyncio.sleep(0.5)
    name = description.status.name.lower() if description.status else "unknown"
    out.print(f"{workflow_id} ended {name}")
    for line in await compensation_lines(description):
        out.print(line, markup=False)
    return 0 if description.status == WorkflowExecutionStatus.CANCELED else 1


async def compensation_lines(description: WorkflowExecutionDescription) -> list[str]:
    """What a closed workflow undid and kept (its memo), as lines; none if it wrote none."""
    try:
        summary = await description.memo_value(MEMO_KEY, None, type_hint=Compensation)
    except Exception:  # an unreadable memo (older run, other codec key): nothing to show
        return []
    return summary.lines() if isinstance(summary, Compensation) else []


def cancel(
    workflow_id: Annotated[str, typer.Argument(help="workflow id")],
    wait: Annotated[float, typer.Option(
        "--wait", min=0, help="seconds to wait for the workflow to close and print what it "
        "undid and kept (0: do not wait)")] = 120.0,
) -> None:
    """Ask a workflow to cancel, wait for it to close and print what it undid and kept.

    Each workflow undoes what its run changed (a build: the units it created; migrate: the
    move; replicate, checkpoint: what they turned on; failover: up to completion), except
    what it says it kept (a build keeps domain membership and the Hyper-V role; a completed
    failover stays). A reset or a teardown has no undo: cancelled, it says what it has done
    so far; run it again to finish. Exit 0 when the workflow ended cancelled, 1 when it
    ended otherwise (it had finished or failed first).
    """
    raise typer.Exit(asyncio.run(_cancel(workflow_id, wait)))


async def _timeline(workflow_id: str) -> Timeline:
    client = await _client()
    try:
        return await timeline(client, workflow_id)
    except RPCError as exc:
        raise UsageProblem(f"no workflow {workflow_id}: {exc.message}") from None


def history(workflow_id: Annotated[str, typer.Argument(help="workflow id")]) -> None:
    """The workflow's step timeline: each activity with its duration and outcome, and each
    child workflow with its own steps below it; failures are numbered and their causes listed."""
    result = asyncio.run(_timeline(workflow_id))
    title = f"{result.workflow_id} ({result.workflow_type or 'unknown type'}): {result.status}"
    table = Table(title=escape(title), title_justify="left")
    table.add_column("step", overflow="fold")
    for column in ("started", "seconds", "outcome"):
        table.add_column(column, overflow="fold")
    causes: list[str] = []
    for row in result.rows:
        seconds = f"{row.seconds:.2f}" if row.seconds is not None else "-"
        outcome = row.outcome
        if row.cause:
            if row.cause not in causes:
                causes.append(row.cause)
            outcome += f" [{causes.index(row.cause) + 1}]"
        step = "  " * row.depth + escape(row.step)
        if row.child:
            step = f"[bold]{step}[/] [dim]{escape(row.workflow_type)}[/]"
        table.add_row(step, row.started.strftime("%H:%M:%S"), seconds, escape(outcome))
    out.print(table)
    for number, cause in enumerate(causes, 1):
        out.print(f"[{number}] {cause}", markup=False)
    if result.failure:
        out.print(f"{result.workflow_id} failed: {_cited(result.failure, causes)}",
                  markup=False)


def _cited(failure: str, causes: list[str]) -> str:
    """``where [n]`` when the failure is cause n listed above, else the failure."""
    for number, cause in enumerate(causes, 1):
        if failure == cause:
            return f"[{number}]"
        if failure.endswith(f": {cause}"):
            return f"{failure[:-len(cause) - 2]} [{number}]"
    return failure


def register(app: typer.Typer) -> None:
    for command in (up, watch, status, cancel, history):
        app.command()(command)
