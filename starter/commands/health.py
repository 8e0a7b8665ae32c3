"""``hvlab health``: the replication health of the lab's replicated VMs, read once
(ReplicationHealthWorkflow, read-only; it also refreshes hvlab_replication_health on the
worker). ``hvlab schedule health`` runs the same on an interval."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Annotated

import typer
from rich.table import Table
from temporalio.common import WorkflowIDConflictPolicy

from hvlab.settings import get_settings
from hvlab.spec import LabSpec
from hvlab.specfile import load_lab
from starter.console import out
from starter.options import LabFile, SimOption
from starter.runs import register_lab, temporal_client
from starter.schedules import require_replication
from workflows.replica_health import (
    ReplicationHealthInput,
    ReplicationHealthResult,
    health_workflow_id,
)


def health(
    file: LabFile,
    sim: SimOption = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> int:
    """Read the replication health of the lab's replicated VMs (read-only).

    Exit 1 when one is not Replicating/Normal. Also refreshes hvlab_replication_health on the
    worker."""
    spec = load_lab(file)
    require_replication(spec)
    spec = register_lab(spec, sim)
    result = asyncio.run(_health(spec))
    if as_json:
        out.print_json(result.model_dump_json())
    else:
        table = Table("VM", "primary", "replica", "state", "health", "note")
        for vm in result.vms:
            table.add_row(vm.vm, vm.primary or "-", vm.replica or "-", vm.state, vm.health,
                          vm.note)
        out.print(table)
    return 1 if result.problems else 0


async def _health(spec: LabSpec) -> ReplicationHealthResult:
    client = await temporal_client()
    handle = await client.start_workflow(
        "ReplicationHealthWorkflow", ReplicationHealthInput(spec=spec),
        id=health_workflow_id(spec.lab), task_queue=get_settings().task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        result_type=ReplicationHealthResult, static_summary=f"replication health of {spec.lab}",
        execution_timeout=timedelta(minutes=10))
    result: ReplicationHealthResult = await handle.result()
    return result
