"""Save one completed history per workflow type for the replay tests.

Run against a stack that has run the scenario (``hvlab demo --keep``; plus ``hvlab reset`` and
``hvlab down`` for those types), e.g.::

    HVLAB_TEMPORAL_ADDRESS=127.0.0.1:7233 .venv/bin/python bench/record_histories.py

Writes ``tests/histories/<WorkflowType>.json`` (the newest completed run of each type) and
``ids.json`` (their workflow ids, which replay needs).
Payloads hold lab files and results only: no secrets ever enter workflow inputs.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from hvlab.settings import get_settings
from hvlab.temporal import connect

OUT = Path(__file__).resolve().parents[1] / "tests" / "histories"


# Types whose runs take different paths per target: one history per target (a VmDeploy of a
# generation 2 Linux VM has the firmware step, a legacy guest the offline configuration).
PER_TARGET = {"VmDeployWorkflow"}


def _name(workflow_type: str, workflow_id: str, seen: dict[str, str]) -> str | None:
    """The file stem for this run, or None when the type (or type and target) is recorded."""
    if workflow_id.endswith("/converge"):
        return None  # keep the full build, not a reset's partial re-converge
    if workflow_type not in seen:
        return workflow_type
    if workflow_type in PER_TARGET:
        stem = f"{workflow_type}-{workflow_id.rsplit(':', 1)[-1]}"
        return stem if stem not in seen else None
    return None


async def main() -> int:
    """Record into OUT/<folder> (argv[1], default the top folder; earlier generations of
    histories live in sub-folders, each with its own ids.json, and keep replaying)."""
    client = await connect(get_settings())
    out = OUT / sys.argv[1] if len(sys.argv) > 1 else OUT
    seen: dict[str, str] = {}
    out.mkdir(parents=True, exist_ok=True)
    async for execution in client.list_workflows("ExecutionStatus = 'Completed'"):
        stem = _name(execution.workflow_type, execution.id, seen)
        if stem is None:
            continue
        seen[stem] = execution.id
        history = await client.get_workflow_handle(
            execution.id, run_id=execution.run_id).fetch_history()
        (out / f"{stem}.json").write_text(history.to_json())
        print(f"{stem}: {execution.id}")
    # replay needs the original workflow ids (child ids are derived from them)
    (out / "ids.json").write_text(json.dumps(seen, indent=2, sort_keys=True) + "\n")
    return 0 if seen else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
