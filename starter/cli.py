"""The ``hvlab`` command line (Typer + Rich).

Exit codes: 0 success, 1 the operation failed, 2 bad input (invalid lab file, bad option,
unknown id). ``main`` ends the process with ``os._exit`` after flushing: a temporalio Client in
a short process can otherwise crash at interpreter shutdown (SIGSEGV/SIGABRT under load).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hvlab.plan import BuildPlan
from hvlab.spec import LabSpec
from hvlab.specfile import SpecError, load_lab
from workflows.kinds import build_plan

app = typer.Typer(
    name="hvlab",
    help="Build and operate Hyper-V training labs as durable Temporal workflows.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: flags render as flags (Rich help shows "<bool>")
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

LabFile = Annotated[Path, typer.Argument(help="lab file (YAML)", show_default=False)]


class UsageProblem(Exception):
    """Bad input that is not a lab-file problem; printed as one line, exit 2."""


@app.command()
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
        sys.stdout.write(json.dumps(_plan_json(spec, build), indent=2) + "\n")
        return
    _print_plan(spec, build)


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


def _plan_json(spec: LabSpec, build: BuildPlan) -> dict[str, object]:
    from workflows.kinds import plan_commands

    commands = plan_commands(spec, build)
    data = build.model_dump(mode="json")
    for unit in data["units"]:
        for step in unit["steps"]:
            step["commands"] = [c.describe() for c in commands[(unit["id"], step["name"])]]
    return data


def _print_plan(spec: LabSpec, build: BuildPlan) -> None:
    from workflows.kinds import plan_commands

    commands = plan_commands(spec, build)
    hosts = ", ".join(f"{h.name} ({h.role})" for h in spec.hosts)
    out.print(f"[bold]lab {spec.lab}[/]  domain {spec.domain.fqdn}  hosts: {hosts}")
    out.print("VMs: " + ", ".join(f"{v.name} on {v.host}" for v in spec.vms))
    for unit in build.order():
        after = ", ".join(unit.depends_on) or "-"
        out.print(f"\n[bold cyan]{unit.id}[/]  phase {unit.phase}  after: {after}")
        table = Table(show_header=False, box=None, pad_edge=False)
        for number, step in enumerate(unit.steps, 1):
            table.add_row(f"  {number:>2}.", step.host, step.title)
            for command in commands[(unit.id, step.name)]:
                table.add_row("", "", f"[dim]{escape(command.describe())}[/]")
        out.print(table)


SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "urn:hvlab:schema:lab-file:v1"


def lab_schema() -> dict[str, object]:
    """The lab file's JSON Schema with its dialect (``$schema``) and identity (``$id``), as
    editors (the YAML language server) and validators expect them."""
    return {"$schema": SCHEMA_DIALECT, "$id": SCHEMA_ID, **LabSpec.model_json_schema()}


@app.command()
def schema() -> None:
    """Print the JSON Schema of the lab file (save it and point an editor at it: see the
    README)."""
    sys.stdout.write(json.dumps(lab_schema(), indent=2) + "\n")


_mounted = False


def _mount_subcommands() -> None:
    """Register the command groups that live in their own modules, once per process.

    ``app`` is module-global: mounting on every ``run()`` appended every command again, so an
    in-process caller (the tests, a long-lived wrapper) saw the app grow and slow down per call.
    """
    global _mounted
    if _mounted:
        return
    from starter import (
        demo_cli,
        operate_cli,
        ops_cli,
        run_cli,
        runtime_cli,
        schedule_cli,
        sim_cli,
    )

    runtime_cli.register(app)
    ops_cli.register(app)
    operate_cli.register(app)
    demo_cli.register(app)
    run_cli.register(app)
    schedule_cli.register(app)
    app.add_typer(sim_cli.sim_app, name="sim")
    from starter import codec_cli
    codec_cli.register(app)
    _mounted = True


def _report_spec_error(exc: SpecError) -> int:
    err.print(f"[red]invalid lab file[/] {exc.source}: {len(exc.issues)} problem(s)")
    for issue in exc.issues:
        err.print(f"  {issue}", markup=False)
    return 2


def _configure_cli_logging() -> None:
    """Library warnings (temporalio, pypsrp) on stderr: console text on a terminal, JSON lines
    otherwise (``HVLAB_LOG_FORMAT``); the CLI's own output is Rich text on stdout/stderr."""
    from hvlab.telemetry import configure_logging

    fmt = os.environ.get("HVLAB_LOG_FORMAT", "auto")
    configure_logging(fmt if fmt in ("auto", "json", "console") else "auto", "WARNING")


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code (never raises)."""
    try:
        _configure_cli_logging()
        _mount_subcommands()
        result = app(args=argv, standalone_mode=False, prog_name="hvlab")
        return result if isinstance(result, int) else 0
    except SpecError as exc:
        return _report_spec_error(exc)
    except UsageProblem as exc:
        err.print(f"[red]error:[/] {exc}", markup=True)
        return 2
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.TyperException as exc:  # click's usage errors (typer vendors click)
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            err.print(f"[red]error:[/] {exc}")
        return 2
    except typer.Abort:
        err.print("aborted")
        return 130
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if os.environ.get("HVLAB_DEBUG"):
            raise
        err.print(f"[red]error:[/] {type(exc).__name__}: {exc}", markup=True)
        return 1


def main() -> NoReturn:
    """Console-script entry point: run, flush, and leave without interpreter teardown."""
    code = run()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
