"""LabTeardownWorkflow over the simulated fleet: removes VMs and switches; a rerun only probes."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from hvlab.spec import LabSpec
from hvlab.specfile import dump_lab
from simulator.fleet import Fleet
from tests.sim.conftest import hyperv_ready, run
from tests.workflows.conftest import hvlab, lab_worker, mutating_counts
from tests.workflows.test_reset import build, svr2_lab
from workflows.teardown import LabTeardownInput, LabTeardownResult, LabTeardownWorkflow


async def teardown(client: Client, task_queue: str, spec: LabSpec) -> LabTeardownResult:
    return await client.execute_workflow(
        LabTeardownWorkflow.run, LabTeardownInput(spec=spec),
        id=f"{spec.lab}-down-{uuid.uuid4().hex[:6]}", task_queue=task_queue)


async def test_teardown_removes_vms_and_switches_and_a_rerun_changes_nothing(
    client: Client, task_queue: str, fleet: Fleet, seed: LabSpec, tmp_path: Path, cli_env: None,
    capsys: pytest.CaptureFixture[str]
) -> None:
    """On a half-built lab (SVR2 with Linux01 and its checkpoint; SVR1 without Hyper-V) the
    seed's teardown removes the checkpoint and the VM with its disk, keeps SVR2's switches
    (made by hand before the build: adopted) and says what it leaves; a second one (`hvlab
    down FILE --sim --watch`) sends no mutating command and lists what it kept; `--force`
    removes the switches too."""
    async with lab_worker(client, task_queue, fleet):
        await build(client, task_queue, fleet, svr2_lab(seed))
        disk = seed.vm_disk_path(seed.vm("Linux01")).lower()
        assert disk in {f.lower() for f in fleet.state()["hosts"]["SVR2"]["files"]}
        first = await teardown(client, task_queue, seed)
        svr2 = fleet.state()["hosts"]["SVR2"]
        assert svr2["vms"] == {} and set(svr2["switches"]) == {
            "External", "Internal", "Private", "Internal2"}
        assert disk not in {f.lower() for f in svr2["files"]}
        assert {"checkpoint:baseline", "vm-deploy:Linux01"} <= set(first.removed)
        assert "host-prep:SVR2" not in first.removed
        assert len(first.kept["host-prep:SVR2"]) == 4
        assert all("(adopted)" in line for line in first.kept["host-prep:SVR2"])
        assert "Hyper-V role" in first.left["host-prep:SVR2"]
        assert "router VM" in first.left["nat:router"]
        before = mutating_counts(fleet)
        lab = tmp_path / "lab.yaml"
        lab.write_text(dump_lab(seed))
        assert await hvlab("schedule", "reset", str(lab), "--cron", "0 6 * * 1-5", "--sim") == 0
        capsys.readouterr()
        assert await hvlab("down", str(lab), "--sim", "--yes") == 0
        assert "kept: switch Private on SVR2 kept: no `hvlab: created-by=sim.classroom` line" \
            in capsys.readouterr().out
        with pytest.raises(RPCError) as gone:  # down deleted the lab's reset schedule
            await client.get_schedule_handle("sim.classroom-reset-schedule").describe()
        assert gone.value.status == RPCStatusCode.NOT_FOUND
        second = await client.get_workflow_handle(
            "sim.classroom-down", result_type=LabTeardownResult).result()
        assert mutating_counts(fleet) == before
        assert second.removed == {}
        assert {s.state for s in second.progress.steps} <= {"unchanged", "skipped"}
        assert await hvlab("down", str(lab), "--sim", "--yes", "--force") == 0
    assert fleet.state()["hosts"]["SVR2"]["switches"] == {}


def _mark(lab: str) -> str:
    return f"hvlab: created-by={lab}"


async def test_down_keeps_an_adopted_vm_and_the_management_switch_unless_forced(
    client: Client, task_queue: str, fleet: Fleet, seed: LabSpec, tmp_path: Path, cli_env: None,
    capsys: pytest.CaptureFixture[str]
) -> None:
    """SVR2's switches as hvlab's host prep leaves them (marked), and a VM named Linux01 that
    was there before hvlab (unmarked): `hvlab down` removes the marked Internal switches,
    keeps the VM (adopted) and the External switch whose vNIC carries SVR2's address,
    printing each with its reason; `hvlab down --force` removes them."""
    sim = fleet.sim
    hyperv_ready(sim, "SVR2")
    for name in ("External", "Internal", "Private", "Internal2"):
        assert run(sim, "SVR2", "Remove-VMSwitch", Name=name, Force=None).ok
    assert run(sim, "SVR2", "New-VMSwitch", Name="External", NetAdapterName="Ethernet0",
               AllowManagementOS=True, Notes=_mark(seed.lab)).ok
    for name, kind in (("Internal", "Internal"), ("Private", "Private")):
        assert run(sim, "SVR2", "New-VMSwitch", Name=name, SwitchType=kind,
                   Notes=_mark(seed.lab)).ok
    assert run(sim, "SVR2", "New-VMSwitch", Name="Internal2", SwitchType="Internal").ok
    assert run(sim, "SVR2", "New-VM", Name="Linux01", MemoryStartupBytes=2**30, NoVHD=None).ok
    lab = tmp_path / "lab.yaml"
    lab.write_text(dump_lab(seed))
    address = seed.host("SVR2").connection.address
    async with lab_worker(client, task_queue, fleet):
        capsys.readouterr()
        assert await hvlab("down", str(lab), "--sim", "--yes") == 0
        printed = capsys.readouterr().out
        svr2 = fleet.state()["hosts"]["SVR2"]
        assert "Linux01" in svr2["vms"]
        assert set(svr2["switches"]) == {"External", "Internal2"}
        assert "kept: VM Linux01 on SVR2 kept: no `hvlab: created-by=sim.classroom` line" \
            in printed
        assert f"kept: External switch External on SVR2 kept: its host vNIC carries {address}" \
            in printed
        assert "kept: switch Internal2 on SVR2 kept" in printed
        result = await client.get_workflow_handle(
            "sim.classroom-down", result_type=LabTeardownResult).result()
        assert result.removed["host-prep:SVR2"] == [
            "host.remove_switch SVR2 Private", "host.remove_switch SVR2 Internal"]
        assert "vm-deploy:Linux01" not in result.removed
        assert await hvlab("down", str(lab), "--sim", "--yes", "--force") == 0
    svr2 = fleet.state()["hosts"]["SVR2"]
    assert svr2["vms"] == {} and svr2["switches"] == {}
