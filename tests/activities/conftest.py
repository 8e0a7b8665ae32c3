"""Fixtures for activity tests: the simulated fleet, a session pool on it, the activity classes.

Activities run as plain method calls (no Temporal server); ``mutations(fleet, host)`` counts
the mutating commands a host has received, so a test can prove a second run sent none.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from activities.host import HostActivities
from activities.vm import VmActivities
from hvlab.powershell.endpoints import SimCredentials, SimEndpoints
from hvlab.powershell.session import SessionPool
from hvlab.spec import LabSpec
from hvlab.specfile import load_lab
from simulator.engine import mutating_counts
from simulator.fleet import Fleet
from tests.sim.conftest import SEED


def mutations(fleet: Fleet, host: str) -> dict[str, int]:
    """Counts of the commands that change something (their handlers' flag) the host has run
    so far."""
    counters = {host: fleet.state()["counters"].get(host, {})}
    return mutating_counts(fleet.sim.registry, counters)[host]


@pytest.fixture(scope="session")
def lab_spec() -> LabSpec:
    return load_lab(SEED)


@pytest.fixture
def fleet(lab_spec: LabSpec, tmp_path: Path) -> Iterator[Fleet]:
    with Fleet(lab_spec, tmp_path, speed=0, fresh=True, port=0, control=False,
               max_receive_wait=2.0) as running:
        yield running


@pytest.fixture
def sessions(fleet: Fleet, lab_spec: LabSpec) -> Iterator[SessionPool]:
    pool = SessionPool(SimCredentials(lab_spec, fleet.home))
    yield pool
    pool.close()


@pytest.fixture
def host_activities(sessions: SessionPool, fleet: Fleet, lab_spec: LabSpec) -> HostActivities:
    return HostActivities(sessions, SimEndpoints(lab_spec, fleet.home))


@pytest.fixture
def vm_activities(sessions: SessionPool, fleet: Fleet, lab_spec: LabSpec) -> VmActivities:
    return VmActivities(sessions, SimEndpoints(lab_spec, fleet.home))
