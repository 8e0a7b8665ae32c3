"""The registry of build-plan unit kinds, and everything derived from it.

:data:`KINDS` lists each kind's :class:`~workflows.kind.UnitKind` in plan order (a kind's units
may depend on the kinds before it). The build plan (``hvlab plan``, LabBuildWorkflow), the
commands ``hvlab plan`` shows, the worker's unit workflows, teardown, a cancelled build's
compensation and a reset's re-converge all read them from here; nothing else names kinds.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from hvlab.plan import BuildPlan, PlanStep, PlanUnit
    from hvlab.spec import UNIT_KINDS, LabSpec
    from workflows import (
        checkpoint,
        delegation,
        host_prep,
        nat,
        readiness,
        replication,
        storage,
        vm_deploy,
    )
    from workflows.kind import Emitted, UnitKind

KINDS: tuple[UnitKind, ...] = (
    host_prep.KIND,
    storage.KIND,
    delegation.KIND,
    readiness.KIND,
    vm_deploy.KIND,
    nat.KIND,
    replication.KIND,
    checkpoint.KIND,
)

BY_NAME: dict[str, UnitKind] = {k.name: k for k in KINDS}

if set(BY_NAME) != set(UNIT_KINDS) or len(BY_NAME) != len(KINDS):
    raise ImportError(f"unit kinds {sorted(BY_NAME)} differ from hvlab.spec.UnitKindName "
                      f"{sorted(UNIT_KINDS)}: list each kind once here and there")


def kind(name: str) -> UnitKind:
    """The kind called ``name``; ValueError naming the kinds there are."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError(f"no unit kind {name!r}; kinds: {', '.join(BY_NAME)}") from None


def build_plan(spec: LabSpec, kinds: tuple[UnitKind, ...] = KINDS) -> BuildPlan:
    """The DAG of the whole lab build: every kind's units, in :data:`KINDS` order. A unit that
    depends on a unit the plan lacks is a ValueError naming both (a misspelt kind or target)."""
    units: list[PlanUnit] = []
    for unit_kind in kinds:
        units += list(unit_kind.plan(spec, list(units)))
    ids = {u.id for u in units}
    for unit in units:
        missing = [d for d in unit.depends_on if d not in ids]
        if missing:
            raise ValueError(f"unit {unit.id} depends on {', '.join(missing)}, which the plan "
                             "does not have")
    return BuildPlan(lab=spec.lab, units=units)


def unit_steps(spec: LabSpec, unit_id: str) -> list[tuple[str, str]]:
    """(name, title) of one unit's steps, as ``hvlab plan`` prints them."""
    return [(s.name, s.title) for s in build_plan(spec).unit(unit_id).steps]


def step_commands(spec: LabSpec, unit: PlanUnit, step: PlanStep) -> list[Emitted]:
    """The changing commands of one plan step (empty for checks and waits)."""
    return kind(unit.kind).commands(spec, unit, step)


def plan_commands(spec: LabSpec, plan: BuildPlan) -> dict[tuple[str, str], list[Emitted]]:
    """Every step's commands, keyed by (unit id, step name): what ``hvlab plan`` shows, and
    what the catalogue test binds against the published cmdlet reference."""
    return {(u.id, s.name): step_commands(spec, u, s) for u in plan.units for s in u.steps}


def unit_workflows() -> list[type]:
    """The workflow classes that build units (the worker registers them)."""
    return [k.workflow for k in KINDS]
