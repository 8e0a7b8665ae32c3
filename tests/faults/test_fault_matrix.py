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
| replica host down during initial replication | seeding fails with the Replica server's connection error; compensation waits for SVR1 to come back and undoes both sides; Linux01 keeps running on SVR2 | test_replica_host_down_during_initial_replication_is_undone |
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
from simulator.fleet import Fleet
from tests.workflows.conftest import lab_worker, mutating_counts
from workflows.lab_build import LabBuildInput, LabBuildWorkflow


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


def attempts(history: Any) -> list[int]:
    return [e.activity_task_started_event_attributes.attempt for e in history.events
            if e.HasField("activity_task_started_event_attributes")]


# -- wrong password ------------------------------------------------------------------------


async def test_wrong_password_fails_fast_without_retry_storm(
    client: Client, task_queue: str, fleet: Fleet, seed: LabSpec
) -> None:
    """The worker's password for the lab's account is wrong: the first remote step of HostPrep
    fails as AuthenticationFailed, non-retryable (attempt 1 only), the message names the host
    and the account and says what to fix; the host saw a handful of refused logons (no retry
    storm) and no command at all."""
    path = fleet.home / "sim" / "endpoints.json"
    endpoints = json.loads(path.read_text())
    for entry in endpoints["hosts"].values():  # one account for every host of the lab
        entry["password"] = "not-the-password"
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
    assert "rejected the credentials of KOSA\\Administrator" in cause.message
    assert "lab credential 'domain-admin'" in cause.message and "fix: check" in cause.message
    for unit in ("host-prep:SVR1", "host-prep:SVR2"):
        history = await client.get_workflow_handle(f"{spec.lab}-build/{unit}").fetch_history()
        assert set(attempts(history)) <= {1}, unit  # never retried
    refused = {name: server.auth_failures for name, server in fleet.servers.items()}
    assert 1 <= sum(refused.values()) <= 2, refused  # one refused logon per host reached
    assert all(server.request_counts == {} for server in fleet.servers.values())
    assert all(counts == {} for counts in mutating_counts(fleet).values())
