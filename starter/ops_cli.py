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
    WorkflowHandle,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from hvlab.labs import LabRegistry, is_sim, registration_key
from hvlab.settings import get_settings
from hvlab.spec import LabSpec
from hvlab.specfile import load_lab
from hvlab.temporal import CodecUnavailable, TemporalUnavailable, connect
from starter.cli import UsageProblem, err, out
from starter.inspection import Timeline, Watcher, WatchView, timeline
from starter.recap import Outcome, outcome
from workflows.lab_build import LabBuildInput, LabBuildWorkflow
from workflows.outcome import MEMO_KEY, Compensation
from workflows.progress import Progress as WorkflowProgress

SimOption = Annotated[bool, typer.Option("--sim", help="use the simulated fleet's endpoints")]
WatchOption = Annotated[bool, typer.Option(
    "--watch", hidden=True, help="wait and follow progress (the default; kept for scripts)")]
NoWaitOption = Annotated[bool, typer.Option(
    "--no-wait", help="return once started, printing the workflow id and how to follow it")]
JsonOption = Annotated[bool, typer.Option(
    "--json", help="print the outcome as JSON (status, cause, recap, result) instead of "
    "progress bars")]
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
    no_compensate: Annotated[
        bool, typer.Option("--no-compensate", help="keep partial state on failure (debugging)")
    ] = False,
    no_wait: NoWaitOption = False,
    as_json: JsonOption = False,
    watch: WatchOption = False,
) -> None:
    """Build (or converge) the lab described by FILE, wait for it with live progress and end
    with a recap of each unit (changed, unchanged, failed); exit 0 when it completed, 1
    otherwise."""
    wait_mode(watch, no_wait)
    spec = load_lab(file)
    spec = register_lab(spec, sim)
    request = LabBuildInput(spec=spec, compensate=not no_compensate)
    handle = asyncio.run(start_or_attach(LabBuildWorkflow.run, request, build_id(spec.lab),
                                         f"build lab {spec.lab}"))
    follow(handle.id, what=f"build of lab [bold]{spec.lab}[/]", no_wait=no_wait,
           as_json=as_json)


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


async def _watch(workflow_id: str, as_json: bool = False) -> int:
    """Follow the workflow until it closes, then print how it ended and its recap; 0 when it
    completed, 1 otherwise. With ``as_json`` nothing but the outcome goes to stdout (the
    retried steps go to stderr as they happen)."""
    client = await _client()
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
                live.update(_view(view))
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
    console.print(f"Web UI: {_ui_link(workflow_id)}")


def wait_mode(watch: bool, no_wait: bool) -> None:
    """``--watch`` (the default now, kept for scripts) and ``--no-wait`` contradict."""
    if watch and no_wait:
        raise UsageProblem("--watch, --no-wait: operations wait by default (--watch is that "
                           "default); pass only --no-wait to return after the start")


def watch(
    workflow_id: Annotated[str, typer.Argument(help="workflow id")],
    as_json: JsonOption = False,
) -> None:
    """Follow a workflow's progress with bars, then print how it ended and its recap; exit 0
    when it completes, 1 otherwise (Ctrl-C stops watching, not the workflow: exit 130)."""
    follow(workflow_id, as_json=as_json)


# --------------------------------------------------------------------------- status


TOP_LEVEL = "ParentWorkflowId is null"  # visibility query: not a child workflow


def lab_keys(lab: str) -> list[str]:
    """The registration keys ``--lab NAME`` means: both modes of a lab file's name
    (``classroom``, ``sim.classroom``), or exactly the key given with its ``sim.``."""
    return [lab] if is_sim(lab) else [lab, registration_key(lab, sim=True)]


def in_lab(workflow_id: str, keys: list[str], known: list[str]) -> bool:
    """Whether the workflow id is one of the labs ``keys``' (``<key>-...``), and not of a
    registered lab whose name only starts like it (``classroom-2`` is not ``classroom``)."""
    for key in keys:
        if workflow_id.startswith(f"{key}-"):
            longer = [k for k in known if k.startswith(f"{key}-")]
            return not any(workflow_id.startswith(f"{k}-") for k in longer)
    return False


def registered_keys() -> list[str]:
    """Every lab registered in ``$HVLAB_HOME/labs`` (both modes)."""
    folder = get_settings().home_dir / "labs"
    return ([p.stem for p in folder.glob("*.yaml")]
            + [registration_key(p.stem, sim=True) for p in (folder / "sim").glob("*.yaml")])


async def _status(limit: int, children: bool = False, lab: str | None = None
                  ) -> list[dict[str, Any]]:
    client = await _client()
    keys, known = (lab_keys(lab), registered_keys()) if lab else ([], [])
    try:
        return await _listed(client, limit, TOP_LEVEL if not children else None, keys, known)
    except RPCError as exc:  # a visibility store without ParentWorkflowId: filter here
        if children or exc.status != RPCStatusCode.INVALID_ARGUMENT:
            raise
        return await _listed(client, limit, None, keys, known, top_level=True)


async def _listed(client: Client, limit: int, query: str | None, keys: list[str],
                  known: list[str], top_level: bool = False) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    async for execution in client.list_workflows(query):
        if top_level and execution.parent_id:
            continue
        if keys and not in_lab(execution.id, keys, known):
            continue
        rows.append({
            "id": execution.id, "type": execution.workflow_type,
            "status": execution.status.name if execution.status else "UNKNOWN",
            "started": execution.start_time.isoformat() if execution.start_time else None,
            "closed": execution.close_time.isoformat() if execution.close_time else None,
            "parent": execution.parent_id,
        })
        if len(rows) >= limit:
            break
    return rows


def status(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    limit: Annotated[int, typer.Option(help="most recent N workflows")] = 50,
    every: Annotated[bool, typer.Option(
        "--all", help="also child workflows (a build's units, a reset's build)")] = False,
    lab: Annotated[str | None, typer.Option(
        "--lab", help="only this lab's workflows (NAME: both modes; sim.NAME: the simulated "
        "fleet's)")] = None,
) -> None:
    """List recent hvlab workflows (top-level ones unless --all) with their whole ids."""
    rows = asyncio.run(_status(limit, every, lab))
    if as_json:
        sys.stdout.write(json.dumps(rows) + "\n")
        return
    if not rows:
        out.print("no workflows" + (f" of lab {lab}" if lab else ""))
        return
    table = Table("workflow id", "type", "status", "started", box=None, pad_edge=False)
    table.columns[0].no_wrap = True  # whole ids: they are what watch, cancel, history take
    table.columns[0].min_width = max(len(row["id"]) for row in rows)
    for row in rows:
        table.add_row(escape(row["id"]), row["type"], row["status"], row["started"] or "")
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


def history(
    workflow_id: Annotated[str, typer.Argument(help="workflow id")],
    as_json: Annotated[bool, typer.Option("--json", help="print the timeline as JSON")] = False,
) -> None:
    """The workflow's step timeline: each activity with its duration and outcome, and each
    child workflow with its own steps below it; failures are numbered and their causes listed."""
    result = asyncio.run(_timeline(workflow_id))
    if as_json:
        sys.stdout.write(json.dumps(timeline_json(result), indent=2) + "\n")
        return
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


def timeline_json(result: Timeline) -> dict[str, Any]:
    """``hvlab history --json``: the workflow, how it ended and one object per row."""
    return {"workflow_id": result.workflow_id, "workflow_type": result.workflow_type,
            "status": result.status, "failure": result.failure, "rows": [
                {"depth": row.depth, "step": row.step, "child": row.child,
                 "workflow_type": row.workflow_type or None,
                 "started": row.started.isoformat(),
                 "ended": row.ended.isoformat() if row.ended else None,
                 "seconds": row.seconds, "outcome": row.outcome, "cause": row.cause or None}
                for row in result.rows]}


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
