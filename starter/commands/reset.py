"""``hvlab reset`` and ``hvlab checkpoint``: restore the lab to a checkpoint, or take one.

Both validate the lab file (exit 2 with its problems) and the checkpoint name (exit 2) before
they connect to Temporal or start anything, then register the lab for the workers. Workflow
ids follow the lab: ``<lab>-reset``, ``<lab>-checkpoint-<name>``; starting one that runs
already attaches to it.
"""

from __future__ import annotations

from typing import Annotated

import typer

from hvlab.specfile import load_lab
from starter.console import UsageProblem
from starter.options import (
    CheckpointOption,
    JsonOption,
    LabFile,
    NoWaitOption,
    SimOption,
    WatchOption,
)
from starter.runs import launch, register_lab, wait_mode
from starter.schedules import chosen_checkpoint, reset_workflow_id
from workflows.checkpoint import CheckpointWorkflowInput, checkpoint_vms
from workflows.reset import LabResetInput


def checkpoint(
    file: LabFile,
    name: Annotated[str, typer.Argument(help="checkpoint name from the lab file")],
    sim: SimOption = False,
    replace: Annotated[bool, typer.Option(
        "--replace", help="retake the checkpoint where it exists (remove it, then take it "
        "again; the old one cannot come back)")] = False,
    no_compensate: Annotated[bool, typer.Option(
        "--no-compensate", help="keep checkpoints already taken when one VM fails")] = False,
    no_wait: NoWaitOption = False,
    as_json: JsonOption = False,
    watch: WatchOption = False,
) -> None:
    """Take the lab file's checkpoint NAME of every VM it lists (one that exists is left
    alone unless --replace)."""
    wait_mode(watch, no_wait)
    spec = load_lab(file)
    try:
        checkpoint_vms(spec, name)
    except ValueError as exc:
        raise UsageProblem(f"NAME: {exc}") from None
    spec = register_lab(spec, sim)
    request = CheckpointWorkflowInput(spec=spec, checkpoint=name, compensate=not no_compensate,
                                      replace=replace)
    verb = "retake" if replace else "checkpoint"
    launch("CheckpointWorkflow", request, f"{spec.lab}-checkpoint-{name}",
           f"{verb} {name} of lab {spec.lab}", no_wait=no_wait, as_json=as_json)


def reset(
    file: LabFile,
    name: CheckpointOption = "",
    sim: SimOption = False,
    compensate: Annotated[bool, typer.Option(
        "--compensate", help="undo the re-converging build's steps if it fails (default: "
        "keep them; a reset is re-run, not rolled back)")] = False,
    no_wait: NoWaitOption = False,
    as_json: JsonOption = False,
    watch: WatchOption = False,
) -> None:
    """Restore a checkpoint on every VM of the lab, then re-converge the lab file."""
    wait_mode(watch, no_wait)
    spec = load_lab(file)
    chosen = chosen_checkpoint(spec, name)
    spec = register_lab(spec, sim)
    launch("LabResetWorkflow", LabResetInput(spec=spec, checkpoint=chosen, compensate=compensate),
           reset_workflow_id(spec.lab), f"reset of lab {spec.lab} to {chosen}", no_wait=no_wait,
           as_json=as_json)
