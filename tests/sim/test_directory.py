"""ActiveDirectory cmdlets on the DC over WinRM, and when KCD changes take effect."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from simulator.cmdlets.directory import delegation_effective
from simulator.engine import Sim
from simulator.fleet import Fleet
from tests.sim.conftest import join_domain, run
from tests.sim.test_network import Remote, run_script, value

DELEGATE = "msDS-AllowedToDelegateTo"
NOT_FOUND_ID = ("ActiveDirectoryCmdlet:Microsoft.ActiveDirectory.Management."
                "ADIdentityNotFoundException,Microsoft.ActiveDirectory.Management.Commands.")  # fmt: skip


@pytest.fixture
def dc1(fleet: Fleet) -> Iterator[Remote]:
    remote = Remote(fleet, "DC1")
    yield remote
    remote.close()


def test_missing_computer_is_a_terminating_identity_error(dc1: Remote) -> None:
    reply = dc1.cmd("Get-ADComputer", Identity="SVR1", ErrorAction="SilentlyContinue")
    assert reply.had_errors
    assert reply.errors == ["Cannot find an object with identity: 'SVR1' under: 'DC=kosa,DC=vm'."]
    assert reply.error_ids == [NOT_FOUND_ID + "GetADComputer"]


def test_ad_module_exists_only_where_installed(fleet: Fleet) -> None:
    remote = Remote(fleet, "SVR1")
    try:
        reply = remote.cmd("Get-ADComputer", Identity="DC1")
    finally:
        remote.close()
    assert reply.errors[0].startswith("The term 'Get-ADComputer' is not recognized")


def test_kcd_attributes_add_remove_replace_clear(fleet: Fleet, dc1: Remote) -> None:
    join_domain(fleet.sim, "SVR1", "SVR2")
    wanted = ["cifs/SVR2", "cifs/SVR2.kosa.vm", "cifs/DC1"]
    fresh = dc1.cmd("Get-ADComputer", Identity="SVR1",
                    Properties=[DELEGATE, "TrustedToAuthForDelegation"])  # fmt: skip
    assert value(fresh.output[0], DELEGATE) == []
    assert value(fresh.output[0], "TrustedToAuthForDelegation") is False
    assert not dc1.cmd("Set-ADComputer", Identity="SVR1", Add={DELEGATE: wanted}).errors
    duplicate = dc1.cmd("Set-ADComputer", Identity="SVR1", Add={DELEGATE: ["cifs/DC1"]})
    assert duplicate.errors == ["The specified value already exists"]
    assert not dc1.cmd("Set-ADAccountControl", Identity="SVR1$",
                       TrustedToAuthForDelegation=True).errors  # fmt: skip
    got = dc1.cmd("Get-ADComputer", Identity="SVR1", Properties=[DELEGATE, "TrustedToAuthForDelegation"])
    assert value(got.output[0], DELEGATE) == wanted
    assert value(got.output[0], "TrustedToAuthForDelegation") is True
    assert value(got.output[0], "SamAccountName") == "SVR1$"
    assert not dc1.cmd("Set-ADComputer", Identity="SVR1", Remove={DELEGATE: "cifs/DC1"}).errors
    assert fleet.world.ad.computer("SVR1").allowed_to_delegate_to == wanted[:2]
    assert not dc1.cmd("Set-ADComputer", Identity="SVR1", Replace={DELEGATE: ["cifs/X"]}).errors
    assert fleet.world.ad.computer("SVR1").allowed_to_delegate_to == ["cifs/X"]
    assert not dc1.cmd("Set-ADComputer", Identity="SVR1", Clear=[DELEGATE]).errors
    assert fleet.world.ad.computer("SVR1").allowed_to_delegate_to == []
    unknown = dc1.cmd("Set-ADComputer", Identity="SVR9", Add={DELEGATE: ["cifs/DC1"]})
    assert unknown.errors == ["Cannot find an object with identity: 'SVR9' under: 'DC=kosa,DC=vm'."]
    assert unknown.error_ids == [NOT_FOUND_ID + "SetADComputer"]


def test_users_groups_and_computer_removal(fleet: Fleet, dc1: Remote) -> None:
    join_domain(fleet.sim, "SVR1")
    user = dc1.cmd("Get-ADUser", Identity="Administrator")
    assert value(user.output[0], "SamAccountName") == "Administrator"
    members = dc1.cmd("Get-ADGroupMember", Identity="Domain Admins")
    assert [value(m, "SamAccountName") for m in members.output] == ["Administrator"]
    assert dc1.cmd("Get-ADUser", Identity="ghost").errors == [
        "Cannot find an object with identity: 'ghost' under: 'DC=kosa,DC=vm'."]
    listed = dc1.cmd("Get-ADComputer", Filter="Name -like 'SVR*'")
    assert [value(c, "Name") for c in listed.output] == ["SVR1"]
    assert not dc1.cmd("Remove-ADComputer", Identity="SVR1", Confirm=False).errors
    assert dc1.cmd("Get-ADComputer", Identity="SVR1").errors[0].startswith(
        "Cannot find an object with identity: 'SVR1'")


def _configure_kcd(sim: Sim) -> None:
    assert run(sim, "DC1", "Set-ADComputer", Identity="SVR1",
               Add={DELEGATE: ["cifs/DC1", "cifs/DC1.kosa.vm"]}).ok  # fmt: skip
    assert run(sim, "DC1", "Set-ADAccountControl", Identity="SVR1$",
               TrustedToAuthForDelegation=True).ok  # fmt: skip


def test_delegation_takes_effect_after_ticket_purge(sim: Sim) -> None:
    join_domain(sim, "SVR1")
    _configure_kcd(sim)
    assert not delegation_effective(sim.world, "SVR1", "cifs/DC1")
    reply = run_script(sim, "SVR1", "host/purge-tickets")
    assert not reply.errors and "\tTicket(s) purged!" in reply.output
    assert delegation_effective(sim.world, "SVR1", "cifs/DC1")
    assert delegation_effective(sim.world, "SVR1", "cifs/dc1.kosa.vm")
    assert not delegation_effective(sim.world, "SVR1", "cifs/SVR2")
    assert run(sim, "DC1", "Set-ADComputer", Identity="SVR1",
               Remove={DELEGATE: ["cifs/DC1", "cifs/DC1.kosa.vm"]}).ok  # fmt: skip
    assert delegation_effective(sim.world, "SVR1", "cifs/DC1")  # cached tickets still work
    assert not run_script(sim, "SVR1", "host/purge-tickets").errors
    assert not delegation_effective(sim.world, "SVR1", "cifs/DC1")


def test_delegation_takes_effect_after_reboot_and_needs_protocol_transition(sim: Sim) -> None:
    join_domain(sim, "SVR1")
    assert run(sim, "DC1", "Set-ADComputer", Identity="SVR1", Add={DELEGATE: ["cifs/DC1"]}).ok
    assert run(sim, "SVR1", "Restart-Computer", Force=None).ok
    assert not delegation_effective(sim.world, "SVR1", "cifs/DC1")  # Kerberos only
    assert delegation_effective(sim.world, "SVR1", "cifs/DC1", transition=False)
    assert run(sim, "DC1", "Set-ADAccountControl", Identity="SVR1$",
               TrustedToAuthForDelegation=True).ok  # fmt: skip
    assert not delegation_effective(sim.world, "SVR1", "cifs/DC1")
    assert run(sim, "SVR1", "Restart-Computer", Force=None).ok
    assert delegation_effective(sim.world, "SVR1", "cifs/DC1")
