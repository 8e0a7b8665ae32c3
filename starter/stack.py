"""The background pieces ``hvlab dev``, ``hvlab sim`` and ``hvlab demo`` start: the embedded
stack's configuration (the one a running stack was started with, else from settings) and the
simulated fleet in ``$HVLAB_HOME/sim`` (where it keeps its endpoints, control API and pid),
started detached as ``python -m starter.commands.sim serve``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.table import Table

from hvlab.settings import get_settings
from starter.console import err, out

if TYPE_CHECKING:
    from hvlab.devstack import DevConfig

SIM_MODULE = "starter.commands.sim"  # `python -m` runs `hvlab sim` from it
DETACH_TIMEOUT = 60.0  # seconds a detached fleet may take to serve


def dev_config(port: int | None = None, ui_port: int | None = None) -> DevConfig:
    """The dev stack's config from settings (ports as given)."""
    from hvlab.devstack import DevConfig

    return DevConfig.from_settings(get_settings(), port=port, ui_port=ui_port)


def current_config() -> DevConfig:
    """The config the stack in ``$HVLAB_HOME`` was started with (else from settings)."""
    from hvlab.devstack import DevConfig

    cfg = dev_config()
    return DevConfig.saved(cfg.home) or cfg


def home() -> Path:
    """$HVLAB_HOME (default ~/.hvlab)."""
    return get_settings().home_dir


def sim_home() -> Path:
    return home() / "sim"


def print_endpoints(endpoints: dict[str, Any]) -> None:
    """The fleet's hosts with their WinRM endpoints and users."""
    table = Table(title="simulated hosts")
    for column in ("host", "endpoint", "user"):
        table.add_column(column)
    for name, ep in endpoints.items():
        table.add_row(name, f"http://{ep['address']}:{ep['port']}/wsman", ep["username"])
    out.print(table)
    out.print(f"credentials and ports: {sim_home() / 'endpoints.json'}")


def refuse(running: Exception) -> NoReturn:
    """Exit 2: a fleet serves this home already (``running`` names it)."""
    err.print(f"error: {running}", markup=False, highlight=False)
    raise typer.Exit(2)


def _started_by(control: Path, pid: int) -> bool:
    """The fleet of process ``pid`` serves: it wrote its control API (after its endpoints)."""
    try:
        return int(json.loads(control.read_text()).get("pid", 0)) == pid
    except (OSError, ValueError, AttributeError):
        return False


def detach_fleet(file: Path, speed: float, faults: Path | None, fresh: bool, port: int | None
                 ) -> None:
    """Start the simulated fleet of lab ``file`` in the background (``hvlab sim serve
    --detach``) and return once it serves, printing its endpoints; exit 2 when a fleet serves
    this home already, 1 when it does not start."""
    from simulator.fleet import running_fleet

    directory = sim_home()
    running = running_fleet(home())
    if running is not None:
        refuse(running)
    directory.mkdir(parents=True, exist_ok=True)
    endpoints = directory / "endpoints.json"
    argv = [sys.executable, "-m", SIM_MODULE, "serve", str(file), "--speed", str(speed)]
    argv += (["--faults", str(faults)] if faults else []) + (["--fresh"] if fresh else [])
    argv += ["--port", str(port)] if port is not None else []
    log = (directory / "serve.log").open("ab")
    proc = subprocess.Popen(
        argv,
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "HVLAB_HOME": str(home())},
    )
    deadline = time.monotonic() + DETACH_TIMEOUT
    while not _started_by(directory / "control.json", proc.pid):
        if proc.poll() is not None or time.monotonic() > deadline:
            err.print(f"[red]the simulator did not start[/]; see {directory / 'serve.log'}")
            raise typer.Exit(proc.returncode if proc.returncode == 2 else 1)
        time.sleep(0.05)
    (directory / "sim.pid").write_text(str(proc.pid))
    print_endpoints(json.loads(endpoints.read_text())["hosts"])
    out.print(f"running in the background, pid {proc.pid}")
