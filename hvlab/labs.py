"""The labs a worker serves: ``$HVLAB_HOME/labs/<lab>.yaml`` plus whether to use the simulator.

``hvlab up FILE`` registers the lab file here before starting workflows; a worker that shares
``HVLAB_HOME`` (the dev stack) or has the directory mounted (a deployment) reads it. Lab files
hold no secrets, only references, so copying them is safe. Activity inputs name their lab
(``lab`` field); the worker's activity interceptor puts it in :data:`CURRENT_LAB` so the
endpoint lookup knows which lab's hosts an activity talks to.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

from hvlab.spec import LabSpec
from hvlab.specfile import dump_lab, load_lab

CURRENT_LAB: ContextVar[str] = ContextVar("hvlab_current_lab", default="")


@dataclass(frozen=True)
class RegisteredLab:
    spec: LabSpec
    sim: bool
    path: Path


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        stream.write(text)
    os.replace(tmp, path)


class LabRegistry:
    """Lab files by lab id under ``<home>/labs``."""

    def __init__(self, home: Path) -> None:
        self.directory = home / "labs"

    def register(self, spec: LabSpec, *, sim: bool) -> RegisteredLab:
        """Store the lab (as validated) and its sim flag; returns where it went."""
        path = self.directory / f"{spec.lab}.yaml"
        _write_atomic(path, dump_lab(spec))
        _write_atomic(self.directory / f"{spec.lab}.json", json.dumps({"sim": sim}))
        return RegisteredLab(spec, sim, path)

    def load(self, lab: str) -> RegisteredLab | None:
        """The registered lab, or None when this worker does not know it (parsed once per
        change of its files: activities look it up for every remote command)."""
        path = self.directory / f"{lab}.yaml"
        flags = self.directory / f"{lab}.json"
        try:
            stamp = (path.stat().st_mtime_ns, flags.stat().st_mtime_ns if flags.exists() else 0)
        except FileNotFoundError:
            return None
        cached = _CACHE.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        sim = bool(json.loads(flags.read_text()).get("sim")) if flags.exists() else False
        registered = RegisteredLab(load_lab(path), sim, path)
        _CACHE[path] = (stamp, registered)
        return registered


_CACHE: dict[Path, tuple[tuple[int, int], RegisteredLab]] = {}
