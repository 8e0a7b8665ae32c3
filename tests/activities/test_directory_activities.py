"""Directory activities against the simulated fleet: the seed's constrained delegation on the
DC, the ticket purge that makes it effective, and the compensation."""

from __future__ import annotations

import pytest
from temporalio.exceptions import ApplicationError

from activities.directory import DirectoryActivities
from activities.models import DelegationInput, HostInput, RemoveDelegationInput
from hvlab.powershell.endpoints import SimEndpoints
from hvlab.powershell.session import SessionPool
from hvlab.spec import MIGRATION_SERVICE, LabSpec
from simulator.cmdlets.directory import delegation_effective
from simulator.fleet import Fleet
from tests.activities.conftest import mutations
from tests.sim.conftest import join_domain

SVR1_WANTS = ["cifs/SVR2", "cifs/SVR2.kosa.vm", f"{MIGRATION_SERVICE}/SVR2",
              f"{MIGRATION_SERVICE}/SVR2.kosa.vm", "cifs/DC1", "cifs/DC1.kosa.vm"]


@pytest.fixture
def directory(sessions: SessionPool, fleet: Fleet, lab_spec: LabSpec) -> DirectoryActivities:
    join_domain(fleet.sim, "SVR1", "SVR2")
    return DirectoryActivities(sessions, SimEndpoints(lab_spec, fleet.home))


@pytest.fixture
def svr1(lab_spec: LabSpec) -> DelegationInput:
    return DelegationInput.from_spec(lab_spec, lab_spec.delegation[0])


def computer(fleet: Fleet, name: str = "SVR1") -> dict[str, object]:
    found: dict[str, object] = fleet.state()["ad"]["computers"][name]
    return found


def test_delegation_once_with_short_and_fqdn_spns(
    fleet: Fleet, svr1: DelegationInput, directory: DirectoryActivities
) -> None:
    """SVR1$ may delegate cifs and the migration service to SVR2 and cifs to DC1 (short and
    FQDN forms) with protocol transition; the rerun sends no mutating command to the DC."""
    assert svr1.spns == SVR1_WANTS
    first = directory.delegation(svr1)
    assert first.changed and first.observed["added"] == SVR1_WANTS
    assert first.observed["transition_set"] is True
    assert computer(fleet) == {"allowed_to_delegate_to": SVR1_WANTS,
                               "trusted_to_auth_for_delegation": True,
                               "dns_host_name": "svr1.kosa.vm"}
    before = mutations(fleet, "DC1")
    again = directory.delegation(svr1)
    assert not again.changed and again.observed["added"] == []
    assert mutations(fleet, "DC1") == before


def test_delegation_adds_only_missing_entries_and_compensation_removes_only_those(
    fleet: Fleet, svr1: DelegationInput, directory: DirectoryActivities
) -> None:
    """Entries and protocol transition that were there before stay after the compensation."""
    comp = fleet.sim.world.ad.computer("SVR1")
    assert comp is not None
    comp.allowed_to_delegate_to = ["cifs/SVR2", "cifs/other"]
    comp.trusted_to_auth_for_delegation = True
    result = directory.delegation(svr1)
    assert result.observed["added"] == SVR1_WANTS[1:]
    assert result.observed["transition_set"] is False
    undo = RemoveDelegationInput.from_step(svr1, result)
    removed = directory.remove_delegation(undo)
    assert removed.changed and removed.observed["removed"] == SVR1_WANTS[1:]
    assert computer(fleet)["allowed_to_delegate_to"] == ["cifs/SVR2", "cifs/other"]
    assert computer(fleet)["trusted_to_auth_for_delegation"] is True
    before = mutations(fleet, "DC1")
    assert not directory.remove_delegation(undo).changed
    assert mutations(fleet, "DC1") == before


def test_compensation_restores_protocol_transition_it_set(
    fleet: Fleet, svr1: DelegationInput, directory: DirectoryActivities
) -> None:
    undo = RemoveDelegationInput.from_step(svr1, directory.delegation(svr1))
    assert undo.restore_transition and undo.spns == SVR1_WANTS
    directory.remove_delegation(undo)
    assert computer(fleet)["allowed_to_delegate_to"] == []
    assert computer(fleet)["trusted_to_auth_for_delegation"] is False


def test_delegation_for_an_unknown_computer_is_not_found(
    fleet: Fleet, svr1: DelegationInput, directory: DirectoryActivities
) -> None:
    """A computer object that does not exist fails permanently; its compensation is done."""
    ghost = svr1.model_copy(update={"computer": "SVR9"})
    with pytest.raises(ApplicationError) as caught:
        directory.delegation(ghost)
    assert caught.value.type == "NotFound" and caught.value.non_retryable
    assert "SVR9" in caught.value.message
    undo = RemoveDelegationInput(dc="DC1", computer="SVR9", spns=SVR1_WANTS)
    assert directory.remove_delegation(undo).observed == {"absent": True}
    assert "Set-ADComputer" not in fleet.state()["counters"]["DC1"]


def test_purge_tickets_makes_the_delegation_effective(
    fleet: Fleet, svr1: DelegationInput, directory: DirectoryActivities
) -> None:
    """The host sees the new delegation only after its machine tickets are purged."""
    directory.delegation(svr1)
    assert not delegation_effective(fleet.sim.world, "SVR1", "cifs/DC1")
    purged = directory.purge_tickets(HostInput(host="SVR1"))
    assert purged.changed and "\tTicket(s) purged!" in purged.observed["output"]
    assert delegation_effective(fleet.sim.world, "SVR1", "cifs/DC1")
    assert delegation_effective(fleet.sim.world, "SVR1", f"{MIGRATION_SERVICE}/SVR2.kosa.vm")
    assert fleet.state()["counters"]["SVR1"]["host/purge-tickets"] == 1
