"""``hvlab sim``: serve a simulated Windows fleet for a lab file, inspect, reset and stop it.

``python -m starter.commands.sim serve ...`` is how ``serve --detach`` starts the fleet in the
background (:func:`starter.stack.detach_fleet`).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from hvlab.specfile import SpecError, load_lab
from starter.console import err, out, report_spec_error
from starter.stack import detach_fleet, home, print_endpoints, refuse, sim_home

sim_app = typer.Typer(help="Simulated Windows fleet (WinRM/PSRP on loopback) for a lab file.",
                      rich_markup_mode=None)


def _load(file: Path) -> Any:
    try:
        return load_lab(file)
    except SpecError as exc:
        raise typer.Exit(report_spec_error(exc)) from None


def _fault_plan(path: Path | None, label: str) -> Any:
    """The fault plan in ``path`` (None without one); exit 2 naming ``label`` and the field
    when it cannot be read or is not a valid plan."""
    if path is None:
        return None
    from pydantic import ValidationError
    from ruamel.yaml.error import YAMLError

    from simulator.faults import FaultPlan

    try:
        return FaultPlan.load(path)
    except OSError as exc:
        problems = [f"cannot read {path}: {exc.strerror}"]
    except ValidationError as exc:
        problems = [
            "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e["loc"]).lstrip(".")
            + f": {e['msg']}"
            for e in exc.errors()
        ]
    except (ValueError, YAMLError) as exc:  # JSON or YAML syntax
        problems = [f"not a YAML or JSON fault plan: {exc}".splitlines()[0]]
    for problem in problems:
        err.print(f"error: {label}: {problem}", markup=False, highlight=False)
    raise typer.Exit(2)


@sim_app.command()
def serve(
    file: Annotated[Path, typer.Argument(help="lab file (YAML)")],
    speed: Annotated[
        float, typer.Option(min=0, help="simulated seconds per real second; 0 = instant")
    ] = 60.0,
    faults: Annotated[Path | None, typer.Option(help="fault plan (YAML or JSON)")] = None,
    fresh: Annotated[bool, typer.Option(help="start from the lab's initial state")] = False,
    detach: Annotated[bool, typer.Option(help="run in the background")] = False,
    port: Annotated[
        int | None, typer.Option(min=0, max=65535, help="WinRM port (default 5985, else ephemeral)")
    ] = None,
) -> None:
    """Serve every host of FILE over WinRM until stopped (one fleet per HVLAB_HOME: exit 2
    naming the running one)."""
    spec = _load(file)
    plan = _fault_plan(faults, "--faults")
    if detach:
        detach_fleet(file, speed, faults, fresh, port)
        return
    from simulator.fleet import Fleet, FleetRunning

    try:
        fleet = Fleet(spec, home(), speed=speed, faults=plan, fresh=fresh, port=port,
                      resolve=_lab_secrets()).start()
    except FleetRunning as running:
        refuse(running)
    (sim_home() / "sim.pid").write_text(str(os.getpid()))
    print_endpoints(fleet.endpoints)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.is_set() and not fleet.stopped.is_set():
        stop.wait(0.2)
    fleet.stop()
    (sim_home() / "sim.pid").unlink(missing_ok=True)
    out.print("simulated fleet stopped")


def _lab_secrets() -> Any:
    """The fleet's passwords: each credential reference resolved as a worker resolves it (the
    environment, then HVLAB_SECRETS_FILE); None where it has no value (the fleet generates
    one)."""
    from hvlab.powershell.credentials import SecretResolver
    from hvlab.powershell.errors import CredentialUnavailable
    from hvlab.settings import get_settings

    resolver = SecretResolver(os.environ, get_settings().secrets_file)

    def resolve(reference: str) -> str | None:
        try:
            return resolver.resolve(reference).value
        except (CredentialUnavailable, ValueError):
            return None

    return resolve


def _control(method: str, path: str, body: Any = None) -> Any:
    info_path = sim_home() / "control.json"
    if not info_path.exists():
        err.print("no simulated fleet is running (start one with `hvlab sim serve FILE`)")
        raise typer.Exit(1)
    info = json.loads(info_path.read_text())
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{info['port']}{path}",
        data=data,
        method=method,
        headers={"X-Hvlab-Token": info["token"], "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")
    except OSError as exc:
        err.print(f"the simulated fleet does not answer: {exc}")
        raise typer.Exit(1) from None


@sim_app.command()
def state(
    as_json: Annotated[bool, typer.Option("--json", help="print the JSON state")] = False,
) -> None:
    """Show the simulated world."""
    world = _control("GET", "/state")
    if as_json:
        sys.stdout.write(json.dumps(world, indent=2) + "\n")
        return
    table = Table(title=f"lab {world.get('lab', '')}")
    for column in ("host", "domain", "features", "switches", "vms"):
        table.add_column(column)
    for name, host in world["hosts"].items():
        vms = ", ".join(f"{vm} ({v['state']})" for vm, v in host["vms"].items())
        hv = "Hyper-V" if "Hyper-V" in host["features"] else ""
        table.add_row(name, host["domain"] or "workgroup", hv, ", ".join(host["switches"]), vms)
    out.print(table)


@sim_app.command()
def reset() -> None:
    """Put the simulated lab back to its initial state."""
    _control("POST", "/reset")
    out.print("simulated lab reset")


@sim_app.command()
def faults(file: Annotated[Path, typer.Argument(help="fault plan (YAML or JSON)")]) -> None:
    """Replace the running fleet's fault plan."""
    plan = _fault_plan(file, "FILE")
    _control("POST", "/faults", plan.model_dump(mode="json"))
    out.print("fault plan installed")


@sim_app.command()
def stop() -> None:
    """Stop the running simulated fleet."""
    _control("POST", "/stop")
    pid_file = sim_home() / "sim.pid"
    if pid_file.exists():
        pid = int(pid_file.read_text())
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        pid_file.unlink(missing_ok=True)
    (sim_home() / "control.json").unlink(missing_ok=True)
    out.print("simulated fleet stopped")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # reap our own child (serve --detach from this process)
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


if __name__ == "__main__":
    sim_app()
