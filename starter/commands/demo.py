"""``hvlab demo``: the embedded stack, the simulated fleet and a run of the lab's first exercise.

Brings up the Temporal dev server and a worker, serves the lab's simulated hosts over WinRM,
proves a worker executes work (doctor round trip), then runs the lab file's first exercise
(``exercises:``; a lab file without one gets a build) as one ExerciseWorkflow, exactly as
``hvlab run FILE --sim`` does, with live progress; creates the lab's reset schedule when it has
``reset:``, prints a table of every step and the Web UI address, and stops everything unless
``--keep``. Nothing here knows the seed's names: any topology works.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from hvlab.settings import get_settings
from hvlab.spec import BuildStep, Exercise, ExerciseStep, LabSpec
from hvlab.specfile import load_lab
from starter.checks import check_codec_settings, temporal_checks
from starter.console import err, out
from starter.exercise_run import follow, start_exercise
from starter.planview import print_plan
from starter.schedules import put_reset_schedule
from starter.stack import current_config, detach_fleet, sim_home
from workflows.kinds import build_plan


@dataclass
class DemoStep:
    name: str
    seconds: float
    ok: bool
    detail: str


def _quiet(quiet: bool) -> None:
    out.quiet = quiet  # the one stdout console of every command


def _timed(name: str, steps: list[DemoStep], work: Callable[[], tuple[bool, str]]) -> bool:
    started = time.monotonic()
    try:
        ok, detail = work()
    except typer.Exit as exc:
        ok, detail = exc.exit_code == 0, f"exit {exc.exit_code}"
    except Exception as exc:  # a failed step is reported in the summary, then cleaned up
        ok, detail = False, f"{type(exc).__name__}: {exc}"
    steps.append(DemoStep(name, time.monotonic() - started, ok, detail))
    return ok


def _start_stack() -> tuple[bool, str]:
    from hvlab.devstack import start

    status = start(current_config())
    return status.running, f"Web UI {status.config.ui_url}"


def _start_fleet(file: Path, speed: float) -> tuple[bool, str]:
    detach_fleet(file, speed, None, True, None)
    hosts = json.loads((sim_home() / "endpoints.json").read_text())["hosts"]
    return True, ", ".join(f"{n} {h['address']}:{h['port']}" for n, h in hosts.items())


def _ui_url() -> str:
    return f"{current_config().ui_url}/namespaces/{get_settings().namespace}/workflows"


def _doctor() -> tuple[bool, str]:
    rows = asyncio.run(temporal_checks(get_settings()))
    failed = [r for r in rows if r.ok is False]
    return not failed, "; ".join(f"{r.check}: {r.detail}" for r in (failed or rows[-1:]))


def with_exercise(spec: LabSpec) -> LabSpec:
    """The lab, with a one-step build exercise when its file has no exercise."""
    if spec.exercises:
        return spec
    build = Exercise(name="build", description="build the lab",
                     steps=[ExerciseStep(build=BuildStep())])
    return spec.model_copy(update={"exercises": [build]})


def _exercise(spec: LabSpec, steps: list[DemoStep]) -> bool:
    """The lab's first exercise as one durable workflow, then the reset schedule."""
    from hvlab.exercises import exercise_id
    from hvlab.labs import LabRegistry
    from hvlab.temporal import connect
    from workflows.exercise import ExerciseInput

    settings = get_settings()
    spec = LabRegistry(settings.home_dir).register(spec, sim=True).spec
    exercise = spec.exercises[0]
    workflow_id = exercise_id(spec.lab, exercise.name)

    async def go() -> bool:
        client = await connect(settings)
        await start_exercise(client, ExerciseInput(
            spec=spec, exercise=exercise.name,
            resume_hint=f"hvlab run FILE {exercise.name} --sim"), workflow_id)
        followed = await follow(client, workflow_id, out)
        for step in followed.progress.steps if followed.progress else []:
            ok = step.state in ("done", "unchanged", "skipped")
            detail = step.detail if ok or step.detail else followed.reason
            steps.append(DemoStep(step.name, step.seconds or 0.0, ok,
                                  f"{step.title}: {detail}" if detail else step.title))
        if not followed.ok:
            steps.append(DemoStep(f"exercise {exercise.name}", 0.0, False,
                                  followed.reason or "; ".join(followed.account)
                                  or f"ended {followed.status}"))
            return False
        if spec.reset is not None:
            started = time.monotonic()
            handle, _ = await put_reset_schedule(client, spec, spec.reset.cron,
                                                 spec.reset.checkpoint, settings.task_queue)
            steps.append(DemoStep("reset schedule", time.monotonic() - started, True,
                                  f"{handle.id}: '{spec.reset.cron}' {spec.reset.timezone}"))
        return True

    return asyncio.run(go())


def _stop_all() -> tuple[bool, str]:
    from hvlab.devstack import stop

    stop(current_config())
    return True, "no process left"


def _summary(steps: list[DemoStep], as_json: bool) -> None:
    if as_json:
        data: list[dict[str, Any]] = [s.__dict__ for s in steps]
        sys.stdout.write(json.dumps({"steps": data}) + "\n")
        return
    table = Table("step", "seconds", "result", "detail")
    for step in steps:
        result = "[green]ok[/]" if step.ok else "[red]failed[/]"
        table.add_row(step.name, f"{step.seconds:.2f}", result, step.detail)
    out.print(table)


def demo(
    file: Annotated[Path, typer.Argument(help="lab file")] = Path("examples/classroom-lab.yaml"),
    keep: Annotated[bool, typer.Option(help="leave the stack and fleet running")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
    speed: Annotated[float, typer.Option(
        help="simulated seconds per real second (0: instant)")] = 60.0,
    show_plan: Annotated[bool, typer.Option("--plan", help="print the build plan first")] = False,
) -> None:
    """Run FILE's first exercise on a simulated fleet, as `hvlab run FILE --sim` does.

    Starts the embedded stack and the simulated fleet first; --keep leaves them running."""
    spec = with_exercise(load_lab(file))
    check_codec_settings()
    plan = build_plan(spec)
    steps: list[DemoStep] = []
    _quiet(as_json)  # with --json, stdout carries only the JSON summary
    if show_plan:
        print_plan(spec, plan)
    ok = _timed("temporal dev server + worker", steps, _start_stack)
    ok = ok and _timed("simulated fleet", steps, lambda: _start_fleet(file, speed))
    ok = ok and _timed("doctor round trip", steps, _doctor)
    steps.append(DemoStep("build plan", 0.0, True,
                          f"{len(plan.units)} units, {sum(len(u.steps) for u in plan.units)} "
                          f"steps on {', '.join(h.name for h in spec.hosts)}"))
    ok = ok and _exercise(spec, steps)
    if not keep:
        _timed("stop", steps, _stop_all)
    _summary(steps, as_json)
    if not as_json:
        out.print(f"Web UI: {_ui_url()}")
    if keep and not as_json:
        out.print("left running; stop everything with: hvlab dev stop")
    if not ok:
        err.print("[red]the demo did not complete[/]; see $HVLAB_HOME/dev/*.log")
    raise typer.Exit(0 if ok else 1)
