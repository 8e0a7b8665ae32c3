"""LabBuildWorkflow over the simulated fleet: hosts prepared, VMs deployed, reruns idle."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowFailureError

from hvlab.labs import LabRegistry
from hvlab.metrics import REGISTRY
from hvlab.spec import LabSpec
from simulator.fleet import Fleet
from tests.workflows.conftest import lab_worker, mutating_counts
from workflows.kinds import build_plan
from workflows.lab_build import LabBuildInput, LabBuildResult, LabBuildWorkflow
from workflows.progress import Progress
from workflows.vm_deploy import VmDeployInput, VmDeployWorkflow

UNITS = ["host-prep", "vm-deploy"]


async def _build(client: Client, task_queue: str, spec: LabSpec) -> LabBuildResult:
    return await client.execute_workflow(
        LabBuildWorkflow.run, LabBuildInput(spec=spec, only=UNITS),
        id=f"{spec.lab}-build-{uuid.uuid4().hex[:6]}", task_queue=task_queue,
    )


async def test_build_prepares_hosts_and_deploys_vms(
    client: Client, task_queue: str, fleet: Fleet, seed: LabSpec
) -> None:
    """Hosts join, get Hyper-V and switches; every VM exists on its host; a rerun sends no
    mutating command. (win2003-3 lives on the SMB share, built by another unit kind.)"""
    seed = seed.model_copy(update={"vms": [v for v in seed.vms if v.name != "win2003-3"],
                                   "nat": [], "replication": []})
    async with lab_worker(client, task_queue, fleet):
        result = await _build(client, task_queue, seed)
        assert set(result.units.values()) == {"done"}
        state = fleet.state()
        for host in ("SVR1", "SVR2"):
            assert state["hosts"][host]["domain"].lower() == "kosa.vm"
            assert set(state["hosts"][host]["switches"]) == {
                "External", "Internal", "Private", "Internal2"}
        assert set(state["hosts"]["SVR1"]["vms"]) == {"win2003-1", "win2003-2"}
        assert state["hosts"]["SVR2"]["vms"]["Linux01"]["state"] == "Running"
        steps = REGISTRY.get_sample_value("hvlab_step_duration_seconds_count", {
            "step": "host.switch", "host": "SVR2", "outcome": "ok"})
        assert steps is not None and steps >= 4
        before = mutating_counts(fleet)
        again = await _build(client, task_queue, seed)
        assert set(again.units.values()) == {"done"}
        assert mutating_counts(fleet) == before


async def test_failed_vm_deploy_leaves_host_as_before(
    client: Client, task_queue: str, fleet: Fleet, seed: LabSpec
) -> None:
    """A VM that cannot start (not enough host memory) is removed again with its disk."""
    async with lab_worker(client, task_queue, fleet):
        await _build(client, task_queue, seed.model_copy(update={
            "vms": [v for v in seed.vms if v.host == "SVR2"], "nat": [], "replication": []}))
        huge = seed.vm("Linux01").model_copy(update={"name": "huge", "memory": 64 * 1024**3})
        spec = seed.model_copy(update={"vms": [*seed.vms, huge]})
        before = fleet.state()["hosts"]["SVR2"]
        with pytest.raises(WorkflowFailureError) as info:
            await client.execute_workflow(
                VmDeployWorkflow.run, VmDeployInput(spec=spec, vm="huge"),
                id=f"deploy-huge-{uuid.uuid4().hex[:6]}", task_queue=task_queue)
        assert "Not enough memory in the system" in str(info.value.cause.cause)
        after = fleet.state()["hosts"]["SVR2"]
        assert "huge" not in after["vms"]
        assert after["vms"].keys() == before["vms"].keys()
        files = {k.lower() for k in fleet.world.host("SVR2").files}  # type: ignore[union-attr]
        assert not any("huge" in f for f in files)


async def test_seed_build_reaches_nat_checks(
    client: Client, task_queue: str, fleet: Fleet, seed: LabSpec
) -> None:
    """The seed's build (hosts, share, delegation, readiness, VMs, NAT) completes: the share
    is granted to the hosts, KCD is in AD, the legacy guests came up configured offline and
    the forwarded ports 23 and 35000 on the router reach Telnet and RDP."""
    kinds = ["host-prep", "shared-storage", "delegation", "migration-readiness", "vm-deploy",
             "nat"]
    async with lab_worker(client, task_queue, fleet):
        build_id = f"seed-build-{uuid.uuid4().hex[:6]}"
        result = await client.execute_workflow(
            LabBuildWorkflow.run, LabBuildInput(spec=seed, only=kinds),
            id=build_id, task_queue=task_queue)
        assert set(result.units.values()) == {"done"}, result.units
        # `hvlab plan` prints the plan's steps; each unit's workflow reports exactly those, in
        # that order, and finishes every one of them (none left pending)
        for unit in build_plan(seed).units:
            if unit.kind not in kinds:
                continue
            child = client.get_workflow_handle(f"{build_id}/{unit.id}")
            progress = await child.query("progress", result_type=Progress)
            assert [(s.name, s.title) for s in progress.steps] == [
                (s.name, s.title) for s in unit.steps], unit.id
            assert {s.state for s in progress.steps} <= {"done", "unchanged", "skipped"}, (
                unit.id, [(s.name, s.state) for s in progress.steps])
            assert progress.percent == 100
    state = fleet.state()
    share = state["shares"]["DC1"]["smb"]
    granted = {a["account"] for a in share["share_acl"]}
    assert {"KOSA\\SVR1$", "KOSA\\SVR2$"} <= granted
    assert {"KOSA\\SVR1$", "KOSA\\SVR2$"} <= {a["account"] for a in share["ntfs_acl"]}
    svr1 = state["ad"]["computers"]["SVR1"]
    assert "Microsoft Virtual System Migration Service/SVR2" in svr1["allowed_to_delegate_to"]
    assert svr1["trusted_to_auth_for_delegation"] is True
    router = state["hosts"]["SVR1"]["guests"]["win2003-1"]
    assert len(router["nat_mappings"]) == 2, router["nat_mappings"]
    nat = result.progress.steps[-1]
    assert nat.name == "nat:router" and nat.state in ("done", "unchanged")


async def test_korean_seed_build_completes(
    client: Client, task_queue: str, seed: LabSpec, tmp_path: Path
) -> None:
    """The seed build on a copy whose hosts are all ``locale: ko-KR`` (Korean messages,
    warnings and firewall display names): every unit completes, as on the English seed,
    including Hyper-V Replica (its listener rule is found by Name, not by DisplayName)."""
    korean = seed.model_copy(update={
        "hosts": [h.model_copy(update={"locale": "ko-KR"}) for h in seed.hosts]})
    kinds = ["host-prep", "shared-storage", "delegation", "migration-readiness", "vm-deploy",
             "nat", "replication"]
    with Fleet(korean, tmp_path, speed=0, fresh=True, port=0, control=False,
               max_receive_wait=2.0) as fleet:
        LabRegistry(tmp_path).register(korean, sim=True)
        async with lab_worker(client, task_queue, fleet):
            result = await client.execute_workflow(
                LabBuildWorkflow.run, LabBuildInput(spec=korean, only=kinds),
                id=f"seed-ko-build-{uuid.uuid4().hex[:6]}", task_queue=task_queue)
        assert set(result.units.values()) == {"done"}, result.units
        svr1 = fleet.sim.host("SVR1")
        rule = svr1.firewall["VIRT-HVRHTTPL-In-TCP-NoScope"]
        assert rule.enabled and rule.display_name == "Hyper-V 복제본 HTTP 수신기(TCP-In)"
