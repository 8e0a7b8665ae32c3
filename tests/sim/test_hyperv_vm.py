"""VM rules: memory, disks, switches, NICs, heartbeat, checkpoints, SMB placement."""

from __future__ import annotations

from simulator.engine import Sim
from simulator.pstypes import prop
from simulator.world import Ace
from tests.sim.conftest import GB, MB, hyperv_ready, join_domain, lab_with_vm, run

GOLD = "C:\\Golden\\win2003-sysprep.vhdx"
DISK = "C:\\Hyper-V\\VHDs\\win2003-1.vhdx"


def vm_with_disk(sim: Sim, name: str = "win2003-1", memory: int = 512 * MB) -> None:
    hyperv_ready(sim, "SVR1")
    assert run(sim, "SVR1", "Copy-Item", Path=GOLD, Destination=DISK).ok
    result = run(
        sim,
        "SVR1",
        "New-VM",
        Name=name,
        Generation=1,
        MemoryStartupBytes=memory,
        VHDPath=DISK,
        Path="C:\\Hyper-V",
        SwitchName="External",
    )
    assert result.ok, result.failure


def test_new_vm_places_files_and_takes_the_guest_os_from_the_disk(sim: Sim) -> None:
    vm_with_disk(sim)
    vm = sim.host("SVR1").vm("win2003-1")
    assert vm.path == "C:\\Hyper-V\\win2003-1" and vm.guest.os == "windows-legacy"
    assert vm.nics[0].mac == "000000000000"  # dynamic MAC assigned at first start
    assert sim.host("SVR1").folder_exists("C:\\Hyper-V\\win2003-1\\Virtual Machines")


def test_vhdx_cannot_be_attached_to_two_vms(sim: Sim) -> None:
    vm_with_disk(sim)
    result = run(sim, "SVR1", "New-VM", Name="other", VHDPath=DISK)
    assert "because it is being used by another process.' (0x80070020)" in result.failure
    assert sim.host("SVR1").vm("other") is None


def test_missing_switch_is_refused(sim: Sim) -> None:
    hyperv_ready(sim, "SVR1")
    result = run(sim, "SVR1", "New-VM", Name="x", SwitchName="Nope")
    assert result.failure == 'Hyper-V was unable to find a virtual switch with name "Nope".'


def test_start_needs_free_host_memory(sim: Sim) -> None:
    vm_with_disk(sim, memory=15 * GB)
    result = run(sim, "SVR1", "Start-VM", Name="win2003-1")
    vm_id = sim.host("SVR1").vm("win2003-1").id.upper()
    assert result.errors == [
        "'win2003-1' failed to start.\n"
        "'win2003-1' could not initialize.\n"
        "Not enough memory in the system to start the virtual machine win2003-1.\n"
        f"'win2003-1' failed to start. (Virtual machine ID {vm_id})\n"
        f"'win2003-1' could not initialize. (Virtual machine ID {vm_id})\n"
        "Not enough memory in the system to start the virtual machine win2003-1 with ram "
        f"size 15360 megabytes. (Virtual machine ID {vm_id})"
    ]
    assert result.error_ids[0].startswith("OutOfMemory,")  # as real Start-VM output shows
    assert sim.host("SVR1").vm("win2003-1").state == "Off"


def test_start_needs_free_memory_not_just_total(sim: Sim) -> None:
    """Memory of running VMs counts (16 GB host, 2 GB kept by the parent): an 8 GB VM fits
    the host but not what a running 7 GB VM leaves free; once that VM is off it starts."""
    vm_with_disk(sim, memory=8 * GB)
    assert run(sim, "SVR1", "New-VM", Name="other", MemoryStartupBytes=7 * GB).ok
    assert run(sim, "SVR1", "Start-VM", Name="other").ok
    result = run(sim, "SVR1", "Start-VM", Name="win2003-1")
    assert "Not enough memory in the system to start the virtual machine win2003-1 with ram " \
        "size 8192 megabytes" in result.failure
    assert run(sim, "SVR1", "Stop-VM", Name="other", TurnOff=None).ok
    assert run(sim, "SVR1", "Start-VM", Name="win2003-1").ok


def test_start_assigns_macs_and_heartbeat_follows_the_guest(sim: Sim) -> None:
    vm_with_disk(sim)
    assert run(sim, "SVR1", "Start-VM", Name="win2003-1").ok
    vm = run(sim, "SVR1", "Get-VM", Name="win2003-1").output[0]
    assert prop(vm, "State").name == "Running"
    assert prop(vm, "Heartbeat").name == "NoContact"  # 2003 guest on a 2022 host
    assert sim.host("SVR1").vm("win2003-1").nics[0].mac.startswith("00155D")
    assert run(sim, "SVR1", "New-VM", Name="w2022", MemoryStartupBytes=GB).ok
    assert run(sim, "SVR1", "Start-VM", Name="w2022").ok
    w = run(sim, "SVR1", "Get-VM", Name="w2022").output[0]
    assert prop(w, "Heartbeat").name == "OkApplicationsHealthy"


def test_switch_in_use_by_running_vm_cannot_be_removed(sim: Sim) -> None:
    vm_with_disk(sim)
    assert run(sim, "SVR1", "Start-VM", Name="win2003-1").ok
    result = run(sim, "SVR1", "Remove-VMSwitch", Name="External", Force=None)
    assert result.errors == [
        "The virtual switch 'External' cannot be deleted because it is being "
        "used by running virtual machines or assigned to child pools."
    ]
    assert run(sim, "SVR1", "Stop-VM", Name="win2003-1", TurnOff=None).ok
    assert run(sim, "SVR1", "Remove-VMSwitch", Name="External", Force=None).ok
    assert sim.host("SVR1").adapters["Ethernet0"].ips[0].address == "192.168.1.110/24"


def test_legacy_nic_rules(sim: Sim) -> None:
    vm_with_disk(sim)
    assert run(
        sim,
        "SVR1",
        "Add-VMNetworkAdapter",
        VMName="win2003-1",
        Name="Internal",
        SwitchName="Internal",
        IsLegacy=True,
    ).ok
    assert run(sim, "SVR1", "New-VM", Name="g2", Generation=2, MemoryStartupBytes=GB).ok
    gen2 = run(sim, "SVR1", "Add-VMNetworkAdapter", VMName="g2", IsLegacy=True)
    assert "generation 2" in gen2.failure
    nics = run(sim, "SVR1", "Get-VMNetworkAdapter", VMName="win2003-1").output
    assert [(prop(n, "Name"), prop(n, "SwitchName"), prop(n, "IsLegacy")) for n in nics] == [
        ("Network Adapter", "External", False),
        ("Internal", "Internal", True),
    ]


def test_graceful_stop_needs_integration_services(sim: Sim) -> None:
    vm_with_disk(sim)
    assert run(sim, "SVR1", "Start-VM", Name="win2003-1").ok
    assert "shutdown integration service" in run(sim, "SVR1", "Stop-VM", Name="win2003-1").failure
    assert run(sim, "SVR1", "Stop-VM", Name="win2003-1", Force=None).ok


def test_remove_vm_keeps_disks_and_needs_it_off(sim: Sim) -> None:
    vm_with_disk(sim)
    assert run(sim, "SVR1", "Start-VM", Name="win2003-1").ok
    assert run(sim, "SVR1", "Remove-VM", Name="win2003-1", Force=None).errors
    assert run(sim, "SVR1", "Stop-VM", Name="win2003-1", TurnOff=None).ok
    assert run(sim, "SVR1", "Remove-VM", Name="win2003-1", Force=None).ok
    assert sim.host("SVR1").file(DISK) is not None


def test_checkpoint_restore_brings_back_vm_and_guest(sim: Sim) -> None:
    vm_with_disk(sim)
    assert run(sim, "SVR1", "Checkpoint-VM", Name="win2003-1", SnapshotName="baseline").ok
    vm = sim.host("SVR1").vm("win2003-1")
    vm.guest.registry[vm.guest.RDP_KEY]["PortNumber"] = 35000
    assert run(sim, "SVR1", "Set-VM", Name="win2003-1", MemoryStartupBytes=1024 * MB).ok
    assert run(
        sim, "SVR1", "Restore-VMSnapshot", VMName="win2003-1", Name="baseline", Confirm=False
    ).ok
    vm = sim.host("SVR1").vm("win2003-1")
    assert vm.memory_startup == 512 * MB and vm.guest.rdp_port == 3389
    snaps = run(sim, "SVR1", "Get-VMCheckpoint", VMName="win2003-1").output
    assert [prop(s, "Name") for s in snaps] == ["baseline"]


def test_differencing_disk_from_golden(sim: Sim) -> None:
    hyperv_ready(sim, "SVR1")
    result = run(
        sim, "SVR1", "New-VHD", Path="C:\\Hyper-V\\VHDs\\d.vhdx", ParentPath=GOLD, Differencing=None
    )
    assert result.ok and prop(result.output[0], "VhdType").name == "Differencing"
    assert prop(result.output[0], "ParentPath") == GOLD
    again = run(sim, "SVR1", "New-VHD", Path="C:\\Hyper-V\\VHDs\\d.vhdx", SizeBytes=GB)
    assert "The file exists. (0x80070050)" in again.failure


def test_vm_on_smb_needs_rights_and_delegation(sim: Sim) -> None:
    """New-VM -Path \\\\DC1\\smb: computer-account rights and cifs/DC1 delegation (event 13000)."""
    join_domain(sim, "SVR1")
    hyperv_ready(sim, "SVR1")
    assert run(sim, "DC1", "New-Item", ItemType="Directory", Path="C:\\smb").ok
    from simulator.world import Share

    sim.world.shares["DC1"]["smb"] = Share(
        name="smb",
        path="C:\\smb",
        share_acl=[
            Ace(account="KOSA\\SVR1$", right="Full"),
            Ace(account="BUILTIN\\Administrators"),
        ],
    )
    denied = run(sim, "SVR1", "New-VM", Name="s", Path="\\\\DC1\\smb")
    assert "General access denied error (0x80070005)" in denied.failure
    sim.host("DC1").ntfs_acls["c:\\smb"] = [Ace(account="KOSA\\SVR1$", right="FullControl")]
    assert "0x80070005" in run(sim, "SVR1", "New-VM", Name="s", Path="\\\\DC1\\smb").failure
    comp = sim.world.ad.computer("SVR1")
    comp.allowed_to_delegate_to, comp.trusted_to_auth_for_delegation = ["cifs/DC1.kosa.vm"], True
    assert run(sim, "SVR1", "New-VM", Name="s", Path="\\\\DC1\\smb").ok
    assert sim.host("DC1").folder_exists("C:\\smb\\s\\Virtual Machines")


def test_connect_nic_by_name_list(sim: Sim) -> None:
    """Connect-VMNetworkAdapter takes -Name as String[] (as Hyper-V declares it)."""
    lab_with_vm(sim, "vm1", "SVR1")
    assert run(sim, "SVR1", "Stop-VM", Name="vm1", TurnOff=None).ok
    assert run(sim, "SVR1", "Add-VMNetworkAdapter", VMName="vm1", Name="nicA").ok
    result = run(sim, "SVR1", "Connect-VMNetworkAdapter", VMName="vm1", Name=["nicA"],
                 SwitchName="Internal")
    assert result.ok, result.errors
    vm = sim.host("SVR1").vm("vm1")
    assert vm is not None and vm.nic("nicA").switch == "Internal"  # type: ignore[union-attr]
    missing = run(sim, "SVR1", "Connect-VMNetworkAdapter", VMName="vm1", Name=["nope"],
                  SwitchName="Internal")
    assert any('name "nope"' in e for e in missing.errors)


def test_secure_boot_template_decides_whether_a_gen2_linux_guest_boots(sim: Sim) -> None:
    """New-VM's Secure Boot template (MicrosoftWindows) does not trust a Linux shim: the VM
    shows Running but stays in firmware (no heartbeat, no network). Firmware changes only
    while the VM is off; with the UEFI CA template the guest boots. Generation 1 has none."""
    from simulator import reachability

    hyperv_ready(sim, "SVR2")
    disk = "C:\\Hyper-V\\VHDs\\Linux01.vhdx"
    assert run(sim, "SVR2", "Copy-Item", Path="C:\\Golden\\linux01.vhdx", Destination=disk).ok
    assert run(sim, "SVR2", "New-VM", Name="Linux01", Generation=2, MemoryStartupBytes=GB,
               VHDPath=disk, SwitchName="External").ok
    firmware = run(sim, "SVR2", "Get-VMFirmware", VMName="Linux01").output[0]
    assert (prop(firmware, "SecureBoot").name, prop(firmware, "SecureBootTemplate")) == (
        "On", "MicrosoftWindows")
    assert str(prop(firmware, "SecureBootTemplateId")) == "1734c6e8-3154-4dda-ba5f-a874cc483422"
    assert run(sim, "SVR2", "Start-VM", Name="Linux01").ok
    vm = sim.host("SVR2").vm("Linux01")
    assert vm is not None
    assert vm.state == "Running" and not reachability.vm_up(vm, sim.clock.now())
    refused = run(sim, "SVR2", "Set-VMFirmware", VMName="Linux01",
                  SecureBootTemplate="MicrosoftUEFICertificateAuthority")
    assert refused.errors == [
        "The operation cannot be performed while the object is in its current state."]
    assert run(sim, "SVR2", "Stop-VM", Name="Linux01", TurnOff=None).ok
    assert run(sim, "SVR2", "Set-VMFirmware", VMName="Linux01", EnableSecureBoot="On",
               SecureBootTemplate="MicrosoftUEFICertificateAuthority").ok
    assert run(sim, "SVR2", "Start-VM", Name="Linux01").ok
    assert reachability.vm_up(vm, sim.clock.now())
    vm_with_disk(sim)  # win2003-1, generation 1
    gen1 = run(sim, "SVR1", "Get-VMFirmware", VMName="win2003-1")
    assert gen1.output == [] and "generation 1" in gen1.errors[0]
