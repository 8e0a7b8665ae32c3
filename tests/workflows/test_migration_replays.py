"""LiveMigrationWorkflow's recorded runs (tests/histories/migration, recorded with
tests/workflows/record_migration_histories.py; plus the demo's run in every generation)
replayed through the current code: the same activities with the same inputs, summaries and
options, the same result or failure, and the same migration and compensation metrics."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import workflows.metrics
import workflows.saga
from tests.workflows.replay_observer import (
    HISTORIES,
    load,
    observed_end,
    recorded_activities,
    recorded_end,
    replay,
)

MIGRATIONS = sorted(p for p in HISTORIES.rglob("LiveMigrationWorkflow*.json"))

# stem -> (mode, outcome, undos that ran)
EXPECTED = {
    "LiveMigrationWorkflow": ("storage", "ok", 0),  # the demo's storage move
    "LiveMigrationWorkflow-moved": ("shared-nothing", "ok", 0),
    "LiveMigrationWorkflow-reattached": ("shared-nothing", "ok", 0),
    "LiveMigrationWorkflow-noop": ("shared-nothing", "noop", 0),
    "LiveMigrationWorkflow-storage": ("storage", "ok", 0),
    "LiveMigrationWorkflow-storage-done": ("storage", "noop", 0),
    "LiveMigrationWorkflow-smb": ("smb", "ok", 0),
    "LiveMigrationWorkflow-smb-noop": ("smb", "noop", 0),
    "LiveMigrationWorkflow-smb-local": ("smb", "failed", 0),
    "LiveMigrationWorkflow-not-found": ("shared-nothing", "failed", 0),
    "LiveMigrationWorkflow-incompatible": ("shared-nothing", "failed", 1),
    "LiveMigrationWorkflow-incompatible-stopped": ("shared-nothing", "failed", 1),
    "LiveMigrationWorkflow-no-compensate": ("shared-nothing", "failed", 0),
    "LiveMigrationWorkflow-preflight-error": ("shared-nothing", "failed", 1),
    "LiveMigrationWorkflow-job-failed": ("shared-nothing", "failed", 2),
    "LiveMigrationWorkflow-cancelled": ("shared-nothing", "cancelled", 2),
    "LiveMigrationWorkflow-undo-fails": ("shared-nothing", "cancelled", 1),
    "LiveMigrationWorkflow-restarted": ("shared-nothing", "failed", 1),
    "LiveMigrationWorkflow-verify-fails": ("shared-nothing", "failed", 2),
}
# by path where a generation's run differs from the stem's (the top generation's move is the
# lesson loop's `hvlab converge` moving win2003-3 back over SMB; v1-v3 hold the demo's)
EXPECTED_BY_ID = {"LiveMigrationWorkflow": ("smb", "ok", 0)}


def _id(path: Path) -> str:
    return str(path.relative_to(HISTORIES).with_suffix(""))


class Metrics:
    """The workflow metrics the replayed code reports (the SDK's meter records nothing
    while replaying, so hvlab's metric functions are replaced by recorders)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.migrations: list[tuple[str, str, timedelta | None]] = []
        self.sagas = 0
        self.undos = 0
        monkeypatch.setattr(workflows.metrics, "migration_finished", self._migration)
        monkeypatch.setattr(workflows.saga, "compensations_seen", self._saga)
        monkeypatch.setattr(workflows.saga, "compensation_ran", self._undo)

    def _migration(self, mode: str, outcome: str, took: timedelta | None) -> None:
        self.migrations.append((mode, outcome, took))

    def _saga(self) -> None:
        self.sagas += 1

    def _undo(self) -> None:
        self.undos += 1


@pytest.fixture
def metrics(monkeypatch: pytest.MonkeyPatch) -> Metrics:
    return Metrics(monkeypatch)


def test_every_recorded_migration_has_expectations() -> None:
    """Each saved LiveMigration history (and only those) has its expected outcome here."""
    assert {p.stem for p in MIGRATIONS} == set(EXPECTED)
    assert len(MIGRATIONS) >= len(EXPECTED) + 2  # the demo's run in v1 and v2 as well


@pytest.mark.parametrize("path", MIGRATIONS, ids=[_id(p) for p in MIGRATIONS])
async def test_replay_does_what_was_recorded(path: Path, metrics: Metrics) -> None:
    """The code starts the recorded activities (inputs, summaries, timeouts, retry limits) in
    order, ends with the recorded result or failure (message, type, details, causes) or is
    cancelled, counts one migration by mode and outcome (a duration only for a move that
    happened), one saga and one compensation per undo that ran."""
    observed = await replay(path)
    assert observed.replay_failure is None, observed.replay_failure
    history = load(path)
    for number, (want, got) in enumerate(
            zip(recorded_activities(history), observed.activities, strict=True)):
        assert got == want, f"activity {number}"
    end: Any = recorded_end(history)
    assert observed_end(observed) == end
    mode, outcome, undos = EXPECTED_BY_ID.get(_id(path), EXPECTED[path.stem])
    assert [(m, o) for m, o, _ in metrics.migrations] == [(mode, outcome)]
    took = metrics.migrations[0][2]
    if outcome == "ok":
        whole = (history.events[-1].event_time.ToDatetime()
                 - history.events[0].event_time.ToDatetime())
        assert took is not None and timedelta(0) < took <= whole
    else:
        assert took is None
    assert (metrics.sagas, metrics.undos) == (1, undos)
