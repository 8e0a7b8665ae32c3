"""Storage activities against the simulated fleet: the seed's \\\\DC1\\smb share, its share ACL,
NTFS rights with inheritance, and the compensations."""

from __future__ import annotations

import pytest
from temporalio.exceptions import ApplicationError

from activities.models import (
    NtfsInput,
    RemoveShareInput,
    RevokeAccessInput,
    ShareAccessInput,
    ShareInput,
)
from activities.storage import StorageActivities
from hvlab.powershell.endpoints import SimEndpoints
from hvlab.powershell.session import SessionPool
from hvlab.spec import LabSpec, Share
from simulator.fleet import Fleet
from tests.activities.conftest import mutations
from tests.sim.conftest import join_domain

HOSTS = ["KOSA\\SVR1$", "KOSA\\SVR2$", "BUILTIN\\Administrators"]


@pytest.fixture
def storage(sessions: SessionPool, fleet: Fleet, lab_spec: LabSpec) -> StorageActivities:
    join_domain(fleet.sim, "SVR1", "SVR2")  # the computer accounts must exist
    return StorageActivities(sessions, SimEndpoints(lab_spec, fleet.home))


@pytest.fixture
def smb(lab_spec: LabSpec) -> Share:
    return lab_spec.shares[0]


def share_acl(fleet: Fleet) -> list[tuple[str, str]]:
    return [(a["account"], a["right"]) for a in fleet.state()["shares"]["DC1"]["smb"]["share_acl"]]


def test_share_created_once_with_full_access(
    fleet: Fleet, smb: Share, storage: StorageActivities
) -> None:
    """The folder and the share with the host accounts' Full access; rerunning share and
    share_access sends no mutating command."""
    first = storage.share(ShareInput.from_spec(smb))
    assert first.changed and first.observed == {"name": "smb", "path": "C:\\smb",
                                                "created_folder": True}
    assert fleet.state()["shares"]["DC1"]["smb"]["path"] == "C:\\smb"
    assert share_acl(fleet) == [(a, "Full") for a in HOSTS]
    before = mutations(fleet, "DC1")
    assert not storage.share(ShareInput.from_spec(smb)).changed
    assert not storage.share_access(ShareAccessInput.from_spec(smb)).changed
    assert mutations(fleet, "DC1") == before


def test_share_access_grants_what_is_missing(
    fleet: Fleet, smb: Share, storage: StorageActivities
) -> None:
    """A share made with Administrators only gets the two host accounts granted, once."""
    storage.share(ShareInput(host="DC1", name="smb", path="C:\\smb",
                             full_access=["BUILTIN\\Administrators"]))
    granted = storage.share_access(ShareAccessInput.from_spec(smb))
    assert granted.changed and granted.observed["granted"] == HOSTS[:2]
    assert sorted(share_acl(fleet)) == sorted((a, "Full") for a in HOSTS)
    before = mutations(fleet, "DC1")
    assert not storage.share_access(ShareAccessInput.from_spec(smb)).changed
    assert mutations(fleet, "DC1") == before


def test_share_on_another_path_is_a_conflict(
    fleet: Fleet, smb: Share, storage: StorageActivities
) -> None:
    storage.share(ShareInput.from_spec(smb))
    with pytest.raises(ApplicationError) as caught:
        storage.share(ShareInput(host="DC1", name="smb", path="C:\\other"))
    assert caught.value.type == "Conflict" and caught.value.non_retryable
    assert "C:\\smb" in caught.value.message


def test_share_access_on_a_missing_share_is_not_found(
    smb: Share, storage: StorageActivities
) -> None:
    with pytest.raises(ApplicationError) as caught:
        storage.share_access(ShareAccessInput.from_spec(smb))
    assert caught.value.type == "NotFound" and caught.value.non_retryable


def test_ntfs_grants_inherited_full_control_once(
    fleet: Fleet, smb: Share, storage: StorageActivities
) -> None:
    """host/ntfs-grant gives each account (OI)(CI) Full control; the rerun only reads."""
    storage.share(ShareInput.from_spec(smb))
    first = storage.ntfs(NtfsInput.from_spec(smb))
    assert first.changed and first.observed["granted"] == HOSTS
    acl = fleet.state()["shares"]["DC1"]["smb"]["ntfs_acl"]
    for account in HOSTS:
        assert {"account": account, "right": "FullControl", "inherit": True} in acl
    before = mutations(fleet, "DC1")
    again = storage.ntfs(NtfsInput.from_spec(smb))
    assert not again.changed and mutations(fleet, "DC1") == before


def test_ntfs_on_a_missing_folder_is_not_found(
    fleet: Fleet, smb: Share, storage: StorageActivities
) -> None:
    with pytest.raises(ApplicationError) as caught:
        storage.ntfs(NtfsInput.from_spec(smb))
    assert caught.value.type == "NotFound" and caught.value.non_retryable
    assert "host/ntfs-grant" not in fleet.state()["counters"]["DC1"]


def test_compensations_revoke_and_remove_once(
    fleet: Fleet, smb: Share, storage: StorageActivities
) -> None:
    """revoke_access drops the host accounts, remove_share the share; each is done once and
    already-gone counts as success (the folder stays)."""
    storage.share(ShareInput.from_spec(smb))
    revoke = RevokeAccessInput(host="DC1", name="smb", accounts=HOSTS[:2])
    assert storage.revoke_access(revoke).observed["revoked"] == HOSTS[:2]
    assert share_acl(fleet) == [("BUILTIN\\Administrators", "Full")]
    assert not storage.revoke_access(revoke).changed
    removal = RemoveShareInput(host="DC1", name="smb")
    assert storage.remove_share(removal).changed
    assert "smb" not in fleet.state()["shares"]["DC1"]
    before = mutations(fleet, "DC1")
    assert not storage.remove_share(removal).changed
    assert storage.revoke_access(revoke).observed == {"absent": True, "revoked": []}
    assert mutations(fleet, "DC1") == before
    assert "C:\\smb" in fleet.state()["hosts"]["DC1"]["folders"]
