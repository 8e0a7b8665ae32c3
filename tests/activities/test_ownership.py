"""What `hvlab down` may remove: the ``hvlab: created-by=<lab>`` mark that vm.create and
host.switch leave in the Notes, and what vm.remove / host.remove_switch keep without --force
(activities as plain calls, and one under Temporal's ActivityEnvironment for a retry)."""

from __future__ import annotations

import dataclasses

from temporalio.testing import ActivityEnvironment

from activities.host import HostActivities
from activities.marks import read_marks
from activities.models import (
    RemoveSwitchInput,
    SwitchInput,
    VmCreateInput,
    VmDiskInput,
    VmRemoveInput,
)
from activities.vm import VmActivities
from hvlab.spec import LabSpec
from simulator.fleet import Fleet
from tests.activities.conftest import mutations
from tests.sim.conftest import GB, hyperv_ready, run

LAB = "classroom"


def _notes(fleet: Fleet, host: str, vm: str) -> dict[str, str]:
    return read_marks(fleet.sim.host(host).vm(vm).notes)


def _create(acts: VmActivities, spec: LabSpec, *, disk_created: bool | None = True) -> None:
    vm = spec.vm("Linux01")
    acts.disk(VmDiskInput.from_spec(spec, vm).model_copy(update={"lab": LAB}))
    acts.create(VmCreateInput.from_spec(spec, vm).model_copy(
        update={"lab": LAB, "disk_created": disk_created}))


def test_created_vm_is_marked_and_down_removes_it_with_its_disk(
    fleet: Fleet, lab_spec: LabSpec, vm_activities: VmActivities
) -> None:
    """vm.create writes `hvlab: created-by=<lab>; disk=hvlab`; vm.remove as `hvlab down` runs
    it removes that VM and the disk the build copied."""
    hyperv_ready(fleet.sim, "SVR2")
    _create(vm_activities, lab_spec)
    assert _notes(fleet, "SVR2", "Linux01") == {"created-by": LAB, "disk": "hvlab"}
    disk = lab_spec.vm_disk_path(lab_spec.vm("Linux01"))
    removal = VmRemoveInput(lab=LAB, host="SVR2", vm="Linux01", disk_path=disk,
                            keep_adopted=True)
    result = vm_activities.remove(removal)
    assert result.changed and "kept" not in result.observed
    state = fleet.state()["hosts"]["SVR2"]
    assert "Linux01" not in state["vms"] and disk not in state["files"]


def test_down_keeps_an_adopted_vm_and_its_disk(
    fleet: Fleet, lab_spec: LabSpec, vm_activities: VmActivities
) -> None:
    """A VM of the lab's name that was there before hvlab (no mark), or one another lab
    created, stays with its disk and the result says why; without keep_adopted (a cancelled
    build's compensation, `down --force`) it goes."""
    hyperv_ready(fleet.sim, "SVR2")
    disk = "C:\\Hyper-V\\VHDs\\Linux01.vhdx"
    assert run(fleet.sim, "SVR2", "New-VHD", Path=disk, SizeBytes=4 * GB).ok
    assert run(fleet.sim, "SVR2", "New-VM", Name="Linux01", MemoryStartupBytes=GB,
               VHDPath=disk).ok
    removal = VmRemoveInput(lab=LAB, host="SVR2", vm="Linux01", disk_path=disk,
                            keep_adopted=True)
    before = mutations(fleet, "SVR2")
    result = vm_activities.remove(removal)
    assert not result.changed and mutations(fleet, "SVR2") == before
    [why] = result.observed["kept"]
    assert why.startswith("VM Linux01 on SVR2 kept: no `hvlab: created-by=classroom` line")
    assert "`hvlab down FILE --force`" in why
    assert run(fleet.sim, "SVR2", "Set-VM", Name="Linux01",
               Notes="hvlab: created-by=other-lab").ok
    assert "created by lab other-lab" in vm_activities.remove(removal).observed["kept"][0]
    assert "Linux01" in fleet.state()["hosts"]["SVR2"]["vms"]
    assert vm_activities.remove(removal.model_copy(update={"keep_adopted": False})).changed
    assert "Linux01" not in fleet.state()["hosts"]["SVR2"]["vms"]


def test_down_keeps_the_disk_a_vm_was_made_on_and_a_disk_without_a_vm(
    fleet: Fleet, lab_spec: LabSpec, vm_activities: VmActivities
) -> None:
    """A VM the build created on a disk that was there (disk=adopted) goes, its disk stays;
    a disk at the lab's path with no VM next to it stays too."""
    hyperv_ready(fleet.sim, "SVR2")
    _create(vm_activities, lab_spec, disk_created=False)
    assert _notes(fleet, "SVR2", "Linux01")["disk"] == "adopted"
    disk = lab_spec.vm_disk_path(lab_spec.vm("Linux01"))
    removal = VmRemoveInput(lab=LAB, host="SVR2", vm="Linux01", disk_path=disk,
                            keep_adopted=True)
    result = vm_activities.remove(removal)
    assert result.changed and "the VM was made on a disk that was there before" in \
        result.observed["kept"][0]
    state = fleet.state()["hosts"]["SVR2"]
    assert "Linux01" not in state["vms"] and disk in state["files"]
    again = vm_activities.remove(removal)
    assert not again.changed and "no VM of the lab stands next to it" in again.observed["kept"][0]
    assert disk in fleet.state()["hosts"]["SVR2"]["files"]


def test_a_retried_create_marks_the_vm_its_predecessor_made(
    fleet: Fleet, lab_spec: LabSpec, vm_activities: VmActivities
) -> None:
    """An attempt that ran New-VM and died before the Notes: the retry finds the VM unmarked
    and its predecessor's heartbeat ('creating' it), so it marks it; without that heartbeat
    an unmarked VM is someone else's and stays unmarked."""
    hyperv_ready(fleet.sim, "SVR2")
    vm = lab_spec.vm("Linux01")
    vm_activities.disk(VmDiskInput.from_spec(lab_spec, vm))
    request = VmCreateInput.from_spec(lab_spec, vm).model_copy(update={"lab": LAB})
    assert run(fleet.sim, "SVR2", "New-VM", Name="Linux01", Generation=2,
               MemoryStartupBytes=GB, VHDPath=request.disk_path, Path=request.config_path).ok
    vm_activities.create(request)  # no predecessor: not this lab's
    assert _notes(fleet, "SVR2", "Linux01") == {}
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=2,
                                   heartbeat_details=[{"creating": "Linux01"}])
    env.run(vm_activities.create, request)
    assert _notes(fleet, "SVR2", "Linux01")["created-by"] == LAB


def test_created_switch_is_marked_and_down_keeps_adopted_and_management_switches(
    fleet: Fleet, lab_spec: LabSpec, host_activities: HostActivities
) -> None:
    """host.switch creates with `-Notes 'hvlab: created-by=<lab>'`. As `hvlab down` runs it,
    host.remove_switch removes a marked Internal switch, keeps one made by hand (adopted) and
    the marked External switch whose vNIC carries the host's management address; forced, it
    removes them."""
    hyperv_ready(fleet.sim, "SVR1")  # its four switches are made by hand: adopted
    for name in ("External", "Internal"):
        assert run(fleet.sim, "SVR1", "Remove-VMSwitch", Name=name, Force=None).ok
    for switch in lab_spec.host("SVR1").switches[:2]:
        request = SwitchInput.from_spec("SVR1", switch).model_copy(update={"lab": LAB})
        assert host_activities.switch(request).changed
    assert read_marks(fleet.sim.host("SVR1").switch("External").notes) == {"created-by": LAB}
    address = lab_spec.host("SVR1").connection.address

    def removal(name: str, **more: object) -> RemoveSwitchInput:
        return RemoveSwitchInput(lab=LAB, host="SVR1", name=name, management_address=address,
                                 **{"keep_adopted": True, "keep_management": True, **more})

    assert host_activities.remove_switch(removal("Internal")).changed
    before = mutations(fleet, "SVR1")
    private = host_activities.remove_switch(removal("Private"))
    assert not private.changed and "switch Private on SVR1 kept: no `hvlab: created-by=" \
        "classroom` line in its Notes" in private.observed["kept"]
    external = host_activities.remove_switch(removal("External"))
    assert not external.changed
    assert f"its host vNIC carries {address}, the address hvlab reaches SVR1 at" in \
        external.observed["kept"]
    assert mutations(fleet, "SVR1") == before
    state = fleet.state()["hosts"]["SVR1"]["switches"]
    assert {"External", "Private", "Internal2"} <= set(state) and "Internal" not in state
    forced = {"keep_adopted": False, "keep_management": False}
    assert host_activities.remove_switch(removal("External", **forced)).changed
    assert host_activities.remove_switch(removal("Private", **forced)).changed
    assert {"External", "Private"}.isdisjoint(fleet.state()["hosts"]["SVR1"]["switches"])


def test_an_external_switch_without_the_management_address_goes(
    fleet: Fleet, lab_spec: LabSpec, host_activities: HostActivities
) -> None:
    """A marked External switch that does not share its adapter with the host (no vNIC) is
    removed by `hvlab down`."""
    hyperv_ready(fleet.sim, "SVR1")
    assert run(fleet.sim, "SVR1", "Remove-VMSwitch", Name="External", Force=None).ok
    switch = lab_spec.host("SVR1").switches[0].model_copy(update={"allow_management_os": False})
    address = lab_spec.host("SVR1").connection.address
    # the switch takes 192.168.1.110 off the host; here the WinRM endpoint stands for another
    # address (a second adapter), so the host stays reachable
    fleet.sim.host("SVR1").address = "192.0.2.1"
    assert host_activities.switch(SwitchInput.from_spec("SVR1", switch).model_copy(
        update={"lab": LAB})).changed
    removal = RemoveSwitchInput(lab=LAB, host="SVR1", name="External", keep_adopted=True,
                                keep_management=True, management_address=address)
    assert host_activities.remove_switch(removal).changed
