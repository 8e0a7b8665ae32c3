"""``hvlab dev`` (with ``dev stop`` and ``dev status``) and ``hvlab worker``: the embedded stack
(Temporal dev server with its Web UI, and a worker) in the background or the foreground, and
the worker alone in the foreground.

Exit codes follow the CLI: 0 success, 1 the operation failed, 2 bad input.
temporalio is imported inside the commands so ``hvlab --help`` stays fast.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from hvlab.settings import get_settings
from starter.checks import check_codec_settings
from starter.console import err, out
from starter.stack import current_config, dev_config

if TYPE_CHECKING:
    from hvlab.devstack import DevConfig, StackStatus

dev_app = typer.Typer(
    help="The embedded stack: Temporal dev server (Web UI) and a worker, in the background.",
    invoke_without_command=True,
    add_completion=False,
    rich_markup_mode=None,
)

PortOption = Annotated[
    int | None, typer.Option("--port", help="dev server gRPC port [HVLAB_DEV_PORT, 7233]")
]
UiPortOption = Annotated[
    int | None, typer.Option("--ui-port", help="Web UI port [HVLAB_UI_PORT, 8233]")
]


def _how(state: StackStatus, name: str) -> str:
    seconds = state.started.get(name)
    return "already running" if seconds is None else f"started, ready in {seconds:.2f} s"


def _describe(state: StackStatus) -> None:
    cfg = state.config
    server, worker = state.server, state.worker
    out.print(f"Temporal dev server  {cfg.address}  pid {server.pid}  ({_how(state, 'temporal')})")
    out.print(f"Web UI               {cfg.ui_url}")
    out.print(
        f"worker               pid {worker.pid}  task queue '{cfg.task_queue}'  "
        f"({_how(state, 'worker')})"
    )
    out.print(f"worker metrics       {cfg.worker_metrics_url or 'disabled'}")
    out.print(f"logs and database    {cfg.dev_dir}")
    target = get_settings().temporal_address
    if target != cfg.address:
        out.print(
            f"[yellow]note:[/] other hvlab commands reach {target}; "
            f"export HVLAB_TEMPORAL_ADDRESS={cfg.address} to use this stack"
        )


def _start_or_exit(cfg: DevConfig) -> StackStatus:
    from hvlab.devstack import DevStackError, start

    check_codec_settings()
    try:
        state = start(cfg)
    except DevStackError as exc:
        err.print(f"[red]dev stack failed:[/] {exc}")
        raise typer.Exit(1) from exc
    _describe(state)
    return state


class _StopRequest:
    """Set by SIGINT/SIGTERM while ``hvlab dev`` runs in the foreground."""

    def __init__(self) -> None:
        self.event = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.event.set()


def _watch(cfg: DevConfig, stop_request: _StopRequest) -> int:
    """Wait for a signal (0) or for a process of the stack to die (1)."""
    from hvlab.devstack import status

    while not stop_request.event.wait(1.0):
        current = status(cfg)
        if not current.running:
            dead = [p.name for p in (current.server, current.worker) if not p.alive]
            err.print(f"[red]stopped by itself:[/] {', '.join(dead) or 'server'}; see logs")
            return 1
    return 0


def _stop_and_report(cfg: DevConfig) -> None:
    from hvlab.devstack import stop

    stopped = stop(cfg)
    for proc in stopped:
        how = "killed (did not stop within the timeout)" if proc.killed else "stopped"
        out.print(f"{proc.name} (pid {proc.pid}) {how}")
    if not stopped:
        out.print("nothing was running")


@dev_app.callback()
def dev(
    ctx: typer.Context,
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="start in the background and return")
    ] = False,
    port: PortOption = None,
    ui_port: UiPortOption = None,
) -> None:
    """Start the dev stack; in the foreground Ctrl-C (or SIGTERM) stops all of it."""
    if ctx.invoked_subcommand is not None:
        return
    cfg = dev_config(port, ui_port)
    if detach:
        _start_or_exit(cfg)
        out.print("stop it with: hvlab dev stop")
        raise typer.Exit(0)
    stop_request = _StopRequest()
    try:
        _start_or_exit(cfg)
        out.print("Press Ctrl-C to stop.")
        code = _watch(cfg, stop_request)
    finally:
        out.print("stopping the dev stack ...")
        _stop_and_report(cfg)
    raise typer.Exit(code)


@dev_app.command("stop")
def dev_stop() -> None:
    """Stop the worker, a simulated fleet and the dev server; no process is left."""
    _stop_and_report(current_config())
    raise typer.Exit(0)


@dev_app.command("status")
def dev_status() -> None:
    """Show the stack's processes; exit 0 when server and worker run, else 1."""
    from hvlab.devstack import status

    current = status(current_config())
    table = Table("process", "pid", "state", "log")
    for proc in current.processes():
        state = "[green]running[/]" if proc.alive else "[dim]stopped[/]"
        table.add_row(proc.name, str(proc.pid or "-"), state, str(proc.log or "-"))
    out.print(table)
    cfg = current.config
    answers = "answers" if current.server_answers else "does not answer"
    out.print(f"gRPC {cfg.address} {answers}; Web UI {cfg.ui_url}")
    raise typer.Exit(0 if current.running else 1)


def worker_command() -> None:
    """Run the Temporal worker in the foreground (same as: python worker.py)."""
    import worker

    raise typer.Exit(worker.run(get_settings()))
