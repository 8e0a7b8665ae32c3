"""Which child workflow builds each kind of plan unit, and its input."""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from hvlab.plan import PlanUnit
    from hvlab.spec import LabSpec
    from workflows.checkpoint import CheckpointWorkflowInput
    from workflows.delegation import DelegationWorkflowInput
    from workflows.host_prep import HostPrepInput
    from workflows.nat import NatWorkflowInput
    from workflows.readiness import ReadinessWorkflowInput
    from workflows.replication import ReplicationWorkflowInput
    from workflows.storage import SharedStorageInput
    from workflows.vm_deploy import VmDeployInput

# unit kind -> workflow type name (registered in workflows/registry.py)
UNIT_WORKFLOWS: dict[str, str] = {
    "host-prep": "HostPrepWorkflow",
    "vm-deploy": "VmDeployWorkflow",
    "shared-storage": "SharedStorageWorkflow",
    "delegation": "DelegationWorkflow",
    "migration-readiness": "MigrationReadinessWorkflow",
    "nat": "NatGatewayWorkflow",
    "checkpoint": "CheckpointWorkflow",
    "replication": "ReplicationWorkflow",
}


def unit_input(unit: PlanUnit, spec: LabSpec, compensate: bool) -> BaseModel:
    """The child workflow's input for ``unit``."""
    if unit.kind == "host-prep":
        return HostPrepInput(spec=spec, host=unit.target, compensate=compensate)
    if unit.kind == "vm-deploy":
        return VmDeployInput(spec=spec, vm=unit.target, compensate=compensate)
    if unit.kind == "shared-storage":
        host, share = unit.target.split("/", 1)
        return SharedStorageInput(spec=spec, host=host, share=share, compensate=compensate)
    if unit.kind == "delegation":
        return DelegationWorkflowInput(spec=spec, host=unit.target, compensate=compensate)
    if unit.kind == "migration-readiness":
        return ReadinessWorkflowInput(spec=spec, host=unit.target, compensate=compensate)
    if unit.kind == "nat":
        return NatWorkflowInput(spec=spec, nat=unit.target, compensate=compensate)
    if unit.kind == "checkpoint":
        return CheckpointWorkflowInput(spec=spec, checkpoint=unit.target, compensate=compensate)
    if unit.kind == "replication":
        return ReplicationWorkflowInput(spec=spec, vm=unit.target, compensate=compensate)
    raise ValueError(f"no input builder for unit kind {unit.kind!r}")
