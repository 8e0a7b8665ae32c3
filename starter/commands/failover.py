"""``hvlab failover``, ``hvlab failback`` and ``hvlab approve``: Hyper-V Replica failovers.

``failover`` fails a replicated VM over to its replica (or runs a test failover there),
``failback`` fails it back to the primary its lab file names; both then reverse the
replication unless told not to. With ``--approve`` a failover waits after its prepare step
until ``approve`` lets it go on. The workflow ids are ``<lab>-failover[-test]-<vm>``; the VM
is checked against the lab file first (exit 2 naming the field).
"""

from __future__ import annotations

import asyncio
import os
from typing import Annotated

import typer
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError

from hvlab.specfile import load_lab
from starter.console import UsageProblem, err, out
from starter.names import known_replication, known_vm
from starter.options import (
    JsonOption,
    LabFile,
    NoCompensate,
    NoWaitOption,
    SimOption,
    VmName,
    WatchOption,
)
from starter.runs import (
    follow,
    launch,
    register_lab,
    start_or_attach,
    temporal_client,
    wait_mode,
)
from workflows.failover import (
    Approval,
    PlannedFailoverInput,
    PlannedFailoverWorkflow,
    failover_id,
)


def failover(
    file: LabFile,
    vm: VmName,
    test: Annotated[bool, typer.Option("--test", help="test failover on the replica")] = False,
    no_reverse: Annotated[bool, typer.Option(
        "--no-reverse", help="do not reverse the replication afterwards")] = False,
    approve: Annotated[bool, typer.Option(
        "--approve", help="wait for `hvlab approve ID` after prepare")] = False,
    approval_timeout: Annotated[float, typer.Option(
        "--approval-timeout", help="seconds to wait for the approval", min=1)] = 3600.0,
    sim: SimOption = False,
    no_compensate: NoCompensate = False,
    no_wait: NoWaitOption = False,
    as_json: JsonOption = False,
    watch: WatchOption = False,
) -> None:
    """Planned failover of VM to its replica (or a test failover), then reverse replication."""
    wait_mode(watch, no_wait)
    spec = load_lab(file)
    name = known_vm(spec, vm)
    known_replication(spec, name)
    spec = register_lab(spec, sim)
    request = PlannedFailoverInput(
        spec=spec, vm=name, test=test, reverse=not no_reverse,
        approval_timeout=approval_timeout if approve else None, compensate=not no_compensate)
    workflow_id = failover_id(spec.lab, name, test)
    what = "test failover" if test else "planned failover"
    handle = asyncio.run(start_or_attach(PlannedFailoverWorkflow.run, request, workflow_id,
                                f"{what} of {name}"))
    if approve:
        (err if as_json else out).print(f"approve it with: hvlab approve {workflow_id}")
    follow(handle.id, what=f"{what} of [bold]{name}[/]",
           no_wait=no_wait, as_json=as_json)


def failback(
    file: LabFile,
    vm: VmName,
    no_reverse: Annotated[bool, typer.Option(
        "--no-reverse", help="do not reverse the replication afterwards")] = False,
    sim: SimOption = False,
    no_compensate: NoCompensate = False,
    no_wait: NoWaitOption = False,
    as_json: JsonOption = False,
    watch: WatchOption = False,
) -> None:
    """Planned failover of VM back to the primary the lab file names, then reverse replication
    (so the next lesson can fail it over again)."""
    wait_mode(watch, no_wait)
    spec = load_lab(file)
    name = known_vm(spec, vm)
    entry = known_replication(spec, name)
    spec = register_lab(spec, sim)
    request = PlannedFailoverInput(spec=spec, vm=name, replica=entry.primary,
                                   reverse=not no_reverse, compensate=not no_compensate)
    launch(PlannedFailoverWorkflow.run, request, failover_id(spec.lab, name),
           f"failback of {name}", what=f"failback of [bold]{name}[/] to {entry.primary}",
           no_wait=no_wait, as_json=as_json)


async def _approve(workflow_id: str, by: str) -> str:
    client = await temporal_client()
    handle = client.get_workflow_handle(workflow_id)
    try:
        return await handle.execute_update(PlannedFailoverWorkflow.approve, Approval(by=by))
    except WorkflowUpdateFailedError as exc:
        raise UsageProblem(f"{workflow_id}: {exc.cause}") from None
    except RPCError as exc:
        raise UsageProblem(f"cannot approve {workflow_id}: {exc.message}") from None


def approve(
    workflow_id: Annotated[str, typer.Argument(help="workflow id of a waiting failover")],
    by: Annotated[str, typer.Option("--by", help="who approves")] = "",
) -> None:
    """Approve a failover that waits for it (started with --approve)."""
    answer = asyncio.run(_approve(workflow_id, by or os.environ.get("USER", "")))
    out.print(f"{workflow_id}: {answer}")
