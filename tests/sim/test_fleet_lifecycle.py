"""One simulated fleet per HVLAB_HOME (in-process: the fleet's lock, not the CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hvlab.spec import LabSpec
from simulator.fleet import Fleet, FleetRunning, running_fleet


def _fleet(spec: LabSpec, home: Path, fresh: bool = False) -> Fleet:
    return Fleet(spec, home, speed=0, fresh=fresh, port=0, control=False, max_receive_wait=2.0)


def test_second_fleet_on_a_home_is_refused_and_touches_nothing(
    lab_spec: LabSpec, tmp_path: Path
) -> None:
    """While one fleet serves a home, another (even --fresh) raises FleetRunning naming the
    first's pid and endpoints, and leaves its world and endpoints.json as they were."""
    with _fleet(lab_spec, tmp_path, fresh=True) as first:
        first.sim.host("SVR1").pending_features.append("Hyper-V")
        first.sim.save()
        world = (first.dir / "world.json").read_bytes()
        endpoints = (first.dir / "endpoints.json").read_bytes()
        assert running_fleet(tmp_path) is not None
        with pytest.raises(FleetRunning) as caught:
            _fleet(lab_spec, tmp_path, fresh=True)
        message = str(caught.value)
        assert str(tmp_path) in message and "hvlab sim stop" in message
        assert caught.value.pid is not None and f"pid {caught.value.pid}" in message
        svr1 = first.endpoints["SVR1"]
        assert caught.value.endpoints["SVR1"] == f"{svr1['address']}:{svr1['port']}"
        assert (first.dir / "world.json").read_bytes() == world
        assert (first.dir / "endpoints.json").read_bytes() == endpoints
        assert json.loads(endpoints)["hosts"]["SVR1"]["password"] == first.secret("local-admin")
    assert running_fleet(tmp_path) is None


def test_a_stopped_fleet_frees_the_home(lab_spec: LabSpec, tmp_path: Path) -> None:
    """After stop (or a failed start) the next fleet on the home starts and reloads the world."""
    with _fleet(lab_spec, tmp_path, fresh=True) as first:
        first.sim.host("SVR1").pending_features.append("Hyper-V")
    with _fleet(lab_spec, tmp_path) as second:
        assert "Hyper-V" in second.sim.host("SVR1").pending_features
    other = tmp_path / "other"
    with _fleet(lab_spec, tmp_path) as _, _fleet(lab_spec, other, fresh=True) as elsewhere:
        assert elsewhere.home == other  # another home is another fleet
