"""``hvlab migrate`` and ``hvlab replicate``: move a VM, or replicate it to a replica host.

Each command loads the lab file, checks the VM and host names against it (an unknown one is a
usage problem naming the field, exit 2, before anything starts), registers the lab for the
worker and starts the workflow under a deterministic id (``<lab>-migrate-<vm>``,
``<lab>-replicate-<vm>``); starting the same operation again while it runs attaches to it.
Each waits for its workflow with live progress and ends with its recap and outcome
(``--no-wait`` returns after the start; ``--watch`` is the default, kept).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from hvlab.spec import LabSpec
from hvlab.specfile import load_lab
from starter.console import UsageProblem
from starter.names import known_hyperv_host, known_vm
from starter.options import (
    JsonOption,
    LabFile,
    NoCompensate,
    NoWaitOption,
    SimOption,
    VmName,
    WatchOption,
)
from starter.runs import launch, register_lab, wait_mode
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


def _migration_target(spec: LabSpec, vm: str, to: str | None, mode: Mode,
                      storage_path: str | None) -> str | None:
    if mode is Mode.storage:
        if not storage_path:
            raise UsageProblem("--storage-path: mode storage needs the destination folder")
        return known_hyperv_host(spec, to, "--to") if to else None
    if to is None:
        raise UsageProblem(f"--to: mode {mode.value} needs the destination host")
    return known_hyperv_host(spec, to, "--to")


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
    name = known_vm(spec, vm)
    target = _migration_target(spec, name, to, mode, storage_path)
    spec = register_lab(spec, sim)
    request = LiveMigrationInput(
        spec=spec, vm=name, mode=mode.value, storage_path=storage_path,
        destination=target if mode is not Mode.storage else None,
        source=target if mode is Mode.storage else None, compensate=not no_compensate)
    launch(LiveMigrationWorkflow.run, request, migration_id(spec.lab, name),
           f"migrate {name} ({mode.value})", what=f"migration of [bold]{name}[/] ({mode.value})",
           no_wait=no_wait, as_json=as_json)


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
    name = known_vm(spec, vm)
    entry = spec.replication_of(name)
    if to is None and entry is None:
        raise UsageProblem(f"--to: {name} has no replication in lab {spec.lab}; name the "
                           "replica host")
    replica = known_hyperv_host(spec, to, "--to") if to else None
    primary = entry.primary if entry else spec.vm(name).host
    if replica is not None and replica.lower() == primary.lower():
        raise UsageProblem(f"--to: {replica} is the primary of {name}")
    spec = register_lab(spec, sim)
    request = ReplicationWorkflowInput(spec=spec, vm=name, replica=replica,
                                       compensate=not no_compensate)
    launch(ReplicationWorkflow.run, request, replication_id(spec.lab, name), f"replicate {name}",
           what=f"replication of [bold]{name}[/]", no_wait=no_wait, as_json=as_json)
