"""Every top-level section of named entries gets the duplicate-name rule, including one that
a new unit kind adds (no edit to spec_check needed for it)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from hvlab.spec import LabSpec
from hvlab.spec_check import _duplicates
from hvlab.specfile import load_lab

SEED = load_lab(Path(__file__).resolve().parents[2] / "examples" / "classroom-lab.yaml")


class OrganizationalUnit(BaseModel):
    name: str


class LabWithUnits(LabSpec):
    organizational_units: list[OrganizationalUnit] = Field(default_factory=list)


def test_a_new_sections_duplicate_names_are_reported_at_the_second_entry() -> None:
    spec = LabWithUnits(**SEED.model_dump(), organizational_units=[
        OrganizationalUnit(name="Students"), OrganizationalUnit(name="Staff"),
        OrganizationalUnit(name="students")])
    problems = list(_duplicates(spec))
    assert [(p.loc, p.message) for p in problems] == [
        (("organizational_units", 2, "name"),
         "duplicate organizational unit 'students' (first defined at organizational_units[0].name)")]


def test_the_seeds_sections_keep_their_names_in_messages() -> None:
    vms = [*SEED.vms, SEED.vms[0]]
    problems = list(_duplicates(SEED.model_copy(update={"vms": vms})))
    assert [p.message.split(" (")[0] for p in problems] == [f"duplicate VM {SEED.vms[0].name!r}"]
