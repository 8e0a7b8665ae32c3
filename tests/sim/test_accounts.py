"""The fleet's accounts (docs/simulator-fidelity.md, "Accounts: who logs on where"): real NTLM
logons with pypsrp to the simulated hosts, and Add-Computer's credential check.

The lab's local and domain Administrator have different passwords here, as on real hosts (the
fleet resolves them from the credential references, like hvlab).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pypsrp.exceptions import AuthenticationError
from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.wsman import WSMan

from hvlab.spec import LabSpec
from simulator.engine import Sim
from simulator.fleet import Fleet
from tests.sim.conftest import domain_admin, join_domain, run

LOCAL_PW = "Local-Adm1n-pw"
DOMAIN_PW = "D0main-Adm1n-pw"
VALUES = {"env:HVLAB_LOCAL_ADMIN_PASSWORD": LOCAL_PW, "env:HVLAB_DOMAIN_ADMIN_PASSWORD": DOMAIN_PW}


def _fleet(spec: LabSpec, home: Path, values: dict[str, str]) -> Fleet:
    return Fleet(spec, home, speed=0, fresh=True, port=0, control=False, max_receive_wait=2.0,
                 resolve=values.get)


@pytest.fixture
def fleet(lab_spec: LabSpec, tmp_path: Path) -> Iterator[Fleet]:
    with _fleet(lab_spec, tmp_path, VALUES) as running:
        yield running


def logs_on(fleet: Fleet, host: str, user: str, password: str) -> bool:
    """Whether an NTLM logon as ``user`` opens a runspace pool on ``host`` (and runs a
    command); False on HTTP 401."""
    endpoint = fleet.endpoints[host]
    wsman = WSMan(endpoint["address"], port=endpoint["port"], username=user, password=password,
                  ssl=False, auth="ntlm", cert_validation=False, connection_timeout=5,
                  read_timeout=30, no_proxy=True)
    pool = RunspacePool(wsman)
    try:
        pool.open()
    except AuthenticationError:
        return False
    try:
        ps = PowerShell(pool)
        ps.add_cmdlet("Get-Service").add_parameter("Name", "WinRM")
        ps.invoke()
        return not ps.had_errors
    finally:
        pool.close()


def test_a_workgroup_host_accepts_only_its_local_accounts(fleet: Fleet) -> None:
    """Before the join SVR1 knows no domain: its local Administrator logs on with its own
    password (as `Administrator`, `.\\Administrator` or `SVR1\\Administrator`); the domain
    Administrator's credential is refused, and so is the local account with the domain's
    password."""
    assert logs_on(fleet, "SVR1", "Administrator", LOCAL_PW)
    assert logs_on(fleet, "SVR1", ".\\Administrator", LOCAL_PW)
    assert logs_on(fleet, "SVR1", "SVR1\\Administrator", LOCAL_PW)
    assert not logs_on(fleet, "SVR1", "KOSA\\Administrator", DOMAIN_PW)
    assert not logs_on(fleet, "SVR1", "Administrator", DOMAIN_PW)
    assert fleet.servers["SVR1"].auth_failures == 2


def test_a_domain_account_on_a_workgroup_host_is_the_local_one_of_the_same_name(
    fleet: Fleet,
) -> None:
    """NTLM's fallback: `KOSA\\Administrator` on a host outside the domain is checked against
    the local Administrator, so it logs on only with the local password."""
    assert logs_on(fleet, "SVR1", "KOSA\\Administrator", LOCAL_PW)
    assert logs_on(fleet, "SVR1", "kosa.vm\\Administrator", LOCAL_PW)


def test_after_the_join_domain_accounts_log_on(fleet: Fleet) -> None:
    """Joined (after the reboot), SVR1 passes KOSA\\Administrator to the DC: the domain password
    works and the local one no longer does for it; the local Administrator still logs on."""
    join_domain(fleet.sim, "SVR1")
    assert logs_on(fleet, "SVR1", "KOSA\\Administrator", DOMAIN_PW)
    assert not logs_on(fleet, "SVR1", "KOSA\\Administrator", LOCAL_PW)
    assert logs_on(fleet, "SVR1", "Administrator", LOCAL_PW)
    # SVR2 is still in its workgroup
    assert not logs_on(fleet, "SVR2", "KOSA\\Administrator", DOMAIN_PW)


def test_a_pending_join_is_not_a_membership(fleet: Fleet) -> None:
    """Add-Computer without the restart leaves the host in its workgroup: the domain account
    is not known there until the reboot."""
    with fleet.sim.lock:
        for adapter in fleet.sim.host("SVR1").adapters.values():
            adapter.dns = [fleet.sim.host("DC1").address]
        assert run(fleet.sim, "SVR1", "Add-Computer", DomainName="kosa.vm",
                   Credential=domain_admin(fleet.sim), Force=None).ok
    assert not logs_on(fleet, "SVR1", "KOSA\\Administrator", DOMAIN_PW)


def test_a_domain_controller_has_only_domain_accounts(fleet: Fleet) -> None:
    """The DC's account database is the domain's: its Administrator is the domain's, with or
    without the domain named; the lab's local Administrator password opens nothing there."""
    assert logs_on(fleet, "DC1", "KOSA\\Administrator", DOMAIN_PW)
    assert logs_on(fleet, "DC1", "Administrator", DOMAIN_PW)
    assert not logs_on(fleet, "DC1", "Administrator", LOCAL_PW)


def test_a_host_without_bootstrap_credential_has_a_password_the_lab_does_not_know(
    lab_spec: LabSpec, tmp_path: Path
) -> None:
    """Without a bootstrap credential the lab file says nothing about a host's local
    Administrator: it has its own password (as a freshly installed host), so neither lab
    password opens the workgroup host."""
    hosts = [h.model_copy(update={"bootstrap_credential": None}) for h in lab_spec.hosts]
    spec = lab_spec.model_copy(update={"hosts": hosts})
    with _fleet(spec, tmp_path, VALUES) as fleet:
        for user, password in (("KOSA\\Administrator", DOMAIN_PW), ("Administrator", LOCAL_PW),
                               ("Administrator", DOMAIN_PW)):
            assert not logs_on(fleet, "SVR1", user, password), user
        assert logs_on(fleet, "DC1", "KOSA\\Administrator", DOMAIN_PW)


def test_passwords_come_from_the_references_and_only_generated_ones_are_written(
    fleet: Fleet,
) -> None:
    """Each credential reference has its own password: a resolved value as given, a distinct
    generated one for each reference without a value; endpoints.json holds the generated ones
    (by reference) and never a resolved one."""
    assert fleet.secret("local-admin") == LOCAL_PW
    assert fleet.secret("domain-admin") == DOMAIN_PW
    text = (fleet.dir / "endpoints.json").read_text()
    assert LOCAL_PW not in text and DOMAIN_PW not in text
    generated = json.loads(text)["secrets"]
    assert set(generated) == {"env:HVLAB_GUEST_ADMIN_PASSWORD", "env:HVLAB_TELUSER_PASSWORD"}
    assert len(set(generated.values())) == 2
    assert fleet.secret("teluser") == generated["env:HVLAB_TELUSER_PASSWORD"]


# -- Add-Computer -------------------------------------------------------------------------------


def _point_dns(sim: Sim, host: str) -> None:
    for adapter in sim.host(host).adapters.values():
        adapter.dns = [sim.host("DC1").address]


def test_add_computer_with_a_wrong_domain_password_fails_and_creates_nothing(sim: Sim) -> None:
    """The DC refuses the credential: FailToJoinDomainFromWorkgroup (OperationStopped) with
    ERROR_LOGON_FAILURE's text, no computer account, no pending join; the right password then
    joins."""
    from psrpcore.types import PSCredential, PSSecureString

    _point_dns(sim, "SVR1")
    wrong = PSCredential(UserName="KOSA\\Administrator", Password=PSSecureString("not-it"))
    failed = run(sim, "SVR1", "Add-Computer", DomainName="kosa.vm", Credential=wrong, Force=None)
    assert failed.terminating is not None
    assert failed.terminating.error_id.startswith("FailToJoinDomainFromWorkgroup,")
    assert failed.terminating.category == "OperationStopped"
    assert failed.failure.endswith("The user name or password is incorrect.")
    assert sim.world.ad.computer("SVR1") is None
    assert sim.host("SVR1").pending_domain is None
    assert run(sim, "SVR1", "Add-Computer", DomainName="kosa.vm", Credential=domain_admin(sim),
               Force=None).ok
    assert sim.world.ad.computer("SVR1") is not None


def test_add_computer_needs_a_domain_account(sim: Sim) -> None:
    """An account of another domain or an unknown domain user is refused alike."""
    from psrpcore.types import PSCredential, PSSecureString

    _point_dns(sim, "SVR1")
    for user in ("OTHER\\Administrator", "KOSA\\nobody"):
        credential = PSCredential(UserName=user, Password=PSSecureString("secret"))
        result = run(sim, "SVR1", "Add-Computer", DomainName="kosa.vm", Credential=credential)
        assert result.failure.endswith("The user name or password is incorrect."), user
    assert sim.world.ad.computer("SVR1") is None
