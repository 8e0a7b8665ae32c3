"""The unit-kind registry: one module per kind, and the tables derived from it.

Each kind's module names its steps once (a ``Step`` enum); the plan, the workflow's progress and
the plan's commands use the members, so a step name the enum lacks is an error, not a new step.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from hvlab.plan import PlanStep, PlanUnit
from hvlab.spec import UNIT_KINDS, LabSpec
from hvlab.specfile import load_lab
from workflows import host_prep, vm_deploy
from workflows.kind import StepName, UnitKind
from workflows.kinds import BY_NAME, KINDS, build_plan, kind
from workflows.registry import ALL_WORKFLOWS

ROOT = Path(__file__).resolve().parents[2]
SEED = load_lab(ROOT / "examples" / "classroom-lab.yaml")


def test_every_kind_of_the_lab_file_has_one_module() -> None:
    assert [k.name for k in KINDS] == list(dict.fromkeys(k.name for k in KINDS))
    assert set(BY_NAME) == set(UNIT_KINDS)
    for unit_kind in KINDS:
        assert unit_kind.workflow in ALL_WORKFLOWS
        assert unit_kind.workflow.__module__ == unit_kind.plan.__module__


def test_the_example_labs_have_every_kind_and_each_step_name_is_its_kinds() -> None:
    """The example labs cover every kind (the plan-command test binds their commands)."""
    plans = [build_plan(load_lab(p)) for p in sorted((ROOT / "examples").glob("*.yaml"))]
    units = [u for plan in plans for u in plan.units]
    assert {u.kind for u in units} == set(UNIT_KINDS)
    for unit in units:
        steps = _step_enum(unit.kind)
        for step in unit.steps:
            steps.parse(step.name)  # ValueError for a name the kind does not declare


def _step_enum(name: str) -> type[StepName]:
    module = __import__(kind(name).plan.__module__, fromlist=["Step"])
    step_enum = module.Step
    assert issubclass(step_enum, StepName)
    return step_enum  # type: ignore[no-any-return]


def test_a_step_name_its_kind_lacks_is_refused() -> None:
    with pytest.raises(ValueError, match="domian-join"):
        host_prep.Step.parse("domian-join")
    unit = build_plan(SEED).unit("host-prep:SVR1")
    with pytest.raises(ValueError):
        kind("host-prep").commands(SEED, unit, PlanStep(name="swich:LAN", title="", host="SVR1"))


def test_keyed_steps_carry_their_thing() -> None:
    assert host_prep.Step.SWITCH.of("Private Network") == "switch:Private Network"
    assert vm_deploy.Step.parse("nic:LAN 1") == (vm_deploy.Step.NIC, "LAN 1")


def test_a_dependency_on_a_unit_the_plan_lacks_is_an_error() -> None:
    def misspelt(spec: LabSpec, before: list[PlanUnit]) -> list[PlanUnit]:
        return [u.model_copy(update={"depends_on": ["host-prep:SVR9"]})
                for u in vm_deploy.plan(spec, before)]

    broken = replace(kind("vm-deploy"), plan=misspelt)
    kinds = tuple(broken if k.name == "vm-deploy" else k for k in KINDS)
    with pytest.raises(ValueError, match="depends on host-prep:SVR9"):
        build_plan(SEED, kinds)


def test_a_kind_the_lab_file_cannot_name_is_refused() -> None:
    with pytest.raises(ValueError, match="UnitKindName"):
        replace(kind("nat"), name="dhcp-scope")


def test_the_unit_kinds_workflow_names_are_registered_names() -> None:
    assert kind("host-prep").workflow_name == "HostPrepWorkflow"
    with pytest.raises(TypeError, match=r"not a @workflow\.defn"):
        _ = UnitKind(name="nat", workflow=object, plan=vm_deploy.plan,
                     unit_input=kind("nat").unit_input).workflow_name


def test_teardown_and_compensation_come_from_the_kinds() -> None:
    from workflows.teardown import teardown_units

    units = {u.id: undos for u, undos in teardown_units(SEED, [])}
    assert units["host-prep:SVR1"] and units["vm-deploy:" + SEED.vms[0].name]
    only_lan = teardown_units(SEED, [], {"host-prep:SVR1": [SEED.hyperv_hosts[0].switches[0].name]})
    assert len(only_lan[0][1]) == 1
    assert kind("host-prep").reconverge and not kind("vm-deploy").reconverge
