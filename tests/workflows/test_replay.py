"""Saved histories of every workflow type replay against the current code without
non-determinism errors (tests/histories, recorded with bench/record_histories.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from tests.conftest import sandbox_runner
from tests.workflows.replay_observer import process_runtime
from workflows.registry import ALL_WORKFLOWS

FOLDER = Path(__file__).resolve().parents[1] / "histories"
# the current generation at the top; earlier ones in sub-folders (each with its ids.json) keep
# replaying, so runs started before a workflow.patched change still finish on new workers
# (histories/migration, LiveMigration's recorded paths, are replayed and compared with what was
# recorded by test_migration_replays.py)
HISTORIES = sorted(p for p in FOLDER.rglob("*.json")
                   if p.name != "ids.json" and p.parent.name != "migration")


def _workflow_id(path: Path) -> str:
    ids: dict[str, str] = json.loads((path.parent / "ids.json").read_text())
    return ids[path.stem]


def _type(path: Path) -> str:
    return path.stem.split("-", 1)[0]
EXPECTED = {"LabBuildWorkflow", "HostPrepWorkflow", "VmDeployWorkflow", "SharedStorageWorkflow",
            "DelegationWorkflow", "MigrationReadinessWorkflow", "NatGatewayWorkflow",
            "LiveMigrationWorkflow", "ReplicationWorkflow", "PlannedFailoverWorkflow",
            "CheckpointWorkflow", "LabResetWorkflow", "LabTeardownWorkflow", "DoctorWorkflow",
            "LabConvergeWorkflow", "ExerciseWorkflow"}


def test_every_workflow_type_has_a_saved_history() -> None:
    """A history is kept for each workflow type the worker registers."""
    current = {_type(p) for p in HISTORIES if p.parent == FOLDER}
    assert current >= EXPECTED
    assert {w.__temporal_workflow_definition.name for w in ALL_WORKFLOWS} <= current  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", HISTORIES,
                         ids=[str(p.relative_to(FOLDER).with_suffix("")) for p in HISTORIES])
async def test_history_replays(path: Path) -> None:
    """Replaying the saved run raises no non-determinism error."""
    history = WorkflowHistory.from_json(_workflow_id(path), path.read_text())
    replayer = Replayer(workflows=ALL_WORKFLOWS, data_converter=pydantic_data_converter,
                        workflow_runner=sandbox_runner(), runtime=process_runtime())
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure
