"""SessionPool rules against the simulated fleet over real WinRM (pypsrp -> psrpcore server):
reuse and reopening, discarding, credential switching, error reading, parameters, callbacks.

Faults are the simulator's own (a host going down, shells expiring as after a reboot, injected
WS-Man faults); pypsrp and the WinRM path are never replaced.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from hvlab.powershell.command import SWITCH, Command, CredentialRef, Pipeline, Script, Switch
from hvlab.powershell.credentials import ResolvedCredential
from hvlab.powershell.endpoints import SimCredentials, endpoints_for
from hvlab.powershell.errors import (
    AuthenticationFailed,
    CommandNotFound,
    HostUnreachable,
    NotFound,
    PreconditionFailed,
    RemoteError,
    TransientRemoteError,
)
from hvlab.powershell.session import Endpoint, SessionPool
from hvlab.spec import LabSpec
from simulator.fleet import Fleet
from simulator.winrm.faults import FaultEffect, FaultRule
from simulator.winrm.soap import INTERNAL_ERROR
from tests.sim.conftest import GB, StepClock, hyperv_ready

UNKNOWN_SHELL = 2150858843
OS_PROBE = Pipeline.one(Command.of("Get-CimInstance", ClassName="Win32_OperatingSystem"))


class Events:
    """What the pool reported through on_open / on_request, and which credentials it asked."""

    def __init__(self, lookup: Callable[[str], ResolvedCredential]) -> None:
        self.opens: list[tuple[str, int]] = []
        self.requests: list[tuple[str, str]] = []
        self.asked: list[str] = []
        self.before_open: Callable[[], None] | None = None
        self._lookup = lookup

    def on_open(self, host: str, delta: int) -> None:
        self.opens.append((host, delta))
        if delta > 0 and self.before_open is not None:
            self.before_open()

    def on_request(self, host: str, outcome: str) -> None:
        self.requests.append((host, outcome))

    def credentials(self, name: str) -> ResolvedCredential:
        self.asked.append(name)
        return self._lookup(name)

    def opened(self, host: str = "SVR1") -> int:
        return sum(d for h, d in self.opens if h == host and d > 0)


@pytest.fixture
def events(fleet: Fleet, lab_spec: LabSpec) -> Events:
    return Events(SimCredentials(lab_spec, fleet.home))


@pytest.fixture
def pool(events: Events) -> Iterator[SessionPool]:
    sessions = SessionPool(events.credentials, on_open=events.on_open,
                           on_request=events.on_request)
    yield sessions
    sessions.close()


@pytest.fixture
def svr1(fleet: Fleet, lab_spec: LabSpec) -> Endpoint:
    """SVR1 reached with the domain credential only (no bootstrap credential: the fleet of
    these tests gives the local and the domain Administrator one password, so the workgroup
    host takes KOSA\\Administrator as its local Administrator)."""
    endpoint = endpoints_for(lab_spec, True, fleet.home)["SVR1"]
    return dataclasses.replace(endpoint, bootstrap_credential="")


def one(command: Command | Script) -> Pipeline:
    return Pipeline.one(command)


def inject(fleet: Fleet, host: str, **rule: Any) -> FaultRule:
    return fleet.servers[host].faults.add(FaultRule(effect=FaultEffect.HTTP_500, **rule))


# -- reuse, keys, discard, close ----------------------------------------------------------------

def test_calls_reuse_one_pool_and_report_ok(
    fleet: Fleet, pool: SessionPool, svr1: Endpoint, events: Events
) -> None:
    """Three calls to a host open one shell once, resolve the credential once and report ok."""
    for _ in range(3):
        assert pool.run(svr1, OS_PROBE).output
    assert events.opens == [("SVR1", 1)]
    assert events.requests == [("SVR1", "ok")] * 3
    assert events.asked == ["domain-admin"]
    assert fleet.servers["SVR1"].open_shells() == 1


def test_host_name_case_does_not_split_pools(
    fleet: Fleet, pool: SessionPool, svr1: Endpoint, events: Events
) -> None:
    """The pool key ignores the case of the host name."""
    pool.run(svr1, OS_PROBE)
    pool.run(dataclasses.replace(svr1, host="svr1"), OS_PROBE)
    assert events.opened("SVR1") == 1
    assert fleet.servers["SVR1"].open_shells() == 1


def test_another_credential_gets_its_own_pool(
    fleet: Fleet, pool: SessionPool, svr1: Endpoint, events: Events
) -> None:
    """Switching the lab credential opens a second shell as that user; both stay usable."""
    local = dataclasses.replace(svr1, credential="local-admin")
    pool.run(svr1, OS_PROBE)
    pool.run(local, OS_PROBE)
    pool.run(svr1, OS_PROBE)
    pool.run(local, OS_PROBE)
    assert events.asked == ["domain-admin", "local-admin"]
    assert events.opened("SVR1") == 2
    assert fleet.servers["SVR1"].open_shells() == 2


def test_discard_closes_the_shell_and_the_next_call_reopens(
    fleet: Fleet, pool: SessionPool, svr1: Endpoint, events: Events
) -> None:
    """discard() reports -1, closes the remote shell and logs it; the next call opens anew."""
    pool.run(svr1, OS_PROBE)
    with capture_logs() as logs:
        pool.discard(svr1)
    assert events.opens == [("SVR1", 1), ("SVR1", -1)]
    assert fleet.servers["SVR1"].open_shells() == 0
    assert {"event": "winrm session discarded", "host": "SVR1",
            "log_level": "info"}.items() <= logs[-1].items()
    pool.run(svr1, OS_PROBE)
    assert events.opened("SVR1") == 2
    assert fleet.servers["SVR1"].open_shells() == 1


def test_discard_without_a_pool_does_nothing(
    pool: SessionPool, svr1: Endpoint, events: Events
) -> None:
    """Discarding a host that has no pool reports nothing and logs nothing."""
    with capture_logs() as logs:
        pool.discard(svr1)
    assert events.opens == [] and logs == []


def test_discard_of_an_unreachable_host_is_quiet(
    fleet: Fleet, pool: SessionPool, svr1: Endpoint, events: Events
) -> None:
    """Closing a pool whose host is down does not raise; the pool is forgotten all the same."""
    pool.run(svr1, OS_PROBE)
    fleet.servers["SVR1"].go_down()
    pool.discard(svr1)
    pool.close()
    assert events.opens == [("SVR1", 1), ("SVR1", -1)]


def test_close_closes_every_pool(
    fleet: Fleet, pool: SessionPool, lab_spec: LabSpec, svr1: Endpoint, events: Events
) -> None:
    """close() closes the shell of every host, reports -1 for each, and later calls reopen."""
    dc1 = endpoints_for(lab_spec, True, fleet.home)["DC1"]
    pool.run(svr1, OS_PROBE)
    pool.run(dc1, OS_PROBE)
    pool.close()
    assert sorted(events.opens) == [("DC1", -1), ("DC1", 1), ("SVR1", -1), ("SVR1", 1)]
    assert fleet.servers["SVR1"].open_shells() == 0
    assert fleet.servers["DC1"].open_shells() == 0
    pool.close()
    assert len(events.opens) == 4
    pool.run(svr1, OS_PROBE)
    assert events.opened("SVR1") == 2


def test_open_is_logged_with_the_transport_and_credential_name(
    pool: SessionPool, svr1: Endpoint, fleet: Fleet
) -> None:
    """Opening a session logs host, address, port, scheme, auth and the credential *name*."""
    with capture_logs() as logs:
        pool.run(svr1, OS_PROBE)
    opened = [e for e in logs if e["event"] == "winrm session opened"]
    assert opened == [{
        "event": "winrm session opened", "log_level": "info", "host": "SVR1",
        "address": "127.0.0.11", "port": svr1.port, "scheme": "http", "auth": "ntlm",
        "credential": "domain-admin"}]
    command = [e for e in logs if e["event"] == "remote command"]
    assert len(command) == 1 and command[0]["log_level"] == "debug"
    assert command[0]["command"] == "Get-CimInstance -ClassName Win32_OperatingSystem"
    assert command[0]["host"] == "SVR1"
    assert 0 <= command[0]["ms"] < 30_000
    assert fleet.secret("domain-admin") not in repr(logs)


def test_session_uses_the_configured_timeouts(
    fleet: Fleet, lab_spec: LabSpec, svr1: Endpoint
) -> None:
    """The WS-Man connection gets the operation timeout, a read timeout 10 s longer, the
    connection timeout, no proxy, and the endpoint's certificate validation."""
    defaults = SessionPool(SimCredentials(lab_spec, fleet.home))
    custom = SessionPool(SimCredentials(lab_spec, fleet.home), operation_timeout=7,
                         connection_timeout=3)
    try:
        validating = dataclasses.replace(svr1, validate_certificate=True)
        defaults.run(validating, OS_PROBE)
        custom.run(svr1, OS_PROBE)
        wsman = defaults._get(validating).runspace.connection
        transport = wsman.transport
        assert wsman.operation_timeout == 20
        assert (transport.read_timeout, transport.connection_timeout) == (30, 5)
        assert transport.no_proxy is True
        assert transport.cert_validation is True
        assert transport.ssl is False
        assert transport.auth == "ntlm"
        assert transport.username == "KOSA\\Administrator"
        wsman = custom._get(svr1).runspace.connection
        transport = wsman.transport
        assert wsman.operation_timeout == 7
        assert (transport.read_timeout, transport.connection_timeout) == (17, 3)
        assert transport.cert_validation is False
    finally:
        defaults.close()
        custom.close()


def test_https_endpoint_never_falls_back_to_plain_http(
    pool: SessionPool, svr1: Endpoint, events: Events
) -> None:
    """An https endpoint talks TLS: against a plain-HTTP listener it fails as HostUnreachable
    instead of sending the request unencrypted."""
    with pytest.raises(HostUnreachable):
        pool.run(dataclasses.replace(svr1, scheme="https"), OS_PROBE)
    assert events.opens == []


def test_kerberos_endpoint_negotiates(
    fleet: Fleet, pool: SessionPool, svr1: Endpoint
) -> None:
    """An endpoint declared `kerberos` connects with Negotiate (NTLM fallback on the sim)."""
    kerberos = dataclasses.replace(svr1, auth="kerberos")
    assert pool.run(kerberos, OS_PROBE).output
    assert pool._get(kerberos).runspace.connection.transport.auth == "negotiate"


# -- errors from the host ---------------------------------------------------------------------

def test_non_terminating_error_is_classified_and_keeps_the_pool(
    fleet: Fleet, pool: SessionPool, svr1: Endpoint, events: Events
) -> None:
    """A non-terminating error (streams.error, had_errors False) raises the classified kind with
    the described command, reports 'error', and the pool stays open for the next call."""
    hyperv_ready(fleet.sim, "SVR1")
    with pytest.raises(NotFound) as caught:
        pool.run(svr1, one(Command.of("Get-VM", Name="missing")))
    assert caught.value.command == "Get-VM -Name missing"
    assert 'unable to find a virtual machine with name "missing"' in caught.value.host_message
    assert events.requests == [("SVR1", "error")]
    assert pool.run(svr1, one(Command.of("Get-VM"))).output == []
    assert events.opened() == 1


def test_terminating_error_is_classified_by_its_error_id(
    fleet: Fleet, pool: SessionPool, svr1: Endpoint, events: Events
) -> None:
    """A terminating error whose text matches no rule is classified by its
    FullyQualifiedErrorId (InvalidOperation: PreconditionFailed)."""
    hyperv_ready(fleet.sim, "SVR1")
    new_vhd = one(Command.of("New-VHD", Path="C:\\Hyper-V\\VHDs\\a.vhdx", SizeBytes=GB,
                             Dynamic=SWITCH))
    pool.run(svr1, new_vhd)
    with pytest.raises(PreconditionFailed) as caught:
        pool.run(svr1, new_vhd)
    assert "The file exists. (0x80070050)" in caught.value.host_message
    assert caught.value.command.startswith("New-VHD -Path")
    assert events.requests == [("SVR1", "ok"), ("SVR1", "error")]


def test_unknown_cmdlet_is_command_not_found(
    pool: SessionPool, svr1: Endpoint, events: Events
) -> None:
    """A cmdlet the host lacks is a terminating CommandNotFound, reported as 'error'."""
    with pytest.raises(CommandNotFound) as caught:
        pool.run(svr1, one(Command.of("Get-VM")))
    assert "is not recognized" in caught.value.host_message
    assert events.requests == [("SVR1", "error")]


def test_wrong_password_names_user_and_lab_credential(fleet: Fleet, svr1: Endpoint) -> None:
    """A rejected logon is AuthenticationFailed naming the user and the lab credential (no
    secret), reported as a permanent 'error' and with no session counted as open."""
    from hvlab.powershell.credentials import Secret

    user = fleet.endpoints["SVR1"]["username"]
    seen: list[tuple[str, Any]] = []
    bad = SessionPool(lambda name: ResolvedCredential(user, Secret("wrong-pw")),
                      on_open=lambda h, d: seen.append(("open", d)),
                      on_request=lambda h, o: seen.append(("request", o)))
    with pytest.raises(AuthenticationFailed) as caught:
        bad.run(svr1, OS_PROBE)
    assert caught.value.host_message == (
        f"the host rejected the credentials of {user} (lab credential 'domain-admin', HTTP 401)")
    assert (caught.value.host, caught.value.command) == ("SVR1", "")
    assert "wrong-pw" not in str(caught.value)
    assert seen == [("request", "error")]


# -- dead sessions and transport failures ---------------------------------------------------------

def test_expired_shell_is_reopened_transparently(
    fleet: Fleet, pool: SessionPool, svr1: Endpoint, events: Events
) -> None:
    """After a reboot (shell unknown to the host) the call reopens once and succeeds."""
    pool.run(svr1, OS_PROBE)
    fleet.servers["SVR1"].service.expire_shells()
    assert pool.run(svr1, OS_PROBE).output
    assert events.opens == [("SVR1", 1), ("SVR1", -1), ("SVR1", 1)]
    assert events.requests == [("SVR1", "ok"), ("SVR1", "ok")]


def test_shell_unknown_twice_is_transient(
    fleet: Fleet, pool: SessionPool, svr1: Endpoint, events: Events
) -> None:
    """A shell that is unknown again right after reopening gives up after the second try with a
    retryable TransientRemoteError carrying the fault code."""
    events.before_open = fleet.servers["SVR1"].service.expire_shells
    with pytest.raises(TransientRemoteError) as caught:
        pool.run(svr1, OS_PROBE)
    assert str(UNKNOWN_SHELL) in caught.value.host_message
    assert caught.value.host == "SVR1"
    assert caught.value.command == "Get-CimInstance -ClassName Win32_OperatingSystem"
    assert events.opened() == 2
    assert events.requests == [("SVR1", "transient")]


def test_other_wsman_fault_is_transient_and_not_retried(
    fleet: Fleet, pool: SessionPool, svr1: Endpoint, events: Events
) -> None:
    """A WS-Man fault other than 'shell not found' is not retried here: the pool is discarded
    and a retryable TransientRemoteError raised; the next call opens a fresh pool."""
    pool.run(svr1, OS_PROBE)
    rule = inject(fleet, "SVR1", action="Command", fault_code=INTERNAL_ERROR)
    with pytest.raises(TransientRemoteError) as caught:
        pool.run(svr1, OS_PROBE)
    assert str(INTERNAL_ERROR) in caught.value.host_message
    assert caught.value.host == "SVR1"
    assert caught.value.retryable
    assert rule.fired == 1
    assert events.opens == [("SVR1", 1), ("SVR1", -1)]
    assert events.requests == [("SVR1", "ok"), ("SVR1", "transient")]
    assert pool.run(svr1, OS_PROBE).output
    assert events.opened() == 2


def test_plain_http_500_is_transient_and_discards(
    fleet: Fleet, pool: SessionPool, svr1: Endpoint, events: Events
) -> None:
    """An HTTP 500 without a WS-Man fault is a retryable 'WinRM HTTP 500', not retried here."""
    pool.run(svr1, OS_PROBE)
    inject(fleet, "SVR1", action="Command", fault_code=None)
    with pytest.raises(TransientRemoteError) as caught:
        pool.run(svr1, OS_PROBE)
    assert caught.value.host_message == "WinRM HTTP 500"
    assert events.opens == [("SVR1", 1), ("SVR1", -1)]
    assert events.requests[-1] == ("SVR1", "transient")


def test_stale_connection_of_a_reused_pool_is_rebuilt(
    fleet: Fleet, pool: SessionPool, svr1: Endpoint, events: Events
) -> None:
    """A reused pool whose connection context the host lost (HTTP 400) is rebuilt once and the
    call succeeds without an error reported."""
    pool.run(svr1, OS_PROBE)
    fleet.servers["SVR1"].go_down()
    fleet.servers["SVR1"].come_up()
    assert pool.run(svr1, OS_PROBE).output
    assert events.opened() == 2
    assert events.requests == [("SVR1", "ok"), ("SVR1", "ok")]


def test_http_400_on_a_fresh_pool_is_not_retried(
    fleet: Fleet, pool: SessionPool, svr1: Endpoint, events: Events
) -> None:
    """HTTP 400 on a pool opened by this very call is not retried: it raises 'WinRM HTTP 400'."""
    server = fleet.servers["SVR1"]

    def lose_context() -> None:
        events.before_open = None
        server.go_down()
        server.come_up()

    events.before_open = lose_context
    with pytest.raises(TransientRemoteError) as caught:
        pool.run(svr1, OS_PROBE)
    assert caught.value.host_message == "WinRM HTTP 400"
    assert events.opens == [("SVR1", 1), ("SVR1", -1)]
    assert events.requests == [("SVR1", "transient")]


def test_http_400_twice_gives_up_after_one_rebuild(
    fleet: Fleet, pool: SessionPool, svr1: Endpoint, events: Events
) -> None:
    """A reused pool that hits HTTP 400, and whose rebuilt pool does too, raises after the
    second try."""
    server = fleet.servers["SVR1"]
    pool.run(svr1, OS_PROBE)
    server.go_down()
    server.come_up()

    def lose_context() -> None:
        server.go_down()
        server.come_up()

    events.before_open = lose_context
    with pytest.raises(TransientRemoteError) as caught:
        pool.run(svr1, OS_PROBE)
    assert caught.value.host_message == "WinRM HTTP 400"
    assert events.opened() == 2


def test_refused_connection_is_host_unreachable(
    fleet: Fleet, pool: SessionPool, svr1: Endpoint, events: Events
) -> None:
    """A host that refuses connections is a retryable HostUnreachable naming address and port."""
    fleet.servers["SVR1"].go_down()
    with pytest.raises(HostUnreachable) as caught:
        pool.run(svr1, OS_PROBE)
    assert caught.value.host_message == f"connection refused at 127.0.0.11:{svr1.port}"
    assert caught.value.command == "Get-CimInstance -ClassName Win32_OperatingSystem"
    assert events.requests == [("SVR1", "transient")]
    assert events.opens == []


def test_dropped_connection_is_not_retried(
    fleet: Fleet, pool: SessionPool, svr1: Endpoint, events: Events
) -> None:
    """A connection cut mid-request (the command may have run) raises HostUnreachable at once."""
    pool.run(svr1, OS_PROBE)
    rule = fleet.servers["SVR1"].faults.add(FaultRule(effect=FaultEffect.DROP, action="Command"))
    with pytest.raises(HostUnreachable) as caught:
        pool.run(svr1, OS_PROBE)
    assert caught.value.host_message.startswith("connection failed at 127.0.0.11:")
    assert rule.fired == 1
    assert events.opened() == 1
    assert events.requests[-1] == ("SVR1", "transient")


# -- parameters -------------------------------------------------------------------------------------

def test_ints_go_out_with_the_declared_type(
    fleet: Fleet, events: Events, svr1: Endpoint
) -> None:
    """Each int parameter's declared type is looked up by cmdlet and parameter name; an Int64
    size of 4 GB and a small Int64 both reach the host intact."""
    from hvlab.powershell.session import catalog_param_type

    asked: list[tuple[str, str]] = []

    def param_type(cmdlet: str, name: str) -> str | None:
        asked.append((cmdlet, name))
        return catalog_param_type(cmdlet, name)

    pool = SessionPool(events.credentials, param_type)
    hyperv_ready(fleet.sim, "SVR1")
    try:
        pool.run(svr1, one(Command.of("New-VM", Name="big", Generation=2,
                                      MemoryStartupBytes=4 * GB)))
        pool.run(svr1, one(Command.of("Set-VM", Name="big", ProcessorCount=2,
                                      MemoryStartupBytes=512 * 1024**2)))
    finally:
        pool.close()
    assert ("New-VM", "MemoryStartupBytes") in asked and ("New-VM", "Generation") in asked
    assert ("Set-VM", "ProcessorCount") in asked
    vm = fleet.state()["hosts"]["SVR1"]["vms"]["big"]
    assert vm["memory"] == 512 * 1024**2
    assert vm["processors"] == 2


def test_script_parameters_have_no_cmdlet(
    fleet: Fleet, events: Events, svr1: Endpoint
) -> None:
    """A packaged script is sent as its text; its int parameters are typed with no cmdlet."""
    asked: list[tuple[str, str]] = []

    def param_type(cmdlet: str, name: str) -> str | None:
        asked.append((cmdlet, name))
        return None

    pool = SessionPool(events.credentials, param_type)
    try:
        result = pool.run(svr1, one(Script(name="host/test-port",
                                           parameters={"ComputerName": "DC1", "Port": 5985})))
    finally:
        pool.close()
    assert asked == [("", "Port")]
    assert result.output in ([True], [False])


def test_switch_parameters(fleet: Fleet, pool: SessionPool, svr1: Endpoint) -> None:
    """SWITCH sends the switch present; Switch(False) sends it as $false (not present)."""
    def copy(dst: str, passthru: Switch) -> list[Any]:
        return pool.run(svr1, one(Command.of(
            "Copy-Item", Path="C:\\Golden\\linux01.vhdx", Destination=dst,
            PassThru=passthru))).output

    hyperv_ready(fleet.sim, "SVR1")
    assert len(copy("C:\\Hyper-V\\a.vhdx", SWITCH)) == 1
    assert copy("C:\\Hyper-V\\b.vhdx", Switch(False)) == []


def test_credential_parameter_becomes_a_pscredential(
    fleet: Fleet, pool: SessionPool, svr1: Endpoint, events: Events
) -> None:
    """A CredentialRef is resolved on the worker by name and sent as a PSCredential (after one
    key exchange per pool), a second one on the same pool works too, and the host's warnings
    come back as text."""
    with fleet.sim.lock:
        for adapter in fleet.sim.host("SVR1").adapters.values():
            adapter.dns = [fleet.sim.world.dc().address]
    join = one(Command.of("Add-Computer", DomainName="kosa.vm",
                          Credential=CredentialRef("domain-admin"), Force=SWITCH))
    pool.run(svr1, OS_PROBE)
    result = pool.run(svr1, join)
    assert result.warnings == [
        "The changes will take effect after you restart the computer SVR1."]
    assert result.output == []
    assert events.asked == ["domain-admin", "domain-admin"]
    with pytest.raises(RemoteError) as caught:
        pool.run(svr1, join)
    assert "already in that domain" in caught.value.host_message
    assert events.asked == ["domain-admin"] * 3


def test_list_and_dict_values_are_converted_element_wise(
    fleet: Fleet, pool: SessionPool, svr1: Endpoint
) -> None:
    """List values are sent element by element (two folders created by one New-Item)."""
    pool.run(svr1, one(Command.of("New-Item", ItemType="Directory",
                                  Path=["C:\\A1", "C:\\A2"])))
    folders = fleet.state()["hosts"]["SVR1"]["folders"]
    assert "C:\\A1" in folders and "C:\\A2" in folders


# -- pipelines: cancellation and heartbeats -----------------------------------------------------------

def test_quick_command_sends_no_heartbeat(
    pool: SessionPool, svr1: Endpoint
) -> None:
    """A command that finishes in its first poll neither heartbeats nor asks to cancel twice
    (a long poll, so a loaded machine still answers within it)."""
    beats: list[int] = []
    checks: list[int] = []

    def cancelled() -> bool:
        checks.append(1)
        return False

    pool.run(svr1, OS_PROBE, heartbeat=lambda: beats.append(1), cancelled=cancelled,
             poll_seconds=120)
    assert beats == []
    assert len(checks) == 1


def test_cancelled_call_stops_and_raises_transient(
    pool: SessionPool, svr1: Endpoint, events: Events
) -> None:
    """A call whose activity is cancelled stops the remote pipeline and raises a retryable
    'cancelled' error; the pool stays usable."""
    with pytest.raises(TransientRemoteError) as caught:
        pool.run(svr1, OS_PROBE, cancelled=lambda: True)
    assert caught.value.host_message == "cancelled"
    assert caught.value.host == "SVR1"
    assert caught.value.command == "Get-CimInstance -ClassName Win32_OperatingSystem"
    assert events.requests == [("SVR1", "transient")]
    assert pool.run(svr1, OS_PROBE).output
    assert events.opened() == 1


def copy_blocked_on_clock(fleet: Fleet) -> tuple[StepClock, Pipeline]:
    """A Copy-Item that stays running until the test steps the simulator's clock."""
    hyperv_ready(fleet.sim, "SVR1")
    clock = StepClock()
    fleet.sim.clock = clock
    return clock, one(Command.of("Copy-Item", Path="C:\\Golden\\linux01.vhdx",
                                 Destination="C:\\Hyper-V\\c.vhdx", PassThru=SWITCH))


def test_long_command_heartbeats_every_poll(
    lab_spec: LabSpec, tmp_path: Path
) -> None:
    """While a command still runs after a poll of poll_seconds the caller's heartbeat is called
    (within seconds, even where the host would hold a Receive for 25 s); once the command ends
    its output is returned."""
    import time

    with Fleet(lab_spec, tmp_path, speed=0, fresh=True, port=0, control=False,
               max_receive_wait=25.0) as fleet:
        svr1 = endpoints_for(lab_spec, True, fleet.home)["SVR1"]
        pool = SessionPool(SimCredentials(lab_spec, fleet.home))
        clock, copy = copy_blocked_on_clock(fleet)
        beats: list[float] = []
        started = time.monotonic()

        def heartbeat() -> None:
            beats.append(time.monotonic() - started)
            if len(beats) == 1:
                clock.step(settle=False)  # let the copy finish

        try:
            result = pool.run(svr1, copy, heartbeat=heartbeat, poll_seconds=1)
        finally:
            clock.gate.release()
            pool.close()
    assert len(beats) >= 1
    assert beats[0] < 10
    assert len(result.output) == 1


def test_long_command_without_heartbeat_completes(
    fleet: Fleet, pool: SessionPool, svr1: Endpoint
) -> None:
    """A command that outlives a poll completes without a heartbeat callback, and asks whether
    it was cancelled before every poll."""
    clock, copy = copy_blocked_on_clock(fleet)
    checks: list[int] = []

    def cancelled() -> bool:
        checks.append(1)
        if len(checks) == 2:
            clock.step(settle=False)
        return False

    try:
        result = pool.run(svr1, copy, cancelled=cancelled, poll_seconds=1)
    finally:
        clock.gate.release()
    assert len(result.output) == 1
    assert len(checks) >= 2


def test_opening_one_host_does_not_wait_for_another(
    fleet: Fleet, lab_spec: LabSpec, svr1: Endpoint, events: Events
) -> None:
    """While one host's session is being opened, another host's session opens and runs."""
    import threading

    dc1 = endpoints_for(lab_spec, True, fleet.home)["DC1"]
    pool = SessionPool(events.credentials, on_open=events.on_open)
    finished = threading.Event()
    meanwhile: list[bool] = []

    def other_host() -> None:
        pool.run(dc1, OS_PROBE)
        finished.set()

    worker = threading.Thread(target=other_host)

    def during_svr1_open() -> None:
        events.before_open = None
        worker.start()
        meanwhile.append(finished.wait(10))

    events.before_open = during_svr1_open
    try:
        pool.run(svr1, OS_PROBE)
        worker.join(20)
    finally:
        pool.close()
    assert meanwhile == [True]


def test_bools_and_other_values_are_sent_as_they_are(
    fleet: Fleet, events: Events, svr1: Endpoint
) -> None:
    """A bool is sent as a Boolean (no int type asked), None-valued parameters are left out,
    and another object is sent as its text."""
    from pathlib import PureWindowsPath

    asked: list[tuple[str, str]] = []

    def param_type(cmdlet: str, name: str) -> str | None:
        asked.append((cmdlet, name))
        return None

    pool = SessionPool(events.credentials, param_type)
    hyperv_ready(fleet.sim, "SVR1")
    try:
        pool.run(svr1, one(Command.of("Set-VMHost", UseAnyNetworkForMigration=True)))
        pool.run(svr1, one(Command.of("New-Item", ItemType="Directory",
                                      Path=PureWindowsPath("C:\\A3"))))
    finally:
        pool.close()
    assert asked == []
    state = fleet.state()["hosts"]["SVR1"]
    assert "C:\\A3" in state["folders"]


def test_nested_values_are_typed_and_resolved_element_wise(
    fleet: Fleet, pool: SessionPool, svr1: Endpoint, events: Events
) -> None:
    """Ints and credential references inside lists and hashtables are typed by the enclosing
    parameter and resolved like top-level values."""
    asked: list[tuple[str, str]] = []

    def param_type(cmdlet: str, name: str) -> str | None:
        asked.append((cmdlet, name))
        return "Int64"

    nested = SessionPool(events.credentials, param_type)
    command = Command.of("Set-Nothing", Values=[5, CredentialRef("local-admin")],
                         Map={"a": 7, "b": CredentialRef("domain-admin")})
    try:
        with pytest.raises(CommandNotFound):
            nested.run(svr1, one(command))
    finally:
        nested.close()
    assert asked == [("Set-Nothing", "Values"), ("Set-Nothing", "Map")]
    assert events.asked == ["domain-admin", "local-admin", "domain-admin"]


def test_password_rotated_under_an_open_pool_is_permanent(
    fleet: Fleet, pool: SessionPool, svr1: Endpoint, events: Events
) -> None:
    """When the host stops accepting the pool's password (HTTP 401 on a new connection), the
    pool is reopened once with the credential looked up again (a restarted listener may want
    another one); when that one is refused too, the call fails with a permanent
    AuthenticationFailed naming the user and lab credential, reported as 'error'."""
    from simulator.winrm.auth import UserDirectory

    server = fleet.servers["SVR1"]
    pool.run(svr1, OS_PROBE)
    server.users = UserDirectory({"Administrator": "rotated"})
    server.go_down()
    server.come_up()
    with pytest.raises(AuthenticationFailed) as caught:
        pool.run(svr1, OS_PROBE)
    assert caught.value.host_message == (
        "the host rejected the credentials of KOSA\\Administrator (lab credential "
        "'domain-admin', HTTP 401)")
    assert not caught.value.retryable
    assert events.asked == ["domain-admin", "domain-admin"]
    assert events.opens == [("SVR1", 1), ("SVR1", -1)]
    assert events.requests == [("SVR1", "ok"), ("SVR1", "error")]


class Received:
    """The commands a simulated host's handler received (wraps the handler of new shells)."""

    def __init__(self, server: Any) -> None:
        self.inner = server.service.handler
        self.calls: list[Any] = []
        server.service.handler = self

    def invoke(self, invocation: Any, ctx: Any) -> Any:
        self.calls.extend(call for statement in invocation.statements for call in statement)
        return self.inner.invoke(invocation, ctx)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def parameters(self, command: str) -> dict[str, Any]:
        return next(dict((p.name, p.value) for p in c.parameters)
                    for c in self.calls if c.text == command)


def test_host_receives_typed_values(fleet: Fleet, pool: SessionPool, svr1: Endpoint) -> None:
    """The host receives each value with its type: a credential as a PSCredential of the lab
    credential's user and secret, Int64 and small ints as ints, a float as a float, a bool as a
    bool, a switch as present (None) or $false, text as text."""
    from simulator.protocol import credential_parts

    received = Received(fleet.servers["SVR1"])
    command = Command.of("Set-Nothing", Credential=CredentialRef("local-admin"),
                         Size=4 * GB, Count=3, Ratio=1.5, Flag=True, Force=SWITCH,
                         Confirm=Switch(False), Name="x")
    with pytest.raises(CommandNotFound):
        pool.run(svr1, one(command))
    params = received.parameters("Set-Nothing")
    assert credential_parts(params["Credential"]) == ("Administrator", fleet.secret("local-admin"))
    assert params["Size"] == 4 * GB and params["Count"] == 3
    assert params["Ratio"] == 1.5 and type(params["Ratio"]) is float
    assert params["Flag"] is True
    assert params["Force"] is None and params["Confirm"] is False
    assert params["Name"] == "x"
