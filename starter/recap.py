"""The recap an operation ends with: per unit or VM, what the run changed, left unchanged or
failed at, and for a move where the VM runs now, for a failover which side is primary.

It is built from what the workflow leaves in Temporal: its result when it completed, else its
``progress`` (queried, best effort: a query of a closed workflow needs a worker), and for a
build (also the one a converge or a reset runs) each unit's own result, read from the build's
history, so a unit that only checked what was there shows ``unchanged``. Results are read as
plain JSON (no result type), so the recap tolerates fields it does not know.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.service import RPCError

from starter.inspection import child_results, failure_text

QUERY_TIMEOUT = timedelta(seconds=5)  # a closed workflow's query replays it on a worker

# outcome of a row
CHANGED, UNCHANGED, FAILED, NOT_STARTED, INTERRUPTED = (
    "changed", "unchanged", "failed", "not started", "interrupted")
_FROM_STEP = {"done": CHANGED, "unchanged": UNCHANGED, "skipped": UNCHANGED, "failed": FAILED,
              "pending": NOT_STARTED, "running": INTERRUPTED}


@dataclass
class RecapRow:
    """One unit, VM or step of the recap."""

    subject: str
    outcome: str
    detail: str = ""


@dataclass
class Outcome:
    """How a workflow ended, why, and what it did (``hvlab ... --json`` prints it)."""

    workflow_id: str
    workflow_type: str
    status: str  # completed, failed, canceled, terminated, timed_out, ...
    cause: str = ""
    rows: list[RecapRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    result: Any = None

    @property
    def ok(self) -> bool:
        return self.status == "completed"

    def summary(self) -> str:
        """``3 changed, 5 unchanged, 1 failed`` (the outcomes that occur, in that order)."""
        counts: dict[str, int] = {}
        for row in self.rows:
            counts[row.outcome] = counts.get(row.outcome, 0) + 1
        order = [CHANGED, UNCHANGED, FAILED, INTERRUPTED, NOT_STARTED]
        parts = [f"{counts[o]} {o}" for o in order if o in counts]
        parts += [f"{n} {o}" for o, n in counts.items() if o not in order]
        return ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {"workflow_id": self.workflow_id, "workflow_type": self.workflow_type,
                "status": self.status, "cause": self.cause,
                "recap": [asdict(r) for r in self.rows], "summary": self.summary(),
                "notes": self.notes, "result": self.result}


# --------------------------------------------------------------------------- gathering


async def outcome(client: Client, workflow_id: str, compensation: list[str] | None = None
                  ) -> Outcome:
    """The closed workflow's :class:`Outcome` (its latest run)."""
    handle = client.get_workflow_handle(workflow_id)
    description = await handle.describe()
    status = description.status
    found = Outcome(workflow_id, description.workflow_type,
                    status.name.lower() if status is not None else "unknown",
                    notes=list(compensation or []))
    if status == WorkflowExecutionStatus.COMPLETED:
        found.result = await handle.result()
    else:
        try:
            await handle.result()
        except WorkflowFailureError as exc:
            found.cause = failure_text(exc.cause)
        except Exception:  # other SDK errors: the status says enough
            pass
    progress = _get(found.result, "progress")
    if progress is None:
        progress = await _progress(client, workflow_id)
    units = await _unit_changes(client, workflow_id, description.run_id)
    found.rows = rows_for(found.workflow_type, found.result, progress, units)
    return found


async def _progress(client: Client, workflow_id: str) -> dict[str, Any] | None:
    """The ``progress`` query's answer as JSON, or None (no worker, an older workflow)."""
    with contextlib.suppress(Exception):
        answer = await client.get_workflow_handle(workflow_id).query(
            "progress", rpc_timeout=QUERY_TIMEOUT)
        if isinstance(answer, dict):
            return answer
    return None


async def _unit_changes(client: Client, workflow_id: str, run_id: str | None
                        ) -> dict[str, str]:
    """For the build units below the workflow (its own, or those of the build it ran): unit
    id -> changed/unchanged, from each completed unit's result's progress."""
    try:
        children = await child_results(client, workflow_id, run_id)
    except RPCError:
        return {}
    found: dict[str, str] = {}
    for child in children:
        if child.workflow_type == "LabBuildWorkflow" and child.run_id:
            found.update(await _unit_changes(client, child.workflow_id, child.run_id))
        elif child.result is not None:
            unit = child.workflow_id.rsplit("/", 1)[-1]
            found[unit] = CHANGED if changed(child.result) else UNCHANGED
    return found


def changed(result: Any) -> bool:
    """A unit result changed something: one of its steps is done (not unchanged/skipped)."""
    steps = _get(_get(result, "progress"), "steps") or []
    return any(_get(s, "state") == "done" for s in steps)


# --------------------------------------------------------------------------- rows


def _get(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, dict) else None


def _steps(progress: Any) -> list[dict[str, Any]]:
    return [s for s in (_get(progress, "steps") or []) if isinstance(s, dict)]


def step_rows(progress: Any, units: dict[str, str] | None = None) -> list[RecapRow]:
    """A row per step of a progress: done -> changed (or the unit's own verdict), unchanged and
    skipped -> unchanged, failed, pending -> not started, running -> interrupted."""
    rows = []
    for step in _steps(progress):
        outcome = _FROM_STEP.get(str(step.get("state")), str(step.get("state")))
        name = str(step.get("name", ""))
        if outcome == CHANGED and units and name in units:
            outcome = units[name]
        # a failed step's detail is the SDK's wrapper text: the cause printed above says it
        detail = str(step.get("detail") or "") if outcome == UNCHANGED else ""
        rows.append(RecapRow(name, outcome, detail))
    return rows


def rows_for(workflow_type: str, result: Any, progress: Any, units: dict[str, str]
             ) -> list[RecapRow]:
    """The recap rows of a workflow of ``workflow_type``; ``result`` is None unless it
    completed."""
    if result is not None:
        made = _RESULT_ROWS.get(workflow_type)
        if made is not None:
            return made(result, units)
    return step_rows(progress, units)


def _build(result: Any, units: dict[str, str]) -> list[RecapRow]:
    return step_rows(_get(result, "progress"), units)


def _converge(result: Any, units: dict[str, str]) -> list[RecapRow]:
    rows = [RecapRow(vm, CHANGED, f"moved back {where}")
            for vm, where in (_get(result, "moved") or {}).items()]
    rows += [RecapRow(vm, CHANGED, "failed back to the lab file's primary")
             for vm in _get(result, "failed_back") or []]
    rows += [RecapRow(unit, units.get(unit, CHANGED if state == "done" else
                                      _FROM_STEP.get(state, state)))
             for unit, state in (_get(result, "units") or {}).items()]
    return rows


def _reset(result: Any, units: dict[str, str]) -> list[RecapRow]:
    checkpoint = _get(result, "checkpoint") or ""
    started = set(_get(result, "started") or [])
    rows = [RecapRow(vm, CHANGED, f"restored to {checkpoint}"
                     + (", running" if vm in started else ""))
            for vm in _get(result, "restored") or []]
    rows += [RecapRow(vm, UNCHANGED, f"not restored: {why}")
             for vm, why in (_get(result, "not_restored") or {}).items()]
    rows += [RecapRow(unit, units.get(unit, CHANGED if state == "done" else
                                      _FROM_STEP.get(state, state)))
             for unit, state in (_get(result, "converged") or {}).items()]
    return rows


def _migration(result: Any, _: dict[str, str]) -> list[RecapRow]:
    vm, host = _get(result, "vm"), _get(result, "host")
    moved = bool(_get(result, "moved"))
    if _get(result, "mode") == "storage":
        where = f"runs on {host}, its files in {_get(result, 'path') or '?'}"
    else:
        where = f"runs on {host}" + (f" (from {_get(result, 'source')})" if moved else "")
    seconds = _get(result, "downtime_seconds")
    downtime = (f"downtime {float(seconds):.1f} s" if isinstance(seconds, int | float)
                else f"downtime {_get(result, 'downtime_note') or 'not measured'}")
    detail = f"{where}; {downtime}" if moved else f"{where} already"
    return [RecapRow(str(vm), CHANGED if moved else UNCHANGED, detail)]


def _failover(result: Any, _: dict[str, str]) -> list[RecapRow]:
    vm, primary, replica = (_get(result, k) for k in ("vm", "primary", "replica"))
    if _get(result, "test"):
        detail = f"test failover on {replica}; primary stays {primary}"
    else:
        detail = f"primary is {primary} now, replica {replica}"
    state = _get(result, "state")
    if state:
        detail += f" ({state})"
    return [RecapRow(str(vm), CHANGED, detail)]


def _replication(result: Any, _: dict[str, str]) -> list[RecapRow]:
    changes = _get(result, "changed") or []
    detail = (f"{_get(result, 'primary')} -> {_get(result, 'replica')}: "
              f"{_get(result, 'state')}/{_get(result, 'health')}")
    if changes:
        detail += f"; {', '.join(map(str, changes))}"
    return [RecapRow(str(_get(result, "vm")), CHANGED if changes else UNCHANGED, detail)]


def _checkpoint(result: Any, _: dict[str, str]) -> list[RecapRow]:
    name = _get(result, "checkpoint")
    created = set(_get(result, "created") or [])
    retaken = set(_get(result, "replaced") or [])
    rows = []
    for vm in _get(result, "vms") or []:
        if vm in retaken:
            rows.append(RecapRow(vm, CHANGED, f"checkpoint {name} retaken"))
        elif vm in created:
            rows.append(RecapRow(vm, CHANGED, f"checkpoint {name} taken"))
        else:
            rows.append(RecapRow(vm, UNCHANGED, f"checkpoint {name} exists (--replace "
                                                "retakes it)"))
    return rows


def _teardown(result: Any, units: dict[str, str]) -> list[RecapRow]:
    removed = _get(result, "removed") or {}
    left = _get(result, "left") or {}
    rows = []
    for row in step_rows(_get(result, "progress")):
        if row.subject in removed:
            row.detail = "removed: " + ", ".join(map(str, removed[row.subject]))
        if row.subject in left:
            row.detail = "; ".join(d for d in (row.detail, f"left: {left[row.subject]}") if d)
        rows.append(row)
    return rows


_RESULT_ROWS = {
    "LabBuildWorkflow": _build,
    "LabConvergeWorkflow": _converge,
    "LabResetWorkflow": _reset,
    "LiveMigrationWorkflow": _migration,
    "PlannedFailoverWorkflow": _failover,
    "ReplicationWorkflow": _replication,
    "CheckpointWorkflow": _checkpoint,
    "LabTeardownWorkflow": _teardown,
}
