"""The rules of activities.vm, branch by branch: exact commands, views, drift, conflicts,
idempotency (no mutating command on a rerun), NICs, firmware, power and removal."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from structlog.testing import capture_logs
from temporalio.exceptions import ApplicationError

from activities import vm as vm_module
from activities.models import (
    VmCreateInput,
    VmDiskInput,
    VmFirmwareInput,
    VmInput,
    VmNicInput,
    VmRemoveInput,
)
from activities.vm import VmActivities
from hvlab.powershell.command import SWITCH
from simulator.clock import Clock
from simulator.fleet import Fleet
from simulator.world import Host, path_key
from tests.activities.conftest import mutations
from tests.sim.conftest import GB, MB, hyperv_ready, run

HOST = "SVR1"
GOLDEN = "C:\\Golden\\linux01.vhdx"
UEFI_CA = "MicrosoftUEFICertificateAuthority"


def _disk(name: str, folder: str = "C:\\Hyper-V\\VHDs") -> VmDiskInput:
    return VmDiskInput(host=HOST, vm=name, path=f"{folder}\\{name}.vhdx", golden_path=GOLDEN)


def _vm(acts: VmActivities, name: str, **settings: object) -> VmCreateInput:
    """A copied disk and a VM on it (generation 2, 1 GB unless ``settings`` say otherwise)."""
    disk = _disk(name)
    acts.disk(disk)
    request = VmCreateInput(host=HOST, name=name, disk_path=disk.path,
                            **{"memory_bytes": GB, **settings})  # type: ignore[arg-type]
    acts.create(request)
    return request


def _sim(fleet: Fleet, command: str, **params: object) -> None:
    """Set up host state directly in the simulator (not through the activity under test)."""
    result = run(fleet.sim, HOST, command, **params)
    assert result.ok, result.failure


def _host(fleet: Fleet) -> dict:  # type: ignore[type-arg]
    return fleet.state()["hosts"][HOST]  # type: ignore[no-any-return]


def _meddle(fleet: Fleet, command: str, nth: int, action: Callable[[Host], None]) -> None:
    """Another actor changes the host just before it runs ``command`` for the ``nth`` time
    (through the simulator's per-command hook): a change between a step's act and verify."""
    original, seen = fleet.sim.on_command, [0]

    def hook(host: Host, name: str) -> None:
        if name == command:
            seen[0] += 1
            if seen[0] == nth:
                action(host)
        original(host, name)

    fleet.sim.on_command = hook


def _vm_of(host: Host, name: str):  # type: ignore[no-untyped-def]
    found = host.vm(name)
    assert found is not None
    return found


def _sent(logs: list[dict], cmdlet: str) -> list[str]:  # type: ignore[type-arg]
    """The exact commands (as the session pool describes them) starting with ``cmdlet``."""
    return [e["command"] for e in logs
            if e.get("event") == "remote command" and e["command"].startswith(cmdlet)]


@pytest.fixture
def ready(fleet: Fleet) -> Fleet:
    hyperv_ready(fleet.sim, HOST)
    return fleet


# -- commands and views (pure) ----------------------------------------------------------------


def test_disk_and_vm_commands_are_exact() -> None:
    """The disk and VM commands carry exactly the cmdlet and parameters Hyper-V needs."""
    disk = VmDiskInput(host="h", vm="v", path="C:\\D\\v.vhdx", golden_path="C:\\G\\g.vhdx")
    assert vm_module.copy_disk_command(disk).model_dump() == {
        "cmdlet": "Copy-Item", "parameters": {"Path": "C:\\G\\g.vhdx",
                                              "Destination": "C:\\D\\v.vhdx.hvlab-partial"}}
    assert vm_module.rename_disk_command(disk).model_dump() == {
        "cmdlet": "Rename-Item", "parameters": {"Path": "C:\\D\\v.vhdx.hvlab-partial",
                                                "NewName": "v.vhdx"}}
    assert vm_module.differencing_disk_command(disk).parameters == {
        "Path": "C:\\D\\v.vhdx", "ParentPath": "C:\\G\\g.vhdx", "Differencing": SWITCH}
    assert vm_module.differencing_disk_command(disk).cmdlet == "New-VHD"
    assert vm_module.get_vhd_command("C:\\x.vhdx").describe() == "Get-VHD -Path C:\\x.vhdx"
    assert vm_module.get_vm_command("v").describe() == \
        "Get-VM -Name v -ErrorAction SilentlyContinue"
    create = VmCreateInput(host="h", name="v", generation=1, memory_bytes=512 * MB,
                           disk_path="C:\\D\\v.vhdx", config_path="C:\\VMs", processors=3)
    assert vm_module.new_vm_command(create).describe() == (
        "New-VM -Name v -Generation 1 -MemoryStartupBytes 536870912 -VHDPath C:\\D\\v.vhdx "
        "-Path C:\\VMs")
    assert vm_module.set_processor_command(create).describe() == \
        "Set-VMProcessor -VMName v -Count 3"
    assert vm_module.start_vm_command("v").describe() == "Start-VM -Name v"
    assert vm_module.stop_vm_command("v").describe() == "Stop-VM -Name v -Force"
    assert vm_module.stop_vm_command("v", turn_off=True).describe() == \
        "Stop-VM -Name v -TurnOff -Force"
    assert vm_module.remove_vm_command("v").describe() == "Remove-VM -Name v -Force"
    assert vm_module.attached_disks_command("v").describe() == "Get-VMHardDiskDrive -VMName v"
    assert vm_module.remove_file_command("C:\\x").describe() == "Remove-Item -Path C:\\x -Force"


def test_nic_and_firmware_commands_are_exact() -> None:
    """NIC and firmware commands carry the name, switch, legacy flag, static MAC and the
    Secure Boot On/Off value with its template."""
    nic = VmNicInput(host="h", vm="v", name="Lab", switch="Internal", legacy=True,
                     mac="00155D000001")
    assert vm_module.add_nic_command(nic).model_dump() == {
        "cmdlet": "Add-VMNetworkAdapter",
        "parameters": {"VMName": "v", "Name": "Lab", "SwitchName": "Internal",
                       "IsLegacy": True, "StaticMacAddress": "00155D000001"}}
    assert vm_module.connect_nic_command(nic).describe() == \
        "Connect-VMNetworkAdapter -VMName v -Name Lab -SwitchName Internal"
    assert vm_module.get_nic_command("v").describe() == \
        "Get-VMNetworkAdapter -VMName v -ErrorAction SilentlyContinue"
    assert vm_module.get_nic_command("v", "Lab").describe() == \
        "Get-VMNetworkAdapter -VMName v -Name Lab -ErrorAction SilentlyContinue"
    assert vm_module.remove_nic_command("v", "Lab").describe() == \
        "Remove-VMNetworkAdapter -VMName v -Name Lab"
    assert vm_module.get_firmware_command("v").describe() == "Get-VMFirmware -VMName v"
    on = VmFirmwareInput(host="h", vm="v", template=UEFI_CA)
    assert vm_module.set_firmware_command(on).model_dump()["parameters"] == {
        "VMName": "v", "EnableSecureBoot": "On", "SecureBootTemplate": UEFI_CA}
    off = VmFirmwareInput(host="h", vm="v", secure_boot=False)
    assert vm_module.set_firmware_command(off).cmdlet == "Set-VMFirmware"
    assert vm_module.set_firmware_command(off).parameters["EnableSecureBoot"] == "Off"


def test_parent_folder_of_a_path() -> None:
    """_parent is everything before the last backslash, and empty for a bare or rooted name."""
    assert vm_module._parent("C:\\Hyper-V\\VHDs\\a.vhdx") == "C:\\Hyper-V\\VHDs"
    assert vm_module._parent("\\\\DC1\\smb\\x\\a.vhdx") == "\\\\DC1\\smb\\x"
    assert vm_module._parent("\\X\\a.vhdx") == "\\X"
    assert vm_module._parent("a.vhdx") == ""
    assert vm_module._parent("\\a.vhdx\\") == ""


def test_views_name_each_field() -> None:
    """The observed views map Hyper-V's property names to hvlab's, with strings for enums
    and an empty template when there is none."""
    assert vm_module._vm_view({"Name": "v", "State": "Off", "Generation": 2,
                               "MemoryStartup": GB, "Path": "C:\\VMs\\v"}) == {
        "name": "v", "state": "Off", "generation": 2, "memory_startup": GB,
        "path": "C:\\VMs\\v"}
    assert vm_module._nic_view({"Name": "Lab", "SwitchName": "Internal", "IsLegacy": True,
                                "MacAddress": "00155D000001"}) == {
        "name": "Lab", "switch": "Internal", "legacy": True, "mac": "00155D000001"}
    assert vm_module._firmware_view({"SecureBoot": "On", "SecureBootTemplate": None}) == {
        "secure_boot": "On", "template": ""}
    assert vm_module._firmware_view({"SecureBoot": "Off",
                                     "SecureBootTemplate": "MicrosoftWindows"}) == {
        "secure_boot": "Off", "template": "MicrosoftWindows"}
    assert vm_module._disk_view({"Path": "C:\\a.vhdx", "VhdType": "Dynamic",
                                 "ParentPath": "C:\\g.vhdx", "Size": GB}) == {
        "path": "C:\\a.vhdx", "type": "Dynamic", "parent": "C:\\g.vhdx", "size": GB}


def test_same_firmware_ignores_the_template_only_when_secure_boot_is_off() -> None:
    """Secure Boot must match (any case); the template matters (any case) only when On."""
    same = vm_module._same_firmware
    on_windows = {"secure_boot": "On", "template": "MicrosoftWindows"}
    assert same(on_windows, {"secure_boot": "On", "template": "microsoftwindows"})
    assert same({"secure_boot": "on", "template": "x"}, {"secure_boot": "On", "template": "X"})
    assert not same(on_windows, {"secure_boot": "On", "template": UEFI_CA})
    assert not same(on_windows, {"secure_boot": "Off", "template": "MicrosoftWindows"})
    assert same({"secure_boot": "Off", "template": "MicrosoftWindows"},
                {"secure_boot": "Off", "template": UEFI_CA})
    assert not same({"secure_boot": "Off", "template": UEFI_CA},
                    {"secure_boot": "On", "template": UEFI_CA})


def test_drift_names_generation_and_memory(vm_activities: VmActivities) -> None:
    """_drift lists a generation and a memory difference with both values, nothing when
    both match."""
    request = VmCreateInput(host=HOST, name="v", generation=2, memory_bytes=GB,
                            disk_path="C:\\v.vhdx")
    assert vm_activities._drift(request, {"Generation": 2, "MemoryStartup": GB}) == []
    assert vm_activities._drift(request, {"Generation": 1, "MemoryStartup": 2 * GB}) == [
        "generation 1 != 2", f"memory {2 * GB} != {GB}"]
    assert vm_activities._drift(request, {"Generation": 2, "MemoryStartup": 512 * MB}) == [
        f"memory {512 * MB} != {GB}"]


# -- disk ------------------------------------------------------------------------------------


class _CutClock(Clock):
    """Non-instant, never waits: the first copy block it times cuts the session (the host
    drops every shell and connection and comes straight back), as a reboot or a dropped
    session does mid-copy."""

    def __init__(self, fleet: Fleet) -> None:
        super().__init__(speed=1.0)
        self.fleet, self.cuts = fleet, 0

    def sleep(self, sim_seconds: float) -> None:
        if self.cuts == 0:
            self.cuts += 1
            server = self.fleet.servers[HOST]
            server.go_down()
            server.come_up()


def test_a_cut_disk_copy_never_passes_for_a_finished_disk(
    ready: Fleet, vm_activities: VmActivities
) -> None:
    """The copy goes to a temporary name and is renamed when complete: a copy cut short
    (the host drops the session mid-copy) leaves only the temporary file, so the retry copies
    again and ends with the whole disk under the final name (copying straight to the final
    name, the retry would take the truncated file for a finished disk)."""
    request = _disk("cut")
    golden = ready.sim.host(HOST).file(GOLDEN)
    assert golden is not None
    ready.sim.clock = _CutClock(ready)
    with pytest.raises(ApplicationError) as caught:
        vm_activities.disk(request)
    assert caught.value.type == "HostUnreachable"  # retried by Temporal
    host = ready.sim.host(HOST)
    assert host.file(request.path) is None
    partial = host.file(vm_module.partial_path(request.path))
    assert partial is not None and partial.truncated
    retried = vm_activities.disk(request)
    assert retried.changed
    disk = host.file(request.path)
    assert disk is not None and not disk.truncated and disk.size == golden.size
    assert host.file(vm_module.partial_path(request.path)) is None
    assert retried.observed["type"] == "Dynamic"


def test_disk_copy_makes_its_folder_and_reports_the_vhd(
    ready: Fleet, vm_activities: VmActivities
) -> None:
    """A copy into a missing folder creates the folder, copies once and reports the VHD; a
    rerun is changed=False with the same view and sends nothing."""
    request = _disk("a", "C:\\Hyper-V\\VHDs\\new")
    before = mutations(ready, HOST)
    made = vm_activities.disk(request)
    after = mutations(ready, HOST)
    assert made.changed
    assert made.observed == {"path": request.path, "type": "Dynamic", "parent": None,
                             "size": made.observed["size"]}
    assert isinstance(made.observed["size"], int) and made.observed["size"] > 0
    assert after["New-Item"] == before["New-Item"] + 1 and after["Copy-Item"] == 1
    assert "New-VHD" not in after
    assert "C:\\Hyper-V\\VHDs\\new\\a.vhdx" in _host(ready)["files"]
    again = vm_activities.disk(request)
    assert not again.changed and again.observed == made.observed
    assert mutations(ready, HOST) == after


def test_disk_in_an_existing_folder_makes_no_folder(
    ready: Fleet, vm_activities: VmActivities
) -> None:
    """A copy into a folder that exists sends only Copy-Item (to the temporary name) and the
    Rename-Item that completes it."""
    before = mutations(ready, HOST)
    assert vm_activities.disk(_disk("b")).changed
    assert mutations(ready, HOST) == {**before, "Copy-Item": 1, "Rename-Item": 1}


def test_differencing_disk_is_a_child_of_the_golden_image(
    ready: Fleet, vm_activities: VmActivities
) -> None:
    """Differencing mode sends New-VHD -Differencing (no copy) and reports the parent."""
    request = _disk("c").model_copy(update={"mode": "differencing"})
    made = vm_activities.disk(request)
    assert made.changed and made.observed["type"] == "Differencing"
    assert made.observed["parent"] == GOLDEN and made.observed["path"] == request.path
    counts = mutations(ready, HOST)
    assert counts["New-VHD"] == 1 and "Copy-Item" not in counts


def test_disk_from_a_missing_golden_image_fails(
    ready: Fleet, vm_activities: VmActivities
) -> None:
    """A golden image that is not there fails the step and leaves no disk."""
    request = _disk("d").model_copy(update={"golden_path": "C:\\Golden\\none.vhdx"})
    with pytest.raises(ApplicationError):
        vm_activities.disk(request)
    assert request.path not in _host(ready)["files"]


# -- create ----------------------------------------------------------------------------------


def test_create_sets_memory_processors_path_and_drops_the_default_nic(
    ready: Fleet, vm_activities: VmActivities
) -> None:
    """A new VM gets its generation, Int64 memory, processor count, configuration path and
    disk, loses New-VM's unconnected NIC, is marked as hvlab's (Notes), and reports exactly
    that; a rerun sends nothing."""
    disk = _disk("v1")
    vm_activities.disk(disk)
    request = VmCreateInput(host=HOST, name="v1", generation=2, memory_bytes=2 * GB,
                            disk_path=disk.path, config_path="C:\\Hyper-V\\VMs", processors=2)
    before = mutations(ready, HOST)
    made = vm_activities.create(request)
    assert made.changed and made.observed == {
        "name": "v1", "state": "Off", "generation": 2, "memory_startup": 2 * GB,
        "path": "C:\\Hyper-V\\VMs\\v1", "drift": []}
    after = mutations(ready, HOST)
    assert after == {**before, "New-VM": 1, "Set-VMProcessor": 1,
                     "Remove-VMNetworkAdapter": 1, "Set-VM": 1}  # Set-VM: the created-by mark
    vm = _host(ready)["vms"]["v1"]
    assert vm["processors"] == 2 and vm["memory"] == 2 * GB and vm["generation"] == 2
    assert vm["nics"] == [] and [d["path"] for d in vm["disks"]] == [disk.path]
    again = vm_activities.create(request)
    assert not again.changed and again.observed == made.observed
    assert mutations(ready, HOST) == after


def test_create_generation_1_with_one_processor_sends_no_processor_command(
    ready: Fleet, vm_activities: VmActivities
) -> None:
    """One processor is New-VM's default: no Set-VMProcessor; a generation 1 VM is made as
    generation 1 in the host's default VM folder."""
    disk = _disk("g1")
    vm_activities.disk(disk)
    made = vm_activities.create(VmCreateInput(host=HOST, name="g1", generation=1,
                                              memory_bytes=512 * MB, disk_path=disk.path))
    assert made.observed["generation"] == 1 and made.observed["path"] == "C:\\Hyper-V"
    assert made.observed["memory_startup"] == 512 * MB
    assert "Set-VMProcessor" not in mutations(ready, HOST)
    assert _host(ready)["vms"]["g1"]["processors"] == 1


def test_create_keeps_the_default_nic_when_asked(
    ready: Fleet, vm_activities: VmActivities
) -> None:
    """keep_default_nic leaves New-VM's 'Network Adapter' and sends no removal."""
    disk = _disk("k")
    vm_activities.disk(disk)
    request = VmCreateInput(host=HOST, name="k", memory_bytes=GB, disk_path=disk.path,
                            keep_default_nic=True)
    assert vm_activities.create(request).changed
    assert [n["name"] for n in _host(ready)["vms"]["k"]["nics"]] == ["Network Adapter"]
    assert "Remove-VMNetworkAdapter" not in mutations(ready, HOST)
    assert not vm_activities.create(request).changed


def test_create_drops_the_default_nic_of_an_existing_vm(
    ready: Fleet, vm_activities: VmActivities
) -> None:
    """A VM that exists as asked but still has New-VM's NIC: only the NIC is removed, and
    that is a change."""
    _sim(ready, "New-VM", Name="e", Generation=2, MemoryStartupBytes=GB)
    before = mutations(ready, HOST)
    result = vm_activities.create(VmCreateInput(host=HOST, name="e", memory_bytes=GB,
                                                disk_path="C:\\Hyper-V\\VHDs\\e.vhdx"))
    assert result.changed and result.observed["drift"] == []
    assert mutations(ready, HOST) == {**before, "Remove-VMNetworkAdapter": 1}
    assert _host(ready)["vms"]["e"]["nics"] == []


def test_create_reports_memory_drift_of_an_existing_vm_without_changing_it(
    ready: Fleet, vm_activities: VmActivities
) -> None:
    """An existing VM of the right generation with other memory is reported as drift, not
    changed and not a conflict."""
    _sim(ready, "New-VM", Name="m", Generation=2, MemoryStartupBytes=512 * MB)
    _sim(ready, "Remove-VMNetworkAdapter", VMName="m", Name="Network Adapter")
    before = mutations(ready, HOST)
    result = vm_activities.create(VmCreateInput(host=HOST, name="m", memory_bytes=GB,
                                                disk_path="C:\\Hyper-V\\VHDs\\m.vhdx"))
    assert not result.changed
    assert result.observed["drift"] == [f"memory {512 * MB} != {GB}"]
    assert result.observed["memory_startup"] == 512 * MB
    assert mutations(ready, HOST) == before


def test_create_over_a_vm_of_another_generation_is_a_conflict(
    ready: Fleet, vm_activities: VmActivities
) -> None:
    """A VM of the same name but another generation is a non-retryable Conflict naming both
    generations; nothing is sent."""
    _sim(ready, "New-VM", Name="x", Generation=1, MemoryStartupBytes=GB)
    before = mutations(ready, HOST)
    with pytest.raises(ApplicationError) as caught:
        vm_activities.create(VmCreateInput(host=HOST, name="x", generation=2,
                                           memory_bytes=GB, disk_path="C:\\x.vhdx"))
    assert caught.value.type == "Conflict" and caught.value.non_retryable
    assert caught.value.message == "SVR1: VM x exists as generation 1, not 2"
    assert mutations(ready, HOST) == before


def test_create_fails_permanently_when_new_vm_is_refused(
    ready: Fleet, vm_activities: VmActivities
) -> None:
    """Memory Hyper-V refuses (not a multiple of 2 MB) fails the step and leaves no VM."""
    with pytest.raises(ApplicationError) as caught:
        vm_activities.create(VmCreateInput(host=HOST, name="odd", memory_bytes=GB + MB,
                                           disk_path="C:\\odd.vhdx"))
    assert caught.value.non_retryable and "multiple of 2 MB" in caught.value.message
    assert "odd" not in _host(ready)["vms"]


# -- NICs ------------------------------------------------------------------------------------


def test_nic_is_added_once_with_its_static_mac(
    ready: Fleet, vm_activities: VmActivities
) -> None:
    """A missing NIC is added (switch, static MAC) and reported; a rerun sends nothing."""
    create = _vm(vm_activities, "n1")
    request = VmNicInput(host=HOST, vm="n1", name="Lab", switch="Internal",
                         mac="00155D0000AA")
    before = mutations(ready, HOST)
    added = vm_activities.nic(request)
    assert added.changed and added.observed == {
        "name": "Lab", "switch": "Internal", "legacy": False, "mac": "00155D0000AA"}
    after = mutations(ready, HOST)
    assert after == {**before, "Add-VMNetworkAdapter": 1}
    again = vm_activities.nic(request)
    assert not again.changed and again.observed == added.observed
    assert not vm_activities.create(create).changed, "a lab NIC is not New-VM's default NIC"
    assert mutations(ready, HOST) == after


def test_second_nic_on_the_same_switch_is_added(
    ready: Fleet, vm_activities: VmActivities
) -> None:
    """The NIC is looked up by name: another NIC on the same switch does not count."""
    _vm(vm_activities, "n2")
    vm_activities.nic(VmNicInput(host=HOST, vm="n2", name="A", switch="Internal"))
    second = vm_activities.nic(VmNicInput(host=HOST, vm="n2", name="B", switch="Internal"))
    assert second.changed and second.observed["name"] == "B"
    assert [n["name"] for n in _host(ready)["vms"]["n2"]["nics"]] == ["A", "B"]


def test_nic_on_another_switch_is_connected_not_added(
    ready: Fleet, vm_activities: VmActivities
) -> None:
    """An existing NIC on the wrong switch is reconnected (Connect, no Add) and reported."""
    _vm(vm_activities, "n3")
    vm_activities.nic(VmNicInput(host=HOST, vm="n3", name="Lab", switch="Internal"))
    before = mutations(ready, HOST)
    moved = vm_activities.nic(VmNicInput(host=HOST, vm="n3", name="Lab", switch="Private"))
    assert moved.changed and moved.observed["switch"] == "Private"
    assert mutations(ready, HOST) == {**before, "Connect-VMNetworkAdapter": 1}
    assert [n["switch"] for n in _host(ready)["vms"]["n3"]["nics"]] == ["Private"]


def test_legacy_nic_on_generation_1(ready: Fleet, vm_activities: VmActivities) -> None:
    """A legacy NIC is added as legacy and its rerun is unchanged."""
    _vm(vm_activities, "l1", generation=1, memory_bytes=512 * MB)
    request = VmNicInput(host=HOST, vm="l1", name="Old", switch="Internal", legacy=True)
    added = vm_activities.nic(request)
    assert added.changed and added.observed["legacy"] is True
    assert [n["legacy"] for n in _host(ready)["vms"]["l1"]["nics"]] == [True]
    assert not vm_activities.nic(request).changed


@pytest.mark.parametrize("legacy", [True, False])
def test_nic_of_the_other_kind_is_a_conflict(
    ready: Fleet, vm_activities: VmActivities, legacy: bool
) -> None:
    """A NIC of that name that is (not) legacy when the other is wanted is a Conflict that
    says to remove it; nothing is sent."""
    _vm(vm_activities, "l2", generation=1, memory_bytes=512 * MB)
    vm_activities.nic(VmNicInput(host=HOST, vm="l2", name="Lab", switch="Internal",
                                 legacy=not legacy))
    before = mutations(ready, HOST)
    with pytest.raises(ApplicationError) as caught:
        vm_activities.nic(VmNicInput(host=HOST, vm="l2", name="Lab", switch="Internal",
                                     legacy=legacy))
    assert caught.value.type == "Conflict" and caught.value.non_retryable
    assert caught.value.message == (
        f"SVR1: NIC Lab of l2 exists with IsLegacy={not legacy}; remove it first")
    assert mutations(ready, HOST) == before


# -- firmware --------------------------------------------------------------------------------


def test_firmware_template_is_set_while_off_once(
    ready: Fleet, vm_activities: VmActivities
) -> None:
    """A generation 2 VM gets the UEFI CA template: changed with the old settings under
    'was'; a rerun (template in another case) is unchanged and sends nothing."""
    _vm(vm_activities, "f1")
    before = mutations(ready, HOST)
    result = vm_activities.firmware(VmFirmwareInput(host=HOST, vm="f1", template=UEFI_CA))
    assert result.changed and result.observed == {
        "secure_boot": "On", "template": UEFI_CA,
        "was": {"secure_boot": "On", "template": "MicrosoftWindows"}}
    after = mutations(ready, HOST)
    assert after == {**before, "Set-VMFirmware": 1}
    again = vm_activities.firmware(VmFirmwareInput(host=HOST, vm="f1",
                                                   template=UEFI_CA.lower()))
    assert not again.changed and again.observed == {"secure_boot": "On", "template": UEFI_CA}
    assert mutations(ready, HOST) == after


def test_firmware_secure_boot_off_ignores_the_template(
    ready: Fleet, vm_activities: VmActivities
) -> None:
    """Turning Secure Boot off is a change; afterwards any template with Off is unchanged."""
    _vm(vm_activities, "f2")
    off = VmFirmwareInput(host=HOST, vm="f2", secure_boot=False)
    result = vm_activities.firmware(off)
    assert result.changed and result.observed["secure_boot"] == "Off"
    assert result.observed["was"] == {"secure_boot": "On", "template": "MicrosoftWindows"}
    after = mutations(ready, HOST)
    again = vm_activities.firmware(off.model_copy(update={"template": UEFI_CA}))
    assert not again.changed and again.observed["secure_boot"] == "Off"
    assert mutations(ready, HOST) == after
    back_on = vm_activities.firmware(off.model_copy(update={"secure_boot": True}))
    assert back_on.changed and back_on.observed["secure_boot"] == "On"


def test_firmware_of_a_running_vm_is_a_conflict_naming_both_settings(
    ready: Fleet, vm_activities: VmActivities
) -> None:
    """A running VM with other firmware settings is a Conflict that names its state, what
    it has and what is wanted; no Set-VMFirmware is sent."""
    _vm(vm_activities, "f3")
    vm_activities.start(VmInput(host=HOST, vm="f3"))
    with pytest.raises(ApplicationError) as caught:
        vm_activities.firmware(VmFirmwareInput(host=HOST, vm="f3", template=UEFI_CA))
    assert caught.value.type == "Conflict" and caught.value.non_retryable
    assert caught.value.message == (
        f"SVR1: VM f3 is Running with Secure Boot On (MicrosoftWindows), wanted On "
        f"({UEFI_CA}); Hyper-V changes firmware only while the VM is off: stop it, then run "
        "again")
    assert "Set-VMFirmware" not in mutations(ready, HOST)
    same = vm_activities.firmware(VmFirmwareInput(host=HOST, vm="f3"))
    assert not same.changed


def test_firmware_of_a_missing_vm_fails(ready: Fleet, vm_activities: VmActivities) -> None:
    """Firmware of a VM that does not exist fails as NotFound, not retried."""
    with pytest.raises(ApplicationError) as caught:
        vm_activities.firmware(VmFirmwareInput(host=HOST, vm="ghost"))
    assert caught.value.type == "NotFound" and caught.value.non_retryable


def test_firmware_without_a_firmware_object_is_not_found(
    ready: Fleet, vm_activities: VmActivities
) -> None:
    """A name Get-VMFirmware answers with nothing and no error (a pattern matching no VM)
    fails as NotFound, not retried, naming the VM; nothing is set."""
    _vm(vm_activities, "fw")
    with pytest.raises(ApplicationError) as caught:
        vm_activities.firmware(VmFirmwareInput(host=HOST, vm="nomatch*", template=UEFI_CA))
    assert caught.value.type == "NotFound" and caught.value.non_retryable is True
    assert caught.value.message == "SVR1: no firmware settings for VM nomatch*"
    assert "Set-VMFirmware" not in mutations(ready, HOST)


# -- power -----------------------------------------------------------------------------------


def test_start_and_stop_report_the_state_they_left(
    ready: Fleet, vm_activities: VmActivities
) -> None:
    """start: Running with the earlier state; rerun unchanged without Start-VM; stop: Off
    with -TurnOff; rerun unchanged without Stop-VM."""
    _vm(vm_activities, "p1")
    request = VmInput(host=HOST, vm="p1")
    started = vm_activities.start(request)
    assert started.changed and started.observed == {"state": "Running", "was": "Off"}
    counts = mutations(ready, HOST)
    assert counts["Start-VM"] == 1
    again = vm_activities.start(request)
    assert not again.changed and again.observed == {"state": "Running"}
    assert mutations(ready, HOST) == counts
    stopped = vm_activities.stop(request)
    assert stopped.changed and stopped.observed == {"state": "Off", "was": "Running"}
    counts = mutations(ready, HOST)
    assert counts["Stop-VM"] == 1
    still = vm_activities.stop(request)
    assert not still.changed and still.observed == {"state": "Off"}
    assert mutations(ready, HOST) == counts


def test_stop_turns_off_a_guest_without_shutdown_service(
    ready: Fleet, vm_activities: VmActivities
) -> None:
    """A just-started VM (guest not booted, so no shutdown service) is still turned off."""
    _vm(vm_activities, "p2")
    vm_activities.start(VmInput(host=HOST, vm="p2"))
    assert vm_activities.stop(VmInput(host=HOST, vm="p2")).observed["state"] == "Off"
    assert _host(ready)["vms"]["p2"]["state"] == "Off"


def test_power_of_a_missing_vm_is_not_found(ready: Fleet, vm_activities: VmActivities) -> None:
    """start and stop of a VM that does not exist fail as NotFound naming host and VM."""
    for step in (vm_activities.start, vm_activities.stop):
        with pytest.raises(ApplicationError) as caught:
            step(VmInput(host=HOST, vm="ghost"))
        assert caught.value.type == "NotFound" and caught.value.non_retryable
        assert caught.value.message == "SVR1: VM ghost does not exist"
    assert "Start-VM" not in mutations(ready, HOST) and "Stop-VM" not in mutations(ready, HOST)


# -- remove ----------------------------------------------------------------------------------


def test_remove_turns_off_and_deletes_every_attached_disk(
    ready: Fleet, vm_activities: VmActivities
) -> None:
    """A running VM with two attached disks is turned off, removed, both disks and the extra
    disk_path deleted (each once), and reported; a rerun changes nothing."""
    _vm(vm_activities, "r1")
    extra = _disk("r1-data")
    vm_activities.disk(extra)
    _sim(ready, "Add-VMHardDiskDrive", VMName="r1", Path=extra.path)
    vm_activities.start(VmInput(host=HOST, vm="r1"))
    before = mutations(ready, HOST)
    request = VmRemoveInput(host=HOST, vm="r1", disk_path=_disk("r1").path)
    removed = vm_activities.remove(request)
    assert removed.changed and removed.observed == {
        "absent": True, "disks": [_disk("r1").path, extra.path]}
    after = mutations(ready, HOST)
    assert after == {**before, "Stop-VM": 1, "Remove-VM": 1, "Remove-Item": 2}
    files = _host(ready)["files"]
    assert _disk("r1").path not in files and extra.path not in files
    assert "r1" not in _host(ready)["vms"]
    again = vm_activities.remove(request)
    assert not again.changed and again.observed == {"absent": True,
                                                    "disks": [_disk("r1").path]}
    assert mutations(ready, HOST) == after


def test_remove_of_an_off_vm_sends_no_stop(ready: Fleet, vm_activities: VmActivities) -> None:
    """An Off VM is removed without Stop-VM; its attached disk is found without disk_path."""
    _vm(vm_activities, "r2")
    before = mutations(ready, HOST)
    removed = vm_activities.remove(VmRemoveInput(host=HOST, vm="r2"))
    assert removed.changed and removed.observed["disks"] == [_disk("r2").path]
    assert mutations(ready, HOST) == {**before, "Remove-VM": 1, "Remove-Item": 1}


def test_remove_deletes_a_left_over_disk_of_a_missing_vm(
    ready: Fleet, vm_activities: VmActivities
) -> None:
    """No VM but its disk: only the disk is deleted, which is a change."""
    disk = _disk("r3")
    vm_activities.disk(disk)
    before = mutations(ready, HOST)
    removed = vm_activities.remove(VmRemoveInput(host=HOST, vm="r3", disk_path=disk.path))
    assert removed.changed and removed.observed == {"absent": True, "disks": [disk.path]}
    assert mutations(ready, HOST) == {**before, "Remove-Item": 1}


def test_exists_reports_presence_and_state(ready: Fleet, vm_activities: VmActivities) -> None:
    """vm.exists is read-only: absent is exists=False/state None, present gives the state."""
    assert vm_activities.exists(VmInput(host=HOST, vm="q")).observed == {
        "exists": False, "state": None}
    _vm(vm_activities, "q")
    before = mutations(ready, HOST)
    seen = vm_activities.exists(VmInput(host=HOST, vm="q"))
    assert not seen.changed and seen.observed == {"exists": True, "state": "Off"}
    assert mutations(ready, HOST) == before


# -- verification after acting ----------------------------------------------------------------


def test_disk_gone_after_the_copy_fails_verification(
    ready: Fleet, vm_activities: VmActivities
) -> None:
    """A disk that is not there after the copy fails as VerificationFailed naming it."""
    request = _disk("gone")
    _meddle(ready, "Test-Path", 4, lambda host: host.files.pop(path_key(request.path)))
    with pytest.raises(ApplicationError) as caught:
        vm_activities.disk(request)
    assert caught.value.type == "VerificationFailed" and caught.value.non_retryable
    assert caught.value.message == f"SVR1: disk {request.path} is missing (observed None)"


@pytest.mark.parametrize("meddle", ["memory", "removed"])
def test_vm_not_as_created_fails_verification(
    ready: Fleet, vm_activities: VmActivities, meddle: str
) -> None:
    """A new VM that is gone, or has other memory, when read back fails as
    VerificationFailed."""
    disk = _disk("cv")
    vm_activities.disk(disk)

    def change(host: Host) -> None:
        vm = _vm_of(host, "cv")
        if meddle == "memory":
            vm.memory_startup = 2 * GB
        else:
            del host.vms[vm.id]

    _meddle(ready, "Get-VM", 2, change)
    with pytest.raises(ApplicationError) as caught:
        vm_activities.create(VmCreateInput(host=HOST, name="cv", memory_bytes=GB,
                                           disk_path=disk.path))
    assert caught.value.type == "VerificationFailed" and caught.value.non_retryable
    assert caught.value.message.startswith("SVR1: VM cv is not as created (observed ")
    assert caught.value.message.endswith("(observed None)") == (meddle == "removed")


@pytest.mark.parametrize("meddle", ["disconnected", "removed"])
def test_nic_not_on_its_switch_after_adding_fails_verification(
    ready: Fleet, vm_activities: VmActivities, meddle: str
) -> None:
    """A NIC that is disconnected or gone right after Add fails as VerificationFailed."""
    _vm(vm_activities, "nv")

    def change(host: Host) -> None:
        vm = _vm_of(host, "nv")
        if meddle == "disconnected":
            vm.nics[-1].switch = None
        else:
            vm.nics.pop()

    _meddle(ready, "Get-VMNetworkAdapter", 2, change)
    with pytest.raises(ApplicationError) as caught:
        vm_activities.nic(VmNicInput(host=HOST, vm="nv", name="Lab", switch="Internal"))
    assert caught.value.type == "VerificationFailed" and caught.value.non_retryable
    assert caught.value.message.startswith("SVR1: NIC Lab is not on Internal (observed ")
    assert caught.value.message.endswith("(observed None)") == (meddle == "removed")


def test_firmware_reverted_after_setting_fails_verification(
    ready: Fleet, vm_activities: VmActivities
) -> None:
    """Firmware read back with the old template fails as VerificationFailed."""
    _vm(vm_activities, "fv")

    def revert(host: Host) -> None:
        _vm_of(host, "fv").secure_boot_template = "MicrosoftWindows"

    _meddle(ready, "Get-VMFirmware", 2, revert)
    with pytest.raises(ApplicationError) as caught:
        vm_activities.firmware(VmFirmwareInput(host=HOST, vm="fv", template=UEFI_CA))
    assert caught.value.type == "VerificationFailed" and caught.value.non_retryable
    assert caught.value.message == (
        f"SVR1: VM fv firmware is not {{'secure_boot': 'On', 'template': '{UEFI_CA}'}} "
        "(observed {'secure_boot': 'On', 'template': 'MicrosoftWindows'})")


def test_vm_not_running_after_start_fails_verification(
    ready: Fleet, vm_activities: VmActivities
) -> None:
    """A VM that is off again when read back after Start-VM fails as VerificationFailed."""
    _vm(vm_activities, "pv")

    def off(host: Host) -> None:
        _vm_of(host, "pv").state = "Off"

    _meddle(ready, "Get-VM", 2, off)
    with pytest.raises(ApplicationError) as caught:
        vm_activities.start(VmInput(host=HOST, vm="pv"))
    assert caught.value.type == "VerificationFailed" and caught.value.non_retryable
    assert caught.value.message == "SVR1: VM pv is not Running (observed 'Off')"


# -- exact commands on the wire and neighbours on the host ------------------------------------


def test_stop_and_remove_turn_the_vm_off(ready: Fleet, vm_activities: VmActivities) -> None:
    """vm.stop and vm.remove send Stop-VM -TurnOff -Force (legacy guests cannot shut down)."""
    _vm(vm_activities, "t1")
    request = VmInput(host=HOST, vm="t1")
    with capture_logs() as logs:
        vm_activities.start(request)
        vm_activities.stop(request)
        vm_activities.start(request)
        vm_activities.remove(VmRemoveInput(host=HOST, vm="t1"))
    assert _sent(logs, "Stop-VM") == ["Stop-VM -Name t1 -TurnOff -Force"] * 2
    assert _sent(logs, "Start-VM") == ["Start-VM -Name t1"] * 2
    assert _sent(logs, "Remove-VM") == ["Remove-VM -Name t1 -Force"]


def test_remove_touches_only_its_own_vm(ready: Fleet, vm_activities: VmActivities) -> None:
    """Removing an Off VM next to a running one sends no Stop-VM and leaves the other
    running; removing a VM that is not there (others are) removes nothing."""
    _vm(vm_activities, "aa")
    vm_activities.start(VmInput(host=HOST, vm="aa"))
    _vm(vm_activities, "zz")
    before = mutations(ready, HOST)
    assert vm_activities.remove(VmRemoveInput(host=HOST, vm="zz")).changed
    assert mutations(ready, HOST) == {**before, "Remove-VM": 1, "Remove-Item": 1}
    missing = vm_activities.remove(VmRemoveInput(host=HOST, vm="ghost"))
    assert not missing.changed and missing.observed == {"absent": True, "disks": []}
    assert mutations(ready, HOST) == {**before, "Remove-VM": 1, "Remove-Item": 1}
    assert _host(ready)["vms"]["aa"]["state"] == "Running"


def test_remove_skips_a_drive_without_a_file(
    ready: Fleet, vm_activities: VmActivities
) -> None:
    """A hard disk drive with no file path (pass-through) is not a disk to delete."""
    _vm(vm_activities, "pt")

    def no_path(host: Host) -> None:
        _vm_of(host, "pt").disks[0].path = ""

    _meddle(ready, "Get-VMHardDiskDrive", 1, no_path)
    removed = vm_activities.remove(VmRemoveInput(host=HOST, vm="pt"))
    assert removed.changed and removed.observed == {"absent": True, "disks": []}
    assert _disk("pt").path in _host(ready)["files"]


def test_steps_read_back_their_own_vm_beside_others(
    ready: Fleet, vm_activities: VmActivities
) -> None:
    """With another VM (other memory, running) on the host: create reports and verifies the
    new VM, start starts it, and both leave the other VM alone."""
    _vm(vm_activities, "aa", memory_bytes=512 * MB)
    vm_activities.start(VmInput(host=HOST, vm="aa"))
    made = _vm(vm_activities, "zz")
    assert vm_activities.create(made).observed["name"] == "zz"
    started = vm_activities.start(VmInput(host=HOST, vm="zz"))
    assert started.changed and started.observed == {"state": "Running", "was": "Off"}
    vms = _host(ready)["vms"]
    assert vms["zz"]["state"] == "Running" and vms["zz"]["memory"] == GB
    assert vms["aa"]["state"] == "Running" and vms["aa"]["memory"] == 512 * MB


def test_create_drops_only_the_default_nic(ready: Fleet, vm_activities: VmActivities) -> None:
    """An existing VM with New-VM's NIC and a lab NIC loses only 'Network Adapter'."""
    _sim(ready, "New-VM", Name="two", Generation=2, MemoryStartupBytes=GB)
    _sim(ready, "Add-VMNetworkAdapter", VMName="two", Name="Lab", SwitchName="Internal")
    result = vm_activities.create(VmCreateInput(host=HOST, name="two", memory_bytes=GB,
                                                disk_path="C:\\Hyper-V\\VHDs\\two.vhdx"))
    assert result.changed
    assert [n["name"] for n in _host(ready)["vms"]["two"]["nics"]] == ["Lab"]
