"""Checkpoint activities against the simulated fleet: create and remove once, restore with the
VM turned off first and left off, a retried restore that does not apply twice."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.checkpoint import CheckpointActivities, RestoredBeat
from activities.models import CheckpointInput, VmInput
from activities.registry import build_activities
from activities.vm import VmActivities
from hvlab.powershell.endpoints import SimEndpoints
from hvlab.powershell.session import SessionPool
from hvlab.settings import Settings
from hvlab.spec import LabSpec
from simulator.fleet import Fleet
from tests.activities.conftest import mutations
from tests.sim.conftest import GB, hyperv_ready, lab_with_vm, run
from tests.sim.test_checkpoint_chains import share_for_both

BASELINE = CheckpointInput(host="SVR2", vm="Linux01", name="baseline")


@pytest.fixture
def acts(sessions: SessionPool, fleet: Fleet, lab_spec: LabSpec) -> CheckpointActivities:
    return CheckpointActivities(sessions, SimEndpoints(lab_spec, fleet.home))


@pytest.fixture
def linux(fleet: Fleet) -> Fleet:
    """Linux01 running on SVR2 from a copy of the golden disk."""
    hyperv_ready(fleet.sim, "SVR2")
    disk = "C:\\Hyper-V\\VHDs\\Linux01.vhdx"
    sim = fleet.sim
    assert run(sim, "SVR2", "Copy-Item", Path="C:\\Golden\\linux01.vhdx", Destination=disk).ok
    assert run(sim, "SVR2", "New-VM", Name="Linux01", Generation=2, MemoryStartupBytes=GB,
               VHDPath=disk, SwitchName="External").ok
    assert run(sim, "SVR2", "Start-VM", Name="Linux01").ok
    return fleet


def nics(fleet: Fleet) -> list[str]:
    vm = fleet.sim.host("SVR2").vm("Linux01")
    assert vm is not None
    return [n.name for n in vm.nics]


def test_create_and_remove_once(linux: Fleet, acts: CheckpointActivities) -> None:
    """Checkpoint-VM once, Remove-VMSnapshot once; reruns send nothing."""
    made = acts.create(BASELINE)
    assert made.changed and made.observed["name"] == "baseline"
    assert [s.name for s in linux.sim.host("SVR2").vm("Linux01").snapshots] == ["baseline"]  # type: ignore[union-attr]
    before = mutations(linux, "SVR2")
    assert not acts.create(BASELINE).changed
    assert mutations(linux, "SVR2") == before
    assert acts.remove(BASELINE).changed
    assert linux.sim.host("SVR2").vm("Linux01").snapshots == []  # type: ignore[union-attr]
    before = mutations(linux, "SVR2")
    assert not acts.remove(BASELINE).changed
    assert mutations(linux, "SVR2") == before


def test_restore_turns_off_applies_and_leaves_off(
    linux: Fleet, acts: CheckpointActivities
) -> None:
    """The running VM is turned off, the checkpoint applied (the NIC added later is gone) and
    the VM is not started; a retry after the restore went through applies nothing."""
    acts.create(BASELINE)
    sim = linux.sim
    assert run(sim, "SVR2", "Stop-VM", Name="Linux01", TurnOff=None).ok
    assert run(sim, "SVR2", "Add-VMNetworkAdapter", VMName="Linux01", Name="Extra").ok
    assert run(sim, "SVR2", "Start-VM", Name="Linux01").ok
    stops = linux.state()["counters"]["SVR2"]["Stop-VM"]
    restored = acts.restore(BASELINE)
    assert restored.changed and restored.observed["was"] == "Running"
    assert restored.observed["state"] in ("Off", "Saved")
    assert "Extra" not in nics(linux)
    assert linux.state()["counters"]["SVR2"]["Stop-VM"] == stops + 1
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, heartbeat_details=[{"restored": "baseline",
                                                                 "vm": "Linux01"}])
    beats: list[tuple[Any, ...]] = []
    env.on_heartbeat = lambda *details: beats.append(details)
    before = mutations(linux, "SVR2")
    retried = env.run(acts.restore, BASELINE)
    assert retried.changed and retried.observed["resumed"]
    marker = RestoredBeat(restored="baseline", vm="Linux01").details()
    assert beats and all(b == (marker,) for b in beats)
    assert mutations(linux, "SVR2") == before


def test_restore_of_missing_checkpoint_is_not_found(
    linux: Fleet, acts: CheckpointActivities
) -> None:
    """Nothing is turned off when the checkpoint does not exist."""
    with pytest.raises(ApplicationError) as caught:
        acts.restore(CheckpointInput(host="SVR2", vm="Linux01", name="nope"))
    assert caught.value.type == "NotFound" and caught.value.non_retryable
    assert "Restore-VMSnapshot" not in linux.state()["counters"]["SVR2"]
    assert linux.sim.host("SVR2").vm("Linux01").state == "Running"  # type: ignore[union-attr]


def test_worker_registers_migration_replica_and_checkpoint(tmp_path: Path) -> None:
    """build_activities lists every migration.*, replica.* and checkpoint.* activity."""
    names = set()
    for fn in build_activities(Settings(home=tmp_path)):
        definition = activity._Definition.from_callable(fn)
        assert definition is not None
        names.add(definition.name)
    ours = {n for n in names if n.split(".")[0] in ("migration", "replica", "checkpoint")}
    assert ours == {
        "migration.readiness", "migration.restore_readiness", "migration.preflight",
        "migration.start_move", "migration.find_job", "migration.poll_job",
        "migration.verify_location", "migration.cancel_job", "migration.watch_downtime",
        "replica.server", "replica.shared_settings",
        "replica.disable_server", "replica.firewall", "replica.disable_firewall",
        "replica.test_connection", "replica.enable", "replica.remove", "replica.start_initial",
        "replica.wait_state", "replica.health", "replica.prepare_failover", "replica.failover",
        "replica.complete", "replica.reverse", "replica.stop_failover", "replica.test_failover",
        "replica.cleanup_test_failover", "checkpoint.find", "checkpoint.create",
        "checkpoint.restore",
        "checkpoint.remove"}


def test_find_on_a_host_without_hyperv_is_not_there(acts: CheckpointActivities) -> None:
    """checkpoint.find on a host without the Hyper-V module answers 'not here'."""
    from activities.models import CheckpointInput as Input

    result = acts.find(Input(host="DC1", vm="Linux01", name="baseline"))
    assert result.observed["exists"] is False and not result.changed


@pytest.fixture
def moved_lab(fleet: Fleet) -> Fleet:
    """Both hosts ready for migration, the share for both, Linux01 running on SVR2."""
    lab_with_vm(fleet.sim)
    share_for_both(fleet.sim)
    return fleet


@pytest.mark.parametrize("move", ["shared-nothing", "storage"])
def test_restore_after_a_move(moved_lab: Fleet, acts: CheckpointActivities,
                              vm_activities: VmActivities, move: str) -> None:
    """checkpoint.restore where the VM is now, after a shared-nothing move to SVR1 or a storage
    move to \\\\DC1\\smb: the checkpoint applies on the moved files and vm.start starts the
    VM (before the fleet moved checkpoints with their disks, Start-VM failed with 0x80070002
    on the pre-move VHDX)."""
    sim = moved_lab.sim
    assert acts.create(BASELINE).changed
    assert run(sim, "SVR2", "Add-VMNetworkAdapter", VMName="Linux01", Name="Extra").ok
    if move == "shared-nothing":
        host = "SVR1"
        assert run(sim, "SVR2", "Move-VM", Name="Linux01", DestinationHost="SVR1",
                   IncludeStorage=None, DestinationStoragePath="C:\\Hyper-V\\Linux01").ok
    else:
        host = "SVR2"
        assert run(sim, "SVR2", "Move-VMStorage", Name="Linux01",
                   DestinationStoragePath="\\\\DC1\\smb\\Linux01").ok
    request = BASELINE.model_copy(update={"host": host})
    restored = acts.restore(request)
    assert restored.changed and restored.observed["was"] == "Running"
    started = vm_activities.start(VmInput(host=host, vm="Linux01"))
    assert started.observed["state"] == "Running"
    vm = sim.host(host).vm("Linux01")
    assert vm is not None and "Extra" not in [n.name for n in vm.nics]
    root = "C:\\Hyper-V\\Linux01\\" if move == "shared-nothing" else "\\\\DC1\\smb\\Linux01\\"
    assert all(d.path.startswith(root) for d in vm.disks), vm.disks


def test_failed_restore_says_what_state_the_vm_is_in(
    moved_lab: Fleet, acts: CheckpointActivities
) -> None:
    """A checkpoint whose VHDX is gone: the apply fails as NotFound (the host's ObjectNotFound
    error id) and the failure says the VM was turned off and not restored."""
    acts.create(BASELINE)
    del moved_lab.sim.host("SVR2").files["c:\\hyper-v\\vhds\\linux01.vhdx"]
    with pytest.raises(ApplicationError) as caught:
        acts.restore(BASELINE)
    error = caught.value
    assert error.type == "NotFound" and error.non_retryable
    assert "0x80070002" in str(error)
    assert "Linux01 on SVR2 is Off: it was Running" in str(error)
    assert error.details[0]["state"] == "Off"
