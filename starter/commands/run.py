"""``hvlab run FILE [EXERCISE]``: a lab file's exercise as one durable workflow.

The exercise runs in Temporal (ExerciseWorkflow, id ``<lab>-exercise-<name>``), not in this
process: the command starts it (or attaches to the run of that id that is going), then by
default follows it with a live table of its steps and exits with its outcome (0 completed, 1
failed, cancelled or timed out), after a recap of every step. ``--no-wait`` returns after the
start, printing the id and how to follow it. Ctrl-C while following stops following only: the
exercise goes on, and the command says how to follow or cancel it.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from hvlab.exercises import exercise_id
from hvlab.specfile import load_lab
from starter.console import err, out
from starter.exercise_run import check_start, pick_exercise, start_exercise, wait_and_report
from starter.options import LabFile
from starter.runs import register_lab, temporal_client, ui_link
from workflows.exercise import ExerciseInput


def run(
    file: LabFile,
    exercise: Annotated[str, typer.Argument(
        help="exercise name from the lab file (default: its first)", show_default=False)] = "",
    sim: Annotated[bool, typer.Option("--sim", help="use the simulated fleet's endpoints")
                   ] = False,
    start_at: Annotated[str, typer.Option(
        "--from", help="start at this step (the ones before it are skipped)",
        show_default=False)] = "",
    no_wait: Annotated[bool, typer.Option(
        "--no-wait", help="return once the exercise has started")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the recap as JSON")] = False,
    no_compensate: Annotated[bool, typer.Option(
        "--no-compensate", help="a failing step keeps its partial state (debugging)")] = False,
) -> None:
    """Run an exercise of FILE (named, ordered steps) as one durable workflow.

    Waits with live progress and exits 0 when every step completed, 1 otherwise; the exercise
    runs in Temporal, so it goes on if this command ends. --from STEP resumes a partial run."""
    spec = load_lab(file)
    chosen = pick_exercise(spec, exercise)
    check_start(chosen, start_at)
    spec = register_lab(spec, sim)
    workflow_id = exercise_id(spec.lab, chosen.name)
    hint = f"hvlab run {file} {chosen.name}{' --sim' if sim else ''}"
    request = ExerciseInput(spec=spec, exercise=chosen.name, start_at=start_at,
                            compensate=not no_compensate, resume_hint=hint)

    async def started() -> None:
        await start_exercise(await temporal_client(), request, workflow_id)

    asyncio.run(started())
    console = err if as_json else out
    console.print(f"exercise [bold]{chosen.name}[/] of lab {spec.lab}: workflow {workflow_id}")
    console.print(f"Web UI: {ui_link(workflow_id)}")
    if no_wait:
        console.print(f"follow it with: hvlab watch {workflow_id}; cancel it with: hvlab cancel "
                      f"{workflow_id}")
        raise typer.Exit(0)
    raise typer.Exit(wait_and_report(workflow_id, as_json))
