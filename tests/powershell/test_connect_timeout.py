"""How long a step takes to learn that a host does not answer (issue 12, item 8).

A host that is off or cut off answers no TCP SYN; the only bound is the pool's connect timeout
(``session.CONNECT_TIMEOUT``, ``HVLAB_WINRM_CONNECT_TIMEOUT`` in the worker). It must be a few
seconds, since every retry of the step pays it again, and it must bound only the connection: a
command whose answer is slow still completes.

The silent host is a real listening socket on loopback whose accept queue is full: Linux drops
further SYNs (``tcp_abort_on_overflow`` 0), so a client's connect gets no answer at all, as
from a host that is off the network.
"""

from __future__ import annotations

import dataclasses
import socket
import time
from collections.abc import Iterator

import pytest

from hvlab.powershell.command import Command, Pipeline
from hvlab.powershell.endpoints import SimCredentials, endpoints_for
from hvlab.powershell.errors import HostUnreachable
from hvlab.powershell.session import CONNECT_TIMEOUT, Endpoint, SessionPool
from hvlab.settings import Settings
from hvlab.spec import LabSpec
from simulator.fleet import Fleet
from simulator.winrm.faults import FaultEffect, FaultRule

OS_PROBE = Pipeline.one(Command.of("Get-CimInstance", ClassName="Win32_OperatingSystem"))


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts no connection and answers no SYN (full accept queue)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = int(listener.getsockname()[1])
    fillers = []
    for _ in range(3):  # the queue holds one; the others stay in SYN-SENT
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    yield port
    for filler in fillers:
        filler.close()
    listener.close()


def svr1(fleet: Fleet, lab_spec: LabSpec) -> Endpoint:
    return endpoints_for(lab_spec, True, fleet.home)["SVR1"]


def test_a_host_that_does_not_answer_fails_within_the_connect_timeout(
    fleet: Fleet, lab_spec: LabSpec, silent_port: int
) -> None:
    """A step against a host that answers no SYN fails in about CONNECT_TIMEOUT (a few
    seconds, not the 10 s of before), as a retryable HostUnreachable that names the address,
    says nothing answered and carries the fix."""
    assert CONNECT_TIMEOUT <= 5
    assert Settings().winrm_connect_timeout == CONNECT_TIMEOUT
    endpoint = dataclasses.replace(svr1(fleet, lab_spec), address="127.0.0.1", port=silent_port)
    pool = SessionPool(SimCredentials(lab_spec, fleet.home))
    started = time.monotonic()
    with pytest.raises(HostUnreachable) as caught:
        pool.run(endpoint, OS_PROBE)
    took = time.monotonic() - started
    pool.close()
    assert CONNECT_TIMEOUT - 0.5 <= took < 7.5, took  # each retry pays it again
    assert caught.value.retryable
    assert caught.value.host_message == (f"no answer to a connection to 127.0.0.1:{silent_port} "
                                         f"(connect timeout {CONNECT_TIMEOUT} s)")
    assert "fix: check that the host is running and on the network" in str(caught.value)


def test_the_connect_timeout_does_not_bound_a_slow_answer(
    fleet: Fleet, lab_spec: LabSpec
) -> None:
    """With a 1 s connect timeout, a command whose answer the host holds back 2 s completes:
    the timeout applies to the connection, not to the command."""
    fleet.servers["SVR1"].faults.add(FaultRule(effect=FaultEffect.DELAY, action="Command",
                                               command="Get-CimInstance", delay=2.0))
    pool = SessionPool(SimCredentials(lab_spec, fleet.home), connection_timeout=1)
    started = time.monotonic()
    try:
        output = pool.run(svr1(fleet, lab_spec), OS_PROBE).output
    finally:
        pool.close()
    assert time.monotonic() - started >= 2.0
    assert output and "Windows Server" in str(output[0].get("Caption"))
