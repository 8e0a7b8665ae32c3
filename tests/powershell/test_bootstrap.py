"""First contact: a host is reached as its local Administrator (bootstrap credential) until it
is joined, then with the domain credential. Real pypsrp to a fleet whose local and domain
passwords differ (each credential reference gets its own), as on real hosts."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from hvlab.powershell.command import Command, Pipeline
from hvlab.powershell.endpoints import SimCredentials, endpoints_for
from hvlab.powershell.errors import AuthenticationFailed, BootstrapCredentialMissing
from hvlab.powershell.session import Endpoint, SessionPool
from hvlab.spec import LabSpec
from simulator.fleet import Fleet
from simulator.winrm.auth import UserDirectory
from tests.sim.conftest import join_domain

PROBE = Pipeline.one(Command.of("Get-CimInstance", ClassName="Win32_OperatingSystem"))


@pytest.fixture
def fleet(lab_spec: LabSpec, tmp_path: Path) -> Iterator[Fleet]:
    with Fleet(lab_spec, tmp_path, speed=0, fresh=True, port=0, control=False,
               max_receive_wait=2.0) as running:
        assert running.secret("local-admin") != running.secret("domain-admin")
        yield running


@pytest.fixture
def svr1(fleet: Fleet, lab_spec: LabSpec) -> Endpoint:
    endpoint = endpoints_for(lab_spec, True, fleet.home)["SVR1"]
    assert (endpoint.bootstrap_credential, endpoint.credential) == ("local-admin", "domain-admin")
    return endpoint


def opened_as(logs: list[dict[str, object]]) -> list[object]:
    return [e["credential"] for e in logs if e["event"] == "winrm session opened"]


def new_pool(fleet: Fleet, lab_spec: LabSpec) -> SessionPool:
    return SessionPool(SimCredentials(lab_spec, fleet.home))


def test_the_pool_switches_to_the_domain_credential_at_the_join_reboot(
    fleet: Fleet, lab_spec: LabSpec, svr1: Endpoint
) -> None:
    """Unjoined, SVR1 is opened as its local Administrator and stays so; the join's reboot
    ends that shell, and the reopened pool finds the host in the domain and logs on with the
    domain credential (one extra logon for the membership check, none refused)."""
    pool = new_pool(fleet, lab_spec)
    try:
        with capture_logs() as logs:
            pool.run(svr1, PROBE)
            pool.run(svr1, PROBE)
        assert opened_as(logs) == ["local-admin"]
        join_domain(fleet.sim, "SVR1")  # Add-Computer + Restart-Computer: the shell is gone
        with capture_logs() as logs:
            pool.run(svr1, PROBE)
            pool.run(svr1, PROBE)
        assert opened_as(logs) == ["domain-admin"]
        assert fleet.servers["SVR1"].auth_failures == 0
    finally:
        pool.close()


def test_a_new_worker_picks_the_credential_from_the_hosts_state(
    fleet: Fleet, lab_spec: LabSpec, svr1: Endpoint
) -> None:
    """A pool that starts on a half-built lab (a resumed build, a restarted worker) asks the
    host: joined SVR1 is used with the domain credential, unjoined SVR2 as its local
    Administrator; once seen joined, later pools log on with the domain credential at once."""
    join_domain(fleet.sim, "SVR1")
    svr2 = endpoints_for(lab_spec, True, fleet.home)["SVR2"]
    pool = new_pool(fleet, lab_spec)
    try:
        with capture_logs() as logs:
            pool.run(svr1, PROBE)
            pool.run(svr2, PROBE)
        assert opened_as(logs) == ["domain-admin", "local-admin"]
        pool.discard(svr1)
        logons = fleet.servers["SVR1"].connections_accepted
        with capture_logs() as logs:
            pool.run(svr1, PROBE)
        assert opened_as(logs) == ["domain-admin"]
        assert fleet.servers["SVR1"].connections_accepted == logons + 1  # no membership check
    finally:
        pool.close()


def test_a_joined_host_without_its_local_administrator_uses_the_domain_credential(
    fleet: Fleet, lab_spec: LabSpec, svr1: Endpoint
) -> None:
    """A joined host whose local Administrator no longer logs on (disabled or its password
    changed after the build) is reached with the domain credential."""
    join_domain(fleet.sim, "SVR1")
    server = fleet.servers["SVR1"]
    domain_only = fleet.directory("SVR1")
    server.users = UserDirectory(accounts=lambda domain, user: (
        domain_only.lookup(user, domain) if domain.upper() == "KOSA" else None))
    pool = new_pool(fleet, lab_spec)
    try:
        with capture_logs() as logs:
            pool.run(svr1, PROBE)
        assert opened_as(logs) == ["domain-admin"]
    finally:
        pool.close()


def test_without_a_bootstrap_credential_first_contact_fails_with_the_fix(
    fleet: Fleet, lab_spec: LabSpec, svr1: Endpoint
) -> None:
    """A host the lab joins, reached with the domain credential only, refuses it while it is
    outside the domain: BootstrapCredentialMissing (an AuthenticationFailed, not retried)
    naming the user, the lab credential and the fix, before any command ran."""
    pool = new_pool(fleet, lab_spec)
    no_bootstrap = dataclasses.replace(svr1, bootstrap_credential="")
    try:
        with pytest.raises(BootstrapCredentialMissing) as caught:
            pool.run(no_bootstrap, PROBE)
    finally:
        pool.close()
    error = caught.value
    assert isinstance(error, AuthenticationFailed) and not error.retryable
    assert error.host == "SVR1"
    assert "KOSA\\Administrator (lab credential 'domain-admin', HTTP 401)" in str(error)
    assert "bootstrap_credential:" in str(error) and "local Administrator" in str(error)
    assert fleet.state()["counters"].get("SVR1", {}) == {}


def test_a_wrong_bootstrap_secret_names_both_credentials(
    fleet: Fleet, lab_spec: LabSpec, svr1: Endpoint
) -> None:
    """An unjoined host that refuses the bootstrap credential (and so the domain one) fails
    naming both lab credentials."""
    server = fleet.servers["SVR1"]
    server.users = UserDirectory({"Administrator": "changed-at-the-console"})
    pool = new_pool(fleet, lab_spec)
    try:
        with pytest.raises(AuthenticationFailed) as caught:
            pool.run(svr1, PROBE)
    finally:
        pool.close()
    message = caught.value.host_message
    assert "bootstrap credential 'local-admin'" in message
    assert "domain credential 'domain-admin'" in message
    assert fleet.secret("local-admin") not in str(caught.value)
