"""One run of a lab file's exercise (ExerciseWorkflow, id ``<lab>-exercise-<name>``), for
``hvlab run``, ``hvlab demo`` and ``hvlab schedule run``: the exercise and start step chosen
from the command line (a usage problem naming what exists otherwise), the start (or attach to
the run of that id that is going), following it with a live table of its steps, and the recap
of every step with the outcome (0 completed, 1 failed, cancelled or timed out).
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError

from hvlab.exercises import step_title
from hvlab.settings import get_settings
from hvlab.spec import Exercise, LabSpec
from starter.console import UsageProblem, err, out
from starter.inspection import failure_reason
from starter.runs import compensation_lines, temporal_client
from workflows.exercise import ExerciseInput, ExerciseWorkflow
from workflows.progress import Progress

COLOURS = {"done": "green", "unchanged": "green", "failed": "red", "running": "cyan",
           "pending": "dim", "skipped": "dim"}


def pick_exercise(spec: LabSpec, name: str) -> Exercise:
    """The exercise ``name`` (the first when empty); a usage problem naming what exists."""
    if not spec.exercises:
        raise UsageProblem(f"EXERCISE: the lab file of lab {spec.lab} has no `exercises:`; "
                           "add one (see examples/classroom-lab.yaml)")
    try:
        return spec.exercise(name)
    except KeyError:
        known = ", ".join(e.name for e in spec.exercises)
        raise UsageProblem(f"EXERCISE: lab {spec.lab} has no exercise {name!r} "
                           f"(known: {known})") from None


def check_start(exercise: Exercise, start_at: str) -> None:
    if start_at:
        try:
            exercise.index(start_at)
        except KeyError:
            known = ", ".join(s.key for s in exercise.steps)
            raise UsageProblem(f"--from: exercise {exercise.name} has no step {start_at!r} "
                               f"(steps: {known})") from None


@dataclass
class Followed:
    """What following a run saw: its status, the steps' last progress and its account."""

    workflow_id: str
    status: WorkflowExecutionStatus | None = None
    progress: Progress | None = None
    reason: str = ""
    account: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == WorkflowExecutionStatus.COMPLETED


def _table(followed: Followed, child: Progress | None) -> Table:
    progress = followed.progress
    title = f"{progress.workflow} {progress.target}: {progress.percent}%" if progress else \
        followed.workflow_id
    table = Table("step", "state", "what", "detail", title=title, title_justify="left")
    for step in progress.steps if progress else []:
        detail = step.detail
        if step.state == "running" and child is not None:
            current = child.current
            detail = f"{child.percent}%" + (f" {current.title}" if current else "") + (
                f"; {detail}" if detail else "")
        colour = COLOURS.get(step.state, "white")
        table.add_row(step.name, f"[{colour}]{step.state}[/]", escape(step.title),
                      escape(detail))
    return table


async def _query(handle: WorkflowHandle[Any, Any]) -> Progress | None:
    try:
        result: Progress = await handle.query("progress", result_type=Progress)
        return result
    except (RPCError, WorkflowQueryFailedError):
        return None


async def follow(client: Client, workflow_id: str, console: Console, live: bool = True
                 ) -> Followed:
    """Follow the exercise run until it closes, with a live table of its steps."""
    handle = client.get_workflow_handle(workflow_id)
    followed = Followed(workflow_id)
    display = Live(console=console, refresh_per_second=4, transient=False) if live else None
    if display is not None:
        display.start()
    try:
        while True:
            description = await handle.describe()
            followed.progress = await _query(handle) or followed.progress
            child = None
            if followed.progress is not None and followed.progress.current is not None:
                child_id = f"{workflow_id}/{followed.progress.current.name}"
                child = await _query(client.get_workflow_handle(child_id))
            if display is not None:
                display.update(_table(followed, child))
            if description.status != WorkflowExecutionStatus.RUNNING:
                break
            await asyncio.sleep(0.5)
    finally:
        if display is not None:
            display.stop()
            if not console.is_terminal:
                console.line()  # Live's last frame ends without a newline off a terminal
    followed.status = description.status
    if description.status == WorkflowExecutionStatus.FAILED:
        followed.reason = await failure_reason(handle)
    if description.status != WorkflowExecutionStatus.COMPLETED:
        followed.account = await compensation_lines(description)
    return followed


def recap(followed: Followed) -> list[dict[str, str]]:
    """Per step: name, state and what it did (the workflow's progress as it closed)."""
    steps = followed.progress.steps if followed.progress else []
    return [{"step": s.name, "state": s.state, "what": s.title, "detail": s.detail,
             "workflow_id": f"{followed.workflow_id}/{s.name}"} for s in steps]


def report(followed: Followed, as_json: bool) -> int:
    """Print the recap and the outcome; the exit code (0 completed, 1 otherwise)."""
    name = followed.status.name.lower() if followed.status else "unknown"
    if as_json:
        sys.stdout.write(json.dumps({
            "workflow_id": followed.workflow_id, "status": name, "steps": recap(followed),
            "reason": followed.reason, "account": followed.account}) + "\n")
        return 0 if followed.ok else 1
    table = Table("step", "result", "detail", title="recap", title_justify="left")
    for row in recap(followed):
        colour = COLOURS.get(row["state"], "white")
        table.add_row(row["step"], f"[{colour}]{row['state']}[/]", escape(row["detail"]))
    out.print(table)
    if followed.ok:
        out.print(f"[green]{followed.workflow_id} completed[/]")
        return 0
    err.print(f"[red]{followed.workflow_id} ended {name}[/]; see `hvlab history "
              f"{followed.workflow_id}`")
    if followed.reason:
        err.print(f"cause: {followed.reason}", markup=False)
    for line in followed.account:
        err.print(line, markup=False)
    return 1


async def start_exercise(client: Client, request: ExerciseInput, workflow_id: str
                         ) -> WorkflowHandle[Any, Any]:
    """Start the exercise run, or attach to the run of that id that is going."""
    return await client.start_workflow(
        ExerciseWorkflow.run, request, id=workflow_id, task_queue=get_settings().task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        static_summary=f"exercise {request.exercise} of lab {request.spec.lab}",
        static_details="\n".join(
            f"{s.key}: {step_title(request.spec, s)}"
            for s in request.spec.exercise(request.exercise).steps))


def wait_and_report(workflow_id: str, as_json: bool) -> int:
    """Follow the run until it closes and report it; Ctrl-C stops following only."""
    async def go() -> Followed:
        return await follow(await temporal_client(), workflow_id, err if as_json else out,
                            live=not as_json)

    try:
        followed = asyncio.run(go())
    except KeyboardInterrupt:
        err.print(f"\nstopped following; exercise {workflow_id} goes on in Temporal. Follow it "
                  f"with: hvlab watch {workflow_id}; cancel it (the running step undoes its "
                  f"changes) with: hvlab cancel {workflow_id}")
        return 130
    return report(followed, as_json)
