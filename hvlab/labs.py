"""The labs a worker serves: one registration per lab and mode, under ``$HVLAB_HOME/labs``.

``hvlab up FILE`` registers the lab file here before starting workflows; a worker that shares
``HVLAB_HOME`` (the dev stack) or has the directory mounted (a deployment) reads it. Lab files
hold no secrets, only references, so copying them is safe. Activity inputs name their lab
(``lab`` field); the worker's activity interceptor puts it in :data:`CURRENT_LAB` so the
endpoint lookup knows which lab's hosts an activity talks to.

The same lab file registered for real hosts and for the simulated fleet (``--sim``) are two
registrations that share nothing:

===================  ============================  ===========================================
mode                 key (``spec.lab`` it sends)    file
===================  ============================  ===========================================
real hosts           ``<lab>``                     ``labs/<lab>.yaml`` (what a deployment mounts)
simulated fleet      ``sim.<lab>``                 ``labs/sim/<lab>.yaml``
===================  ============================  ===========================================

The key is the lab id of the spec a command hands its workflows, so everything derived from
it differs by mode too: workflow ids (``sim.classroom-build``), schedule ids
(``sim.classroom-reset-schedule``) and the lab every activity input names. A command in one mode
writes only its own file, so it never changes what a workflow or schedule of the other mode
reaches. A lab file cannot name itself ``sim.…`` (:func:`hvlab.spec_check.check_lab`).
"""

from __future__ import annotations

import os
import re
import tempfile
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

from hvlab.spec import SIM_PREFIX, LabSpec
from hvlab.specfile import dump_lab, load_lab

CURRENT_LAB: ContextVar[str] = ContextVar("hvlab_current_lab", default="")
_KEY = re.compile(r"^(sim\.)?([a-z0-9][a-z0-9-]{0,40})$")


@dataclass(frozen=True)
class RegisteredLab:
    """A registration: the spec as its workflows see it (``spec.lab`` is the key)."""

    spec: LabSpec
    sim: bool
    path: Path

    @property
    def key(self) -> str:
        return self.spec.lab


def registration_key(lab: str, *, sim: bool) -> str:
    """The key of lab ``lab`` (a lab file's id) in one mode: ``sim.<lab>`` or ``<lab>``."""
    return f"{SIM_PREFIX}{lab_name(lab)}" if sim else lab_name(lab)


def lab_name(key: str) -> str:
    """The lab file's id of a key (``sim.classroom`` -> ``classroom``)."""
    return key.removeprefix(SIM_PREFIX)


def is_sim(key: str) -> bool:
    """Whether a key names the simulated fleet's registration."""
    return key.startswith(SIM_PREFIX)


def for_mode(spec: LabSpec, *, sim: bool) -> LabSpec:
    """``spec`` with the lab id of its registration in that mode."""
    key = registration_key(spec.lab, sim=sim)
    return spec if key == spec.lab else spec.model_copy(update={"lab": key})


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        stream.write(text)
    os.replace(tmp, path)


class LabRegistry:
    """Lab files by registration key under ``<home>/labs``."""

    def __init__(self, home: Path) -> None:
        self.directory = home / "labs"

    def path(self, key: str) -> Path | None:
        """Where the registration ``key`` lives; None for a string that is not a key."""
        match = _KEY.match(key)
        if match is None:
            return None
        folder = self.directory / "sim" if match.group(1) else self.directory
        return folder / f"{match.group(2)}.yaml"

    def register(self, spec: LabSpec, *, sim: bool) -> RegisteredLab:
        """Store the lab (as validated) as its registration in that mode; returns it, with the
        spec its workflows are to be given (lab id = the key).

        ``spec`` may be the lab file's spec or already the mode's (``sim.<lab>`` with ``sim``);
        only that mode's file is written."""
        if is_sim(spec.lab) and not sim:
            raise ValueError(f"{spec.lab} is a simulated fleet's registration, not a real lab")
        keyed = for_mode(spec, sim=sim)
        path = self.path(keyed.lab)
        assert path is not None  # the spec's own pattern is the key's
        _write_atomic(path, dump_lab(spec))  # the lab file: its id without sim.
        if not sim:
            # the sim flag older versions kept beside the file; the key says it now
            (self.directory / f"{keyed.lab}.json").unlink(missing_ok=True)
        return RegisteredLab(keyed, sim, path)

    def load(self, key: str) -> RegisteredLab | None:
        """The registration ``key``, or None when this worker does not know it (parsed once per
        change of its file: activities look it up for every remote command)."""
        path = self.path(key)
        if path is None:
            return None
        try:
            stamp = path.stat().st_mtime_ns
        except FileNotFoundError:
            return None
        cached = _CACHE.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        sim = is_sim(key)
        registered = RegisteredLab(for_mode(load_lab(path), sim=sim), sim, path)
        _CACHE[path] = (stamp, registered)
        return registered


_CACHE: dict[Path, tuple[int, RegisteredLab]] = {}
