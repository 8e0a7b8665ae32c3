"""``hvlab plan`` and ``hvlab schema``: what a lab file builds, and the lab file's schema."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from hvlab.spec import LabSpec
from hvlab.specfile import load_lab
from starter.console import UsageProblem, err, out
from starter.options import LabFile
from starter.planview import plan_json, print_plan
from workflows.kinds import build_plan


def plan(
    file: LabFile,
    as_json: Annotated[bool, typer.Option("--json", help="print the plan as JSON")] = False,
    live: Annotated[bool, typer.Option(
        "--live", help="compare with what the lab's hosts hold now (read-only)")] = False,
    sim: Annotated[bool, typer.Option(
        "--sim", help="compare with what the simulated fleet holds now (implies --live)")
    ] = False,
    exercise: Annotated[str | None, typer.Option(
        "--exercise", help="print the steps of this exercise of FILE instead",
        show_default=False)] = None,
) -> None:
    """Validate FILE and print the build DAG: units, their order and their steps.

    With --live (or --sim) print instead what converging FILE would do to the lab as it is
    now: VMs, replications and checkpoints to create, moved or failed over (left where the
    class put them), duplicated or unchanged, and a one-line summary.

    With --exercise NAME print the steps `hvlab run FILE NAME` runs, in order."""
    spec = load_lab(file)  # SpecError is reported by run() (exit 2)
    if exercise is not None:
        _print_exercise(spec, exercise, as_json)
        return
    if live or sim:
        _print_live_plan(spec, sim, as_json)
        return
    build = build_plan(spec)
    if as_json:
        sys.stdout.write(json.dumps(plan_json(spec, build), indent=2) + "\n")
        return
    print_plan(spec, build)


def _print_live_plan(spec: LabSpec, sim: bool, as_json: bool) -> None:
    from activities.observe import observe_hosts
    from hvlab.lab_state import SYMBOLS, differences, summary
    from hvlab.powershell.errors import RemoteError
    from hvlab.settings import get_settings

    try:
        state = observe_hosts(spec, sim=sim, home=get_settings().home_dir)
    except RemoteError as exc:
        fix = ("start the simulated fleet: `hvlab sim serve FILE --detach`" if sim
               else exc.fix or "check the lab file's connections (`hvlab doctor FILE`)")
        err.print(f"[red]error:[/] {exc.host or 'a host'}: {escape(exc.host_message)}; {fix}")
        raise typer.Exit(1) from None
    found = differences(spec, state)
    if as_json:
        sys.stdout.write(json.dumps({"lab": spec.lab, "differences": [
            d.model_dump() for d in found], "summary": summary(found)}, indent=2) + "\n")
        return
    out.print(f"[bold]lab {spec.lab}[/] as it is now ({'simulated fleet' if sim else 'hosts'})")
    table = Table(show_header=False, box=None, pad_edge=False)
    for difference in found:
        table.add_row(f"  {SYMBOLS[difference.action]}", difference.what,
                      escape(difference.detail))
    out.print(table)
    out.print(summary(found))


def _print_exercise(spec: LabSpec, name: str, as_json: bool) -> None:
    from hvlab.exercises import describe, exercise_id

    if not spec.exercises:
        raise UsageProblem(f"--exercise: the lab file of lab {spec.lab} has no `exercises:`")
    try:
        exercise = spec.exercise(name)
    except KeyError:
        known = ", ".join(e.name for e in spec.exercises)
        raise UsageProblem(f"--exercise: lab {spec.lab} has no exercise {name!r} "
                           f"(known: {known})") from None
    steps = describe(spec, exercise)
    if as_json:
        sys.stdout.write(json.dumps({
            "lab": spec.lab, "exercise": exercise.name, "description": exercise.description,
            "workflow_id": exercise_id(spec.lab, exercise.name),
            "steps": [{"name": n, "kind": k, "title": t} for n, k, t in steps]}, indent=2)
            + "\n")
        return
    out.print(f"[bold]lab {spec.lab}[/]  exercise [bold]{exercise.name}[/]"
              + (f": {escape(exercise.description)}" if exercise.description else ""))
    table = Table(show_header=False, box=None, pad_edge=False)
    for number, (step, kind, title) in enumerate(steps, 1):
        table.add_row(f"  {number:>2}.", step, kind, escape(title))
    out.print(table)


SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "urn:hvlab:schema:lab-file:v1"


def lab_schema() -> dict[str, object]:
    """The lab file's JSON Schema with its dialect (``$schema``) and identity (``$id``), as
    editors (the YAML language server) and validators expect them."""
    return {"$schema": SCHEMA_DIALECT, "$id": SCHEMA_ID, **LabSpec.model_json_schema()}


def schema() -> None:
    """Print the JSON Schema of the lab file (save it and point an editor at it: see the
    README)."""
    sys.stdout.write(json.dumps(lab_schema(), indent=2) + "\n")
