"""The ``hvlab`` command line (Typer + Rich): the app, its commands and the exit codes.

Each command lives in its module under ``starter/commands/`` (named for the command);
``_mount_commands`` mounts them once per process, in the order ``hvlab --help`` lists them.
No module imports this one back: what the commands share lives in the lower modules of
``starter`` (``console``, ``options``, ``runs``, ``checks``, ``stack``, ``schedules``, ...).

Exit codes: 0 success, 1 the operation failed, 2 bad input (invalid lab file, bad option,
unknown id). ``main`` ends the process with ``os._exit`` after flushing: a temporalio Client in
a short process can otherwise crash at interpreter shutdown (SIGSEGV/SIGABRT under load).
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

import typer

from hvlab.specfile import SpecError
from starter.console import UsageProblem, err, report_spec_error

app = typer.Typer(
    name="hvlab",
    help="Build and operate Hyper-V training labs as durable Temporal workflows.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: flags render as flags (Rich help shows "<bool>")
)

_mounted = False


def _mount_commands() -> None:
    """Register every command and command group, once per process.

    ``app`` is module-global: mounting on every ``run()`` appended every command again, so an
    in-process caller (the tests, a long-lived wrapper) saw the app grow and slow down per call.
    The command modules are imported here, not at the top, so importing this module stays
    cheap.
    """
    global _mounted
    if _mounted:
        return
    from starter.commands import (
        codec,
        demo,
        dev,
        doctor,
        down,
        failover,
        health,
        migrate,
        plan,
        reset,
        run,
        schedule,
        sim,
        up,
        watch,
    )

    commands = (
        ("plan", plan.plan), ("schema", plan.schema),
        ("worker", dev.worker_command),
        ("doctor", doctor.doctor_command), ("host-setup", doctor.host_setup_command),
        ("up", up.up),
        ("watch", watch.watch), ("status", watch.status), ("cancel", watch.cancel),
        ("history", watch.history),
        ("migrate", migrate.migrate), ("replicate", migrate.replicate),
        ("failover", failover.failover), ("failback", failover.failback),
        ("converge", up.converge), ("approve", failover.approve),
        ("demo", demo.demo),
        ("run", run.run),
        ("checkpoint", reset.checkpoint), ("reset", reset.reset), ("down", down.down),
        ("health", health.health),
        ("codec-server", codec.codec_server),
    )
    for name, command in commands:
        app.command(name)(command)
    groups = (("dev", dev.dev_app), ("schedule", schedule.schedule_app), ("sim", sim.sim_app),
              ("codec", codec.codec_app))
    for name, group in groups:
        app.add_typer(group, name=name)
    _mounted = True


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
        _mount_commands()
        result = app(args=argv, standalone_mode=False, prog_name="hvlab")
        return result if isinstance(result, int) else 0
    except SpecError as exc:
        return report_spec_error(exc)
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
