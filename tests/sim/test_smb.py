"""SMB share, share ACL and NTFS ACL on DC1 over WinRM (and host/ntfs-grant)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from simulator.fleet import Fleet
from tests.sim.conftest import join_domain, run
from tests.sim.test_network import Remote, run_script, value

SHARE = "\\\\DC1\\smb"
NOT_FOUND = ("No MSFT_SmbShare objects found with property 'Name' equal to 'smb'.  Verify the "
             "value of the property and retry.")  # fmt: skip


@pytest.fixture
def dc1(fleet: Fleet) -> Iterator[Remote]:
    run(fleet.sim, "DC1", "New-Item", ItemType="Directory", Path="C:\\smb")
    remote = Remote(fleet, "DC1")
    yield remote
    remote.close()


def test_computer_accounts_exist_only_after_the_join(fleet: Fleet, dc1: Remote) -> None:
    early = dc1.cmd("New-SmbShare", Name="smb", Path="C:\\smb", FullAccess=["KOSA\\SVR1$"])
    assert early.errors == ["No mapping between account names and security IDs was done."]
    assert early.error_ids == ["Windows System Error 1332,New-SmbShare"]
    join_domain(fleet.sim, "SVR1", "SVR2")
    made = dc1.cmd("New-SmbShare", Name="smb", Path="C:\\smb",
                   FullAccess=["KOSA\\SVR1$", "KOSA\\SVR2$", "BUILTIN\\Administrators"])  # fmt: skip
    assert not made.errors and value(made.output[0], "Path") == "C:\\smb"
    access = dc1.cmd("Get-SmbShareAccess", Name="smb")
    rows = [(value(a, "AccountName"), str(value(a, "AccessControlType")),
             str(value(a, "AccessRight"))) for a in access.output]  # fmt: skip
    assert rows == [("KOSA\\SVR1$", "Allow", "Full"), ("KOSA\\SVR2$", "Allow", "Full"),
                    ("BUILTIN\\Administrators", "Allow", "Full")]  # fmt: skip


def test_share_errors(dc1: Remote) -> None:
    missing = dc1.cmd("Get-SmbShare", Name="smb")
    assert missing.errors == [NOT_FOUND]
    assert missing.error_ids == ["CmdletizationQuery_NotFound_Name,Get-SmbShare"]
    assert dc1.cmd("Get-SmbShare", Name="smb", ErrorAction="SilentlyContinue").errors == []
    no_path = dc1.cmd("New-SmbShare", Name="x", Path="C:\\nope")
    assert no_path.errors == ["The system cannot find the file specified."]
    assert not dc1.cmd("New-SmbShare", Name="smb", Path="C:\\smb").errors
    again = dc1.cmd("New-SmbShare", Name="smb", Path="C:\\smb")
    assert again.errors == ["The name has already been shared."]
    assert again.error_ids == ["Windows System Error 2118,New-SmbShare"]
    default = dc1.cmd("Get-SmbShareAccess", Name="smb").output
    assert [(value(a, "AccountName"), str(value(a, "AccessRight"))) for a in default] == [
        ("Everyone", "Read")]
    assert not dc1.cmd("Remove-SmbShare", Name="smb", Force=None).errors
    assert dc1.cmd("Get-SmbShare", Name="smb").errors == [NOT_FOUND]


def test_grant_revoke_and_ntfs_decide_computer_write_access(fleet: Fleet, dc1: Remote) -> None:
    world = fleet.world
    join_domain(fleet.sim, "SVR1", "SVR2")
    assert not dc1.cmd("New-SmbShare", Name="smb", Path="C:\\smb").errors
    svr1 = world.hosts["SVR1"]
    granted = dc1.cmd("Grant-SmbShareAccess", Name="smb", AccountName="KOSA\\SVR1$",
                      AccessRight="Full", Force=None)  # fmt: skip
    assert not granted.errors
    assert not world.computer_can_write(svr1, SHARE)  # NTFS not granted yet
    reply = run_script(fleet.sim, "DC1", "host/ntfs-grant", Path="C:\\smb", Account="KOSA\\SVR1$",
                       Rights="F", Inherit=None)  # fmt: skip
    assert reply.output == ["processed file: C:\\smb",
                            "Successfully processed 1 files; Failed processing 0 files"]  # fmt: skip
    assert world.computer_can_write(svr1, SHARE)
    assert world.computer_can_write(svr1, SHARE + "\\vm\\disk.vhdx")  # (OI)(CI) inherits
    acl = dc1.cmd("Get-Acl", Path="C:\\smb").output[0]
    rule = next(r for r in value(acl, "Access") if value(r, "IdentityReference") == "KOSA\\SVR1$")
    assert value(rule, "FileSystemRights") == "FullControl"
    assert value(rule, "InheritanceFlags") == "ContainerInherit, ObjectInherit"
    assert not dc1.cmd("Revoke-SmbShareAccess", Name="smb", AccountName="KOSA\\SVR1$",
                       Force=None).errors  # fmt: skip
    assert not world.computer_can_write(svr1, SHARE)


def test_ntfs_grant_without_inherit_covers_only_the_folder(fleet: Fleet) -> None:
    sim = fleet.sim
    assert run(sim, "DC1", "New-Item", ItemType="Directory", Path="C:\\smb").ok
    join_domain(sim, "SVR1")
    assert run(sim, "DC1", "New-SmbShare", Name="smb", Path="C:\\smb", FullAccess=["KOSA\\SVR1$"]).ok
    assert not run_script(sim, "DC1", "host/ntfs-grant", Path="C:\\smb", Account="KOSA\\SVR1$",
                          Rights="M").errors  # fmt: skip
    svr1 = sim.host("SVR1")
    assert sim.world.computer_can_write(svr1, SHARE)
    assert not sim.world.computer_can_write(svr1, SHARE + "\\vm")


def test_ntfs_grant_errors(fleet: Fleet) -> None:
    sim = fleet.sim
    assert run(sim, "DC1", "New-Item", ItemType="Directory", Path="C:\\smb").ok
    unknown = run_script(sim, "DC1", "host/ntfs-grant", Path="C:\\smb", Account="KOSA\\ghost$")
    assert unknown.errors == ["icacls /grant failed with exit code 1332: KOSA\\ghost$: No mapping "
                              "between account names and security IDs was done.\nSuccessfully "
                              "processed 0 files; Failed processing 1 files"]  # fmt: skip
    missing = run_script(sim, "DC1", "host/ntfs-grant", Path="C:\\nope", Account="Everyone")
    assert missing.errors[0].startswith("icacls /grant failed with exit code 2: C:\\nope")
    bad = run_script(sim, "DC1", "host/ntfs-grant", Path="C:\\smb", Account="Everyone", Rights="W")
    assert bad.error_ids[0].startswith("ParameterArgumentValidationError")
