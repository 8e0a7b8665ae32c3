"""What every command shares to talk to the operator: the two consoles (stdout, stderr), the
usage problem (bad input that is not a lab-file problem: one line, exit 2) and how an invalid
lab file is reported (each problem with its YAML path and line, exit 2).

Imports no command module (``starter/commands/``) and nothing of ``starter.cli``.
"""

from __future__ import annotations

from rich.console import Console

from hvlab.specfile import SpecError

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class UsageProblem(Exception):
    """Bad input that is not a lab-file problem; printed as one line, exit 2."""


def report_spec_error(exc: SpecError) -> int:
    """Print an invalid lab file's problems on stderr; the exit code (2)."""
    err.print(f"[red]invalid lab file[/] {exc.source}: {len(exc.issues)} problem(s)")
    for issue in exc.issues:
        err.print(f"  {issue}", markup=False)
    return 2
