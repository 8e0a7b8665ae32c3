"""Saved histories of every workflow type replay against the current code without
non-determinism errors (tests/histories, recorded with bench/record_histories.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.registry import ALL_WORKFLOWS

FOLDER = Path(__file__).resolve().parents[1] / "histories"
HISTORIES = sorted(p for p in FOLDER.glob("*.json") if p.name != "ids.json")
IDS: dict[str, str] = json.loads((FOLDER / "ids.json").read_text())
EXPECTED = {"LabBuildWorkflow", "HostPrepWorkflow", "VmDeployWorkflow", "SharedStorageWorkflow",
            "DelegationWorkflow", "MigrationReadinessWorkflow", "NatGatewayWorkflow",
            "LiveMigrationWorkflow", "ReplicationWorkflow", "PlannedFailoverWorkflow",
            "CheckpointWorkflow", "LabResetWorkflow", "LabTeardownWorkflow", "DoctorWorkflow"}


def test_every_workflow_type_has_a_saved_history() -> None:
    """A history is kept for each workflow type the worker registers."""
    assert {p.stem for p in HISTORIES} >= EXPECTED
    assert {w.__temporal_workflow_definition.name for w in ALL_WORKFLOWS} <= {  # type: ignore[attr-defined]
        p.stem for p in HISTORIES}


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays(path: Path) -> None:
    """Replaying the saved run raises no non-determinism error."""
    history = WorkflowHistory.from_json(IDS[path.stem], path.read_text())
    replayer = Replayer(workflows=ALL_WORKFLOWS, data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure
