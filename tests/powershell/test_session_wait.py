"""A step waiting for a host's runspace (another pipeline holds it: a long golden-disk copy on
the same host) heartbeats while it waits and stops waiting when cancelled, so it is never
pushed past its heartbeat timeout by a sibling. Real pypsrp against the simulated fleet."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from hvlab.powershell.command import Command, Pipeline
from hvlab.powershell.endpoints import SimCredentials, endpoints_for
from hvlab.powershell.errors import TransientRemoteError
from hvlab.powershell.session import Endpoint, RunResult, SessionPool
from hvlab.spec import LabSpec
from simulator.fleet import Fleet

WAIT = 30.0  # bound on each Event wait; the heartbeat comes after about one poll (1 s)


@pytest.fixture
def pool(fleet: Fleet, lab_spec: LabSpec) -> Iterator[SessionPool]:
    sessions = SessionPool(SimCredentials(lab_spec, fleet.home))
    yield sessions
    sessions.close()


@pytest.fixture
def svr1(fleet: Fleet, lab_spec: LabSpec) -> Endpoint:
    return endpoints_for(lab_spec, True, fleet.home)["SVR1"]


def query() -> Pipeline:
    return Pipeline.one(Command.of("Get-Service", Name="WinRM"))


def test_a_step_queued_behind_a_long_command_heartbeats_while_it_waits(
    pool: SessionPool, svr1: Endpoint
) -> None:
    """While the host's runspace is held (as by a long copy), the queued step heartbeats
    every poll; once the runspace is free its command runs and answers."""
    pool.run(svr1, query())  # open the host's pool
    held = pool._get(svr1)  # the long command on the same host holds its runspace
    beat, done = threading.Event(), threading.Event()
    results: list[RunResult] = []

    def queued() -> None:
        results.append(pool.run(svr1, query(), heartbeat=beat.set, poll_seconds=1))
        done.set()

    with held.lock:
        worker = threading.Thread(target=queued, daemon=True)
        worker.start()
        assert beat.wait(WAIT), "the queued step sent no heartbeat while it waited"
        assert not done.is_set()
    assert done.wait(WAIT)
    worker.join(WAIT)
    assert results and results[0].output


def test_a_step_cancelled_while_it_waits_sends_nothing(
    pool: SessionPool, svr1: Endpoint, fleet: Fleet
) -> None:
    """Cancelled while queued, the step gives up with a transient 'cancelled' error and its
    command never reaches the host."""
    pool.run(svr1, query())
    held = pool._get(svr1)
    cancel = threading.Event()
    errors: list[BaseException] = []
    before = fleet.state()["counters"].get("SVR1", {})

    def queued() -> None:
        try:
            pool.run(svr1, Pipeline.one(Command.of("New-Item", ItemType="Directory",
                                                   Path="C:\\queued")),
                     cancelled=cancel.is_set, poll_seconds=1)
        except TransientRemoteError as exc:
            errors.append(exc)

    with held.lock:
        worker = threading.Thread(target=queued, daemon=True)
        worker.start()
        cancel.set()
        worker.join(WAIT)
    assert not worker.is_alive()
    assert errors and "cancelled" in str(errors[0])
    assert fleet.state()["counters"].get("SVR1", {}) == before
    assert not fleet.sim.host("SVR1").folder_exists("C:\\queued")
