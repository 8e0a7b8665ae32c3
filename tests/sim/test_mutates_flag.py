"""Whether a command changes the world is one flag on its handler (``Entry.mutates``, a native
program's ``NativeProgram.mutates``): the engine saves the world by it, and the counts tests
and the chaos run compare (``engine.mutating_counts``) follow it."""

from __future__ import annotations

from pathlib import Path

from hvlab.powershell.catalog import Catalog
from simulator.engine import Sim, default_registry, mutates, mutating_counts
from simulator.protocol import CommandCall, Parameter
from tests.sim.conftest import call, run_pipeline

# Cmdlets that declare SupportsShouldProcess (-WhatIf/-Confirm) although they change nothing
# on the host. Compare-VM only reports whether a VM could be imported or moved ("Compare-VM",
# Microsoft Learn: "Compares a virtual machine and a virtual machine host for compatibility");
# the SMB cmdlets are CDXML, which gives every cmdlet -WhatIf/-Confirm ("Get-SmbShareAccess",
# Microsoft Learn, lists -WhatIf and -Confirm).
READ_ONLY_WITH_WHATIF = {"compare-vm", "get-smbshareaccess"}


def native(program: str, *args: str) -> CommandCall:
    return CommandCall(program, False, tuple(Parameter(None, a) for a in args))


def saved_by(sim: Sim, state: Path, command: CommandCall) -> bool:
    state.unlink(missing_ok=True)
    result = run_pipeline(sim, "SVR1", command)
    assert result.terminating is None, result.terminating
    return state.exists()


def test_the_world_is_saved_after_exactly_the_commands_whose_handler_mutates(
    sim: Sim, tmp_path: Path
) -> None:
    sim.state_path = tmp_path / "state.json"
    assert not saved_by(sim, sim.state_path, call("Test-Path", Path="C:\\"))
    assert not saved_by(sim, sim.state_path, call("Resolve-DnsName", Name="SVR2"))
    assert not saved_by(sim, sim.state_path, native("ping", "-n", "1", "SVR2"))
    assert saved_by(sim, sim.state_path, call("New-Item", ItemType="Directory", Path="C:\\x"))
    assert saved_by(sim, sim.state_path, native("klist", "purge", "-li", "0x3e7"))


def test_mutating_counts_follow_the_handlers_flags() -> None:
    registry = default_registry()
    counters = {"SVR1": {"Resolve-DnsName": 3, "Receive-Job": 1, "Wait-Job": 1, "Get-VM": 4,
                         "Copy-Item": 2, "guest/probe": 5, "host/ntfs-grant": 1, "ping.exe": 2,
                         "klist.exe": 1, "Frobnicate-Thing": 1},
                "SVR2": {"Get-VM": 1}}
    assert mutating_counts(registry, counters) == {
        "SVR1": {"Copy-Item": 2, "host/ntfs-grant": 1, "klist.exe": 1, "Frobnicate-Thing": 1},
        "SVR2": {},
    }


def test_the_flag_agrees_with_should_process_support() -> None:
    """A cmdlet that changes the system supports ShouldProcess (-WhatIf, -Confirm): Microsoft
    Learn, "Requesting Confirmation from Cmdlets" / "Required Development Guidelines" (RD04,
    "Support Confirmation Requests"). The catalogue records that support per cmdlet; every
    registered flag agrees with it, but for the read-only cmdlets listed above."""
    catalog = Catalog.load()
    registry = default_registry()
    disagree = {
        name for name, entry in registry.cmdlets.items()
        if catalog.exists(name)
        and entry.mutates != catalog.cmdlet(name).supports_should_process
    }
    assert disagree == READ_ONLY_WITH_WHATIF
    assert not any(mutates(registry, name) for name in READ_ONLY_WITH_WHATIF)
