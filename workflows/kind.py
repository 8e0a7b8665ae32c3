"""What a kind of build-plan unit is made of: :class:`UnitKind`, filled in by the kind's module.

Each kind of unit (``host-prep``, ``vm-deploy``, ...) lives in one module of ``workflows/``
that holds its step names (a :class:`StepName` enum), its plan units, its workflow and that
workflow's input, the commands ``hvlab plan`` shows per step, its undo for ``hvlab down``, what a
cancelled build undoes of it, and whether a reset re-runs it. The module ends with
``KIND = UnitKind(...)``; :mod:`workflows.kinds` lists the kinds and derives everything else
(the plan, the worker's workflows, teardown, compensation, reset) from them. See "How to add a
step kind" in docs/architecture.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Self

from pydantic import BaseModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from hvlab.plan import PlanStep, PlanUnit
    from hvlab.powershell.command import Command, Script
    from hvlab.spec import UNIT_KINDS, LabSpec
    from workflows.steps import ActivityMethod

Emitted = Command | Script
"""A command ``hvlab plan`` shows for a step (what its activity sends when the host differs)."""

Undo = tuple[ActivityMethod[Any], BaseModel, tuple[str, ...]]
"""One undo step: the activity, its input, the hosts that must have Hyper-V for it to apply."""

Parts = tuple[list[str] | None, list[str]]
"""(the parts of a unit a cancelled build undoes, None for nothing; what stays, as sentences)."""


class StepName(StrEnum):
    """The step names of one kind: the plan, the workflow's progress and the plan's commands
    all use the members, so a misspelt step is an AttributeError (and a mypy error), never a
    new step. A step about one of several things carries it after a colon (``switch:LAN``)."""

    def of(self, thing: str) -> str:
        """The step about ``thing``: ``Step.SWITCH.of("LAN")`` is ``"switch:LAN"``."""
        return f"{self.value}:{thing}"

    @classmethod
    def parse(cls, name: str) -> tuple[Self, str]:
        """(member, thing) of a plan step's name; ValueError for a name this kind lacks."""
        base, _, thing = name.partition(":")
        return cls(base), thing


def plan_step(name: str, title: str, host: str) -> PlanStep:
    return PlanStep(name=str(name), title=title, host=host)


def steps_of(units: Iterable[PlanUnit], unit_id: str) -> list[tuple[str, str]]:
    """(name, title) of the steps of unit ``unit_id`` among ``units``: a kind's workflow
    declares these in its progress, so ``hvlab plan`` and a running build name the same
    steps."""
    for unit in units:
        if unit.id == unit_id:
            return [(s.name, s.title) for s in unit.steps]
    raise KeyError(unit_id)


def prefixed(steps: list[tuple[str, str]], *prefixes: str) -> list[str]:
    """Names among ``steps`` equal to one of ``prefixes`` or starting with it plus ':'."""
    return [n for n, _ in steps if any(n == p or n.startswith(p + ":") for p in prefixes)]


def joined(spec: LabSpec, names: Iterable[str]) -> list[str]:
    """host-prep units of the Hyper-V hosts among ``names`` (their computer accounts exist)."""
    wanted = {n.lower() for n in names}
    return [f"host-prep:{h.name}" for h in spec.hyperv_hosts if h.name.lower() in wanted]


def done_steps(result: Any) -> set[str]:
    """The names of the steps a unit's workflow changed (progress state ``done``)."""
    if not isinstance(result, dict):
        return set()
    progress = result.get("progress", result)
    return {s.get("name", "") for s in progress.get("steps", []) if s.get("state") == "done"}


def no_commands(spec: LabSpec, unit: PlanUnit, step: PlanStep) -> list[Emitted]:
    return []


def no_undo(spec: LabSpec, unit: PlanUnit) -> list[Undo]:
    return []


def whole(undos: list[Undo], parts: list[str]) -> list[Undo]:
    """A unit undone wholly whatever parts are named."""
    return undos


def any_change(spec: LabSpec, unit: PlanUnit, result: Any) -> Parts:
    """Undo the whole unit when any of its steps changed something."""
    return (["all"] if done_steps(result) else None), []


@dataclass(frozen=True)
class UnitKind:
    """One kind of build-plan unit, as its module defines it."""

    name: str
    """The kind as the lab file's ``only:`` and unit ids write it (``host-prep``)."""
    workflow: type
    """The ``@workflow.defn`` class that builds one unit of this kind."""
    plan: Callable[[LabSpec, list[PlanUnit]], Iterable[PlanUnit]]
    """This kind's units of ``spec`` (given the units of the kinds listed before it)."""
    unit_input: Callable[[LabSpec, PlanUnit, bool], BaseModel]
    """The workflow's input for one unit (spec, unit, compensate)."""
    commands: Callable[[LabSpec, PlanUnit, PlanStep], list[Emitted]] = no_commands
    """What ``hvlab plan`` shows for a step: the changing commands (none for probes/waits)."""
    undo: Callable[[LabSpec, PlanUnit], list[Undo]] = no_undo
    """``hvlab down``'s undo steps for one unit, in order (already-gone counts as done)."""
    parts: Callable[[list[Undo], list[str]], list[Undo]] = whole
    """The undo steps of the named parts of a unit (what a cancelled build made of it)."""
    changed: Callable[[LabSpec, PlanUnit, Any], Parts] = any_change
    """From a unit workflow's result: the parts a cancelled build undoes, and what stays."""
    left_in_place: str = ""
    """What ``hvlab down`` does not remove of a unit, and why."""
    reconverge: bool = False
    """Whether a reset re-runs this kind after restoring checkpoints (what lives outside VMs)."""

    def __post_init__(self) -> None:
        if self.name not in UNIT_KINDS:
            raise ValueError(f"unit kind {self.name!r} is not in hvlab.spec.UnitKindName "
                             f"{UNIT_KINDS}: add it there (the lab file's `only:` lists kinds)")

    @property
    def workflow_name(self) -> str:
        """The workflow type the worker registers the kind's workflow under."""
        definition = getattr(self.workflow, "__temporal_workflow_definition", None)
        name = getattr(definition, "name", None)
        if not isinstance(name, str):
            raise TypeError(f"{self.workflow!r} (unit kind {self.name}) is not a @workflow.defn")
        return name
