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


async def main() -> int:
    client = await connect(get_settings())
    seen: dict[str, str] = {}
    OUT.mkdir(parents=True, exist_ok=True)
    async for execution in client.list_workflows("ExecutionStatus = 'Completed'"):
        if execution.workflow_type in seen or execution.id.endswith("/converge"):
            continue  # keep the full build, not a reset's partial re-converge
        seen[execution.workflow_type] = execution.id
        history = await client.get_workflow_handle(
            execution.id, run_id=execution.run_id).fetch_history()
        (OUT / f"{execution.workflow_type}.json").write_text(history.to_json())
        print(f"{execution.workflow_type}: {execution.id}")
    # replay needs the original workflow ids (child ids are derived from them)
    (OUT / "ids.json").write_text(json.dumps(seen, indent=2, sort_keys=True) + "\n")
    return 0 if seen else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
