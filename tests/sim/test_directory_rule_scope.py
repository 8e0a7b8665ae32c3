"""Scope of each ActiveDirectory rule of simulator.cmdlets.directory: when it applies and when not."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from simulator.cmdlets.directory import (
    delegation_effective,
    purge_tickets,
    record_delegation_change,
    resolve_account,
)
from simulator.engine import Sim
from simulator.pstypes import prop
from tests.sim.conftest import Result, call, join_domain, run, run_pipeline

pytestmark = pytest.mark.fast

DELEGATE = "msDS-AllowedToDelegateTo"
CMD = "Microsoft.ActiveDirectory.Management.Commands."
AD = "Microsoft.ActiveDirectory.Management."
NOT_FOUND_ID = "ActiveDirectoryCmdlet:" + AD + "ADIdentityNotFoundException,"
DC1_DN = "CN=DC1,OU=Domain Controllers,DC=kosa,DC=vm"
SVR1_DN = "CN=SVR1,CN=Computers,DC=kosa,DC=vm"
SVR2_DN = "CN=SVR2,CN=Computers,DC=kosa,DC=vm"
DEFAULT = ["DistinguishedName", "DNSHostName", "Enabled", "Name", "ObjectClass", "ObjectGUID",
           "SamAccountName", "SID", "UserPrincipalName"]  # fmt: skip
EXTRA = [DELEGATE, "TrustedToAuthForDelegation", "TrustedForDelegation",
         "PrincipalsAllowedToDelegateToAccount", "userAccountControl", "servicePrincipalName",
         "ServicePrincipalNames", "Description", "OperatingSystem"]  # fmt: skip


def names(obj: Any) -> list[str]:
    return [p.name for p in obj.PSObject.adapted_properties]


def guid(dn: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "ad:" + dn.lower()))


def term(result: Result) -> dict[str, Any]:
    assert result.terminating is not None, result
    t = result.terminating
    return {"message": t.message, "id": t.error_id, "category": t.category,
            "type": t.exception_type, "target": t.target}  # fmt: skip


def spns(sim: Sim, name: str) -> list[str]:
    comp = sim.world.ad.computer(name)
    assert comp is not None
    return comp.allowed_to_delegate_to


@pytest.fixture
def lab(sim: Sim) -> Sim:
    """SVR1 and SVR2 joined to kosa.vm (computer objects exist)."""
    join_domain(sim, "SVR1", "SVR2")
    return sim


# ---------------------------------------------------------------- where the module works


def test_ad_cmdlets_on_a_workgroup_member_need_a_domain(sim: Sim) -> None:
    """With RSAT on a workgroup host, AD cmdlets fail: no ADWS server (terminating, 1355)."""
    assert run(sim, "SVR1", "Install-WindowsFeature", Name="RSAT-AD-PowerShell").ok
    for cmdlet, params in (("Get-ADComputer", {"Identity": "DC1"}),
                           ("Get-ADUser", {"Identity": "Administrator"}),
                           ("Get-ADGroup", {"Identity": "Domain Admins"}),
                           ("Get-ADGroupMember", {"Identity": "Domain Admins"})):  # fmt: skip
        got = term(run(sim, "SVR1", cmdlet, **params))
        assert got == {
            "message": "Unable to find a default server with Active Directory Web Services "
                       "running.",
            "id": "ActiveDirectoryServer:1355," + CMD + cmdlet.replace("-", ""),
            "category": "ResourceUnavailable", "type": AD + "ADException", "target": None}


def test_ad_cmdlets_on_a_domain_member_with_rsat_work(sim: Sim) -> None:
    """A joined member with RSAT reaches the domain: Get-ADComputer answers."""
    join_domain(sim, "SVR1")
    assert run(sim, "SVR1", "Install-WindowsFeature", Name="RSAT-AD-PowerShell").ok
    got = run(sim, "SVR1", "Get-ADComputer", Identity="DC1")
    assert got.ok and prop(got.output[0], "Name") == "DC1"


def test_the_dc_itself_needs_no_domain_membership(sim: Sim) -> None:
    """The DC answers even when its own domain field is unset (role dc is enough)."""
    sim.host("DC1").domain = None
    got = run(sim, "DC1", "Get-ADComputer", Identity="DC1")
    assert got.ok and prop(got.output[0], "Name") == "DC1"


# ---------------------------------------------------------------- identities


@pytest.mark.parametrize("identity", [
    "SVR1", "svr1", " SVR1 ", "SVR1$", "svr1$", SVR1_DN, SVR1_DN.lower(), guid(SVR1_DN),
    "S-1-5-21-1004336348-1177238915-682003330-1101", {"Name": "SVR1"},
    {"SamAccountName": "SVR1$", "Name": "DC1"}, {"DistinguishedName": SVR1_DN, "Name": "DC1"},
    {"DistinguishedName": "", "SamAccountName": "", "Name": "SVR1"},
])  # fmt: skip
def test_computer_identity_forms(lab: Sim, identity: Any) -> None:
    """Name, NAME$, DN, GUID, SID and a passed-back object (DN before sAM before Name)."""
    got = run(lab, "DC1", "Get-ADComputer", Identity=identity)
    assert got.ok, got
    assert prop(got.output[0], "Name") == "SVR1"


@pytest.mark.parametrize("identity", ["SVR", "SVR1.kosa.vm", "SVR1$$", "CN=SVR1", "S-1-5-21"])
def test_partial_computer_identities_are_not_found(lab: Sim, identity: str) -> None:
    """Only whole names match: a prefix, an FQDN or a partial DN is an unknown identity."""
    got = term(run(lab, "DC1", "Get-ADComputer", Identity=identity))
    assert got == {"message": f"Cannot find an object with identity: '{identity}' under: "
                              "'DC=kosa,DC=vm'.",
                   "id": NOT_FOUND_ID + CMD + "GetADComputer", "category": "ObjectNotFound",
                   "type": AD + "ADIdentityNotFoundException", "target": identity}  # fmt: skip


def test_identity_from_the_pipeline(lab: Sim) -> None:
    """Without -Identity the first pipeline object names the computer."""
    got = run_pipeline(lab, "DC1", call("Get-ADComputer"), inputs=("SVR2", "SVR1"))
    assert [prop(o, "Name") for o in got.output] == ["SVR2"]
    obj = run(lab, "DC1", "Get-ADComputer", Identity="SVR1").output[0]
    piped = run_pipeline(lab, "DC1", call("Set-ADAccountControl", TrustedToAuthForDelegation=True),
                         inputs=(obj,))  # fmt: skip
    assert piped.ok
    assert lab.world.ad.computer("SVR1").trusted_to_auth_for_delegation is True
    assert lab.world.ad.computer("SVR2").trusted_to_auth_for_delegation is False


def test_identity_parameter_wins_over_pipeline(lab: Sim) -> None:
    """-Identity, when given, is used rather than the pipeline object."""
    got = run_pipeline(lab, "DC1", call("Get-ADComputer", Identity="SVR1"), inputs=("SVR2",))
    assert [prop(o, "Name") for o in got.output] == ["SVR1"]


# ---------------------------------------------------------------- Get-ADComputer output


def test_default_properties_of_a_member(lab: Sim) -> None:
    """Without -Properties only the default set, with a member's values and AD type names."""
    obj = run(lab, "DC1", "Get-ADComputer", Identity="SVR1").output[0]
    assert names(obj) == DEFAULT
    assert obj.PSObject.type_names == [AD + "ADComputer", AD + "ADAccount", AD + "ADPrincipal",
                                       AD + "ADObject", AD + "ADEntity", "System.Object"]
    assert {k: prop(obj, k) for k in DEFAULT} == {
        "DistinguishedName": SVR1_DN, "DNSHostName": "svr1.kosa.vm", "Enabled": True,
        "Name": "SVR1", "ObjectClass": "computer", "ObjectGUID": guid(SVR1_DN),
        "SamAccountName": "SVR1$", "SID": "S-1-5-21-1004336348-1177238915-682003330-1101",
        "UserPrincipalName": None}  # fmt: skip


def test_all_properties_of_a_member(lab: Sim) -> None:
    """-Properties * adds the extended set with a workstation's UAC and SPNs."""
    obj = run(lab, "DC1", "Get-ADComputer", Identity="SVR1", Properties="*").output[0]
    assert names(obj) == DEFAULT[:9] + EXTRA
    want = ["HOST/svr1.kosa.vm", "HOST/SVR1", "RestrictedKrbHost/svr1.kosa.vm",
            "RestrictedKrbHost/SVR1", "WSMAN/svr1.kosa.vm", "WSMAN/SVR1"]  # fmt: skip
    assert {k: prop(obj, k) for k in EXTRA} == {
        DELEGATE: [], "TrustedToAuthForDelegation": False, "TrustedForDelegation": False,
        "PrincipalsAllowedToDelegateToAccount": [], "userAccountControl": 0x1000,
        "servicePrincipalName": want, "ServicePrincipalNames": want, "Description": None,
        "OperatingSystem": "Windows Server 2022 Datacenter"}  # fmt: skip


def test_the_dc_is_a_server_trusted_for_delegation(lab: Sim) -> None:
    """The DC's object: SERVER_TRUST plus TRUSTED_FOR_DELEGATION; a member has neither."""
    dc = run(lab, "DC1", "Get-ADComputer", Identity="DC1", Properties="*").output[0]
    assert prop(dc, "userAccountControl") == 0x2000 | 0x80000
    assert prop(dc, "TrustedForDelegation") is True
    assert prop(dc, "ObjectGUID") == guid(DC1_DN) != guid(SVR1_DN)
    lab.world.ad.computer("DC1").trusted_to_auth_for_delegation = True
    dc = run(lab, "DC1", "Get-ADComputer", Identity="DC1", Properties="*").output[0]
    assert prop(dc, "userAccountControl") == 0x2000 | 0x80000 | 0x1000000


@pytest.mark.parametrize(("flags", "uac", "unconstrained"), [
    ({"TrustedToAuthForDelegation": True}, 0x1000 | 0x1000000, False),
    ({"TrustedForDelegation": True}, 0x1000 | 0x80000, True),
    ({"TrustedForDelegation": True, "TrustedToAuthForDelegation": True},
     0x1000 | 0x80000 | 0x1000000, True),
    ({"TrustedForDelegation": False}, 0x1000, False),
])  # fmt: skip
def test_account_control_flags_show_in_uac(lab: Sim, flags: dict[str, bool], uac: int,
                                           unconstrained: bool) -> None:  # fmt: skip
    """Set-ADAccountControl flags map to the UAC bits of the member's object."""
    assert run(lab, "DC1", "Set-ADAccountControl", Identity="SVR1$", **flags).ok
    obj = run(lab, "DC1", "Get-ADComputer", Identity="SVR1",
              Properties=["userAccountControl", "TrustedForDelegation"]).output[0]  # fmt: skip
    assert prop(obj, "userAccountControl") == uac
    assert prop(obj, "TrustedForDelegation") is unconstrained


@pytest.mark.parametrize(("asked", "added"), [
    (["msds-allowedtodelegateto"], [DELEGATE]),
    ([DELEGATE, "TRUSTEDTOAUTHFORDELEGATION"], [DELEGATE, "TrustedToAuthForDelegation"]),
    (["name", "Description"], ["Description"]),
    ([], []),
])  # fmt: skip
def test_requested_properties_are_canonical(lab: Sim, asked: list[str], added: list[str]) -> None:
    """-Properties names match case-insensitively and come back in their canonical spelling."""
    obj = run(lab, "DC1", "Get-ADComputer", Identity="SVR1", Properties=asked).output[0]
    assert names(obj) == DEFAULT + [n for n in EXTRA if n in added]


@pytest.mark.parametrize("asked", [["Bogus"], [DELEGATE, "Bogus"]])
def test_unknown_property_is_an_argument_error(lab: Sim, asked: list[str]) -> None:
    """An unknown -Properties name fails the command as an ArgumentException."""
    got = term(run(lab, "DC1", "Get-ADComputer", Identity="SVR1", Properties=asked))
    assert got["message"] == "One or more properties are invalid.\nParameter name: Bogus"
    assert got["id"] == "ActiveDirectoryCmdlet:System.ArgumentException," + CMD + "GetADComputer"
    assert (got["category"], got["type"]) == ("InvalidArgument", "System.ArgumentException")


def test_unknown_property_fails_also_with_a_filter(lab: Sim) -> None:
    """The -Properties check comes before the -Filter search."""
    got = term(run(lab, "DC1", "Get-ADComputer", Filter="*", Properties="Bogus"))
    assert got["category"] == "InvalidArgument"


# ---------------------------------------------------------------- -Filter


@pytest.mark.parametrize(("text", "found"), [
    ("*", ["DC1", "SVR1", "SVR2"]),
    ("  *  ", ["DC1", "SVR1", "SVR2"]),
    ("Name -eq 'SVR1'", ["SVR1"]),
    ("name -EQ \"svr1\"", ["SVR1"]),
    ("Name -eq SVR2", ["SVR2"]),
    ("Name -eq 'SVR*'", []),
    ("Name -ne 'SVR1'", ["DC1", "SVR2"]),
    ("Name -like 'SVR*'", ["SVR1", "SVR2"]),
    ("Name -like 'svr*'", ["SVR1", "SVR2"]),
    ("Name -like 'SVR'", []),
    ("Name -like 'VR1'", []),
    ("Name -like '*1'", ["DC1", "SVR1"]),
    ("Name -notlike 'SVR*'", ["DC1"]),
    ("SamAccountName -eq 'SVR2$'", ["SVR2"]),
    ("DNSHostName -like '*.kosa.vm'", ["DC1", "SVR1", "SVR2"]),
    ("DNSHostName -eq 'dc1.kosa.vm'", ["DC1"]),
    ("DNSHostName -like 'dc1.kosa.v'", []),
    ("DNSHostName -like 'dc1xkosa.vm'", []),
    ("Description -like '*'", ["DC1", "SVR1", "SVR2"]),
    ("Description -eq 'x'", []),
])  # fmt: skip
def test_computer_filter(lab: Sim, text: str, found: list[str]) -> None:
    """-Filter '*' or 'Attr -op value' (eq/ne/like/notlike), sorted by name."""
    got = run(lab, "DC1", "Get-ADComputer", Filter=text)
    assert got.ok, got
    assert [prop(o, "Name") for o in got.output] == found


def test_filter_objects_carry_requested_properties(lab: Sim) -> None:
    """Objects found by -Filter include the -Properties asked for."""
    lab.world.ad.computer("SVR2").allowed_to_delegate_to.append("cifs/DC1")
    got = run(lab, "DC1", "Get-ADComputer", Filter="Name -like 'SVR*'", Properties=[DELEGATE])
    assert [prop(o, DELEGATE) for o in got.output] == [[], ["cifs/DC1"]]


@pytest.mark.parametrize("text", ["Name = 'x'", "Name -gt 'a'", "Name", "-eq 'x'", "Name -eq 'a' b"])
def test_unparsable_filter_is_a_parser_error(lab: Sim, text: str) -> None:
    """A filter outside the supported grammar fails with ADFilterParsingException."""
    got = term(run(lab, "DC1", "Get-ADComputer", Filter=text))
    assert got == {"message": f"Error parsing query: '{text}' Error Message: 'syntax error' at "
                              "position: '1'.",
                   "id": "ActiveDirectoryCmdlet:" + AD + "ADFilterParsingException," + CMD
                         + "GetADComputer",
                   "category": "ParserError", "type": AD + "ADFilterParsingException",
                   "target": None}  # fmt: skip


# ---------------------------------------------------------------- Set-ADComputer


def test_add_appends_once_and_a_duplicate_fails_case_insensitively(lab: Sim) -> None:
    """-Add appends in order; an existing value (any case) is 'already exists' with the DN."""
    assert run(lab, "DC1", "Set-ADComputer", Identity="SVR1",
               Add={DELEGATE: ["cifs/SVR2", "cifs/DC1"]}).ok  # fmt: skip
    assert run(lab, "DC1", "Set-ADComputer", Identity="SVR1", Add={DELEGATE: "cifs/X"}).ok
    assert spns(lab, "SVR1") == ["cifs/SVR2", "cifs/DC1", "cifs/X"]
    got = term(run(lab, "DC1", "Set-ADComputer", Identity="SVR1", Add={DELEGATE: ["CIFS/dc1"]}))
    assert got == {"message": "The specified value already exists",
                   "id": "ActiveDirectoryServer:8323," + CMD + "SetADComputer",
                   "category": "NotSpecified", "type": AD + "ADException", "target": SVR1_DN}
    assert spns(lab, "SVR1") == ["cifs/SVR2", "cifs/DC1", "cifs/X"]
    assert spns(lab, "SVR2") == []


def test_add_of_the_same_value_twice_in_one_call_fails(lab: Sim) -> None:
    """Two equal values (any case) in one -Add collide with each other."""
    got = run(lab, "DC1", "Set-ADComputer", Identity="SVR1", Add={DELEGATE: ["cifs/a", "CIFS/A"]})
    assert term(got)["message"] == "The specified value already exists"


def test_remove_drops_only_the_named_values(lab: Sim) -> None:
    """-Remove (any case) drops those values, keeps the others in order; missing ones are ok."""
    lab.world.ad.computer("SVR1").allowed_to_delegate_to[:] = ["cifs/SVR2", "cifs/DC1", "x/Y"]
    assert run(lab, "DC1", "Set-ADComputer", Identity="SVR1",
               Remove={DELEGATE: ["CIFS/dc1", "cifs/none"]}).ok  # fmt: skip
    assert spns(lab, "SVR1") == ["cifs/SVR2", "x/Y"]
    assert run(lab, "DC1", "Set-ADComputer", Identity="SVR1", Remove={DELEGATE: "X/y"}).ok
    assert spns(lab, "SVR1") == ["cifs/SVR2"]


def test_replace_and_clear(lab: Sim) -> None:
    """-Replace sets exactly the given values; -Clear empties the attribute."""
    lab.world.ad.computer("SVR1").allowed_to_delegate_to[:] = ["a/1", "b/2"]
    assert run(lab, "DC1", "Set-ADComputer", Identity="SVR1", Replace={DELEGATE: ["c/3", "d/4"]}).ok
    assert spns(lab, "SVR1") == ["c/3", "d/4"]
    assert run(lab, "DC1", "Set-ADComputer", Identity="SVR1", Clear="MSDS-ALLOWEDTODELEGATETO").ok
    assert spns(lab, "SVR1") == []


@pytest.mark.parametrize(("params", "after"), [
    ({"Remove": {DELEGATE: "a/1"}, "Add": {DELEGATE: "a/1"}}, ["b/2", "a/1"]),
    ({"Add": {DELEGATE: "c/3"}, "Replace": {DELEGATE: "d/4"}}, ["d/4"]),
    ({"Replace": {DELEGATE: "d/4"}, "Clear": [DELEGATE]}, []),
    ({"Add": {DELEGATE: "c/3"}, "Clear": [DELEGATE]}, []),
    ({"Remove": {DELEGATE: "a/1"}, "Replace": {DELEGATE: ["a/1", "e/5"]}}, ["a/1", "e/5"]),
])  # fmt: skip
def test_operation_order_is_remove_add_replace_clear(lab: Sim, params: dict[str, Any],
                                                     after: list[str]) -> None:  # fmt: skip
    """One call applies Remove, then Add, then Replace, then Clear (Set-ADComputer docs)."""
    lab.world.ad.computer("SVR1").allowed_to_delegate_to[:] = ["a/1", "b/2"]
    got = run(lab, "DC1", "Set-ADComputer", Identity="SVR1", **params)
    assert got.ok, got
    assert spns(lab, "SVR1") == after


@pytest.mark.parametrize("op", ["Add", "Remove", "Replace"])
def test_a_table_parameter_must_be_a_hashtable(lab: Sim, op: str) -> None:
    """-Add/-Remove/-Replace given a plain string is a parameter binding error."""
    got = term(run(lab, "DC1", "Set-ADComputer", Identity="SVR1", **{op: "cifs/x"}))
    assert got == {"message": f"Cannot bind parameter '{op}'. Cannot convert the \"cifs/x\" "
                              "value of type \"System.String\" to type "
                              "\"System.Collections.Hashtable\".",
                   "id": "CannotConvertArgumentNoMessage," + CMD + "SetADComputer",
                   "category": "InvalidArgument",
                   "type": "System.Management.Automation.ParameterBindingException",
                   "target": None}  # fmt: skip
    assert spns(lab, "SVR1") == []


@pytest.mark.parametrize("op", ["Add", "Remove", "Replace", "Clear"])
def test_unknown_attribute_is_rejected(lab: Sim, op: str) -> None:
    """An attribute outside the modelled ones fails as an ArgumentException naming it."""
    value: Any = ["bogusAttr"] if op == "Clear" else {"bogusAttr": "x"}
    got = term(run(lab, "DC1", "Set-ADComputer", Identity="SVR1", **{op: value}))
    assert got["message"] == ("The specified directory service attribute or value does not "
                              "exist\nParameter name: bogusAttr")  # fmt: skip
    assert got["id"] == "ActiveDirectoryCmdlet:System.ArgumentException," + CMD + "SetADComputer"
    assert (got["category"], got["type"]) == ("InvalidArgument", "System.ArgumentException")


@pytest.mark.parametrize("params", [
    {"Add": {"servicePrincipalName": "HTTP/svr1"}},
    {"Replace": {"description": "lab host"}},
    {"Add": {"Description": "lab host"}},
    {"Clear": ["Description", "servicePrincipalName"]},
])  # fmt: skip
def test_other_known_attributes_are_accepted_and_leave_delegation_alone(
        lab: Sim, params: dict[str, Any]) -> None:  # fmt: skip
    """servicePrincipalName and Description edits are accepted without touching KCD."""
    lab.world.ad.computer("SVR1").allowed_to_delegate_to[:] = ["cifs/DC1"]
    got = run(lab, "DC1", "Set-ADComputer", Identity="SVR1", **params)
    assert got.ok, got
    assert spns(lab, "SVR1") == ["cifs/DC1"]


def test_set_on_a_missing_computer_changes_nothing(lab: Sim) -> None:
    """An unknown identity is the terminating not-found error of Set-ADComputer."""
    got = term(run(lab, "DC1", "Set-ADComputer", Identity="SVR9", Add={DELEGATE: "cifs/DC1"}))
    assert got["id"] == NOT_FOUND_ID + CMD + "SetADComputer"
    assert got["target"] == "SVR9"
    assert all(c.allowed_to_delegate_to == [] for c in lab.world.ad.computers.values())


def test_principals_allowed_to_delegate_are_stored_as_dns(lab: Sim) -> None:
    """RBCD: -PrincipalsAllowedToDelegateToAccount stores DNs; an empty list undoes it."""
    obj = run(lab, "DC1", "Get-ADComputer", Identity="SVR2").output[0]
    assert run(lab, "DC1", "Set-ADComputer", Identity="DC1",
               PrincipalsAllowedToDelegateToAccount=["svr1", obj]).ok  # fmt: skip
    dc = lab.world.ad.computer("DC1")
    assert dc.principals_allowed_to_delegate == [SVR1_DN, SVR2_DN]
    shown = run(lab, "DC1", "Get-ADComputer", Identity="DC1",
                Properties="PrincipalsAllowedToDelegateToAccount").output[0]  # fmt: skip
    assert prop(shown, "PrincipalsAllowedToDelegateToAccount") == [SVR1_DN, SVR2_DN]
    assert run(lab, "DC1", "Set-ADComputer", Identity="DC1", Enabled=True).ok
    assert dc.principals_allowed_to_delegate == [SVR1_DN, SVR2_DN]
    assert run(lab, "DC1", "Set-ADComputer", Identity="DC1",
               PrincipalsAllowedToDelegateToAccount=[]).ok  # fmt: skip
    assert dc.principals_allowed_to_delegate == []


def test_unknown_principal_is_not_found(lab: Sim) -> None:
    """A principal that names no computer fails with its identity; nothing is stored."""
    got = term(run(lab, "DC1", "Set-ADComputer", Identity="DC1",
                   PrincipalsAllowedToDelegateToAccount=["SVR1", "GHOST"]))  # fmt: skip
    assert got["message"] == "Cannot find an object with identity: 'GHOST' under: 'DC=kosa,DC=vm'."
    assert (got["id"], got["target"]) == (NOT_FOUND_ID + CMD + "SetADComputer", "GHOST")
    assert lab.world.ad.computer("DC1").principals_allowed_to_delegate == []


@pytest.mark.parametrize("cmdlet", ["Set-ADComputer", "Set-ADAccountControl"])
def test_enabled_is_set_only_when_given(lab: Sim, cmdlet: str) -> None:
    """-Enabled $false disables, $true enables; other parameters leave it as it is."""
    comp = lab.world.ad.computer("SVR1")
    svr1 = "SVR1$"
    assert run(lab, "DC1", cmdlet, Identity=svr1, Enabled=False).ok
    assert comp.enabled is False
    assert run(lab, "DC1", cmdlet, Identity=svr1, PassThru=None).ok
    assert comp.enabled is False
    assert run(lab, "DC1", cmdlet, Identity=svr1, Enabled=True).ok
    assert comp.enabled is True
    assert lab.world.ad.computer("SVR2").enabled is True


@pytest.mark.parametrize("cmdlet", ["Set-ADComputer", "Set-ADAccountControl"])
def test_passthru_returns_the_object_only_when_asked(lab: Sim, cmdlet: str) -> None:
    """-PassThru writes the changed computer (default properties); without it nothing."""
    svr1 = "SVR1$"
    assert run(lab, "DC1", cmdlet, Identity=svr1, Enabled=False).output == []
    assert run(lab, "DC1", cmdlet, Identity=svr1, Enabled=False, PassThru=False).output == []
    out = run(lab, "DC1", cmdlet, Identity=svr1, Enabled=False, PassThru=None).output
    assert len(out) == 1 and names(out[0]) == DEFAULT
    assert (prop(out[0], "Name"), prop(out[0], "Enabled")) == ("SVR1", False)


# ---------------------------------------------------------------- Set-ADAccountControl


def test_account_control_sets_only_the_given_flags(lab: Sim) -> None:
    """Each flag changes only when given, on the named computer only."""
    comp = lab.world.ad.computer("SVR1")
    assert run(lab, "DC1", "Set-ADAccountControl", Identity="SVR1$",
               TrustedToAuthForDelegation=True).ok  # fmt: skip
    assert (comp.trusted_to_auth_for_delegation, comp.trusted_for_delegation) == (True, False)
    assert run(lab, "DC1", "Set-ADAccountControl", Identity="SVR1$", TrustedForDelegation=True).ok
    assert (comp.trusted_to_auth_for_delegation, comp.trusted_for_delegation) == (True, True)
    assert run(lab, "DC1", "Set-ADAccountControl", Identity="SVR1$",
               TrustedToAuthForDelegation=False).ok  # fmt: skip
    assert (comp.trusted_to_auth_for_delegation, comp.trusted_for_delegation) == (False, True)
    other = lab.world.ad.computer("SVR2")
    assert (other.trusted_to_auth_for_delegation, other.trusted_for_delegation) == (False, False)


@pytest.mark.parametrize("identity", [
    "SVR1$", "svr1$", SVR1_DN, guid(SVR1_DN), "S-1-5-21-1004336348-1177238915-682003330-1101",
    {"DistinguishedName": SVR1_DN, "Name": "DC1"}, {"SamAccountName": "SVR1$", "Name": "DC1"},
])  # fmt: skip
def test_account_control_identity_forms(lab: Sim, identity: Any) -> None:
    """An ADAccount identity: DN, GUID, SID, SAM account name (NAME$) or an object."""
    assert run(lab, "DC1", "Set-ADAccountControl", Identity=identity,
               TrustedToAuthForDelegation=True).ok  # fmt: skip
    assert lab.world.ad.computer("SVR1").trusted_to_auth_for_delegation is True


@pytest.mark.parametrize("identity", ["SVR1", "svr1", {"Name": "SVR1"}])
def test_account_control_does_not_take_the_bare_computer_name(lab: Sim, identity: Any) -> None:
    """Set-ADAccountControl's -Identity is an ADAccount (DN, GUID, SID or SAM account name):
    a computer's bare name (no ``$``) is not its SAM account name and is not found; nothing
    changes (docs/simulator-fidelity.md)."""
    got = term(run(lab, "DC1", "Set-ADAccountControl", Identity=identity,
                   TrustedToAuthForDelegation=True))  # fmt: skip
    assert got["category"] == "ObjectNotFound"
    assert got["id"] == NOT_FOUND_ID + CMD + "SetADAccountControl"
    assert lab.world.ad.computer("SVR1").trusted_to_auth_for_delegation is False


def test_account_control_on_a_missing_computer(lab: Sim) -> None:
    """Set-ADAccountControl on an unknown computer is the not-found error."""
    got = term(run(lab, "DC1", "Set-ADAccountControl", Identity="SVR9$",
                   TrustedToAuthForDelegation=True))  # fmt: skip
    assert (got["id"], got["target"]) == (NOT_FOUND_ID + CMD + "SetADAccountControl", "SVR9$")


# ---------------------------------------------------------------- delegation history


def test_history_records_each_delegation_change_with_the_prior_state(lab: Sim) -> None:
    """The first change records the earlier state at time 0, then each state at its time."""
    comp = lab.world.ad.computer("SVR1")
    times = iter([100.0, 200.0, 300.0, 400.0])
    lab.clock.now = lambda: next(times)  # type: ignore[method-assign]
    assert run(lab, "DC1", "Set-ADComputer", Identity="SVR1", Add={DELEGATE: "cifs/DC1"}).ok
    assert comp.delegation_history == [{"at": 0.0, "spns": [], "trusted": False},
                                       {"at": 100.0, "spns": ["cifs/DC1"], "trusted": False}]
    assert run(lab, "DC1", "Set-ADAccountControl", Identity="SVR1$",
               TrustedToAuthForDelegation=True).ok  # fmt: skip
    assert comp.delegation_history[-1] == {"at": 200.0, "spns": ["cifs/DC1"], "trusted": True}
    assert len(comp.delegation_history) == 3
    assert lab.world.ad.computer("SVR2").delegation_history == []


@pytest.mark.parametrize(("cmdlet", "params"), [
    ("Set-ADComputer", {"Enabled": False}),
    ("Set-ADComputer", {"Remove": {DELEGATE: "cifs/none"}}),
    ("Set-ADComputer", {"Replace": {"Description": "x"}}),
    ("Set-ADAccountControl", {"TrustedForDelegation": True}),
    ("Set-ADAccountControl", {"TrustedToAuthForDelegation": False}),
])  # fmt: skip
def test_no_history_without_a_delegation_change(lab: Sim, cmdlet: str,
                                                params: dict[str, Any]) -> None:  # fmt: skip
    """Changes that leave msDS-AllowedToDelegateTo and the flag alone record nothing."""
    assert run(lab, "DC1", cmdlet, Identity="SVR1$", **params).ok
    assert lab.world.ad.computer("SVR1").delegation_history == []


def test_record_delegation_change_directly(lab: Sim) -> None:
    """A second change appends only the new state (the baseline is recorded once)."""
    comp = lab.world.ad.computer("SVR1")
    record_delegation_change(comp, {"spns": [], "trusted": False}, 5.0)
    assert comp.delegation_history == []
    comp.allowed_to_delegate_to.append("a/b")
    record_delegation_change(comp, {"spns": [], "trusted": False}, 5.0)
    comp.trusted_to_auth_for_delegation = True
    record_delegation_change(comp, {"spns": ["a/b"], "trusted": False}, 7.0)
    assert comp.delegation_history == [{"at": 0.0, "spns": [], "trusted": False},
                                       {"at": 5.0, "spns": ["a/b"], "trusted": False},
                                       {"at": 7.0, "spns": ["a/b"], "trusted": True}]
    comp.allowed_to_delegate_to.append("c/d")
    assert comp.delegation_history[-1]["spns"] == ["a/b"]  # a copy, not the live list


def test_purge_and_effective_delegation_take_host_objects(lab: Sim) -> None:
    """purge_tickets stamps the host; delegation_effective accepts a Host and the service/target
    form, requiring protocol transition unless told otherwise."""
    host = lab.host("SVR1")
    comp = lab.world.ad.computer("SVR1")
    lab.clock.now = lambda: host.boot_time + 50.0  # type: ignore[method-assign]
    assert run(lab, "DC1", "Set-ADComputer", Identity="SVR1", Add={DELEGATE: "cifs/DC1"}).ok
    assert not delegation_effective(lab.world, host, "cifs/DC1", transition=False)
    purge_tickets(host, host.boot_time + 60.0)
    assert host.tickets_purged_at == host.boot_time + 60.0
    assert delegation_effective(lab.world, host, "cifs/DC1", transition=False)
    assert delegation_effective(lab.world, "SVR1", "cifs/dc1.kosa.vm", transition=False)
    assert not delegation_effective(lab.world, host, "cifs/DC1")
    assert not delegation_effective(lab.world, host, "http/DC1", transition=False)
    assert not delegation_effective(lab.world, host, "cifs", transition=False)
    comp.trusted_to_auth_for_delegation = True
    comp.delegation_history.clear()
    assert delegation_effective(lab.world, host, "cifs/DC1")


# ---------------------------------------------------------------- Remove-ADComputer


def test_remove_computer_deletes_only_that_object(lab: Sim) -> None:
    """Remove-ADComputer deletes the named member's object and nothing else."""
    assert run(lab, "DC1", "Remove-ADComputer", Identity="svr1$", Confirm=False).ok
    assert sorted(lab.world.ad.computers) == ["DC1", "SVR2"]


def test_the_dc_object_cannot_be_removed(lab: Sim) -> None:
    """Removing the DC's own object is access denied and leaves it in place."""
    got = term(run(lab, "DC1", "Remove-ADComputer", Identity="dc1", Confirm=False))
    assert got == {"message": "Access is denied",
                   "id": "ActiveDirectoryServer:8344," + CMD + "RemoveADComputer",
                   "category": "PermissionDenied", "type": AD + "ADException", "target": None}
    assert sorted(lab.world.ad.computers) == ["DC1", "SVR1", "SVR2"]


def test_remove_of_a_missing_computer(lab: Sim) -> None:
    """Removing an unknown computer is the not-found error."""
    got = term(run(lab, "DC1", "Remove-ADComputer", Identity="SVR9", Confirm=False))
    assert got["id"] == NOT_FOUND_ID + CMD + "RemoveADComputer"


# ---------------------------------------------------------------- users and groups

ADMIN_DN = "CN=Administrator,CN=Users,DC=kosa,DC=vm"
ADMINS_DN = "CN=Domain Admins,CN=Users,DC=kosa,DC=vm"


@pytest.mark.parametrize("identity", ["Administrator", "administrator", ADMIN_DN.upper(),
                                      guid(ADMIN_DN), {"SamAccountName": "Administrator"}])
def test_get_user(sim: Sim, identity: Any) -> None:
    """Get-ADUser finds the user by name, DN or GUID; the object has the user's properties."""
    out = run(sim, "DC1", "Get-ADUser", Identity=identity).output
    assert len(out) == 1
    assert out[0].PSObject.type_names == [AD + "ADUser", AD + "ADAccount", AD + "ADPrincipal",
                                          AD + "ADObject", AD + "ADEntity", "System.Object"]
    assert {k: prop(out[0], k) for k in names(out[0])} == {
        "DistinguishedName": ADMIN_DN, "Enabled": True, "GivenName": None,
        "Name": "Administrator", "ObjectClass": "user", "ObjectGUID": guid(ADMIN_DN),
        "SamAccountName": "Administrator", "SID": None, "Surname": None,
        "UserPrincipalName": "Administrator@kosa.vm"}  # fmt: skip


def test_get_user_from_the_pipeline(sim: Sim) -> None:
    """Get-ADUser takes its identity from the pipeline."""
    got = run_pipeline(sim, "DC1", call("Get-ADUser"), inputs=("Administrator",))
    assert [prop(u, "Name") for u in got.output] == ["Administrator"]


@pytest.mark.parametrize(("text", "found"), [
    ("*", ["Administrator"]), ("Name -like 'Admin*'", ["Administrator"]),
    ("SamAccountName -eq 'administrator'", ["Administrator"]), ("Name -ne 'Administrator'", []),
])  # fmt: skip
def test_user_filter(sim: Sim, text: str, found: list[str]) -> None:
    """Get-ADUser -Filter on name or sAMAccountName."""
    got = run(sim, "DC1", "Get-ADUser", Filter=text)
    assert [prop(u, "Name") for u in got.output] == found


def test_user_filter_parse_error(sim: Sim) -> None:
    """Get-ADUser -Filter outside the grammar is a parser error."""
    assert term(run(sim, "DC1", "Get-ADUser", Filter="Name = x"))["category"] == "ParserError"


@pytest.mark.parametrize(("cmdlet", "identity"), [
    ("Get-ADUser", "ghost"), ("Get-ADUser", "Xxxx"), ("Get-ADUser", "SVR1"), ("Get-ADGroup", "Domain Guests"),
    ("Get-ADGroup", "Administrator"), ("Get-ADGroupMember", "Nobody"),
])  # fmt: skip
def test_missing_user_or_group_is_not_found(lab: Sim, cmdlet: str, identity: str) -> None:
    """Users, groups and members of a missing group fail with the identity error."""
    got = term(run(lab, "DC1", cmdlet, Identity=identity))
    assert got["message"] == f"Cannot find an object with identity: '{identity}' under: " \
                             "'DC=kosa,DC=vm'."
    assert got["id"] == NOT_FOUND_ID + CMD + cmdlet.replace("-", "")
    assert got["target"] == identity


@pytest.mark.parametrize("identity", ["Domain Admins", "domain admins", ADMINS_DN, guid(ADMINS_DN)])
def test_get_group(sim: Sim, identity: str) -> None:
    """Get-ADGroup finds the group by name, DN or GUID with a global security group's shape."""
    out = run(sim, "DC1", "Get-ADGroup", Identity=identity).output
    assert len(out) == 1
    assert out[0].PSObject.type_names == [AD + "ADGroup", AD + "ADPrincipal", AD + "ADObject",
                                          AD + "ADEntity", "System.Object"]
    assert {k: prop(out[0], k) for k in names(out[0])} == {
        "DistinguishedName": ADMINS_DN, "GroupCategory": "Security", "GroupScope": "Global",
        "Name": "Domain Admins", "ObjectClass": "group", "ObjectGUID": guid(ADMINS_DN),
        "SamAccountName": "Domain Admins", "SID": None}  # fmt: skip


def test_group_members_of_each_kind(lab: Sim) -> None:
    """Members resolve to user, computer (NAME$) or, otherwise, a group principal."""
    lab.world.ad.groups["Domain Admins"].members += ["SVR1", "Domain Computers"]
    out = run(lab, "DC1", "Get-ADGroupMember", Identity="domain admins").output
    rows = [{k: prop(m, k) for k in names(m)} for m in out]
    computers_dn = "CN=Domain Computers,CN=Users,DC=kosa,DC=vm"
    assert rows == [
        {"distinguishedName": ADMIN_DN, "name": "Administrator", "objectClass": "user",
         "objectGUID": guid(ADMIN_DN), "SamAccountName": "Administrator", "SID": None},
        {"distinguishedName": SVR1_DN, "name": "SVR1", "objectClass": "computer",
         "objectGUID": guid(SVR1_DN), "SamAccountName": "SVR1$", "SID": None},
        {"distinguishedName": computers_dn, "name": "Domain Computers", "objectClass": "group",
         "objectGUID": guid(computers_dn), "SamAccountName": "Domain Computers", "SID": None},
    ]  # fmt: skip
    assert all(m.PSObject.type_names == [AD + "ADPrincipal", AD + "ADObject", AD + "ADEntity",
                                         "System.Object"] for m in out)
    assert run(lab, "DC1", "Get-ADGroupMember", Identity="Domain Computers").output == []


# ---------------------------------------------------------------- account names


WELL_KNOWN = [
    ("Everyone", "Everyone"), (" everyone ", "Everyone"),
    ("BUILTIN\\Administrators", "BUILTIN\\Administrators"),
    ("administrators", "BUILTIN\\Administrators"), ("builtin\\users", "BUILTIN\\Users"),
    ("Users", "BUILTIN\\Users"), ("NT AUTHORITY\\SYSTEM", "NT AUTHORITY\\SYSTEM"),
    ("system", "NT AUTHORITY\\SYSTEM"),
    ("nt authority\\authenticated users", "NT AUTHORITY\\Authenticated Users"),
    ("Authenticated Users", "NT AUTHORITY\\Authenticated Users"),
    ("Creator Owner", "CREATOR OWNER"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "shown"), WELL_KNOWN)
def test_well_known_accounts_resolve_everywhere(sim: Sim, name: str, shown: str) -> None:
    """Well-known SIDs resolve on a workgroup host too, in Windows' display form."""
    assert resolve_account(sim.world, sim.host("SVR1"), name) == shown


DOMAIN_NAMES = [
    ("KOSA\\Administrator", "KOSA\\Administrator"), ("kosa\\administrator", "KOSA\\Administrator"),
    ("kosa.vm\\Administrator", "KOSA\\Administrator"), ("Administrator", "KOSA\\Administrator"),
    ("KOSA\\SVR1$", "KOSA\\SVR1$"), ("svr1$", "KOSA\\SVR1$"), ("KOSA\\dc1$", "KOSA\\DC1$"),
    ("KOSA\\Domain Admins", "KOSA\\Domain Admins"), ("domain computers", "KOSA\\Domain Computers"),
    ("KOSA\\SVR9$", None), ("KOSA\\SVR1", None), ("KOSA\\ghost", None),
    ("OTHER\\Administrator", None), ("kosa.other\\Administrator", None),
    ("KOSA\\Administrator$", None),
]  # fmt: skip


@pytest.mark.parametrize(("name", "shown"), DOMAIN_NAMES)
@pytest.mark.parametrize("host", ["DC1", "SVR1"])
def test_domain_accounts_resolve_on_members_and_the_dc(lab: Sim, host: str, name: str,
                                                       shown: str | None) -> None:  # fmt: skip
    """Domain users, groups and NAME$ resolve with the NetBIOS or DNS prefix or none."""
    assert resolve_account(lab.world, lab.host(host), name) == shown


def test_domain_accounts_do_not_resolve_on_a_workgroup_host(sim: Sim) -> None:
    """A workgroup host maps no domain account; the DC does even without a domain field."""
    assert resolve_account(sim.world, sim.host("SVR1"), "KOSA\\Administrator") is None
    assert resolve_account(sim.world, sim.host("SVR1"), "Administrator") is None
    sim.host("DC1").domain = None
    assert resolve_account(sim.world, sim.host("DC1"), "KOSA\\Administrator") == \
        "KOSA\\Administrator"


# ---------------------------------------------------------------- ordering and odd values


def test_filter_results_are_sorted_by_name_not_creation(lab: Sim) -> None:
    """-Filter lists computers and users sorted by name, whatever order they were created in."""
    from simulator.world import AdUser

    lab.world.ad.add_computer("WKS9")
    lab.world.ad.add_computer("APP1")
    got = run(lab, "DC1", "Get-ADComputer", Filter="*")
    assert [prop(o, "Name") for o in got.output] == ["APP1", "DC1", "SVR1", "SVR2", "WKS9"]
    for name in ("Zed", "Bob"):
        lab.world.ad.users[name] = AdUser(name=name, sam_account_name=name.lower())
    got = run(lab, "DC1", "Get-ADUser", Filter="*")
    assert [prop(o, "Name") for o in got.output] == ["Administrator", "Bob", "Zed"]
    got = run(lab, "DC1", "Get-ADUser", Filter="SamAccountName -eq 'ZED'")
    assert [prop(o, "SamAccountName") for o in got.output] == ["zed"]


@pytest.mark.parametrize(("text", "found"), [
    ("Description -eq ''", ["DC1", "SVR1", "SVR2"]),
    ("Description -ne ''", []),
    ("Description -notlike '*'", []),
    ("Name -like ''", []),
])  # fmt: skip
def test_filter_on_an_empty_or_missing_attribute(lab: Sim, text: str, found: list[str]) -> None:
    """An attribute the filter does not know compares as the empty string."""
    got = run(lab, "DC1", "Get-ADComputer", Filter=text)
    assert got.ok, got
    assert [prop(o, "Name") for o in got.output] == found


def test_an_object_without_identity_properties_is_not_found(lab: Sim) -> None:
    """An -Identity object with no DN, sAMAccountName or Name is looked up by its text."""
    got = term(run(lab, "DC1", "Get-ADComputer", Identity={"Foo": "SVR1"}))
    assert got["category"] == "ObjectNotFound"
    assert got["target"] == str({"Foo": "SVR1"})
