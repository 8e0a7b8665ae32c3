"""Live, shared-nothing, SMB and storage migrations with their preconditions."""

from __future__ import annotations

from typing import Any

from simulator.engine import Sim
from simulator.pstypes import prop
from simulator.world import Ace
from tests.sim.conftest import StepClock, lab_with_vm, run

DELEGATION = (
    "Virtual machine migration operation failed at migration Source. Failed to "
    "establish a connection with host SVR1: No credentials are available in the "
    "security package 0x8009030E."
)


def compare_vm(sim: Sim) -> Any:
    """Compare-VM of Linux01 (on SVR2) against SVR1, storage included."""
    return run(sim, "SVR2", "Compare-VM", Name="Linux01", DestinationHost="SVR1",
               IncludeStorage=None, DestinationStoragePath="C:\\Hyper-V\\Linux01")


def move(sim: Sim, **extra: object) -> object:
    return run(
        sim,
        "SVR2",
        "Move-VM",
        Name="Linux01",
        DestinationHost="svr1.kosa.vm",
        IncludeStorage=None,
        DestinationStoragePath="C:\\Hyper-V\\Linux01",
        **extra,
    )


def test_shared_nothing_move_keeps_state_and_moves_disks(sim: Sim) -> None:
    """The VM leaves SVR2, runs on SVR1, and its disk sits under the destination path."""
    lab_with_vm(sim)
    result = move(sim)
    assert result.ok, result.failure
    assert sim.host("SVR2").vm("Linux01") is None
    vm = sim.host("SVR1").vm("Linux01")
    assert vm is not None and vm.state == "Running"
    assert vm.disks[0].path == "C:\\Hyper-V\\Linux01\\Linux01.vhdx"
    assert sim.host("SVR1").file(vm.disks[0].path) is not None
    assert sim.host("SVR2").file("C:\\Hyper-V\\VHDs\\Linux01.vhdx") is None


def test_missing_delegation_gives_0x8009030E(sim: Sim) -> None:
    """Without migration-service KCD on the source's computer object the move fails."""
    lab_with_vm(sim)
    sim.world.ad.computer("SVR2").allowed_to_delegate_to = ["cifs/SVR1", "cifs/DC1"]
    result = move(sim)
    assert result.errors == [DELEGATION]
    assert sim.host("SVR2").vm("Linux01") is not None


def test_kerberos_only_delegation_fails_when_started_remotely(sim: Sim) -> None:
    """TrustedToAuthForDelegation (any protocol) is required for remote initiation."""
    lab_with_vm(sim)
    sim.world.ad.computer("SVR2").trusted_to_auth_for_delegation = False
    assert move(sim).errors == [DELEGATION]


def test_storage_move_needs_cifs_delegation(sim: Sim) -> None:
    """Moving storage needs cifs/<dst> on top of the migration service."""
    lab_with_vm(sim)
    comp = sim.world.ad.computer("SVR2")
    comp.allowed_to_delegate_to = [
        s for s in comp.allowed_to_delegate_to if not s.startswith("cifs/SVR1")
    ]
    assert move(sim).errors == [DELEGATION]


def test_credssp_destination_fails_remotely(sim: Sim) -> None:
    """CredSSP incoming auth cannot work from a remote session."""
    lab_with_vm(sim)
    assert run(sim, "SVR1", "Set-VMHost", VirtualMachineMigrationAuthenticationType="CredSSP").ok
    assert move(sim).errors == [DELEGATION]


def test_compare_vm_reports_missing_switch(sim: Sim) -> None:
    """Compare-VM lists 33012 for a switch the destination lacks."""
    lab_with_vm(sim)
    assert run(sim, "SVR1", "Remove-VMSwitch", Name="External", Force=None).ok
    report = compare_vm(sim)
    problems = prop(report.output[0], "Incompatibilities")
    assert [(prop(p, "Message"), prop(p, "MessageId")) for p in problems] == [
        ("Could not find Ethernet switch 'External'.", 33012)
    ]
    failed = move(sim)
    assert "Could not find Ethernet switch 'External'." in failed.failure


def test_migration_must_be_enabled_on_destination(sim: Sim) -> None:
    lab_with_vm(sim)
    assert run(sim, "SVR1", "Disable-VMMigration").ok
    assert "migration is not enabled on host 'SVR1'" in move(sim).failure


def test_destination_memory_is_checked(sim: Sim) -> None:
    lab_with_vm(sim)
    sim.host("SVR1").memory_total = 2 * 1024**3
    assert "(0x800705AA)" in move(sim).failure


def test_processor_incompatibility_until_compatibility_mode(sim: Sim) -> None:
    lab_with_vm(sim)
    sim.host("SVR1").cpu_family = OTHER_CPU
    assert HARDWARE in move(sim).failure
    sim.host("SVR2").vm("Linux01").compatibility_for_migration = True
    assert move(sim).ok


HARDWARE = (
    "The virtual machine cannot be moved to the destination computer. The hardware on the "
    "destination computer is not compatible with the hardware requirements of this virtual "
    "machine."
)
OTHER_CPU = "AMD EPYC 7763"



def compare(sim: Sim) -> list[tuple[str, int, str]]:
    report = compare_vm(sim)
    assert report.ok, report.failure
    problems = prop(report.output[0], "Incompatibilities")
    return [(prop(p, "Message"), prop(p, "MessageId"), prop(p, "Source")) for p in problems]


def refused_for_hardware(sim: Sim) -> bool:
    """Compare-VM lists the processor problem and Move-VM fails with it (the VM stays)."""
    problems = compare(sim)
    assert problems in ([], [(HARDWARE, 24004, "Processor")]), problems
    failure = move(sim).failure
    assert bool(problems) == (HARDWARE in failure), failure
    return bool(problems)


def checkpoint(sim: Sim, name: str) -> None:
    assert run(sim, "SVR2", "Checkpoint-VM", Name="Linux01", SnapshotName=name).ok


def turn_off(sim: Sim) -> None:
    assert run(sim, "SVR2", "Stop-VM", Name="Linux01", TurnOff=None).ok


def test_saved_vm_keeps_its_processor_state(sim: Sim) -> None:
    """A Saved VM resumes from its saved processor state, so another CPU family is refused
    like for a running VM; once the saved state is discarded (turned off) it moves."""
    lab_with_vm(sim)
    sim.host("SVR1").cpu_family = OTHER_CPU
    assert run(sim, "SVR2", "Stop-VM", Name="Linux01", Save=None).ok
    assert refused_for_hardware(sim)
    assert sim.host("SVR2").vm("Linux01").state == "Saved"
    turn_off(sim)
    assert not refused_for_hardware(sim)
    assert sim.host("SVR1").vm("Linux01").state == "Off"


def test_checkpoint_taken_while_running_keeps_processor_state(sim: Sim) -> None:
    """An Off VM with a standard checkpoint taken while it ran carries that checkpoint's saved
    processor state: refused until the checkpoint is removed. One taken while it was off has
    none and does not matter."""
    lab_with_vm(sim)
    assert run(sim, "SVR2", "Set-VM", Name="Linux01", CheckpointType="Standard").ok
    checkpoint(sim, "running")
    turn_off(sim)
    checkpoint(sim, "off")
    sim.host("SVR1").cpu_family = OTHER_CPU
    assert refused_for_hardware(sim)
    assert run(sim, "SVR2", "Remove-VMSnapshot", VMName="Linux01", Name="running").ok
    assert not refused_for_hardware(sim)
    assert [s.name for s in sim.host("SVR1").vm("Linux01").snapshots] == ["off"]


def test_checkpoint_keeps_the_compatibility_mode_it_was_taken_with(sim: Sim) -> None:
    """Compatibility mode is part of a saved processor state: a checkpoint taken without it
    is refused even after the mode is turned on (the VM off); one taken in compatibility mode
    moves even after the mode is turned off again."""
    lab_with_vm(sim)
    sim.host("SVR1").cpu_family = OTHER_CPU
    assert run(sim, "SVR2", "Set-VM", Name="Linux01", CheckpointType="Standard").ok
    checkpoint(sim, "full features")
    turn_off(sim)
    assert run(
        sim, "SVR2", "Set-VMProcessor", VMName="Linux01", CompatibilityForMigrationEnabled=True
    ).ok
    assert refused_for_hardware(sim)
    assert run(sim, "SVR2", "Remove-VMSnapshot", VMName="Linux01", Name="full features").ok
    assert run(sim, "SVR2", "Start-VM", Name="Linux01").ok
    checkpoint(sim, "compatible")
    turn_off(sim)
    assert run(
        sim, "SVR2", "Set-VMProcessor", VMName="Linux01", CompatibilityForMigrationEnabled=False
    ).ok
    assert not refused_for_hardware(sim)


def _smb_vm(sim: Sim) -> None:
    lab_with_vm(sim)
    vm_on_share(sim)


def vm_on_share(sim: Sim) -> None:
    """Linux01's files on \\\\DC1\\smb, whose folder grants only SVR2$ (not SVR1$) NTFS rights."""
    assert run(sim, "DC1", "New-Item", ItemType="Directory", Path="C:\\smb").ok
    sim.world.shares["DC1"]["smb"] = sim.world.shares["DC1"]["SYSVOL"].model_copy(
        update={
            "name": "smb",
            "path": "C:\\smb",
            "share_acl": [
                Ace(account=a, right="Full")
                for a in ("KOSA\\SVR1$", "KOSA\\SVR2$", "BUILTIN\\Administrators")
            ],
        }
    )
    sim.host("DC1").ntfs_acls["c:\\smb"] = [Ace(account="KOSA\\SVR2$", right="FullControl")]
    assert run(sim, "SVR2", "Stop-VM", Name="Linux01", TurnOff=None).ok
    assert run(
        sim,
        "SVR2",
        "Move-VMStorage",
        Name="Linux01",
        DestinationStoragePath="\\\\DC1\\smb\\Linux01",
    ).ok
    assert run(sim, "SVR2", "Start-VM", Name="Linux01").ok


def test_smb_vm_needs_ntfs_rights_for_destination_computer(sim: Sim) -> None:
    """VM files on \\\\DC1\\smb: the destination's computer account needs NTFS rights too."""
    _smb_vm(sim)
    result = run(sim, "SVR2", "Move-VM", Name="Linux01", DestinationHost="SVR1")
    assert "General access denied error (0x80070005)" in result.failure
    sim.host("DC1").ntfs_acls["c:\\smb"].append(Ace(account="KOSA\\SVR1$", right="FullControl"))
    result = run(sim, "SVR2", "Move-VM", Name="Linux01", DestinationHost="SVR1")
    assert result.ok, result.failure
    vm = sim.host("SVR1").vm("Linux01")
    assert vm.path == "\\\\DC1\\smb\\Linux01" and vm.disks[0].path.startswith("\\\\DC1\\smb")


def test_move_job_progress_is_visible_and_cancellable(sim: Sim) -> None:
    """Move-VM -AsJob: Msvm_MigrationJob shows progress; RequestStateChange 4 cancels it."""
    lab_with_vm(sim)
    sim.clock = clock = StepClock()
    started = move(sim, AsJob=None)
    assert started.ok and prop(started.output[0], "State") is not None
    clock.step(3)
    jobs = run(
        sim,
        "SVR2",
        "Get-CimInstance",
        Namespace="root/virtualization/v2",
        ClassName="Msvm_MigrationJob",
    ).output
    assert len(jobs) == 1 and int(prop(jobs[0], "JobState")) == 4
    vm_id = sim.host("SVR2").vm("Linux01").id.upper()
    assert prop(jobs[0], "VirtualSystemName") == vm_id
    assert 0 < int(prop(jobs[0], "PercentComplete")) < 100
    cancel = run(
        sim,
        "SVR2",
        "Invoke-CimMethod",
        InputObject=jobs[0],
        MethodName="RequestStateChange",
        Arguments={"RequestedState": 4},
    )
    assert cancel.ok and prop(cancel.output[0], "ReturnValue") == 0
    clock.step(settle=False)
    job = next(iter(sim.world.jobs.values()))
    assert sim.job_done(job.id, timeout=5) and job.state == 8
    assert sim.host("SVR2").vm("Linux01") is not None
    assert sim.host("SVR1").vm("Linux01") is None


def test_kcd_set_in_ad_applies_to_moves_after_the_ticket_purge(sim: Sim) -> None:
    """KCD granted through Set-ADComputer does not help a move until the source's machine
    tickets are renewed (klist purge -li 0x3e7); removing it keeps working until then too."""
    from tests.sim.test_network import run_script

    delegate_kind = "msDS-AllowedToDelegateTo"
    lab_with_vm(sim)
    comp = sim.world.ad.computer("SVR2")
    granted = list(comp.allowed_to_delegate_to)  # type: ignore[union-attr]
    assert run(sim, "DC1", "Set-ADComputer", Identity="SVR2", Clear=[delegate_kind]).ok
    assert not run_script(sim, "SVR2", "host/purge-tickets").errors
    assert move(sim).errors == [DELEGATION]
    assert run(sim, "DC1", "Set-ADComputer", Identity="SVR2", Add={delegate_kind: granted}).ok
    assert move(sim).errors == [DELEGATION]  # the old tickets still say "no delegation"
    assert not run_script(sim, "SVR2", "host/purge-tickets").errors
    result = move(sim)
    assert result.ok, result.failure
