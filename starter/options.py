"""The arguments and options several commands share, as Typer annotations."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

LabFile = Annotated[Path, typer.Argument(help="lab file (YAML)", show_default=False)]
VmName = Annotated[str, typer.Argument(help="VM name from the lab file", show_default=False)]
SimOption = Annotated[bool, typer.Option("--sim", help="use the simulated fleet's endpoints")]
WatchOption = Annotated[bool, typer.Option(
    "--watch", hidden=True, help="wait and follow progress (the default; kept for scripts)")]
NoWaitOption = Annotated[bool, typer.Option(
    "--no-wait", help="return once started, printing the workflow id and how to follow it")]
JsonOption = Annotated[bool, typer.Option(
    "--json", help="print the outcome as JSON (status, cause, recap, result) instead of "
    "progress bars")]
NoCompensate = Annotated[bool, typer.Option(
    "--no-compensate", help="keep partial state on failure (debugging)")]
CheckpointOption = Annotated[str, typer.Option(
    "--checkpoint", help="checkpoint to restore (default: the lab file's reset.checkpoint)")]
