"""VM activities against the simulated fleet, run as plain method calls."""

from __future__ import annotations

import pytest
from temporalio.exceptions import ApplicationError

from activities.models import (
    StepResult,
    VmCreateInput,
    VmDiskInput,
    VmFirmwareInput,
    VmInput,
    VmNicInput,
    VmRemoveInput,
    VmStopInput,
)
from activities.vm import VmActivities
from hvlab.spec import LabSpec, Vm
from simulator.fleet import Fleet
from tests.activities.conftest import mutations
from tests.sim.conftest import GB, hyperv_ready


def deploy(acts: VmActivities, spec: LabSpec, vm: Vm) -> list[StepResult]:
    """disk, create, every NIC (static MACs for legacy NICs), start."""
    steps = [acts.disk(VmDiskInput.from_spec(spec, vm)),
             acts.create(VmCreateInput.from_spec(spec, vm))]
    for index, nic in enumerate(vm.nics):
        mac = f"00155D0101{index:02X}" if nic.legacy else None
        steps.append(acts.nic(VmNicInput.from_spec(vm, nic, mac)))
    firmware = VmFirmwareInput.from_spec(vm)
    if firmware is not None:
        steps.append(acts.firmware(firmware))
    steps.append(acts.start(VmInput(host=vm.host, vm=vm.name)))
    return steps


def test_linux_vm_deploys_once(
    fleet: Fleet, lab_spec: LabSpec, vm_activities: VmActivities
) -> None:
    """Linux01 from a copy of the golden disk: created, connected and running; a rerun of
    every step changes nothing and sends no mutating command."""
    hyperv_ready(fleet.sim, "SVR2")
    vm = lab_spec.vm("Linux01")
    first = deploy(vm_activities, lab_spec, vm)
    assert all(step.changed for step in first)
    state = fleet.state()["hosts"]["SVR2"]
    linux = state["vms"]["Linux01"]
    assert linux["state"] == "Running" and linux["memory"] == GB and linux["generation"] == 2
    assert [n["switch"] for n in linux["nics"]] == ["External"]
    assert "C:\\Hyper-V\\VHDs\\Linux01.vhdx" in state["files"]
    before = mutations(fleet, "SVR2")
    again = deploy(vm_activities, lab_spec, vm)
    assert not any(step.changed for step in again)
    assert mutations(fleet, "SVR2") == before
    assert again[1].observed["memory_startup"] == GB and again[1].observed["drift"] == []


def test_legacy_vm_with_static_macs(
    fleet: Fleet, lab_spec: LabSpec, vm_activities: VmActivities
) -> None:
    """win2003-1 is generation 1 with three legacy NICs carrying static MACs."""
    hyperv_ready(fleet.sim, "SVR1")
    vm = lab_spec.vm("win2003-1")
    deploy(vm_activities, lab_spec, vm)
    nics = fleet.state()["hosts"]["SVR1"]["vms"]["win2003-1"]["nics"]
    assert [(n["switch"], n["legacy"]) for n in nics] == [
        ("External", True), ("Internal", True), ("Internal2", True)]
    assert [n["mac"] for n in nics] == ["00155D010100", "00155D010101", "00155D010102"]


def test_differencing_disk(fleet: Fleet, vm_activities: VmActivities) -> None:
    """Differencing mode makes a child of the golden image, once."""
    hyperv_ready(fleet.sim, "SVR1")
    request = VmDiskInput(host="SVR1", vm="d1", path="C:\\Hyper-V\\VHDs\\d1.vhdx",
                          golden_path="C:\\Golden\\linux01.vhdx", mode="differencing")
    made = vm_activities.disk(request)
    assert made.changed and made.observed["type"] == "Differencing"
    assert made.observed["parent"] == "C:\\Golden\\linux01.vhdx"
    assert not vm_activities.disk(request).changed


def test_nic_on_missing_switch_fails_permanently(
    fleet: Fleet, lab_spec: LabSpec, vm_activities: VmActivities
) -> None:
    """A NIC on a switch the host lacks fails with the host's message, not retried."""
    hyperv_ready(fleet.sim, "SVR2")
    vm = lab_spec.vm("Linux01")
    vm_activities.disk(VmDiskInput.from_spec(lab_spec, vm))
    vm_activities.create(VmCreateInput.from_spec(lab_spec, vm))
    with pytest.raises(ApplicationError) as caught:
        vm_activities.nic(VmNicInput(host="SVR2", vm="Linux01", name="Lab", switch="Nowhere"))
    assert caught.value.type in ("SwitchMissing", "InvalidParameter", "NotFound")
    assert caught.value.non_retryable and "Nowhere" in caught.value.message


def test_start_with_too_little_memory(
    fleet: Fleet, vm_activities: VmActivities
) -> None:
    """A VM wanting more memory than the host has fails to start: InsufficientMemory,
    non-retryable; the VM stays off."""
    hyperv_ready(fleet.sim, "SVR1")
    disk = VmDiskInput(host="SVR1", vm="huge", path="C:\\Hyper-V\\VHDs\\huge.vhdx",
                       golden_path="C:\\Golden\\linux01.vhdx")
    vm_activities.disk(disk)
    vm_activities.create(VmCreateInput(host="SVR1", name="huge", memory_bytes=20 * GB,
                                       disk_path=disk.path))
    with pytest.raises(ApplicationError) as caught:
        vm_activities.start(VmInput(host="SVR1", vm="huge"))
    assert caught.value.type == "InsufficientMemory" and caught.value.non_retryable
    assert "Not enough memory in the system to start the virtual machine huge" in \
        caught.value.message
    assert fleet.state()["hosts"]["SVR1"]["vms"]["huge"]["state"] == "Off"


def test_stop_and_remove_compensation(
    fleet: Fleet, lab_spec: LabSpec, vm_activities: VmActivities
) -> None:
    """vm.stop turns the VM off once; vm.remove deletes the VM and its disk and then reports
    nothing left to do."""
    hyperv_ready(fleet.sim, "SVR2")
    vm = lab_spec.vm("Linux01")
    deploy(vm_activities, lab_spec, vm)
    stop = VmInput(host="SVR2", vm="Linux01")
    assert vm_activities.stop(stop).observed == {"state": "Off", "was": "Running"}
    assert not vm_activities.stop(stop).changed
    vm_activities.start(stop)
    removal = VmRemoveInput(host="SVR2", vm="Linux01", disk_path=lab_spec.vm_disk_path(vm))
    assert vm_activities.remove(removal).changed
    state = fleet.state()["hosts"]["SVR2"]
    assert "Linux01" not in state["vms"]
    assert lab_spec.vm_disk_path(vm) not in state["files"]
    assert not vm_activities.remove(removal).changed


def test_start_of_unknown_vm_is_not_found(fleet: Fleet, vm_activities: VmActivities) -> None:
    """Starting a VM that does not exist fails as NotFound without sending Start-VM."""
    hyperv_ready(fleet.sim, "SVR1")
    with pytest.raises(ApplicationError) as caught:
        vm_activities.start(VmInput(host="SVR1", vm="ghost"))
    assert caught.value.type == "NotFound" and caught.value.non_retryable
    assert "Start-VM" not in fleet.state()["counters"]["SVR1"]


def test_firmware_trusts_the_linux_boot_loader_and_is_not_changed_on_a_running_vm(
    fleet: Fleet, lab_spec: LabSpec, vm_activities: VmActivities
) -> None:
    """Linux01 (generation 2) gets the UEFI CA Secure Boot template before its first start, so
    its guest boots (reachable); a rerun changes nothing. Asking a running VM for other
    firmware settings is a conflict that names the fix: Hyper-V changes them only while off."""
    from simulator import reachability

    hyperv_ready(fleet.sim, "SVR2")
    vm = lab_spec.vm("Linux01")
    request = VmFirmwareInput.from_spec(vm)
    assert request is not None and request.template == "MicrosoftUEFICertificateAuthority"
    steps = deploy(vm_activities, lab_spec, vm)
    assert steps[-2].changed and steps[-2].observed["was"]["template"] == "MicrosoftWindows"
    linux = fleet.world.host("SVR2").vm("Linux01")  # type: ignore[union-attr]
    assert linux is not None and reachability.vm_up(linux, fleet.sim.clock.now())
    again = vm_activities.firmware(request)
    assert not again.changed and again.observed == {
        "secure_boot": "On", "template": "MicrosoftUEFICertificateAuthority"}
    with pytest.raises(ApplicationError) as caught:
        vm_activities.firmware(request.model_copy(update={"template": "MicrosoftWindows"}))
    assert caught.value.type == "Conflict" and caught.value.non_retryable
    assert "only while the VM is off" in caught.value.message


def test_stop_with_a_shutdown_time_shuts_the_guest_down_first(
    fleet: Fleet, lab_spec: LabSpec, vm_activities: VmActivities
) -> None:
    """vm.stop with shutdown_seconds (the planned failover's stop) sends Stop-VM without
    -TurnOff first; a guest that shuts down in time is never turned off."""
    hyperv_ready(fleet.sim, "SVR2")
    vm = lab_spec.vm("Linux01")
    deploy(vm_activities, lab_spec, vm)
    record = fleet.sim.host("SVR2")
    stop = VmStopInput(host="SVR2", vm="Linux01", shutdown_seconds=60)
    before = dict(fleet.state()["counters"].get("SVR2", {}))
    result = vm_activities.stop(stop)
    assert result.changed
    assert result.observed == {"state": "Off", "was": "Running", "shut_down": True}
    after = fleet.state()["counters"].get("SVR2", {})
    assert after["Stop-VM"] - before.get("Stop-VM", 0) == 1  # one Stop-VM: no -TurnOff after
    assert record.vm("Linux01") is not None and record.vm("Linux01").state == "Off"
    assert not vm_activities.stop(stop).changed
