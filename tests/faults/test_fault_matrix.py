"""Fault matrix: each fault injected into the simulated fleet, run through the real workflows,
a real worker and real pypsrp, with the expected outcome written in the test.

Cases already covered elsewhere are not repeated here:

| case | expected outcome | test |
|---|---|---|
| WinRM connection dropped mid-step (answer lost after New-VMSwitch ran) | Temporal retries the step, the retry probes and creates nothing twice: 4 New-VMSwitch, HostPrep done | tests/workflows/test_network_fault.py::test_dropped_connection_after_new_vmswitch_is_retried_once |
| host rebooted unexpectedly mid-build (SVR2 reboots after its 25th command) | the step fails as transient, is retried once the host answers, HostPrep completes with all switches | tests/workflows/test_compensation.py::test_unexpected_reboot_during_host_prep_is_waited_out |
| migration job failed at 50 % | workflow fails, VM still running on SVR1, nothing on SVR2, one Move-VM | tests/workflows/test_migration.py::test_job_failed_at_half_way_leaves_the_vm_on_its_source |
| delegation missing, workflow level | DelegationMissing (0x8009030E), not retried, no Move-VM, VM stays on SVR1 | tests/workflows/test_migration.py::test_missing_delegation_fails_fast_and_vm_stays |
| initial replication job failed at 50 % | ReplicationFailed, relationship and replica VM gone, replica servers off again | tests/workflows/test_replication.py::test_failed_initial_replication_is_undone_on_both_sides |

Added here (what the tests above do not show):

| case | expected outcome | test |
|---|---|---|
| WinRM connection dropped before the command ran (Start-VM request cut) | retried, the VM started exactly once, deploy done | test_dropped_connection_before_start_vm_is_retried |
| replica host down during initial replication (new `down` fault kind) | the seeding job fails with Hyper-V's connection error (0x00002EFE), the workflow as ReplicationFailed 'replication of Linux01 is Error/Critical: <the job's connection error>'; compensation retries until SVR1 is back and undoes both sides; Linux01 keeps running on SVR2 | test_replica_host_down_during_initial_replication_is_undone |
| wrong password | build fails fast (one attempt) naming host and account, non-retryable AuthenticationFailed; a handful of 401s at the host, no retry storm; nothing changed | test_wrong_password_fails_fast_without_retry_storm |
| delegation missing, as the operator sees it | `hvlab migrate --watch` exits 1 naming SVR1 and the fix (constrained delegation); no Move-VM, VM still on SVR1 | test_missing_delegation_names_the_fix_in_the_cli |
| host out of memory | Start-VM fails with Hyper-V's "could not initialize ... Not enough memory" error as InsufficientMemory, not retried; the deploy removes its VM and disk | test_out_of_memory_start_fails_and_leaves_nothing |
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError

from hvlab.spec import LabSpec
from simulator.faults import FaultPlan
from simulator.fleet import Fleet
from simulator.winrm import FaultEffect, FaultRule
from simulator.world import REPLICA_HTTP_RULE
from tests.sim.conftest import GB, SEED, run
from tests.workflows.conftest import hvlab, lab_worker, mutating_counts
from tests.workflows.test_migration import lab_vm, ready_hosts
from workflows.lab_build import LabBuildInput, LabBuildWorkflow
from workflows.replication import ReplicationWorkflow, ReplicationWorkflowInput
from workflows.vm_deploy import VmDeployInput, VmDeployWorkflow


def root_cause(error: BaseException) -> ApplicationError:
    """The ApplicationError under a workflow failure's chain of child/activity errors."""
    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, ApplicationError):
        cause = cause.__cause__ if not isinstance(cause, ActivityError | ChildWorkflowError
                                                  | WorkflowFailureError) else cause.cause
    assert isinstance(cause, ApplicationError), f"no ApplicationError under {error!r}"
    return cause


def svr2_only(seed: LabSpec, **update: Any) -> LabSpec:
    """The seed reduced to DC1 and SVR2's own units (SVR2's VMs, no shared units)."""
    base: dict[str, Any] = {"vms": [v for v in seed.vms if v.host == "SVR2"], "nat": [],
                            "replication": [], "checkpoints": [], "shares": [],
                            "delegation": []}
    return seed.model_copy(update={**base, **update})


async def retried_activities(handle: Any) -> set[str]:
    """Activity types of the workflow that needed more than one attempt."""
    history = await handle.fetch_history()
    scheduled = {e.event_id: e.activity_task_scheduled_event_attributes.activity_type.name
                 for e in history.events
                 if e.HasField("activity_task_scheduled_event_attributes")}
    return {scheduled[e.activity_task_started_event_attributes.scheduled_event_id]
            for e in history.events
            if e.HasField("activity_task_started_event_attributes")
            and e.activity_task_started_event_attributes.attempt > 1}


def cli_text(capsys: pytest.CaptureFixture[str]) -> str:
    """What the CLI printed, without the in-process worker's JSON log lines."""
    captured = capsys.readouterr()
    lines = (captured.out + captured.err).splitlines()
    return "\n".join(line for line in lines if not line.startswith("{\""))


def attempts(history: Any) -> list[int]:
    return [e.activity_task_started_event_attributes.attempt for e in history.events
            if e.HasField("activity_task_started_event_attributes")]


# -- wrong password ------------------------------------------------------------------------


async def test_wrong_password_fails_fast_without_retry_storm(
    client: Client, task_queue: str, fleet: Fleet, seed: LabSpec
) -> None:
    """The worker's passwords for the lab's accounts are wrong: the build's first remote step
    fails as AuthenticationFailed, non-retryable (attempt 1 only), the message names
    the host and both accounts tried (the bootstrap and the domain credential) and says what to
    fix; the host saw a handful of refused logons (no retry storm) and no command at all."""
    path = fleet.home / "sim" / "endpoints.json"
    endpoints = json.loads(path.read_text())
    endpoints["secrets"] = {reference: "not-the-password" for reference in endpoints["secrets"]}
    path.write_text(json.dumps(endpoints))
    spec = svr2_only(seed, vms=[])
    build_id = f"wrongpw-{uuid.uuid4().hex[:6]}"
    async with lab_worker(client, task_queue, fleet):
        with pytest.raises(WorkflowFailureError) as failed:
            await client.execute_workflow(
                LabBuildWorkflow.run, LabBuildInput(spec=spec, only=["host-prep"]),
                id=build_id, task_queue=task_queue)
    cause = root_cause(failed.value)
    assert cause.type == "AuthenticationFailed" and cause.non_retryable
    host = cause.message.split(":")[0]
    assert host in ("SVR1", "SVR2"), cause.message
    assert "rejected both the bootstrap credential 'local-admin'" in cause.message
    assert "domain credential 'domain-admin'" in cause.message and "fix: check" in cause.message
    # the build's first remote steps (observing the hosts) fail before any unit starts
    history = await client.get_workflow_handle(build_id).fetch_history()
    assert set(attempts(history)) == {1}  # never retried
    refused = {name: server.auth_failures for name, server in fleet.servers.items()}
    assert 2 <= sum(refused.values()) <= 4, refused  # two refused logons per host reached
    assert all(server.request_counts == {} for server in fleet.servers.values())
    assert all(counts == {} for counts in mutating_counts(fleet).values())


# -- host out of memory --------------------------------------------------------------------


async def test_out_of_memory_start_fails_and_leaves_nothing(
    client: Client, task_queue: str, fleet: Fleet, seed: LabSpec, locale: str
) -> None:
    """SVR2 (16 GB, 2 GB kept by the parent) already runs a 10 GB VM; Linux01 asks for 6 GB,
    which the host has in total but not free. Start-VM fails with Hyper-V's own error,
    classified InsufficientMemory, not retried; the deploy's saga removes the new VM and its
    disk; the running VM is untouched. (A VM larger than the whole host:
    tests/workflows/test_lab_build.py::test_failed_vm_deploy_leaves_host_as_before.)"""
    ready_hosts(fleet.sim)
    assert run(fleet.sim, "SVR2", "New-VM", Name="hog", MemoryStartupBytes=10 * GB).ok
    assert run(fleet.sim, "SVR2", "Start-VM", Name="hog").ok
    linux01 = seed.vm("Linux01").model_copy(update={"memory": 6 * GB})
    spec = svr2_only(seed, vms=[linux01])
    before = dict(fleet.state()["counters"]["SVR2"])
    async with lab_worker(client, task_queue, fleet):
        handle = await client.start_workflow(
            VmDeployWorkflow.run, VmDeployInput(spec=spec, vm="Linux01"),
            id=f"oom-{uuid.uuid4().hex[:6]}", task_queue=task_queue)
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
    cause = root_cause(failed.value)
    assert cause.type == "InsufficientMemory" and cause.non_retryable
    assert cause.message.startswith("SVR2: Start-VM")
    # the host's own words (Korean on a ko-KR host), classified by its error id, not by them
    if locale == "ko-KR":
        assert "'Linux01'을(를) 초기화할 수 없습니다." in cause.message
        assert ("RAM 크기가 6144MB인 가상 컴퓨터 Linux01을(를) 시작하는 데 필요한 메모리가 "
                "시스템에 부족합니다.") in cause.message
        assert "Not enough memory" not in cause.message
    else:
        assert "'Linux01' could not initialize." in cause.message
        assert ("Not enough memory in the system to start the virtual machine Linux01 with ram "
                "size 6144 megabytes") in cause.message
    assert "fix: free memory on the host or lower the VM's startup memory" in cause.message
    assert set(attempts(await handle.fetch_history())) == {1}
    state = fleet.state()
    assert "Linux01" not in state["hosts"]["SVR2"]["vms"]
    assert state["hosts"]["SVR2"]["vms"]["hog"]["state"] == "Running"
    host = fleet.world.host("SVR2")
    assert host is not None
    assert [p for p in host.files if "linux01" in p.lower() and "golden" not in p.lower()] == []
    after = state["counters"]["SVR2"]
    assert after["Start-VM"] - before.get("Start-VM", 0) == 1
    assert after["New-VM"] - before.get("New-VM", 0) == 1
    assert after["Remove-VM"] - before.get("Remove-VM", 0) == 1


# -- replica host down during initial replication ------------------------------------------


async def test_replica_host_down_during_initial_replication_is_undone(
    client: Client, task_queue: str, fleet: Fleet, seed: LabSpec
) -> None:
    """SVR1 (the replica) leaves the network for 2 s when Linux01's seeding reaches 50 %. The
    seeding job fails with the Replica connection error and the workflow fails as
    ReplicationFailed; its compensation finds SVR1 unreachable, retries until SVR1 is back
    and then undoes both sides: no relationship, no replica VM, replica servers and listener
    rules as before the run; Linux01 keeps running on SVR2."""
    ready_hosts(fleet.sim)
    lab_vm(fleet.sim, seed, "Linux01")
    fleet.set_faults(FaultPlan.parse([{"type": "down", "host": "SVR1", "kind": "replication",
                                       "at_percent": 50, "seconds": 2.0}]))
    async with lab_worker(client, task_queue, fleet):
        handle = await client.start_workflow(
            ReplicationWorkflow.run,
            ReplicationWorkflowInput(spec=seed, vm="Linux01", replica="SVR1", poll_seconds=0.02),
            id=f"{seed.lab}-replicate-down-{uuid.uuid4().hex[:6]}", task_queue=task_queue)
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
    assert fleet.plan.faults[0].fired == 1
    cause = root_cause(failed.value)
    assert cause.type == "ReplicationFailed"
    # the relationship's state and the host's own reason, read from the failed seeding job
    assert cause.message.startswith("SVR2: replication of Linux01 is Error/Critical: ")
    assert "0x00002EFE" in cause.message
    assert cause.non_retryable
    retried = await retried_activities(handle)
    assert "replica.remove" in retried, retried  # the undo waited for SVR1 to come back
    assert fleet.sim.host("SVR2").vm("Linux01").replication is None  # type: ignore[union-attr]
    assert fleet.sim.host("SVR2").vm("Linux01").state == "Running"  # type: ignore[union-attr]
    assert fleet.sim.host("SVR1").vm("Linux01") is None
    for name in ("SVR1", "SVR2"):
        host = fleet.sim.host(name)
        assert not host.replica_server.enabled
        rule = fleet.sim.world.firewall_rule(host, REPLICA_HTTP_RULE)
        assert rule is not None and not rule.enabled and rule.local_port == "80"


# -- WinRM connection dropped before the command ran ---------------------------------------


async def test_dropped_connection_before_start_vm_is_retried(
    client: Client, task_queue: str, fleet: Fleet, seed: LabSpec
) -> None:
    """The request carrying Start-VM is cut before SVR2 runs it: the step fails as transient,
    the retry starts the VM, which was started exactly once; the deploy is done."""
    ready_hosts(fleet.sim)
    rule = fleet.servers["SVR2"].faults.add(FaultRule(FaultEffect.DROP, action="Command",
                                                      command="Start-VM", nth=1, count=1))
    spec = svr2_only(seed)
    async with lab_worker(client, task_queue, fleet):
        handle = await client.start_workflow(
            VmDeployWorkflow.run, VmDeployInput(spec=spec, vm="Linux01"),
            id=f"drop-start-{uuid.uuid4().hex[:6]}", task_queue=task_queue)
        result = await handle.result()
    assert rule.fired == 1 and result.created
    assert "vm.start" in await retried_activities(handle)
    assert fleet.state()["counters"]["SVR2"]["Start-VM"] == 1  # the cut request never ran
    assert fleet.state()["hosts"]["SVR2"]["vms"]["Linux01"]["state"] == "Running"


# -- delegation missing, as the operator sees it -------------------------------------------


async def test_missing_delegation_names_the_fix_in_the_cli(
    client: Client, task_queue: str, fleet: Fleet, seed: LabSpec, cli_env: None,
    capsys: pytest.CaptureFixture[str]
) -> None:
    """Without the migration-service KCD on SVR1, `hvlab migrate FILE win2003-2 --to SVR2
    --sim --watch` exits 1 and prints, after the progress, the host, the Kerberos error and
    the fix (constrained delegation on the source host); no Move-VM is sent and the VM runs
    on SVR1."""
    ready_hosts(fleet.sim)
    lab_vm(fleet.sim, seed, "win2003-2")
    computer = fleet.sim.world.ad.computer("SVR1")
    assert computer is not None
    computer.allowed_to_delegate_to = ["cifs/SVR2", "cifs/DC1"]
    async with lab_worker(client, task_queue, fleet):
        code = await hvlab("migrate", str(SEED), "win2003-2", "--to", "SVR2", "--sim", "--watch")
        watched = cli_text(capsys)
        assert code == 1, watched
        assert "sim.classroom-migrate-win2003-2 ended failed" in watched
        assert "hvlab history sim.classroom-migrate-win2003-2" in watched
    assert "Traceback" not in watched
    reason = watched[watched.index("ended failed"):]
    assert "DelegationMissing: SVR1: Compare-VM" in reason and "0x8009030E" in reason
    assert "fix: add Kerberos constrained delegation" in reason
    assert "'Microsoft Virtual System Migration Service'" in reason
    assert fleet.state()["counters"]["SVR1"].get("Move-VM", 0) == 0
    assert fleet.sim.host("SVR1").vm("win2003-2").state == "Running"  # type: ignore[union-attr]
    assert fleet.sim.host("SVR2").vm("win2003-2") is None
