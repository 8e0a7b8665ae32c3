"""``hvlab up`` and ``hvlab converge``: bring the lab to what its file describes.

``up`` builds (or converges) the lab as it is where it is; ``converge`` first puts back what a
class moved (VMs migrated away, replications failed over), then does what ``up`` does. Both
wait for their workflow with live progress and end with its recap and outcome (``--no-wait``
returns after the start; ``--watch`` is the default, kept).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hvlab.specfile import load_lab
from starter.options import (
    JsonOption,
    LabFile,
    NoCompensate,
    NoWaitOption,
    SimOption,
    WatchOption,
)
from starter.runs import launch, register_lab, wait_mode
from workflows.converge import LabConvergeInput, LabConvergeWorkflow, converge_id
from workflows.lab_build import LabBuildInput, LabBuildWorkflow


def build_id(lab: str) -> str:
    return f"{lab}-build"


def up(
    file: Annotated[Path, typer.Argument(help="lab file")],
    sim: SimOption = False,
    no_compensate: NoCompensate = False,
    no_wait: NoWaitOption = False,
    as_json: JsonOption = False,
    watch: WatchOption = False,
) -> None:
    """Build (or converge) the lab described by FILE, wait for it with live progress and end
    with a recap of each unit (changed, unchanged, failed); exit 0 when it completed, 1
    otherwise."""
    wait_mode(watch, no_wait)
    spec = load_lab(file)
    spec = register_lab(spec, sim)
    request = LabBuildInput(spec=spec, compensate=not no_compensate)
    launch(LabBuildWorkflow.run, request, build_id(spec.lab), f"build lab {spec.lab}",
           what=f"build of lab [bold]{spec.lab}[/]", no_wait=no_wait, as_json=as_json)


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
    launch(LabConvergeWorkflow.run, request, converge_id(spec.lab), f"converge lab {spec.lab}",
           what=f"converge of lab [bold]{spec.lab}[/]", no_wait=no_wait, as_json=as_json)
