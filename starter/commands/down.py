"""``hvlab down``: remove what the lab file describes and hvlab created, after asking.

The lab's schedules go first (none may start a run against a lab being removed), then
LabTeardownWorkflow (``<lab>-down``) runs; what it kept (adopted VMs, disks, switches, the
management switch) is listed when it completes.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import typer

from hvlab.spec import LabSpec
from hvlab.specfile import load_lab
from starter.console import UsageProblem, err, out
from starter.options import JsonOption, LabFile, NoWaitOption, SimOption, WatchOption
from starter.runs import launch, register_lab, temporal_client, wait_mode
from starter.schedules import delete_lab_schedules, exercise_schedule_id
from workflows.teardown import LabTeardownInput, LabTeardownResult


def down(
    file: LabFile,
    sim: SimOption = False,
    yes: Annotated[bool, typer.Option(
        "--yes", "-y", help="do not ask for confirmation (needed without a terminal)")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="also remove VMs, disks and switches hvlab did not create (adopted) "
        "and the External switch that carries a host's management address")] = False,
    no_wait: NoWaitOption = False,
    as_json: JsonOption = False,
    watch: WatchOption = False,
) -> None:
    """Remove what FILE describes and hvlab created, newest first; running it twice is
    harmless.

    Asks for confirmation unless --yes. The lab's schedules (reset, replication health,
    exercises) are deleted first, so none starts a run against a lab being removed. A VM,
    disk or switch that was there before hvlab (no ``hvlab: created-by`` line in its Notes)
    stays, and so does the External switch that carries a host's management address; the
    command lists what it kept and why. --force removes them too."""
    wait_mode(watch, no_wait)
    spec = load_lab(file)
    _confirm_down(spec, sim, yes)
    spec = register_lab(spec, sim)
    exercises = [exercise_schedule_id(spec.lab, e.name) for e in spec.exercises]
    for schedule_id in asyncio.run(delete_lab_schedules(spec.lab, exercises)):
        out.print(f"schedule {schedule_id} deleted")
    workflow_id = f"{spec.lab}-down"
    try:
        launch("LabTeardownWorkflow", LabTeardownInput(spec=spec, force=force), workflow_id,
               f"teardown of lab {spec.lab}", no_wait=no_wait, as_json=as_json)
    except typer.Exit as done:
        if done.exit_code == 0 and not no_wait and not as_json:
            for line in asyncio.run(_kept(workflow_id)):
                out.print(f"kept: {line}", markup=False)
        raise


def _confirm_down(spec: LabSpec, sim: bool, yes: bool) -> None:
    """Ask before removing a lab (``--yes`` skips it); without a terminal to ask on, exit 2
    saying to pass --yes. Nothing has been changed when this refuses."""
    if yes:
        return
    where = "the simulated fleet" if sim else ", ".join(h.name for h in spec.hyperv_hosts)
    vms = ", ".join(v.name for v in spec.vms) or "no VMs"
    if not sys.stdin.isatty():
        raise UsageProblem(f"--yes: `hvlab down` removes lab {spec.lab} ({vms}) from {where}; "
                           "no terminal to confirm on, pass --yes to remove it")
    question = (f"Remove lab {spec.lab} from {where}: VMs {vms}, their disks, checkpoints, "
                "replication, switches and the lab's schedules?")
    if not typer.confirm(question, default=False):
        err.print("nothing removed")
        raise typer.Exit(1)


async def _kept(workflow_id: str) -> list[str]:
    """What the completed teardown kept, and why."""
    client = await temporal_client()
    result = await client.get_workflow_handle(
        workflow_id, result_type=LabTeardownResult).result()
    return [line for lines in result.kept.values() for line in lines]
