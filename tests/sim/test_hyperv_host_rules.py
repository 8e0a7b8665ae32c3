"""Host cmdlets and engine rules: features, reboots, module gating, domain join, files,
common parameters, pipelines."""

from __future__ import annotations

from simulator.engine import Sim
from simulator.pstypes import prop
from tests.sim.conftest import call, domain_admin, hyperv_ready, join_domain, run, run_pipeline

NOT_RECOGNIZED = (
    "The term 'Get-VM' is not recognized as the name of a cmdlet, function, script "
    "file, or operable program. Check the spelling of the name, or if a path was "
    "included, verify that the path is correct and try again."
)


def test_hyperv_cmdlets_exist_only_after_install_and_reboot(sim: Sim) -> None:
    assert run(sim, "SVR1", "Get-VM").failure == NOT_RECOGNIZED
    result = run(sim, "SVR1", "Install-WindowsFeature", Name="Hyper-V", IncludeManagementTools=None)
    assert result.ok and prop(result.output[0], "RestartNeeded").name == "Yes"
    assert prop(result.output[0], "ExitCode").name == "SuccessRestartRequired"
    feature = run(sim, "SVR1", "Get-WindowsFeature", Name="Hyper-V").output[0]
    assert prop(feature, "InstallState").name == "InstallPending"
    assert run(sim, "SVR1", "Get-VM").failure == NOT_RECOGNIZED
    assert run(sim, "SVR1", "Restart-Computer", Force=None).ok
    assert run(sim, "SVR1", "Get-VM").ok
    assert sim.host("SVR1").services["vmms"] == "Running"


def test_without_management_tools_there_is_no_module(sim: Sim) -> None:
    run(sim, "SVR1", "Install-WindowsFeature", Name="Hyper-V")
    run(sim, "SVR1", "Restart-Computer")
    assert run(sim, "SVR1", "Get-VM").failure == NOT_RECOGNIZED


def test_hyperv_needs_exposed_virtualization(sim: Sim) -> None:
    sim.host("SVR2").virtualization_exposed = False
    result = run(sim, "SVR2", "Install-WindowsFeature", Name="Hyper-V", IncludeManagementTools=None)
    assert (
        "Hyper-V cannot be installed: The processor does not have required virtualization "
        "capabilities." in result.failure
    )
    assert not sim.host("SVR2").pending_features


def test_active_directory_module_only_on_the_dc(sim: Sim) -> None:
    assert "is not recognized" in run(sim, "SVR1", "Get-ADComputer", Identity="SVR1").failure
    assert "is not recognized" not in run(sim, "DC1", "Get-ADComputer", Identity="SVR1").failure


def test_unknown_parameter_uses_the_binder_text(sim: Sim) -> None:
    result = run(sim, "SVR1", "Get-Service", Nme="x")
    assert result.failure == "A parameter cannot be found that matches parameter name 'Nme'."


def test_domain_join_needs_dns_then_takes_effect_at_reboot(sim: Sim) -> None:
    failed = run(sim, "SVR1", "Add-Computer", DomainName="kosa.vm", Credential=domain_admin())
    assert failed.failure.endswith(
        "The specified domain either does not exist or could not be contacted."
    )
    join_domain(sim, "SVR1")
    assert sim.host("SVR1").domain == "kosa.vm"
    assert sim.world.ad.computer("SVR1") is not None
    cs = run(sim, "SVR1", "Get-CimInstance", ClassName="Win32_ComputerSystem").output[0]
    assert prop(cs, "PartOfDomain") is True and prop(cs, "Domain") == "kosa.vm"


def test_join_is_pending_until_reboot(sim: Sim) -> None:
    sim.host("SVR2").adapters["Ethernet0"].dns = [sim.world.dc().address]
    result = run(sim, "SVR2", "Add-Computer", DomainName="kosa.vm", Credential=domain_admin())
    assert result.warnings == ["The changes will take effect after you restart the computer SVR2."]
    assert sim.host("SVR2").domain is None and sim.world.ad.computer("SVR2") is not None


def test_error_action_stop_silently_continue(sim: Sim) -> None:
    hyperv_ready(sim, "SVR1")
    assert run(sim, "SVR1", "Get-VM", Name="nope").errors == [
        'Hyper-V was unable to find a virtual machine with name "nope".'
    ]
    assert run(sim, "SVR1", "Get-VM", Name="nope", ErrorAction="SilentlyContinue").ok
    stop = run(sim, "SVR1", "Get-VM", Name="nope", ErrorAction="Stop")
    assert stop.terminating is not None
    assert (
        stop.terminating.error_id == "InvalidParameter,Microsoft.HyperV.PowerShell.Commands.GetVM"
    )


def test_whatif_changes_nothing(sim: Sim) -> None:
    hyperv_ready(sim, "SVR1")
    assert run(sim, "SVR1", "New-VM", Name="x", WhatIf=None).ok
    assert sim.host("SVR1").vm("x") is None


def test_pipeline_get_vm_into_start_vm(sim: Sim) -> None:
    hyperv_ready(sim, "SVR1")
    assert run(sim, "SVR1", "New-VM", Name="a", MemoryStartupBytes=512 * 1024**2).ok
    result = run_pipeline(sim, "SVR1", call("Get-VM", Name="a"), call("Start-VM", Passthru=None))
    assert result.ok and prop(result.output[0], "State").name == "Running"


def test_counters_count_failed_commands(sim: Sim) -> None:
    run(sim, "SVR1", "Get-VM")
    run(sim, "SVR1", "Get-VM")
    assert sim.world.counters["SVR1"]["Get-VM"] == 2


def test_files_and_unc_second_hop(sim: Sim) -> None:
    """A session on SVR1 reaches \\\\DC1\\share only with cifs/DC1 delegation."""
    assert run(sim, "SVR1", "New-Item", ItemType="Directory", Path="C:\\Hyper-V").ok
    again = run(sim, "SVR1", "New-Item", ItemType="Directory", Path="C:\\Hyper-V")
    assert again.errors == ["An item with the specified name C:\\Hyper-V already exists."]
    assert run(sim, "SVR1", "Test-Path", Path="c:\\hyper-v").output == [True]
    assert run(sim, "SVR1", "Test-Path", Path="\\\\DC1\\SYSVOL").output == [False]
    comp = sim.world.ad.add_computer("SVR1")
    comp.allowed_to_delegate_to, comp.trusted_to_auth_for_delegation = ["cifs/DC1"], True
    assert run(sim, "SVR1", "Test-Path", Path="\\\\DC1\\SYSVOL").output == [True]
    missing = run(sim, "SVR1", "Remove-Item", Path="C:\\nope")
    assert missing.errors == ["Cannot find path 'C:\\nope' because it does not exist."]


def test_script_without_implementation_is_an_explicit_gap(sim: Sim) -> None:
    from simulator.protocol import CommandCall, Invocation, TerminatingError
    from tests.sim.conftest import Ctx, Result

    result = Result()
    script = CommandCall("# hvlab-script: guest-ip@1\nparam($X)\n", True)
    try:
        sim.handler("SVR1").invoke(Invocation("SVR1", ((script,),)), Ctx(result))
    except TerminatingError as exc:
        result.terminating = exc
    assert result.failure == "not simulated: script guest-ip"
    assert sim.world.counters["SVR1"]["guest-ip"] == 1


def test_external_switch_without_management_os_cuts_the_host_off(sim: Sim) -> None:
    """New-VMSwitch External -AllowManagementOS $false on the adapter with the host's address:
    the host's listener goes down (after the answer) until the switch is removed; the host
    hooks Fleet wires to its WinRM server fire."""
    import threading

    hyperv_ready(sim, "SVR2")  # the seed's External switch with $true: nothing happens
    assert sim.cut_off == set()
    down, up = threading.Event(), threading.Event()
    sim.on_host_down = lambda name: down.set() if name == "SVR2" else None
    sim.on_host_up = lambda name: up.set() if name == "SVR2" else None
    assert run(sim, "SVR2", "Remove-VMSwitch", Name="External", Force=None).ok
    result = run(
        sim, "SVR2", "New-VMSwitch", Name="Lan", NetAdapterName="Ethernet0", AllowManagementOS=False
    )
    assert result.ok and prop(result.output[0], "AllowManagementOS") is False
    assert sim.cut_off == {"SVR2"}
    assert down.wait(10)
    host = sim.host("SVR2")
    assert "vEthernet (Lan)" not in host.adapters and host.adapters["Ethernet0"].bound_to_switch
    assert run(sim, "SVR2", "New-VMSwitch", Name="More", SwitchType="Internal").ok
    assert sim.cut_off == {"SVR2"} and not up.is_set()
    assert run(sim, "SVR2", "Remove-VMSwitch", Name="Lan", Force=None).ok
    assert up.is_set() and sim.cut_off == set()
    assert [ip.address for ip in host.adapters["Ethernet0"].ips] == [f"{host.address}/24"]


def test_external_switch_on_another_adapter_keeps_the_host_reachable(sim: Sim) -> None:
    """Only the adapter that carries the management address matters."""
    from simulator.world import HostAdapter, IpAddress

    hyperv_ready(sim, "SVR1")
    sim.host("SVR1").adapters["Ethernet1"] = HostAdapter(
        alias="Ethernet1", description="Intel(R) 82574L Gigabit Network Connection #2",
        mac="00-0C-29-01-4A-20", ips=[IpAddress(address="10.0.0.5/24")],
    )  # fmt: skip
    assert run(
        sim, "SVR1", "New-VMSwitch", Name="Lab", NetAdapterName="Ethernet1", AllowManagementOS=False
    ).ok
    assert sim.cut_off == set()


def test_set_vmswitch_management_os_moves_the_address(sim: Sim) -> None:
    hyperv_ready(sim, "SVR1")
    host = sim.host("SVR1")
    assert run(sim, "SVR1", "Set-VMSwitch", Name="External", AllowManagementOS=False).ok
    assert sim.cut_off == {"SVR1"} and "vEthernet (External)" not in host.adapters
    assert not host.switch("External").allow_management_os  # type: ignore[union-attr]
    passthru = run(
        sim, "SVR1", "Set-VMSwitch", Name="External", AllowManagementOS=True, Passthru=None
    )
    assert passthru.ok and prop(passthru.output[0], "AllowManagementOS") is True
    assert sim.cut_off == set() and host.adapters["Ethernet0"].ips == []
    vnic = host.adapters["vEthernet (External)"]
    assert [ip.address for ip in vnic.ips] == ["192.168.1.110/24"]
    internal = run(sim, "SVR1", "Set-VMSwitch", Name="Internal", AllowManagementOS=False)
    assert internal.failure.startswith("not simulated")
