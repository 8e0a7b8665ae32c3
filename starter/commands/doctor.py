"""``hvlab doctor`` and ``hvlab host-setup``: is everything ready, and how to make a fresh
host reachable.

``doctor`` runs the checks of :mod:`starter.checks` (Temporal, namespace, pollers, a real
round trip; with a lab file each host's preflight) and exits 1 when one fails. ``host-setup``
prints the one-time PowerShell for a host's console.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from hvlab.settings import get_settings
from starter.checks import host_checks, print_json, print_report, temporal_checks
from starter.console import UsageProblem


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
