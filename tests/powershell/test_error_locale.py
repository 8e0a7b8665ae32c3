"""hvlab's error classification on English and Korean hosts alike: real failing commands
through SessionPool (pypsrp) to the simulated fleet, each host answering in ``locale``; the
kind must not depend on the language of the host's message."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from hvlab.powershell.command import Command, Pipeline
from hvlab.powershell.endpoints import SimCredentials, endpoints_for
from hvlab.powershell.errors import (
    CommandNotFound,
    InsufficientMemory,
    NotFound,
    PreconditionFailed,
    RemoteError,
)
from hvlab.powershell.session import SessionPool
from hvlab.spec import LabSpec
from simulator.fleet import Fleet
from tests.sim.conftest import GB, LOCALES, lab_with_vm, run, speak

HANGUL = re.compile(r"[\uac00-\ud7a3]")


@pytest.fixture
def pool(fleet: Fleet, lab_spec: LabSpec) -> Iterator[SessionPool]:
    sessions = SessionPool(SimCredentials(lab_spec, fleet.home))
    yield sessions
    sessions.close()


def refused(fleet: Fleet, lab_spec: LabSpec, pool: SessionPool, host: str,
            command: Command) -> RemoteError:
    endpoint = endpoints_for(lab_spec, True, fleet.home)[host]
    with pytest.raises(RemoteError) as caught:
        pool.run(endpoint, Pipeline.one(command))
    return caught.value


@pytest.mark.parametrize("locale", LOCALES)
def test_failures_classify_the_same_in_every_language(
    fleet: Fleet, lab_spec: LabSpec, pool: SessionPool, locale: str
) -> None:
    """Not found (Hyper-V's InvalidParameter, Get-Service's ObjectNotFound), a command the
    host lacks, a VM in the wrong state, no memory to start: each is
    the same kind on an en-US and a ko-KR host; on ko-KR the message is Korean."""
    sim = fleet.sim
    lab_with_vm(sim)
    assert run(sim, "SVR2", "New-VM", Name="big", MemoryStartupBytes=64 * GB, Generation=2).ok
    speak(sim, locale)
    cases = [
        ("SVR2", Command.of("Get-VM", Name="nope"), NotFound),
        ("SVR2", Command.of("Remove-VMSwitch", Name="nope", Force=True), NotFound),
        ("SVR2", Command.of("Get-Service", Name="nosuchsvc"), NotFound),
        ("DC1", Command.of("Get-VM"), CommandNotFound),
        ("SVR2", Command.of("Start-VM", Name="Linux01"), PreconditionFailed),
        ("SVR2", Command.of("Start-VM", Name="big"), InsufficientMemory),
    ]
    for host, command, expected in cases:
        error = refused(fleet, lab_spec, pool, host, command)
        assert type(error) is expected, (command, error)
        assert bool(HANGUL.search(error.host_message)) is (locale == "ko-KR"), error
