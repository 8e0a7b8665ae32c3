"""Lab operations: ``migrate``, ``replicate``, ``failover`` and ``approve``.

Each command loads the lab file, checks the VM and host names against it (an unknown one is a
usage problem naming the field, exit 2, before anything starts), registers the lab for the
worker and starts the workflow under a deterministic id (``<lab>-migrate-<vm>``,
``<lab>-replicate-<vm>``, ``<lab>-failover[-test]-<vm>``); starting the same operation again
while it runs attaches to it. Each waits for its workflow with live progress and ends with its
recap and outcome (``--no-wait`` returns after the start; ``--watch`` is the default, kept).
"""

from __future__ import annotations

import asyncio
import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError

from hvlab.spec import HostRole, LabSpec, Replication
from hvlab.specfile import load_lab
from starter.cli import UsageProblem, err, out
from starter.ops_cli import (
    JsonOption,
    NoWaitOption,
    SimOption,
    WatchOption,
    _client,
    follow,
    register_lab,
    start_or_attach,
    wait_mode,
)
from workflows.converge import LabConvergeInput, LabConvergeWorkflow, converge_id
from workflows.failover import (
    Approval,
    PlannedFailoverInput,
    PlannedFailoverWorkflow,
    failover_id,
)
from workflows.migration import LiveMigrationInput, LiveMigrationWorkflow, migration_id
from workflows.replication import (
    ReplicationWorkflow,
    ReplicationWorkflowInput,
    replication_id,
)


class Mode(StrEnum):
    shared_nothing = "shared-nothing"
    smb = "smb"
    storage = "storage"


LabFile = Annotated[Path, typer.Argument(help="lab file (YAML)", show_default=False)]
VmName = Annotated[str, typer.Argument(help="VM name from the lab file", show_default=False)]
NoCompensate = Annotated[bool, typer.Option(
    "--no-compensate", help="keep partial state on failure (debugging)")]


# --------------------------------------------------------------------------- checks


def _vm(spec: LabSpec, name: str) -> str:
    try:
        return spec.vm(name).name
    except KeyError:
        known = ", ".join(v.name for v in spec.vms) or "none"
        raise UsageProblem(f"VM: no VM {name!r} in lab {spec.lab} (known: {known})") from None


def _hyperv_host(spec: LabSpec, name: str, field: str) -> str:
    known = ", ".join(h.name for h in spec.hyperv_hosts) or "none"
    try:
        host = spec.host(name)
    except KeyError:
        raise UsageProblem(f"{field}: no host {name!r} in lab {spec.lab} (Hyper-V hosts: "
                           f"{known})") from None
    if host.role is not HostRole.hyperv:
        raise UsageProblem(f"{field}: {host.name} is not a Hyper-V host (Hyper-V hosts: "
                           f"{known})")
    return host.name


def _replication(spec: LabSpec, vm: str) -> Replication:
    entry = spec.replication_of(vm)
    if entry is None:
        raise UsageProblem(f"VM: {vm} has no replication in lab {spec.lab}")
    return entry


def _migration_target(spec: LabSpec, vm: str, to: str | None, mode: Mode,
                      storage_path: str | None) -> str | None:
    if mode is Mode.storage:
        if not storage_path:
            raise UsageProblem("--storage-path: mode storage needs the destination folder")
        return _hyperv_host(spec, to, "--to") if to else None
    if to is None:
        raise UsageProblem(f"--to: mode {mode.value} needs the destination host")
    return _hyperv_host(spec, to, "--to")


# --------------------------------------------------------------------------- starting


def _started(handle: WorkflowHandle[Any, Any], what: str, no_wait: bool, as_json: bool
             ) -> None:
    follow(handle.id, what=what, no_wait=no_wait, as_json=as_json)


def migrate(
    file: LabFile,
    vm: VmName,
    to: Annotated[str | None, typer.Option("--to", help="destination host")] = None,
    mode: Annotated[Mode, typer.Option("--mode", help="what moves")] = Mode.shared_nothing,
    storage_path: Annotated[str | None, typer.Option(
        "--storage-path", help="destination folder (storage; shared-nothing default: the "
        "destination's VM folder)")] = None,
    sim: SimOption = False,
    no_compensate: NoCompensate = False,
    no_wait: NoWaitOption = False,
    as_json: JsonOption = False,
    watch: WatchOption = False,
) -> None:
    """Move VM live to another host (shared-nothing, smb) or its storage (storage)."""
    wait_mode(watch, no_wait)
    spec = load_lab(file)
    name = _vm(spec, vm)
    target = _migration_target(spec, name, to, mode, storage_path)
    spec = register_lab(spec, sim)
    request = LiveMigrationInput(
        spec=spec, vm=name, mode=mode.value, storage_path=storage_path,
        destination=target if mode is not Mode.storage else None,
        source=target if mode is Mode.storage else None, compensate=not no_compensate)
    handle = asyncio.run(start_or_attach(LiveMigrationWorkflow.run, request,
                                migration_id(spec.lab, name), f"migrate {name} ({mode.value})"))
    _started(handle, f"migration of [bold]{name}[/] ({mode.value})", no_wait, as_json)


def replicate(
    file: LabFile,
    vm: VmName,
    to: Annotated[str | None, typer.Option(
        "--to", help="replica host (default: the lab file's)")] = None,
    sim: SimOption = False,
    no_compensate: NoCompensate = False,
    no_wait: NoWaitOption = False,
    as_json: JsonOption = False,
    watch: WatchOption = False,
) -> None:
    """Replicate VM to a replica host with Hyper-V Replica."""
    wait_mode(watch, no_wait)
    spec = load_lab(file)
    name = _vm(spec, vm)
    entry = spec.replication_of(name)
    if to is None and entry is None:
        raise UsageProblem(f"--to: {name} has no replication in lab {spec.lab}; name the "
                           "replica host")
    replica = _hyperv_host(spec, to, "--to") if to else None
    primary = entry.primary if entry else spec.vm(name).host
    if replica is not None and replica.lower() == primary.lower():
        raise UsageProblem(f"--to: {replica} is the primary of {name}")
    spec = register_lab(spec, sim)
    request = ReplicationWorkflowInput(spec=spec, vm=name, replica=replica,
                                       compensate=not no_compensate)
    handle = asyncio.run(start_or_attach(ReplicationWorkflow.run, request,
                                replication_id(spec.lab, name), f"replicate {name}"))
    _started(handle, f"replication of [bold]{name}[/]", no_wait, as_json)


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
    name = _vm(spec, vm)
    _replication(spec, name)
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
    _started(handle, f"{what} of [bold]{name}[/]", no_wait, as_json)


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
    name = _vm(spec, vm)
    entry = _replication(spec, name)
    spec = register_lab(spec, sim)
    request = PlannedFailoverInput(spec=spec, vm=name, replica=entry.primary,
                                   reverse=not no_reverse, compensate=not no_compensate)
    handle = asyncio.run(start_or_attach(PlannedFailoverWorkflow.run, request,
                                         failover_id(spec.lab, name), f"failback of {name}"))
    _started(handle, f"failback of [bold]{name}[/] to {entry.primary}", no_wait, as_json)


def converge(
    file: LabFile,
    sim: SimOption = False,
    no_compensate: NoCompensate = False,
    no_wait: NoWaitOption = False,
    as_json: JsonOption = False,
    watch: WatchOption = False,
) -> None:
    """Put the lab back where FILE says: move each VM a class moved back to its host, fail each
    failed-over replication back, then converge the rest (what `up` does)."""
    wait_mode(watch, no_wait)
    spec = load_lab(file)
    spec = register_lab(spec, sim)
    request = LabConvergeInput(spec=spec, compensate=not no_compensate)
    handle = asyncio.run(start_or_attach(LabConvergeWorkflow.run, request,
                                         converge_id(spec.lab), f"converge lab {spec.lab}"))
    _started(handle, f"converge of lab [bold]{spec.lab}[/]", no_wait, as_json)


async def _approve(workflow_id: str, by: str) -> str:
    client = await _client()
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


def register(app: typer.Typer) -> None:
    for command in (migrate, replicate, failover, failback, converge, approve):
        app.command()(command)
