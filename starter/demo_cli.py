"""``hvlab demo``: the embedded stack, the simulated fleet and the seed lab, end to end.

Today the demo brings up the Temporal dev server and worker, serves the lab's simulated fleet
over WinRM, prints the build plan and proves a worker executes work (doctor round trip). The
lab-build workflows plug in here as they land.
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

from hvlab.plan import build_plan
from hvlab.settings import get_settings
from hvlab.specfile import load_lab
from starter.cli import _print_plan, err, out


@dataclass
class DemoStep:
    name: str
    seconds: float
    ok: bool
    detail: str


def _quiet(quiet: bool) -> None:
    from starter import runtime_cli, sim_cli

    for console in {id(c): c for c in (out, sim_cli.out, runtime_cli.out)}.values():
        console.quiet = quiet


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
    from starter.runtime_cli import _current_config

    status = start(_current_config())
    return status.running, f"Web UI {status.config.ui_url}"


def _start_fleet(file: Path, speed: float) -> tuple[bool, str]:
    from starter.sim_cli import _detach, sim_home

    _detach(file, speed, None, True, None)
    hosts = json.loads((sim_home() / "endpoints.json").read_text())["hosts"]
    return True, ", ".join(f"{n} {h['address']}:{h['port']}" for n, h in hosts.items())


def _doctor() -> tuple[bool, str]:
    from starter.runtime_cli import temporal_checks

    rows = asyncio.run(temporal_checks(get_settings()))
    failed = [r for r in rows if r.ok is False]
    return not failed, "; ".join(f"{r.check}: {r.detail}" for r in (failed or rows[-1:]))


def _stop_all() -> tuple[bool, str]:
    from hvlab.devstack import stop
    from starter.runtime_cli import _current_config

    stop(_current_config())
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
    speed: Annotated[float, typer.Option(help="simulated seconds per real second")] = 0.0,
) -> None:
    """Start the embedded stack and the simulated fleet for FILE, plan the lab, check it all."""
    spec = load_lab(file)
    plan = build_plan(spec)
    steps: list[DemoStep] = []
    _quiet(as_json)  # with --json, stdout carries only the JSON summary
    ok = _timed("temporal dev server + worker", steps, _start_stack)
    ok = ok and _timed("simulated fleet", steps, lambda: _start_fleet(file, speed))
    ok = ok and _timed("doctor round trip", steps, _doctor)
    steps.append(DemoStep("build plan", 0.0, True,
                          f"{len(plan.units)} units, {sum(len(u.steps) for u in plan.units)} "
                          f"steps on {', '.join(h.name for h in spec.hosts)}"))
    if not as_json:
        _print_plan(spec, plan)
    if not keep:
        _timed("stop", steps, _stop_all)
    _summary(steps, as_json)
    if keep and not as_json:
        out.print("left running; stop everything with: hvlab dev stop")
    if not ok:
        err.print("[red]the demo did not complete[/]; see $HVLAB_HOME/dev/*.log")
    raise typer.Exit(0 if ok else 1)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
