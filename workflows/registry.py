"""Every workflow the hvlab worker registers: the unit kinds' workflows (from
:mod:`workflows.kinds`) and the operations; extend :data:`OPERATIONS` when adding one."""

from __future__ import annotations

from workflows.converge import LabConvergeWorkflow
from workflows.doctor import DoctorWorkflow
from workflows.exercise import ExerciseWorkflow
from workflows.failover import PlannedFailoverWorkflow
from workflows.kinds import unit_workflows
from workflows.lab_build import LabBuildWorkflow
from workflows.migration import LiveMigrationWorkflow
from workflows.replica_health import ReplicationHealthWorkflow
from workflows.reset import LabResetWorkflow
from workflows.teardown import LabTeardownWorkflow

OPERATIONS: list[type] = [
    DoctorWorkflow,
    LabBuildWorkflow,
    LabResetWorkflow,
    LabTeardownWorkflow,
    LabConvergeWorkflow,
    LiveMigrationWorkflow,
    PlannedFailoverWorkflow,
    ReplicationHealthWorkflow,
    ExerciseWorkflow,
]

ALL_WORKFLOWS: list[type] = [*unit_workflows(), *OPERATIONS]
