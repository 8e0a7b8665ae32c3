"""Checkpoints keep their disk chain (.avhdx differencing disks) and follow the VM's storage
moves: after a shared-nothing move, a storage move to the share and a compute-only move of a VM
on the share, Restore-VMSnapshot applies the checkpoint on the moved files and the VM starts; a
checkpoint whose files are really gone fails the apply with 0x80070002 / ObjectNotFound and
changes nothing (docs/simulator-fidelity.md, "Checkpoints follow storage moves")."""

from __future__ import annotations

from typing import Any

import pytest

from simulator.engine import Sim
from simulator.pstypes import prop
from simulator.world import Ace, Vm
from tests.sim.conftest import Result, lab_with_vm, run

DISK = "C:\\Hyper-V\\VHDs\\Linux01.vhdx"
SHARE = "\\\\DC1\\smb\\Linux01"


def linux01(sim: Sim, host: str) -> Vm:
    vm = sim.host(host).vm("Linux01")
    assert vm is not None
    return vm


def drives(sim: Sim, host: str) -> list[str]:
    return [str(prop(d, "Path"))
            for d in run(sim, host, "Get-VMHardDiskDrive", VMName="Linux01").output]


def vhd(sim: Sim, host: str, path: str) -> Any:
    result = run(sim, host, "Get-VHD", Path=path)
    assert result.ok, result.failure
    return result.output[0]


def checkpoint_then_drift(sim: Sim, host: str = "SVR2") -> None:
    """'baseline' of the running Linux01, then a NIC the checkpoint does not have."""
    assert run(sim, host, "Checkpoint-VM", Name="Linux01", SnapshotName="baseline").ok
    assert run(sim, host, "Add-VMNetworkAdapter", VMName="Linux01", Name="Extra").ok


def restore_and_start(sim: Sim, host: str) -> None:
    """The reset's sequence on one VM: turn off, apply, start."""
    assert run(sim, host, "Stop-VM", Name="Linux01", TurnOff=None, Force=None).ok
    restored = run(sim, host, "Restore-VMSnapshot", VMName="Linux01", Name="baseline",
                   Confirm=False)
    assert restored.ok, restored.failure
    assert "Extra" not in [n.name for n in linux01(sim, host).nics]
    started = run(sim, host, "Start-VM", Name="Linux01")
    assert started.ok, started.failure
    assert linux01(sim, host).state == "Running"


def share_for_both(sim: Sim) -> None:
    """\\\\DC1\\smb with share and NTFS rights for both hosts' computer accounts."""
    assert run(sim, "DC1", "New-Item", ItemType="Directory", Path="C:\\smb").ok
    accounts = ("KOSA\\SVR1$", "KOSA\\SVR2$", "BUILTIN\\Administrators")
    sim.world.shares["DC1"]["smb"] = sim.world.shares["DC1"]["SYSVOL"].model_copy(update={
        "name": "smb", "path": "C:\\smb",
        "share_acl": [Ace(account=a, right="Full") for a in accounts]})
    sim.host("DC1").ntfs_acls["c:\\smb"] = [Ace(account=a, right="FullControl")
                                            for a in accounts[:2]]


def test_checkpoint_continues_in_a_differencing_disk(sim: Sim) -> None:
    """Checkpoint-VM freezes the VHDX: the VM goes on in <name>_<GUID>.avhdx next to it, whose
    parent is the VHDX the checkpoint keeps."""
    lab_with_vm(sim)
    checkpoint_then_drift(sim)
    [current] = drives(sim, "SVR2")
    assert current.lower().startswith("c:\\hyper-v\\vhds\\linux01_")
    assert current.lower().endswith(".avhdx")
    child = vhd(sim, "SVR2", current)
    assert prop(child, "VhdType").name == "Differencing" and prop(child, "ParentPath") == DISK
    [snap] = linux01(sim, "SVR2").snapshots
    assert [d["path"] for d in snap.config["disks"]] == [DISK]


def test_restore_after_shared_nothing_move(sim: Sim) -> None:
    """Move-VM -IncludeStorage takes the VHDX, the .avhdx and the checkpoint to SVR1: the
    checkpoint refers to the moved files, applies there and the VM starts; nothing of the VM
    is left on SVR2."""
    lab_with_vm(sim)
    checkpoint_then_drift(sim)
    moved = run(sim, "SVR2", "Move-VM", Name="Linux01", DestinationHost="SVR1",
                IncludeStorage=None, DestinationStoragePath="C:\\Hyper-V\\Linux01")
    assert moved.ok, moved.failure
    assert not [k for k in sim.host("SVR2").files if "linux01" in k and "golden" not in k]
    [snap] = linux01(sim, "SVR1").snapshots
    assert [d["path"] for d in snap.config["disks"]] == ["C:\\Hyper-V\\Linux01\\Linux01.vhdx"]
    restore_and_start(sim, "SVR1")
    [current] = drives(sim, "SVR1")
    assert current.lower().startswith("c:\\hyper-v\\linux01\\linux01_")
    assert prop(vhd(sim, "SVR1", current), "ParentPath") == "C:\\Hyper-V\\Linux01\\Linux01.vhdx"
    assert linux01(sim, "SVR1").path == "C:\\Hyper-V\\Linux01"


def test_restore_after_storage_move_to_the_share(sim: Sim) -> None:
    """Move-VMStorage to \\\\DC1\\smb moves the checkpoint's files too: the apply on SVR2 uses
    the share, and the old local files are gone."""
    lab_with_vm(sim)
    share_for_both(sim)
    checkpoint_then_drift(sim)
    moved = run(sim, "SVR2", "Move-VMStorage", Name="Linux01", DestinationStoragePath=SHARE)
    assert moved.ok, moved.failure
    assert sim.host("SVR2").file(DISK) is None
    assert sim.host("DC1").file("C:\\smb\\Linux01\\Linux01.vhdx") is not None
    restore_and_start(sim, "SVR2")
    assert all(p.startswith(SHARE + "\\") for p in drives(sim, "SVR2"))
    [snap] = linux01(sim, "SVR2").snapshots
    assert [d["path"] for d in snap.config["disks"]] == [SHARE + "\\Linux01.vhdx"]


def test_restore_after_compute_move_of_a_vm_on_the_share(sim: Sim) -> None:
    """A VM whose files are on the share moves compute only (Move-VM, no storage): the
    checkpoint's UNC paths still hold, and it applies on the destination."""
    lab_with_vm(sim)
    share_for_both(sim)
    assert run(sim, "SVR2", "Move-VMStorage", Name="Linux01", DestinationStoragePath=SHARE).ok
    checkpoint_then_drift(sim)
    moved = run(sim, "SVR2", "Move-VM", Name="Linux01", DestinationHost="SVR1")
    assert moved.ok, moved.failure
    restore_and_start(sim, "SVR1")
    assert all(p.startswith(SHARE + "\\") for p in drives(sim, "SVR1"))


@pytest.mark.parametrize("gone", ["base", "differencing"])
def test_checkpoint_whose_files_are_gone_fails_and_changes_nothing(sim: Sim, gone: str) -> None:
    """A checkpoint disk (or a disk of its chain) deleted behind Hyper-V's back: the apply
    fails with 0x80070002 and category ObjectNotFound, and the VM stays as it was."""
    lab_with_vm(sim)
    assert run(sim, "SVR2", "Checkpoint-VM", Name="Linux01", SnapshotName="first").ok
    checkpoint_then_drift(sim)
    [_, second] = linux01(sim, "SVR2").snapshots
    [frozen] = [d["path"] for d in second.config["disks"]]  # first's .avhdx
    victim = DISK if gone == "base" else frozen
    del sim.host("SVR2").files[victim.lower()]
    assert run(sim, "SVR2", "Stop-VM", Name="Linux01", TurnOff=None, Force=None).ok
    before = linux01(sim, "SVR2").model_dump()
    result: Result = run(sim, "SVR2", "Restore-VMSnapshot", VMName="Linux01", Name="baseline",
                         Confirm=False)
    assert not result.ok
    assert "(0x80070002)" in result.failure and victim in result.failure
    assert result.error_ids[0].startswith("ObjectNotFound,")
    assert linux01(sim, "SVR2").model_dump() == before


def test_removing_checkpoints_merges_their_disks(sim: Sim) -> None:
    """Remove-VMSnapshot merges the .avhdx back: the VM runs on its VHDX again and no
    differencing disk is left."""
    lab_with_vm(sim)
    checkpoint_then_drift(sim)
    assert run(sim, "SVR2", "Remove-VMSnapshot", VMName="Linux01", Name="baseline").ok
    assert drives(sim, "SVR2") == [DISK]
    assert not [k for k in sim.host("SVR2").files if k.endswith(".avhdx")]


def test_remove_vm_merges_checkpoints_into_the_kept_vhdx(sim: Sim) -> None:
    """Remove-VM keeps the VHDX (with the checkpoints merged in) and leaves no .avhdx."""
    lab_with_vm(sim)
    checkpoint_then_drift(sim)
    assert run(sim, "SVR2", "Stop-VM", Name="Linux01", TurnOff=None).ok
    assert run(sim, "SVR2", "Remove-VM", Name="Linux01", Force=None).ok
    assert sim.host("SVR2").file(DISK) is not None
    assert not [k for k in sim.host("SVR2").files if k.endswith(".avhdx")]
