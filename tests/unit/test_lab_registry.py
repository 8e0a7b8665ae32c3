"""The lab registry: one registration per lab and mode (``<lab>`` and ``sim.<lab>``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hvlab.labs import LabRegistry, for_mode, registration_key
from hvlab.specfile import SpecError, dump_lab, load_lab, parse_lab
from tests.sim.conftest import SEED


def test_the_two_modes_are_two_registrations(tmp_path: Path) -> None:
    """Registering the lab for the simulator and for real hosts writes two files under two
    keys; each load gives its own mode, and re-registering one leaves the other's file."""
    spec = load_lab(SEED)
    registry = LabRegistry(tmp_path)
    sim = registry.register(spec, sim=True)
    assert (sim.key, sim.sim, sim.path) == ("sim.classroom", True,
                                            tmp_path / "labs" / "sim" / "classroom.yaml")
    sim_bytes = sim.path.read_bytes()
    real = registry.register(spec, sim=False)
    assert (real.key, real.sim, real.path) == ("classroom", False,
                                               tmp_path / "labs" / "classroom.yaml")
    assert sim.path.read_bytes() == sim_bytes
    bigger = spec.vms[0].model_copy(update={"memory": spec.vms[0].memory * 2})
    registry.register(spec.model_copy(update={"vms": [bigger, *spec.vms[1:]]}), sim=False)
    assert sim.path.read_bytes() == sim_bytes
    loaded_sim, loaded_real = registry.load("sim.classroom"), registry.load("classroom")
    assert loaded_sim is not None and loaded_sim.sim and loaded_sim.spec == sim.spec
    assert loaded_real is not None and not loaded_real.sim
    assert loaded_real.spec.vms[0].memory == bigger.memory != loaded_sim.spec.vms[0].memory
    registry.register(sim.spec, sim=True)  # the mode's spec registers as itself
    assert registry.load("sim.classroom") == loaded_sim


def test_stored_file_is_the_lab_file(tmp_path: Path) -> None:
    """What a registration stores (and dump_lab of a --sim spec) is the lab file itself:
    its id without `sim.`, which a lab file may not carry."""
    spec = load_lab(SEED)
    keyed = for_mode(spec, sim=True)
    assert keyed.lab == registration_key("classroom", sim=True) == "sim.classroom"
    assert parse_lab(dump_lab(keyed)) == spec
    stored = LabRegistry(tmp_path).register(spec, sim=True).path
    assert parse_lab(stored.read_text()) == spec
    bad = tmp_path / "bad.yaml"
    bad.write_text(dump_lab(spec).replace("lab: classroom", "lab: sim.classroom", 1))
    with pytest.raises(SpecError) as caught:
        load_lab(bad)
    assert [issue.path for issue in caught.value.issues] == ["lab"]
    assert "reserved" in str(caught.value)


def test_a_real_registration_never_turns_sim(tmp_path: Path) -> None:
    """The sim flag older versions wrote beside a lab file is not read: `classroom` is the real
    registration whatever the flag says (a real command deletes the flag)."""
    spec = load_lab(SEED)
    registry = LabRegistry(tmp_path)
    registry.register(spec, sim=False)
    flag = tmp_path / "labs" / "classroom.json"
    flag.write_text(json.dumps({"sim": True}))
    loaded = registry.load("classroom")
    assert loaded is not None and not loaded.sim
    registry.register(spec, sim=False)
    assert not flag.exists()
    with pytest.raises(ValueError):
        registry.register(for_mode(spec, sim=True), sim=False)


@pytest.mark.parametrize("key", ["", "sim.", "../classroom", "sim/classroom", "Classroom",
                                 "sim.sim.classroom", "real.classroom"])
def test_strings_that_are_no_key_name_no_registration(tmp_path: Path, key: str) -> None:
    registry = LabRegistry(tmp_path)
    registry.register(load_lab(SEED), sim=True)
    assert registry.path(key) is None
    assert registry.load(key) is None


def test_worker_never_resolves_one_mode_with_the_other(tmp_path: Path) -> None:
    """With only the real registration, an activity of sim.classroom is refused (naming
    --sim), not sent to the lab file's hosts; and the reverse."""
    from hvlab.labs import CURRENT_LAB
    from hvlab.powershell.endpoints import WorkerLab
    from hvlab.powershell.errors import CredentialUnavailable

    spec = load_lab(SEED)
    for registered, other, hint in (("classroom", "sim.classroom", "with --sim"),
                                    ("sim.classroom", "classroom", "without --sim")):
        home = tmp_path / registered
        LabRegistry(home).register(spec, sim=registered.startswith("sim."))
        token = CURRENT_LAB.set(other)
        try:
            with pytest.raises(CredentialUnavailable) as caught:
                WorkerLab(home, {}).endpoint("SVR1")
        finally:
            CURRENT_LAB.reset(token)
        assert other in str(caught.value) and hint in str(caught.value)
