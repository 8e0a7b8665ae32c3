"""Binding, confirmation prompts, warning preference and error types, seen through pypsrp.

Each test drives the simulated fleet as a real client does (WinRM, NTLM, PSRP with no host),
and fails when its rule is removed from the fleet (docs/simulator-fidelity.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from pypsrp.complex_objects import PSInvocationState
from pypsrp.powershell import PowerShell

from simulator.fleet import Fleet
from tests.sim.conftest import PS, hyperv_ready

HV = "Microsoft.HyperV.PowerShell.Commands."
VIRTUALIZATION = "Microsoft.HyperV.PowerShell.VirtualizationException"
HOST_EXCEPTION = "System.Management.Automation.Host.HostException"


@pytest.fixture
def svr1(fleet: Fleet) -> Iterator[PS]:
    """SVR1 with Hyper-V, its folders and switches (set up in-process), and a pypsrp pool."""
    with fleet.sim.lock:
        hyperv_ready(fleet.sim, "SVR1")
    endpoint = json.loads((fleet.dir / "endpoints.json").read_text())["hosts"]["SVR1"]
    session = PS(endpoint)
    yield session
    session.close()


def invoke(session: PS, name: str, *positional: Any, **params: Any) -> PowerShell:
    """One cmdlet with positional arguments (add_argument) and named parameters."""
    ps = PowerShell(session.pool)
    ps.add_cmdlet(name)
    for value in positional:
        ps.add_argument(value)
    for key, value in params.items():
        ps.add_parameter(key, value)
    ps.invoke()
    return ps


def failure(ps: PowerShell) -> Any:
    """The ErrorRecord of a failed pipeline."""
    assert ps.state == PSInvocationState.FAILED, [str(e) for e in ps.streams.error]
    return ps.streams.error[0]


def exception_type(record: Any) -> str:
    return str(record.exception.types[0])


def new_vm(session: PS, name: str) -> None:
    ps = invoke(session, "New-VM", Name=name, MemoryStartupBytes=512 * 1024**2, Generation=1)
    assert ps.state == PSInvocationState.COMPLETED, [str(e) for e in ps.streams.error]


# -- binding ---------------------------------------------------------------------------------


def test_positional_argument_binds_the_parameter_at_its_position(svr1: PS) -> None:
    """`Get-VM x` binds -Name (position 0), so the not-found error names the VM."""
    new_vm(svr1, "pos1")
    found = invoke(svr1, "Get-VM", "pos1")
    assert found.state == PSInvocationState.COMPLETED and not found.streams.error
    assert [vm.adapted_properties["Name"] for vm in found.output] == ["pos1"]
    missing = invoke(svr1, "Get-VM", "nope")
    [record] = missing.streams.error
    assert record.fq_error == f"InvalidParameter,{HV}GetVM"
    assert record.target_name == "nope"
    extra = failure(invoke(svr1, "Get-VM", "pos1", "pos2"))
    assert extra.fq_error == f"PositionalParameterNotFound,{HV}GetVM"
    assert exception_type(extra) == "System.Management.Automation.ParameterBindingException"


def test_whatif_and_confirm_exist_only_with_shouldprocess(svr1: PS) -> None:
    """Get-VM does not support ShouldProcess: -WhatIf is NamedParameterNotFound there."""
    for name, value in (("WhatIf", True), ("Confirm", False)):
        record = failure(invoke(svr1, "Get-VM", **{name: value}))
        assert record.fq_error == f"NamedParameterNotFound,{HV}GetVM"
        assert str(record) == f"A parameter cannot be found that matches parameter name '{name}'."
    assert invoke(svr1, "New-VM", Name="wi", WhatIf=True).state == PSInvocationState.COMPLETED


def test_binding_errors_name_the_dotnet_command_type(svr1: PS) -> None:
    record = failure(invoke(svr1, "New-VM", Name="x", Bogus=1))
    assert record.fq_error == f"NamedParameterNotFound,{HV}NewVM"
    record = failure(invoke(svr1, "Get-SmbShare", Bogus=1))  # a CDXML function: its name
    assert record.fq_error == "NamedParameterNotFound,Get-SmbShare"


# -- confirmation prompts --------------------------------------------------------------------


def test_remove_vm_prompts_unless_forced(svr1: PS, fleet: Fleet) -> None:
    """Remove-VM asks (ShouldContinue) unless -Force; -Confirm:$false does not answer it; with
    no host UI the prompt is a HostException and the VM stays."""
    new_vm(svr1, "gone")
    for extra in ({}, {"Confirm": False}):
        record = failure(invoke(svr1, "Remove-VM", Name="gone", **extra))
        assert record.fq_error == f"HostFunctionNotImplemented,{HV}RemoveVM"
        assert exception_type(record) == HOST_EXCEPTION
        assert record.category == 11  # NotImplemented
        assert 'remove virtual machine "gone"' in str(record)
        assert fleet.sim.host("SVR1").vm("gone") is not None
    forced = invoke(svr1, "Remove-VM", Name="gone", Force=True)
    assert forced.state == PSInvocationState.COMPLETED
    assert fleet.sim.host("SVR1").vm("gone") is None


def test_restore_checkpoint_prompts_unless_confirm_false(svr1: PS, fleet: Fleet) -> None:
    """Restore-VMSnapshot is ConfirmImpact High: it asks unless -Confirm:$false."""
    new_vm(svr1, "ck")
    done = invoke(svr1, "Checkpoint-VM", Name="ck", SnapshotName="base")
    assert done.state == PSInvocationState.COMPLETED
    record = failure(invoke(svr1, "Restore-VMSnapshot", "base", "ck"))
    assert record.fq_error == f"HostFunctionNotImplemented,{HV}RestoreVMSnapshot"
    assert 'restore checkpoint "base"' in str(record)
    alias = failure(invoke(svr1, "Restore-VMCheckpoint", Name="base", VMName="ck"))
    assert alias.fq_error == f"HostFunctionNotImplemented,{HV}RestoreVMSnapshot"
    restored = invoke(svr1, "Restore-VMSnapshot", Name="base", VMName="ck", Confirm=False)
    assert restored.state == PSInvocationState.COMPLETED, [str(e) for e in restored.streams.error]


def test_explicit_confirm_prompts_even_for_low_impact(svr1: PS) -> None:
    record = failure(invoke(svr1, "New-VM", Name="asked", Confirm=True))
    assert record.fq_error == f"HostFunctionNotImplemented,{HV}NewVM"


def test_smb_share_access_prompts_unless_forced_or_not_confirmed(svr1: PS, fleet: Fleet) -> None:
    """Grant-SmbShareAccess is ConfirmImpact High: -Force or -Confirm:$false answer it."""
    made = invoke(svr1, "New-Item", ItemType="Directory", Path="C:\\smbtest")
    assert made.state == PSInvocationState.COMPLETED
    shared = invoke(svr1, "New-SmbShare", Name="smbtest", Path="C:\\smbtest")
    assert shared.state == PSInvocationState.COMPLETED, [str(e) for e in shared.streams.error]
    grant = {"Name": "smbtest", "AccountName": ["Everyone"], "AccessRight": "Full"}
    record = failure(invoke(svr1, "Grant-SmbShareAccess", **grant))
    assert record.fq_error == "HostFunctionNotImplemented,Grant-SmbShareAccess"
    assert "Performing operation 'Modify' on Target 'SVR1,smbtest'" in str(record)
    for answer in ({"Force": True}, {"Confirm": False}):
        done = invoke(svr1, "Grant-SmbShareAccess", **grant, **answer)
        assert done.state == PSInvocationState.COMPLETED, [str(e) for e in done.streams.error]
    removed = failure(invoke(svr1, "Remove-SmbShare", Name="smbtest"))
    assert removed.fq_error == "HostFunctionNotImplemented,Remove-SmbShare"
    assert invoke(svr1, "Remove-SmbShare", Name="smbtest", Force=True).state == (
        PSInvocationState.COMPLETED
    )


# -- warnings --------------------------------------------------------------------------------


def test_warning_action_and_warning_preference(svr1: PS, fleet: Fleet) -> None:
    """Test-NetConnection's warning for a name that does not resolve: shown by default, not
    with -WarningAction SilentlyContinue, nor after `$WarningPreference = 'SilentlyContinue'`
    in the same runspace (another runspace keeps the default)."""
    probe = {"ComputerName": "no-such-host"}
    shown = invoke(svr1, "Test-NetConnection", **probe)
    assert [str(w) for w in shown.streams.warning] == ["Name resolution of no-such-host failed"]
    quiet = invoke(svr1, "Test-NetConnection", **probe, WarningAction="SilentlyContinue")
    assert quiet.state == PSInvocationState.COMPLETED and not quiet.streams.warning
    stop = failure(invoke(svr1, "Test-NetConnection", **probe, WarningAction="Stop"))
    assert exception_type(stop) == "System.Management.Automation.ActionPreferenceStopException"
    ps = PowerShell(svr1.pool)
    ps.add_script("$WarningPreference = 'SilentlyContinue'")
    ps.invoke()
    assert ps.state == PSInvocationState.COMPLETED
    assert not invoke(svr1, "Test-NetConnection", **probe).streams.warning
    endpoint = json.loads((fleet.dir / "endpoints.json").read_text())["hosts"]["SVR1"]
    other = PS(endpoint)
    try:
        assert invoke(other, "Test-NetConnection", **probe).streams.warning
    finally:
        other.close()


# -- error types -----------------------------------------------------------------------------


def test_hyperv_errors_are_virtualization_exceptions(svr1: PS) -> None:
    """Non-terminating and terminating Hyper-V errors carry VirtualizationException."""
    missing = invoke(svr1, "Get-VM", Name="nope")
    [record] = missing.streams.error
    assert exception_type(record) == VIRTUALIZATION
    assert record.reason == "VirtualizationException"
    stop = failure(invoke(svr1, "Get-VM", Name="nope", ErrorAction="Stop"))
    assert exception_type(stop) == VIRTUALIZATION
    assert stop.message == "ObjectNotFound: (nope:String) [Get-VM], VirtualizationException" or (
        stop.reason == "VirtualizationException"
    )
