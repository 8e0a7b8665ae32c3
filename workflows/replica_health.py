"""ReplicationHealthWorkflow: how every replicated VM of the lab is doing, read-only.

For each replication entry of the lab file (or the VMs asked for) it reads Get-VMReplication
on both hosts; the side in Primary mode reports State and Health (after a planned failover
and reverse replication that is the other host). The activity publishes
``hvlab_replication_health{vm}``, so running this on a Schedule (``hvlab schedule health``)
keeps the gauge, and the ``HvlabReplicationCritical`` alert, current between workflows that
touch replication. Nothing is changed on any host; the run completes even when a VM is
unhealthy and lists it under ``problems``.
"""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.models import ReplicaHealthInput, StepResult
    from activities.replica import ReplicaActivities
    from hvlab.spec import LabSpec
    from workflows.options import PROBE
    from workflows.steps import step


class ReplicationHealthInput(BaseModel):
    spec: LabSpec
    vms: list[str] = Field(default_factory=list, description="VMs to check (all if empty)")


class VmReplicationHealth(BaseModel):
    vm: str
    primary: str | None = None
    replica: str | None = None
    state: str
    health: str
    note: str = ""


class ReplicationHealthResult(BaseModel):
    lab: str
    vms: list[VmReplicationHealth]
    problems: list[str] = Field(default_factory=list, description="VMs not Replicating/Normal")


def health_workflow_id(lab: str) -> str:
    return f"{lab}-replication-health"


@workflow.defn(name="ReplicationHealthWorkflow")
class ReplicationHealthWorkflow:
    @workflow.run
    async def run(self, request: ReplicationHealthInput) -> ReplicationHealthResult:
        spec = request.spec
        wanted = {v.lower() for v in request.vms}
        entries = [r for r in spec.replication if not wanted or r.vm.lower() in wanted]
        checks = await asyncio.gather(*(
            self._check(spec.lab, r.vm, [r.primary, r.replica]) for r in entries))
        problems = [c.vm for c in checks if (c.state, c.health) != ("Replicating", "Normal")]
        if problems:
            workflow.logger.warning("replication of %s not Replicating/Normal",
                                    ", ".join(problems))
        return ReplicationHealthResult(lab=spec.lab, vms=list(checks), problems=problems)

    @staticmethod
    async def _check(lab: str, vm: str, hosts: list[str]) -> VmReplicationHealth:
        try:
            found: StepResult = await step(ReplicaActivities.health,
                                           ReplicaHealthInput(lab=lab, vm=vm, hosts=hosts),
                                           options=PROBE, summary=f"health of {vm}")
        except ActivityError as exc:
            return VmReplicationHealth(vm=vm, state="Unknown", health="Unknown",
                                       note=f"could not read: {exc.cause or exc}")
        seen = found.observed
        unreachable = seen.get("unreachable") or {}
        note = "; ".join(f"{h} unreachable" for h in unreachable)
        return VmReplicationHealth(vm=vm, primary=seen.get("primary"),
                                   replica=seen.get("replica"), state=str(seen.get("state")),
                                   health=str(seen.get("health")), note=note)
