"""The ``hvlab:`` line hvlab keeps in a VM's or a virtual switch's Notes.

One line ``hvlab: key=value; key=value`` among the Notes (other lines are the operator's and
are kept). Guest steps record digests of what they applied there (:mod:`activities.guest`);
``vm.create`` and ``host.switch`` record ``created-by=<lab id>`` on what they create, and
``vm.create`` records ``disk=hvlab`` or ``disk=adopted`` (whether the build copied the VM's
disk or found it there). ``hvlab down`` removes only what carries its lab's ``created-by``
mark: a VM or a switch that was there before hvlab (adopted) has none. The Notes live in the
VM's configuration, so the mark moves with a live migration and is copied to a replica.
"""

from __future__ import annotations

from typing import Any

MARK_PREFIX = "hvlab:"
CREATED_BY = "created-by"
DISK = "disk"


def read_marks(notes: Any) -> dict[str, str]:
    """The ``key=value`` pairs of the Notes line that starts with ``hvlab:``."""
    for line in str(notes or "").splitlines():
        if line.startswith(MARK_PREFIX):
            pairs = (p.strip().partition("=") for p in line[len(MARK_PREFIX):].split(";"))
            return {k: v for k, _, v in pairs if k}
    return {}


def with_mark(notes: Any, key: str, value: str) -> str:
    """Notes with ``key=value`` set in the ``hvlab:`` line; other lines are kept."""
    marks = {**read_marks(notes), key: value}
    line = MARK_PREFIX + " " + "; ".join(f"{k}={v}" for k, v in sorted(marks.items()))
    others = [x for x in str(notes or "").splitlines() if not x.startswith(MARK_PREFIX)]
    return "\n".join([*others, line])


def created_by(notes: Any) -> str | None:
    """The lab id that created the object, from its Notes (None: not created by hvlab)."""
    return read_marks(notes).get(CREATED_BY) or None


def not_created_here(kind: str, name: str, host: str, lab: str, notes: Any) -> str | None:
    """Why ``hvlab down`` of ``lab`` keeps this object (None: the lab created it)."""
    owner = created_by(notes)
    if owner == lab:
        return None
    why = (f"created by lab {owner}" if owner else
           f"no `{MARK_PREFIX} {CREATED_BY}={lab}` line in its Notes: it was there before "
           "hvlab (adopted)")
    return f"{kind} {name} on {host} kept: {why}; `hvlab down FILE --force` removes it"
