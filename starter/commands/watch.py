"""``hvlab watch``, ``status``, ``cancel`` and ``history``: a workflow by its id.

``watch`` follows a running workflow as an operation does after its start; ``status`` lists
the recent ones with their whole ids (the ids the others take); ``cancel`` asks one to stop
and prints what it undid and kept; ``history`` prints its step timeline with the causes of
its failures.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from hvlab.labs import is_sim, registration_key
from hvlab.settings import get_settings
from starter.console import UsageProblem, out
from starter.inspection import Timeline, timeline
from starter.options import JsonOption
from starter.runs import compensation_lines, follow, temporal_client


def watch(
    workflow_id: Annotated[str, typer.Argument(help="workflow id")],
    as_json: JsonOption = False,
) -> None:
    """Follow a workflow's progress with bars, then print how it ended and its recap; exit 0
    when it completes, 1 otherwise (Ctrl-C stops watching, not the workflow: exit 130)."""
    follow(workflow_id, as_json=as_json)


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
    client = await temporal_client()
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
    client = await temporal_client()
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
    client = await temporal_client()
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
