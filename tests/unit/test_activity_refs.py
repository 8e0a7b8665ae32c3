"""Workflows call activities by typed reference (``VmActivities.start``), never by name string.

A misspelt method fails here (and in mypy) before any workflow runs; a string name sneaking
back in, which would only fail when that branch runs against a worker, fails here too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from activities.doctor import DoctorActivities
from activities.registry import REMOTE_DOMAINS
from workflows.steps import activity_name

ROOT = Path(__file__).resolve().parents[2]
CLASSES = {cls.__name__: cls for cls in (*REMOTE_DOMAINS, DoctorActivities)}
NAMES = {activity_name(fn) for cls in CLASSES.values() for fn in vars(cls).values()
         if hasattr(fn, "__temporal_activity_definition")}


def _trees() -> list[tuple[Path, ast.Module]]:
    return [(p, ast.parse(p.read_text())) for p in sorted((ROOT / "workflows").rglob("*.py"))]


def test_the_registry_knows_every_activity() -> None:
    assert {"host.switch", "vm.start", "replica.remove", "lab.observe"} <= NAMES


def test_no_workflow_names_an_activity_by_string() -> None:
    found = [f"{path.name}:{node.lineno} {node.value!r}" for path, tree in _trees()
             for node in ast.walk(tree)
             if isinstance(node, ast.Constant) and isinstance(node.value, str)
             and node.value in NAMES]
    assert not found, "call the activity method (e.g. VmActivities.start), not its name"


def test_every_activity_reference_in_workflows_is_a_registered_activity() -> None:
    refs: list[tuple[str, str, str]] = []
    for path, tree in _trees():
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in CLASSES):
                refs.append((f"{path.name}:{node.lineno}", node.value.id, node.attr))
    assert len(refs) > 60  # the scan sees the workflows' calls
    wrong = [f"{where} {cls}.{attr}" for where, cls, attr in refs
             if not hasattr(getattr(CLASSES[cls], attr, None), "__temporal_activity_definition")]
    assert not wrong, f"not activities: {wrong}"


@pytest.mark.parametrize("thing", ["vm.start", print, DoctorActivities.__init__])
def test_a_name_or_plain_function_is_refused(thing: object) -> None:
    with pytest.raises(TypeError, match="not an activity method"):
        activity_name(thing)  # type: ignore[arg-type]


def test_the_recorded_name_comes_from_the_decorator() -> None:
    assert activity_name(CLASSES["VmActivities"].start) == "vm.start"
    assert activity_name(DoctorActivities.probe) == "doctor_probe"
