"""Runtime commands: ``hvlab dev``, ``hvlab dev stop``, ``hvlab dev status``, ``hvlab worker``,
``hvlab doctor``, ``hvlab host-setup``.

Exit codes follow the CLI: 0 success, 1 the operation or a check failed, 2 bad input.
temporalio is imported inside the commands so ``hvlab --help`` stays fast.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from hvlab.settings import Settings, get_settings

if TYPE_CHECKING:
    from temporalio.client import Client

    from hvlab.devstack import DevConfig, StackStatus
    from hvlab.spec import LabSpec

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

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


def register(app: typer.Typer) -> None:
    """Add ``dev`` (with ``stop``/``status``), ``worker``, ``doctor`` and ``host-setup``."""
    app.add_typer(dev_app, name="dev")
    app.command("worker")(worker_command)
    app.command("doctor")(doctor_command)
    app.command("host-setup")(host_setup_command)


# --------------------------------------------------------------------------- dev


def _dev_config(port: int | None = None, ui_port: int | None = None) -> DevConfig:
    from hvlab.devstack import DevConfig

    return DevConfig.from_settings(get_settings(), port=port, ui_port=ui_port)


def _current_config() -> DevConfig:
    """The config the stack in ``$HVLAB_HOME`` was started with (else from settings)."""
    from hvlab.devstack import DevConfig

    cfg = _dev_config()
    return DevConfig.saved(cfg.home) or cfg


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


def check_codec_settings() -> None:
    """Fail before anything starts when HVLAB_CODEC_ENABLED is set without usable keys."""
    from hvlab.codec import KeyringError
    from hvlab.temporal import data_converter
    from starter.cli import UsageProblem

    try:
        data_converter(get_settings())
    except KeyringError as exc:
        raise UsageProblem(f"HVLAB_CODEC_ENABLED is true but the payload codec cannot be set "
                           f"up: {exc}") from None


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
    cfg = _dev_config(port, ui_port)
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
    _stop_and_report(_current_config())
    raise typer.Exit(0)


@dev_app.command("status")
def dev_status() -> None:
    """Show the stack's processes; exit 0 when server and worker run, else 1."""
    from hvlab.devstack import status

    current = status(_current_config())
    table = Table("process", "pid", "state", "log")
    for proc in current.processes():
        state = "[green]running[/]" if proc.alive else "[dim]stopped[/]"
        table.add_row(proc.name, str(proc.pid or "-"), state, str(proc.log or "-"))
    out.print(table)
    cfg = current.config
    answers = "answers" if current.server_answers else "does not answer"
    out.print(f"gRPC {cfg.address} {answers}; Web UI {cfg.ui_url}")
    raise typer.Exit(0 if current.running else 1)


# --------------------------------------------------------------------------- worker


def worker_command() -> None:
    """Run the Temporal worker in the foreground (same as: python worker.py)."""
    import worker

    raise typer.Exit(worker.run(get_settings()))


# --------------------------------------------------------------------------- doctor


@dataclass(frozen=True)
class CheckRow:
    """One line of the doctor's report; ``ok`` None means skipped or informational."""

    check: str
    ok: bool | None
    detail: str
    fix: str = ""
    host: str = ""


def host_checks(spec: LabSpec, sim: bool) -> list[CheckRow]:
    """The preflight of each host of ``spec`` (the simulated fleet with ``sim``), see
    :mod:`hvlab.hostcheck`: listener, credentials, Windows, Hyper-V, free space, golden
    images, host name, DNS, network profile, clock skew against the DC."""
    from hvlab.hostcheck import HostChecker
    from hvlab.powershell.errors import RemoteError

    try:
        checker = HostChecker(spec, sim=sim, home=get_settings().home_dir)
    except RemoteError as exc:
        fix = ("start the simulated fleet: `hvlab sim serve FILE --detach`" if sim
               else exc.fix or "check the lab file's connections")
        return [CheckRow(f"hosts of lab {spec.lab}", False, exc.host_message, fix)]
    try:
        return [CheckRow(f"{r.host}: {r.check}", r.ok, r.detail, r.fix, r.host)
                for r in checker.run()]
    finally:
        checker.close()


def _skipped(*names: str) -> list[CheckRow]:
    return [CheckRow(name, None, "skipped") for name in names]


LATER_CHECKS = ("namespace", "workflow pollers", "activity pollers", "round trip")


async def _reachable(settings: Settings) -> tuple[Client | None, CheckRow]:
    from temporalio.api.workflowservice.v1 import GetSystemInfoRequest

    from hvlab.temporal import TemporalUnavailable, connect

    try:
        client = await connect(settings)
        info = await client.workflow_service.get_system_info(GetSystemInfoRequest())
    except TemporalUnavailable as exc:
        fix = "start it with `hvlab dev` (embedded) or point HVLAB_TEMPORAL_ADDRESS at a cluster"
        return None, CheckRow("Temporal reachable", False, str(exc), fix)
    version = info.server_version or "unknown version"
    return client, CheckRow("Temporal reachable", True, f"{settings.temporal_address} ({version})")


async def _namespace(client: Client, namespace: str) -> CheckRow:
    from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
    from temporalio.service import RPCError

    try:
        request = DescribeNamespaceRequest(namespace=namespace)
        response = await client.workflow_service.describe_namespace(request)
    except RPCError as exc:
        fix = (
            f"create it (temporal operator namespace create -n {namespace}) or set HVLAB_NAMESPACE"
        )
        return CheckRow("namespace", False, f"{namespace!r}: {exc.message}", fix)
    retention = _duration(response.config.workflow_execution_retention_ttl.ToTimedelta())
    return CheckRow("namespace", True, f"{namespace!r} exists (retention {retention})")


def _duration(value: timedelta) -> str:
    """``3 d``, ``12 h`` or the plain timedelta."""
    seconds = int(value.total_seconds())
    if seconds and seconds % 86400 == 0:
        return f"{seconds // 86400} d"
    if seconds and seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return str(value)


def _age(when: datetime) -> str:
    seconds = max(0.0, (datetime.now(UTC) - when).total_seconds())
    return f"{seconds:.1f} s ago"


async def _pollers(client: Client, task_queue: str, kind: str) -> CheckRow:
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    queue_type = {
        "workflow": TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        "activity": TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
    }[kind]
    request = DescribeTaskQueueRequest(
        namespace=client.namespace,
        task_queue=TaskQueue(name=task_queue),
        task_queue_type=queue_type,
    )
    response = await client.workflow_service.describe_task_queue(request)
    pollers = sorted(response.pollers, key=lambda p: p.last_access_time.ToDatetime(), reverse=True)
    name = f"{kind} pollers"
    if not pollers:
        fix = f"no worker polls task queue '{task_queue}': run `hvlab worker` or `hvlab dev`"
        return CheckRow(name, False, f"none on '{task_queue}'", fix)
    seen = [f"{p.identity} ({_age(p.last_access_time.ToDatetime(UTC))})" for p in pollers]
    return CheckRow(name, True, f"'{task_queue}': " + ", ".join(seen))


async def _round_trip(client: Client, task_queue: str, timeout: float) -> CheckRow:
    from temporalio.client import WorkflowFailureError

    from workflows.doctor import DoctorInput, DoctorResult, DoctorWorkflow

    nonce = uuid.uuid4().hex[:12]
    started = time.monotonic()
    try:
        result: DoctorResult = await client.execute_workflow(
            DoctorWorkflow.run,
            DoctorInput(nonce=nonce),
            id=f"hvlab-doctor-{nonce}",
            task_queue=task_queue,
            execution_timeout=timedelta(seconds=timeout),
        )
    except WorkflowFailureError as exc:
        fix = (
            f"a worker polls '{task_queue}' but did not run DoctorWorkflow within {timeout:g} s:"
            " check the worker's log (dev stack: $HVLAB_HOME/dev/worker.log) and its hvlab version"
        )
        return CheckRow("round trip", False, f"DoctorWorkflow failed: {exc.cause or exc}", fix)
    probe = result.probe
    elapsed_ms = (time.monotonic() - started) * 1000
    detail = (
        f"DoctorWorkflow ran on {probe.worker_identity} (pid {probe.pid}, hvlab "
        f"{probe.hvlab_version}, Python {probe.python_version}) in {elapsed_ms:.0f} ms"
    )
    return CheckRow("round trip", probe.nonce == nonce, detail)


async def temporal_checks(settings: Settings, round_trip_timeout: float = 15.0) -> list[CheckRow]:
    """Reachability, namespace, pollers of both task-queue types, and a real workflow."""
    client, reach = await _reachable(settings)
    if client is None:
        return [reach, *_skipped(*LATER_CHECKS)]
    rows = [reach, await _namespace(client, settings.namespace)]
    if rows[-1].ok is False:
        return rows + _skipped(*LATER_CHECKS[1:])
    rows += [await _pollers(client, settings.task_queue, kind) for kind in ("workflow", "activity")]
    if any(row.ok is False for row in rows):
        return [*rows, *_skipped("round trip")]
    return [*rows, await _round_trip(client, settings.task_queue, round_trip_timeout)]


def _status_text(ok: bool | None, detail: str) -> str:
    if ok is None:
        return "[dim]SKIP[/]" if detail == "skipped" else "[cyan]INFO[/]"
    return "[green]OK[/]" if ok else "[red]FAIL[/]"


def print_report(rows: list[CheckRow]) -> None:
    """The checks as a table, then one ``fix:`` line per failed check."""
    table = Table("check", "status", "detail")
    for row in rows:
        table.add_row(row.check, _status_text(row.ok, row.detail), row.detail)
    out.print(table)
    for row in rows:
        if row.ok is False and row.fix:
            out.print(f"[red]fix:[/] {row.check}: {row.fix}")


def _status_word(row: CheckRow) -> str:
    if row.ok is None:
        return "skip" if row.detail == "skipped" else "info"
    return "ok" if row.ok else "fail"


def print_json(rows: list[CheckRow]) -> None:
    """The checks as one JSON document: ``ok`` overall and each check with its fix."""
    import json

    checks = [{"host": row.host or None, "check": row.check.removeprefix(f"{row.host}: "),
               "status": _status_word(row), "detail": row.detail, "fix": row.fix}
              for row in rows]
    document = {"ok": not any(row.ok is False for row in rows), "checks": checks}
    print(json.dumps(document, indent=2))


def doctor_command(
    file: Annotated[
        Path | None, typer.Argument(help="lab file whose hosts to check", show_default=False)
    ] = None,
    sim: Annotated[bool, typer.Option("--sim", help="check the lab against the simulator")] = (
        False
    ),
    as_json: Annotated[bool, typer.Option("--json", help="print the checks as JSON")] = False,
) -> None:
    """Check Temporal, the namespace, polling workers and a real workflow round trip; with a
    lab FILE, also the preflight of each of its hosts (each failed check with its fix)."""
    spec = None
    if file is not None:
        from hvlab.specfile import load_lab

        spec = load_lab(file)  # SpecError: reported by the CLI, exit 2
    settings = get_settings()
    rows = asyncio.run(temporal_checks(settings))
    if spec is not None:
        rows += host_checks(spec, sim)
    if as_json:
        print_json(rows)
    else:
        print_report(rows)
    raise typer.Exit(1 if any(row.ok is False for row in rows) else 0)


# --------------------------------------------------------------------------- host-setup


def host_setup_command(
    file: Annotated[Path, typer.Argument(help="lab file (YAML)", show_default=False)],
    host: Annotated[str, typer.Argument(help="the lab's name of the host", show_default=False)],
    worker: Annotated[str | None, typer.Option(
        "--worker", help="the worker's address: only it may open WinRM sessions (firewall "
        "scope); default any address")] = None,
) -> None:
    """Print the one-time PowerShell to run at a fresh host's console so the worker can
    reach it (name, network profile, Enable-PSRemoting, firewall scope)."""
    import ipaddress

    from hvlab.hostsetup import setup_script
    from hvlab.specfile import load_lab
    from starter.cli import UsageProblem

    spec = load_lab(file)  # SpecError: reported by the CLI, exit 2
    try:
        target = spec.host(host)
    except KeyError:
        names = ", ".join(h.name for h in spec.hosts)
        raise UsageProblem(f"host {host!r} is not in {file} (its hosts: {names}); "
                           "give one of those names") from None
    if worker is not None:
        try:
            ipaddress.ip_network(worker, strict=False)
        except ValueError:
            raise UsageProblem(f"--worker {worker!r} is not an IP address or subnet "
                               "(e.g. 192.168.1.50 or 192.168.1.0/24)") from None
    print(setup_script(spec, target, worker), end="")
    raise typer.Exit(0)
