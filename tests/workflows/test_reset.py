"""Checkpoints and LabResetWorkflow over the simulated fleet: checkpoint, change, reset restores."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from hvlab.spec import Checkpoint, LabSpec
from hvlab.specfile import dump_lab
from simulator.fleet import Fleet
from starter.cli import run as cli
from tests.sim.conftest import hyperv_ready, join_domain, lab_with_vm, run
from tests.sim.test_checkpoint_chains import share_for_both
from tests.workflows.conftest import hvlab, lab_worker
from workflows.checkpoint import CheckpointWorkflow, CheckpointWorkflowInput
from workflows.lab_build import LabBuildInput, LabBuildResult, LabBuildWorkflow
from workflows.reset import LabResetInput, LabResetResult, LabResetWorkflow, start_order

BUILD = ["vm-deploy", "checkpoint"]
CONVERGE = ["host-prep:SVR2", "vm-deploy:Linux01", "checkpoint:baseline"]


def svr2_lab(seed: LabSpec) -> LabSpec:
    """The seed reduced to DC1, SVR2 and Linux01 (checkpoint 'baseline' of all VMs)."""
    svr2 = seed.host("SVR2").model_copy(update={"migration": None})
    return seed.model_copy(update={
        "hosts": [seed.host("DC1"), svr2], "vms": [seed.vm("Linux01")], "nat": [],
        "shares": [], "delegation": [], "replication": [], "exercises": []})


async def build(client: Client, task_queue: str, fleet: Fleet, spec: LabSpec
                ) -> LabBuildResult:
    """SVR2 joined with Hyper-V and switches (simulator helpers: no reboot waits), then the
    plan's units deploy Linux01 and take the 'baseline' checkpoint."""
    join_domain(fleet.sim, "SVR2")
    hyperv_ready(fleet.sim, "SVR2")
    return await client.execute_workflow(
        LabBuildWorkflow.run, LabBuildInput(spec=spec, only=BUILD),
        id=f"{spec.lab}-build-{uuid.uuid4().hex[:6]}", task_queue=task_queue)


def linux01(fleet: Fleet) -> dict[str, Any]:
    return dict(fleet.state()["hosts"]["SVR2"]["vms"]["Linux01"])


def assert_restored(fleet: Fleet, checkpointed: dict[str, Any]) -> None:
    """Linux01 equals its checkpointed self, except that it goes on in a new differencing disk
    branched from the checkpoint's VHDX (the one it ran on after the checkpoint is discarded)."""
    now, then = linux01(fleet), dict(checkpointed)
    [disk], [old] = now.pop("disks"), then.pop("disks")
    assert disk["path"] != old["path"] and now == then
    branched = fleet.sim.host("SVR2").file(disk["path"])
    assert branched is not None and branched.parent == "C:\\Hyper-V\\VHDs\\Linux01.vhdx"


def drift(fleet: Fleet) -> None:
    """After the checkpoint: Linux01 gets more memory and a NIC the lab file does not have,
    and is turned off."""
    sim = fleet.sim
    assert run(sim, "SVR2", "Stop-VM", Name="Linux01", TurnOff=None, Force=None).ok
    assert run(sim, "SVR2", "Set-VM", Name="Linux01", MemoryStartupBytes=2 * 1024**3).ok
    assert run(sim, "SVR2", "Add-VMNetworkAdapter", VMName="Linux01", Name="Rogue",
               SwitchName="Internal").ok


async def test_checkpoint_then_change_then_reset_restores(
    client: Client, task_queue: str, fleet: Fleet, seed: LabSpec, tmp_path: Path, cli_env: None
) -> None:
    """The build's checkpoint unit takes 'baseline'; after drift `hvlab reset FILE --watch`
    turns the VM off, applies the checkpoint, starts it and re-converges: the VM equals its
    checkpointed self. A checkpoint that fails on one VM is removed again from the others."""
    spec = svr2_lab(seed)
    lab = tmp_path / "svr2.yaml"
    lab.write_text(dump_lab(spec))
    async with lab_worker(client, task_queue, fleet):
        built = await build(client, task_queue, fleet, spec)
        assert built.units["checkpoint:baseline"] == "done"
        checkpointed = linux01(fleet)
        assert checkpointed["checkpoints"] == ["baseline"]
        assert checkpointed["state"] == "Running"
        drift(fleet)
        changed = linux01(fleet)
        assert changed["state"] == "Off" and changed["memory"] == 2 * 1024**3
        assert "Rogue" in {n["name"] for n in changed["nics"]}
        assert await hvlab("reset", str(lab), "--sim", "--watch") == 0
        result = await client.get_workflow_handle(
            "sim.classroom-reset", result_type=LabResetResult).result()
        ghost = spec.vm("Linux01").model_copy(update={"name": "ghost"})
        with_ghost = spec.model_copy(update={"vms": [*spec.vms, ghost],
                                             "checkpoints": [Checkpoint(name="pre-class")]})
        with pytest.raises(WorkflowFailureError):
            await client.execute_workflow(
                CheckpointWorkflow.run, CheckpointWorkflowInput(spec=with_ghost,
                                                                checkpoint="pre-class"),
                id=f"checkpoint-ghost-{uuid.uuid4().hex[:6]}", task_queue=task_queue)
        taken = await client.execute_workflow(
            CheckpointWorkflow.run, CheckpointWorkflowInput(spec=spec, checkpoint="baseline"),
            id=f"checkpoint-again-{uuid.uuid4().hex[:6]}", task_queue=task_queue)
        assert taken.created == []
    assert_restored(fleet, checkpointed)
    assert (result.checkpoint, result.restored, result.started) == (
        "baseline", ["Linux01"], ["Linux01"])
    assert result.converged == {"host-prep:SVR2": "done"}
    assert result.not_converged == ["vm-deploy", "checkpoint"]  # restored, not redeployed
    states = {s.name: s.state for s in result.progress.steps}
    assert states == {"stop:Linux01": "unchanged", "restore:Linux01": "done",
                      "start:Linux01": "done", "converge": "done"}
    # `hvlab checkpoint --no-compensate` keeps what was taken when another VM fails.
    ghost_lab = tmp_path / "ghost.yaml"  # a valid lab file: the ghost has no NIC of its own
    ghost_lab.write_text(dump_lab(with_ghost.model_copy(update={
        "vms": [spec.vm("Linux01"), ghost.model_copy(update={"nics": []})],
        "checkpoints": [*spec.checkpoints, Checkpoint(name="pre-class")]})))
    async with lab_worker(client, task_queue, fleet):
        code = await hvlab("checkpoint", str(ghost_lab), "pre-class", "--sim", "--watch",
                           "--no-compensate")
    assert code == 1
    assert linux01(fleet)["checkpoints"] == ["baseline", "pre-class"]


async def test_reset_with_unknown_checkpoint_fails_before_touching_a_vm(
    client: Client, task_queue: str, fleet: Fleet, seed: LabSpec
) -> None:
    """A checkpoint the lab file does not name fails the reset at once (InvalidInput)."""
    before = fleet.state()["counters"]
    async with lab_worker(client, task_queue, fleet):
        with pytest.raises(WorkflowFailureError) as info:
            await client.execute_workflow(
                LabResetWorkflow.run, LabResetInput(spec=seed, checkpoint="nope"),
                id=f"reset-nope-{uuid.uuid4().hex[:6]}", task_queue=task_queue)
    assert "no checkpoint 'nope'" in str(info.value.cause)
    assert fleet.state()["counters"] == before


def test_start_order_puts_the_dc_then_routers_first(seed: LabSpec) -> None:
    """Router VM first when the DC is not a VM; a DC VM goes before it; the rest in file
    order."""
    names = ["Linux01", "win2003-3", "win2003-2", "win2003-1"]
    assert start_order(seed, names) == ["win2003-1", "win2003-2", "win2003-3", "Linux01"]
    dc_vm = seed.vm("Linux01").model_copy(update={"name": "DC1"})
    with_dc = seed.model_copy(update={"vms": [*seed.vms, dc_vm]})
    assert start_order(with_dc, [*names, "DC1"])[:2] == ["DC1", "win2003-1"]


def test_cli_rejects_bad_input_before_starting_anything(
    seed: LabSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unknown checkpoint names and invalid lab files exit 2 without contacting Temporal."""
    monkeypatch.setenv("HVLAB_TEMPORAL_ADDRESS", "127.0.0.1:1")
    monkeypatch.setenv("HVLAB_HOME", str(tmp_path / "home"))
    lab = tmp_path / "lab.yaml"
    lab.write_text(dump_lab(seed))
    broken = tmp_path / "broken.yaml"
    broken.write_text(dump_lab(seed).replace("host: SVR2", "host: SVR9"))
    assert cli(["checkpoint", str(lab), "nope"]) == 2
    assert cli(["reset", str(lab), "--checkpoint", "nope"]) == 2
    assert cli(["schedule", "reset", str(lab), "--cron", "0 6 * *"]) == 2
    for command in (["reset", str(broken)], ["down", str(broken)],
                    ["checkpoint", str(broken), "baseline"],
                    ["schedule", "reset", str(broken), "--cron", "0 6 * * 1-5"]):
        assert cli(command) == 2, command
    assert not (tmp_path / "home" / "labs").exists()


def two_host_lab(seed: LabSpec) -> LabSpec:
    """DC1, SVR1, SVR2 and Linux01 (on SVR2); no replication, NAT, shares or delegation in
    the file (the test prepares the hosts, KCD and the share directly)."""
    hosts = [seed.host("DC1"), *(seed.host(h).model_copy(update={"migration": None})
                                 for h in ("SVR1", "SVR2"))]
    return seed.model_copy(update={
        "hosts": hosts, "vms": [seed.vm("Linux01")], "nat": [], "shares": [],
        "delegation": [], "replication": []})


async def reset(client: Client, task_queue: str, spec: LabSpec) -> LabResetResult:
    return await client.execute_workflow(
        LabResetWorkflow.run, LabResetInput(spec=spec, only=["host-prep"]),
        id=f"reset-{uuid.uuid4().hex[:6]}", task_queue=task_queue)


async def test_reset_after_shared_nothing_and_storage_moves(
    client: Client, task_queue: str, fleet: Fleet, seed: LabSpec
) -> None:
    """'baseline' taken on SVR2, then Linux01 moves shared-nothing to SVR1: the reset restores
    and starts it on SVR1 from the moved files. Then its storage moves to \\\\DC1\\smb: the
    next reset restores it there. With the checkpoint's VHDX deleted, the reset fails as
    ResetIncomplete naming the cause and Linux01's state."""
    spec = two_host_lab(seed)
    sim = fleet.sim
    lab_with_vm(sim)  # hosts joined, Hyper-V, migration with Kerberos and KCD
    assert run(sim, "SVR2", "Stop-VM", Name="Linux01", TurnOff=None).ok
    assert run(sim, "SVR2", "Remove-VM", Name="Linux01", Force=None).ok
    assert run(sim, "SVR2", "Remove-Item", Path="C:\\Hyper-V\\VHDs\\Linux01.vhdx").ok
    share_for_both(sim)
    async with lab_worker(client, task_queue, fleet):
        built = await client.execute_workflow(
            LabBuildWorkflow.run, LabBuildInput(spec=spec, only=BUILD),
            id=f"{spec.lab}-build-{uuid.uuid4().hex[:6]}", task_queue=task_queue)
        assert built.units["checkpoint:baseline"] == "done"
        assert run(sim, "SVR2", "Move-VM", Name="Linux01", DestinationHost="SVR1",
                   IncludeStorage=None, DestinationStoragePath="C:\\Hyper-V\\Linux01").ok
        assert run(sim, "SVR1", "Add-VMNetworkAdapter", VMName="Linux01", Name="Rogue").ok
        first = await reset(client, task_queue, spec)
        vm = sim.host("SVR1").vm("Linux01")
        assert vm is not None and vm.state == "Running"
        assert [n.name for n in vm.nics] == ["External"]
        assert all(d.path.startswith("C:\\Hyper-V\\Linux01\\") for d in vm.disks)
        assert run(sim, "SVR1", "Move-VMStorage", Name="Linux01",
                   DestinationStoragePath="\\\\DC1\\smb\\Linux01").ok
        assert run(sim, "SVR1", "Add-VMNetworkAdapter", VMName="Linux01", Name="Rogue").ok
        second = await reset(client, task_queue, spec)
        vm = sim.host("SVR1").vm("Linux01")
        assert vm is not None and vm.state == "Running"
        assert [n.name for n in vm.nics] == ["External"]
        assert all(d.path.startswith("\\\\DC1\\smb\\Linux01\\") for d in vm.disks)
        del sim.host("DC1").files["c:\\smb\\linux01\\linux01.vhdx"]
        with pytest.raises(WorkflowFailureError) as info:
            await reset(client, task_queue, spec)
    for result in (first, second):
        assert (result.restored, result.started) == (["Linux01"], ["Linux01"])
    failure = info.value.cause
    assert isinstance(failure, ApplicationError) and failure.type == "ResetIncomplete"
    assert "0x80070002" in str(failure) and "VMs now: Linux01 Off on SVR1" in str(failure)
