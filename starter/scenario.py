"""The seed's phases as separate workflows: the driver of ``bench/chaos.py`` only.

``hvlab demo`` and ``hvlab run`` run the lab file's exercise (``exercises:``) as one
ExerciseWorkflow instead (:mod:`workflows.exercise`), for any topology; this module keeps the
seed's names and serves the chaos bench, which starts and follows each phase itself so it can
survive a server restart between them.

Build the lab; shared-nothing live migration of win2003-1 SVR1 -> SVR2; SMB live migration of
win2003-3 (files on \\\\DC1\\smb); storage migration of win2003-2 to the share; replication of
Linux01 SVR2 -> SVR1; planned failover with reverse replication and start on SVR1; the
"baseline" checkpoint; a weekday reset schedule. Each phase is one workflow started through
the Temporal client.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from hvlab.spec import LabSpec, Vm
from workflows.checkpoint import CheckpointWorkflowInput, CheckpointWorkflowResult
from workflows.failover import PlannedFailoverInput, PlannedFailoverResult, failover_id
from workflows.kinds import KINDS
from workflows.lab_build import LabBuildInput, LabBuildResult
from workflows.migration import LiveMigrationInput, LiveMigrationResult, migration_id
from workflows.replication import (
    ReplicationWorkflowInput,
    ReplicationWorkflowResult,
    replication_id,
)

# every kind but those the scenario runs as phases of their own (replicate, checkpoint)
BUILD_KINDS = [k.name for k in KINDS if k.name not in ("replication", "checkpoint")]


@dataclass
class Phase:
    name: str
    workflow: str
    workflow_id: str
    make_input: Callable[[], BaseModel]
    result_type: type[BaseModel]
    after: Callable[[Any], str] = lambda result: ""
    state: str = "pending"
    seconds: float = 0.0
    detail: str = ""
    percent: int = 0


@dataclass
class Scenario:
    """The seed's phases for one lab; ``moved`` tracks where VMs are after each move."""

    spec: LabSpec
    task_queue: str
    moved: dict[str, str] = field(default_factory=dict)
    phases: list[Phase] = field(default_factory=list)

    def current_spec(self) -> LabSpec:
        """The lab with each VM on the host it runs on now (after migrations/failover)."""
        vms: list[Vm] = [v.model_copy(update={"host": self.moved.get(v.name, v.host)})
                         for v in self.spec.vms]
        return self.spec.model_copy(update={"vms": vms})

    def build(self) -> Scenario:
        lab = self.spec.lab
        self.phases = [
            Phase("build the lab", "LabBuildWorkflow", f"{lab}-build",
                  lambda: LabBuildInput(spec=self.spec, only=BUILD_KINDS), LabBuildResult,
                  lambda r: f"{len(r.units)} units"),
            self._move("win2003-1", "SVR2", "shared-nothing"),
            self._move("win2003-3", "SVR2", "smb"),
            self._move("win2003-2", None, "storage", "\\\\DC1\\smb\\win2003-2"),
            Phase("replicate Linux01 SVR2 -> SVR1", "ReplicationWorkflow",
                  replication_id(lab, "Linux01"),
                  lambda: ReplicationWorkflowInput(spec=self.current_spec(), vm="Linux01"),
                  ReplicationWorkflowResult,
                  lambda r: f"{r.state}/{r.health}"),
            Phase("planned failover + reverse", "PlannedFailoverWorkflow",
                  failover_id(lab, "Linux01"),
                  lambda: PlannedFailoverInput(spec=self.current_spec(), vm="Linux01"),
                  PlannedFailoverResult,
                  self._failed_over),
            Phase("checkpoint baseline", "CheckpointWorkflow", f"{lab}-checkpoint-baseline",
                  lambda: CheckpointWorkflowInput(spec=self.current_spec(),
                                                  checkpoint="baseline"),
                  CheckpointWorkflowResult,
                  lambda r: f"{len(r.vms)} VMs"),
        ]
        return self

    def _move(self, vm: str, to: str | None, mode: str, path: str | None = None) -> Phase:
        where = to or path or ""

        def done(result: Any) -> str:
            self.moved[vm] = result.host
            return f"now on {result.host}" + (f" ({result.path})" if result.path else "")

        return Phase(f"{mode} migration {vm} -> {where}", "LiveMigrationWorkflow",
                     migration_id(self.spec.lab, vm),
                     lambda: LiveMigrationInput(spec=self.current_spec(), vm=vm, destination=to,
                                                mode=mode, storage_path=path,
                                                progress_seconds=1.0, poll_seconds=0.5),
                     LiveMigrationResult, done)

    def _failed_over(self, result: Any) -> str:
        self.moved["Linux01"] = result.primary
        return f"primary now {result.primary}, replica {result.replica}"
