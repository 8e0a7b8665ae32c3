"""SessionPool against the simulated fleet over real WinRM (pypsrp -> psrpcore server)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from hvlab.powershell.command import SWITCH, Command, Pipeline
from hvlab.powershell.credentials import ResolvedCredential, Secret
from hvlab.powershell.endpoints import SimCredentials, SimEndpoints, endpoints_for
from hvlab.powershell.errors import (
    AuthenticationFailed,
    CommandNotFound,
    HostUnreachable,
    NotFound,
)
from hvlab.powershell.session import Endpoint, SessionPool
from hvlab.spec import LabSpec
from simulator.fleet import Fleet
from tests.sim.conftest import GB, hyperv_ready


def one(command: Command) -> Pipeline:
    return Pipeline.one(command)


class Opens:
    """Counts pools opened per host through SessionPool's on_open callback."""

    def __init__(self) -> None:
        self.count: Counter[str] = Counter()

    def __call__(self, host: str, delta: int) -> None:
        if delta > 0:
            self.count[host] += delta


@pytest.fixture
def opens() -> Opens:
    return Opens()


@pytest.fixture
def pool(fleet: Fleet, lab_spec: LabSpec, opens: Opens) -> Iterator[SessionPool]:
    sessions = SessionPool(SimCredentials(lab_spec, fleet.home), on_open=opens)
    yield sessions
    sessions.close()


@pytest.fixture
def svr1(fleet: Fleet, lab_spec: LabSpec) -> Endpoint:
    return endpoints_for(lab_spec, True, fleet.home)["SVR1"]


def test_sim_endpoints_name_the_lab_credential(fleet: Fleet, lab_spec: LabSpec) -> None:
    """The sim's endpoints.json becomes loopback HTTP/NTLM endpoints naming the lab credential."""
    endpoints = endpoints_for(lab_spec, True, fleet.home)
    assert set(endpoints) == {"DC1", "SVR1", "SVR2"}
    svr1 = endpoints["SVR1"]
    assert (svr1.address, svr1.scheme, svr1.auth) == ("127.0.0.11", "http", "ntlm")
    assert svr1.port == fleet.endpoints["SVR1"]["port"]
    assert svr1.credential == "domain-admin"
    assert "password" not in repr(svr1).lower()


def test_get_vmhost_returns_plain_dicts(fleet: Fleet, pool: SessionPool, svr1: Endpoint) -> None:
    """After the Hyper-V role, Get-VMHost comes back as plain dicts with plain values."""
    hyperv_ready(fleet.sim, "SVR1")
    result = pool.run(svr1, one(Command.of("Get-VMHost")))
    assert len(result.output) == 1
    host = result.output[0]
    assert type(host) is dict
    assert host["Name"] == "SVR1"
    assert host["VirtualMachinePath"] == "C:\\Hyper-V"
    assert host["MemoryCapacity"] == 16 * GB


def test_4gb_vm_memory_goes_out_as_int64(
    fleet: Fleet, pool: SessionPool, svr1: Endpoint
) -> None:
    """New-VM -MemoryStartupBytes 4 GB (above Int32) reaches the host intact."""
    hyperv_ready(fleet.sim, "SVR1")
    command = Command.of("New-VM", Name="big", Generation=2, MemoryStartupBytes=4 * GB,
                         SwitchName="Internal")
    result = pool.run(svr1, one(command))
    assert result.output[0]["MemoryStartup"] == 4 * GB
    assert fleet.state()["hosts"]["SVR1"]["vms"]["big"]["memory"] == 4294967296


def test_non_terminating_error_raises_not_found(
    fleet: Fleet, pool: SessionPool, svr1: Endpoint
) -> None:
    """Get-VM -Name missing writes a non-terminating error: NotFound with the host's words."""
    hyperv_ready(fleet.sim, "SVR1")
    with pytest.raises(NotFound) as caught:
        pool.run(svr1, one(Command.of("Get-VM", Name="missing")))
    assert 'unable to find a virtual machine with name "missing"' in caught.value.host_message
    assert caught.value.host == "SVR1" and not caught.value.retryable


def test_unknown_cmdlet_is_command_not_found(pool: SessionPool, svr1: Endpoint) -> None:
    """A cmdlet the host lacks (Get-VM before the role) raises CommandNotFound."""
    with pytest.raises(CommandNotFound) as caught:
        pool.run(svr1, one(Command.of("Get-VM")))
    assert "is not recognized" in caught.value.host_message
    assert caught.value.type_name == "CommandNotFound"


def test_wrong_password_is_permanent(fleet: Fleet, svr1: Endpoint) -> None:
    """A rejected password raises AuthenticationFailed, which is not retried; no secret shown."""
    user = fleet.endpoints["SVR1"]["username"]
    bad = SessionPool(lambda name: ResolvedCredential(user, Secret("not-the-password")))
    with pytest.raises(AuthenticationFailed) as caught:
        bad.run(svr1, one(Command.of("Get-CimInstance", ClassName="Win32_OperatingSystem")))
    assert not caught.value.retryable
    assert "not-the-password" not in str(caught.value)


def test_reboot_then_pool_is_rebuilt(
    fleet: Fleet, pool: SessionPool, svr1: Endpoint, opens: Opens
) -> None:
    """While the host is down calls fail as retryable HostUnreachable; once it is back the
    next call opens a new pool and succeeds."""
    pool.run(svr1, one(Command.of("Restart-Computer", Force=SWITCH)))
    server = fleet.servers["SVR1"]
    server.go_down()  # the down window of the reboot (instant at speed 0)
    try:
        with pytest.raises(HostUnreachable) as caught:
            pool.run(svr1, one(Command.of("Get-CimInstance", ClassName="Win32_OperatingSystem")))
        assert caught.value.retryable
    finally:
        server.come_up()
    result = pool.run(svr1, one(Command.of("Get-CimInstance", ClassName="Win32_ComputerSystem")))
    assert result.output[0]["Name"] == "SVR1"
    assert opens.count["SVR1"] == 2


def test_one_pool_serves_many_calls(
    fleet: Fleet, pool: SessionPool, svr1: Endpoint, opens: Opens
) -> None:
    """Consecutive calls to a host reuse one runspace pool."""
    for _ in range(4):
        pool.run(svr1, one(Command.of("Get-WindowsFeature", Name="Hyper-V")))
    assert opens.count == Counter({"SVR1": 1})
    assert fleet.state()["counters"]["SVR1"]["Get-WindowsFeature"] == 4


def test_sim_credentials_use_lab_usernames(fleet: Fleet, lab_spec: LabSpec) -> None:
    """The sim lookup gives the lab's username with the fleet's password for any credential."""
    lookup = SimCredentials(lab_spec, fleet.home)
    cred = lookup("local-admin")
    assert cred.username == "Administrator"
    assert cred.password.value == fleet.secret("local-admin")
    assert fleet.secret("local-admin") not in repr(cred)


def test_lab_endpoints_come_from_connections(lab_spec: LabSpec, tmp_path: Path) -> None:
    """Without the sim, endpoints are the lab file's connections (HTTP/Negotiate defaults)."""
    svr2 = endpoints_for(lab_spec, False, tmp_path)["SVR2"]
    assert (svr2.address, svr2.port, svr2.scheme, svr2.auth) == (
        "192.168.1.120", 5985, "http", "negotiate")
    assert svr2.credential == "domain-admin"


def test_stale_pool_after_reboot_recovers(
    fleet: Fleet, pool: SessionPool, svr1: Endpoint
) -> None:
    """A pool opened before the host went down and came back fails at most once, retryably,
    and the next call works on a fresh pool."""
    from hvlab.powershell.errors import RemoteError

    pool.run(svr1, one(Command.of("Get-CimInstance", ClassName="Win32_OperatingSystem")))
    fleet.servers["SVR1"].go_down()
    fleet.servers["SVR1"].come_up()
    try:
        pool.run(svr1, one(Command.of("Get-CimInstance", ClassName="Win32_OperatingSystem")))
    except RemoteError as error:
        assert error.retryable, error
    assert pool.run(svr1, one(Command.of("Get-CimInstance", ClassName="Win32_OperatingSystem"))).output


def test_lab_credentials_resolve_references(lab_spec: LabSpec, tmp_path: Path) -> None:
    """Real-host lookups pair the lab's username with the secret its reference names; a
    missing secret names the variable, never a value."""
    from hvlab.powershell.credentials import SecretResolver
    from hvlab.powershell.endpoints import credentials_for
    from hvlab.powershell.errors import CredentialUnavailable

    resolver = SecretResolver({"HVLAB_DOMAIN_ADMIN_PASSWORD": "s3cret"})
    lookup = credentials_for(lab_spec, False, tmp_path, resolver)
    cred = lookup("domain-admin")
    assert (cred.username, cred.password.value) == ("KOSA\\Administrator", "s3cret")
    with pytest.raises(CredentialUnavailable) as caught:
        lookup("local-admin")
    assert "HVLAB_LOCAL_ADMIN_PASSWORD" in str(caught.value)
    with pytest.raises(CredentialUnavailable):
        lookup("nobody")


def test_stale_pool_after_reboot_is_rebuilt_transparently(fleet: Fleet, lab_spec: LabSpec) -> None:
    """After the host restarts (old NTLM context gone), the next call succeeds on a new pool
    without the caller seeing an error."""
    opened: list[tuple[str, int]] = []
    pool = SessionPool(SimCredentials(lab_spec, fleet.home),
                       on_open=lambda host, delta: opened.append((host, delta)))
    endpoint = SimEndpoints(lab_spec, fleet.home).endpoint("SVR1")
    probe = Pipeline.one(Command.of("Get-CimInstance", ClassName="Win32_OperatingSystem"))
    try:
        assert pool.run(endpoint, probe).output
        server = fleet.servers["SVR1"]
        server.go_down()
        server.come_up()
        assert pool.run(endpoint, probe).output
        assert [d for h, d in opened if h == "SVR1" and d == 1] == [1, 1]
    finally:
        pool.close()
