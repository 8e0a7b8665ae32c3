"""Every workflow the hvlab worker registers; extend :data:`ALL_WORKFLOWS` when adding one."""

from __future__ import annotations

from workflows.checkpoint import CheckpointWorkflow
from workflows.converge import LabConvergeWorkflow
from workflows.delegation import DelegationWorkflow
from workflows.doctor import DoctorWorkflow
from workflows.exercise import ExerciseWorkflow
from workflows.failover import PlannedFailoverWorkflow
from workflows.host_prep import HostPrepWorkflow
from workflows.lab_build import LabBuildWorkflow
from workflows.migration import LiveMigrationWorkflow
from workflows.nat import NatGatewayWorkflow
from workflows.readiness import MigrationReadinessWorkflow
from workflows.replica_health import ReplicationHealthWorkflow
from workflows.replication import ReplicationWorkflow
from workflows.reset import LabResetWorkflow
from workflows.storage import SharedStorageWorkflow
from workflows.teardown import LabTeardownWorkflow
from workflows.vm_deploy import VmDeployWorkflow

ALL_WORKFLOWS: list[type] = [
    DoctorWorkflow,
    HostPrepWorkflow,
    VmDeployWorkflow,
    LabBuildWorkflow,
    SharedStorageWorkflow,
    DelegationWorkflow,
    MigrationReadinessWorkflow,
    NatGatewayWorkflow,
    CheckpointWorkflow,
    LabResetWorkflow,
    LabTeardownWorkflow,
    LabConvergeWorkflow,
    LiveMigrationWorkflow,
    ReplicationWorkflow,
    PlannedFailoverWorkflow,
    ReplicationHealthWorkflow,
    ExerciseWorkflow,
]
