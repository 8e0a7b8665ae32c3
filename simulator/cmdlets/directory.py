"""ActiveDirectory module: computer objects, KCD attributes, account control, users, groups.

The cmdlets work where the module is installed (RSAT-AD-PowerShell: the DC) against the one
domain of the world. A missing object is the real terminating ADIdentityNotFoundException:
``Cannot find an object with identity: 'X' under: 'DC=kosa,DC=vm'.`` (not suppressed by
``-ErrorAction SilentlyContinue``, like on Windows).

Delegation changes take effect for a host only after its machine ticket cache was purged
(``klist purge -li 0x3e7``, script host/purge-tickets) or it rebooted: see
:func:`delegation_effective`, which the migration checks call.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from simulator.cmdlets.common import as_list
from simulator.core import Call, Prompt, Registry
from simulator.pstypes import prop, ps_object
from simulator.world import AdComputer, AdGroup, AdUser, Directory, Host, World

AD = "Microsoft.ActiveDirectory.Management."
AD_EXC = AD + "ADException"
NOT_FOUND_EXC = AD + "ADIdentityNotFoundException"
NOT_FOUND = "Cannot find an object with identity: '{identity}' under: '{base}'."
NO_ADWS = "Unable to find a default server with Active Directory Web Services running."
VALUE_EXISTS = "The specified value already exists"
BAD_ATTRIBUTE = "The specified directory service attribute or value does not exist"
DELEGATE_TO = "msDS-AllowedToDelegateTo"
MULTI_VALUED = {
    "msds-allowedtodelegateto": DELEGATE_TO,
    "serviceprincipalname": "servicePrincipalName",
}
SINGLE_VALUED = {"description": "Description"}
WORKSTATION_TRUST = 0x1000
SERVER_TRUST = 0x2000
TRUSTED_FOR_DELEGATION = 0x80000
TRUSTED_TO_AUTH = 0x1000000
COMPUTER_DEFAULT = ["DistinguishedName", "DNSHostName", "Enabled", "Name", "ObjectClass",
                    "ObjectGUID", "SamAccountName", "SID", "UserPrincipalName"]  # fmt: skip
COMPUTER_EXTRA = [DELEGATE_TO, "TrustedToAuthForDelegation", "TrustedForDelegation",
                  "PrincipalsAllowedToDelegateToAccount", "userAccountControl",
                  "servicePrincipalName", "ServicePrincipalNames", "Description",
                  "OperatingSystem"]  # fmt: skip


def register(registry: Registry) -> None:
    registry.cmdlet("Get-ADComputer")(get_adcomputer)
    registry.cmdlet("Set-ADComputer")(set_adcomputer)
    registry.cmdlet("Set-ADAccountControl")(set_adaccountcontrol)
    registry.cmdlet("Remove-ADComputer", prompt=Prompt(
        'Performing the operation "Remove" on target "{target}".'))(remove_adcomputer)
    registry.cmdlet("Get-ADUser")(get_aduser)
    registry.cmdlet("Get-ADGroup")(get_adgroup)
    registry.cmdlet("Get-ADGroupMember")(get_adgroupmember)


# ---------------------------------------------------------------- delegation (KCD) API


def _state(comp: AdComputer) -> dict[str, Any]:
    return {"spns": list(comp.allowed_to_delegate_to),
            "trusted": comp.trusted_to_auth_for_delegation}  # fmt: skip


def record_delegation_change(comp: AdComputer, before: dict[str, Any], now: float) -> None:
    """Remember the delegation settings as of ``now`` (the hosts' ticket caches lag)."""
    if _state(comp) == before:
        return
    if not comp.delegation_history:
        comp.delegation_history.append({"at": 0.0, **before})
    comp.delegation_history.append({"at": now, **_state(comp)})


def delegation_effective(world: World, host: Host | str, spn: str, *,
                         transition: bool = True) -> bool:  # fmt: skip
    """:meth:`World.delegates` for ``spn`` = ``service/target`` (the form klist shows)."""
    service, _, target = spn.partition("/")
    name = host if isinstance(host, str) else host.name
    return world.delegates(name, service, target, transition=transition)


def purge_tickets(host: Host, now: float) -> None:
    """``klist purge -li 0x3e7``: the next tickets reflect the current AD settings."""
    host.tickets_purged_at = now


# ---------------------------------------------------------------- common


def _guard(call: Call) -> Directory:
    """The AD module needs a reachable domain: the DC itself or a domain member."""
    host = call.host
    if host.role != "dc" and host.domain is None:
        call.fail(NO_ADWS, "ActiveDirectoryServer:1355", "ResourceUnavailable", AD_EXC)
    return call.world.ad


def _not_found(call: Call, identity: Any) -> None:
    call.fail(NOT_FOUND.format(identity=identity, base=call.world.ad.base_dn),
              "ActiveDirectoryCmdlet:" + NOT_FOUND_EXC, "ObjectNotFound", NOT_FOUND_EXC,
              str(identity))  # fmt: skip


def _guid(dn: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "ad:" + dn.lower()))


def _identity_key(value: Any) -> str:
    """What an -Identity value names: a string, or an AD object passed back."""
    if isinstance(value, str):
        return value
    for name in ("DistinguishedName", "SamAccountName", "Name"):
        found = prop(value, name)
        if found:
            return str(found)
    return str(value)


def _matches(identity: str, name: str, sam: str, dn: str, sid: str = "") -> bool:
    low = identity.strip().lower()
    return low in {name.lower(), sam.lower(), dn.lower(), sid.lower(), _guid(dn)}


def _identity_arg(call: Call) -> Any:
    value = call.get("Identity")
    if value is None and call.input:
        value = call.input[0]
    return value


def find_computer(ad: Directory, identity: str) -> AdComputer | None:
    for comp in ad.computers.values():
        if _matches(identity, comp.name, comp.name + "$", comp.distinguished_name, comp.sid):
            return comp
    return None


def _computer(call: Call) -> AdComputer:
    ad = _guard(call)
    raw = _identity_arg(call)
    key = _identity_key(raw)
    comp = find_computer(ad, key)
    if comp is None:
        _not_found(call, key)
    assert comp is not None
    return comp


# ---------------------------------------------------------------- Get-ADComputer


def _uac(comp: AdComputer, is_dc: bool) -> int:
    value = SERVER_TRUST if is_dc else WORKSTATION_TRUST
    if comp.trusted_for_delegation or is_dc:
        value |= TRUSTED_FOR_DELEGATION
    if comp.trusted_to_auth_for_delegation:
        value |= TRUSTED_TO_AUTH
    return value


def _spns(world: World, comp: AdComputer) -> list[str]:
    short, fqdn = comp.name, comp.dns_host_name
    return [f"{svc}/{n}" for svc in ("HOST", "RestrictedKrbHost", "WSMAN") for n in (fqdn, short)]


def computer_object(world: World, comp: AdComputer, wanted: list[str]) -> Any:
    is_dc = comp.name.lower() == world.ad.dc.lower()
    everything: dict[str, Any] = {
        "DistinguishedName": comp.distinguished_name, "DNSHostName": comp.dns_host_name,
        "Enabled": comp.enabled, "Name": comp.name, "ObjectClass": "computer",
        "ObjectGUID": _guid(comp.distinguished_name), "SamAccountName": comp.name + "$",
        "SID": comp.sid, "UserPrincipalName": None,
        DELEGATE_TO: list(comp.allowed_to_delegate_to),
        "TrustedToAuthForDelegation": comp.trusted_to_auth_for_delegation,
        "TrustedForDelegation": comp.trusted_for_delegation or is_dc,
        "PrincipalsAllowedToDelegateToAccount": list(comp.principals_allowed_to_delegate),
        "userAccountControl": _uac(comp, is_dc),
        "servicePrincipalName": _spns(world, comp), "ServicePrincipalNames": _spns(world, comp),
        "Description": None, "OperatingSystem": "Windows Server 2022 Datacenter",
    }  # fmt: skip
    keep = COMPUTER_DEFAULT + wanted
    props = {k: v for k, v in everything.items() if k in keep}
    return ps_object([AD + "ADComputer", AD + "ADAccount", AD + "ADPrincipal", AD + "ADObject",
                      AD + "ADEntity"], **props)  # fmt: skip


def _wanted_properties(call: Call) -> list[str]:
    out: list[str] = []
    for raw in as_list(call.get("Properties")):
        name = str(raw)
        if name == "*":
            return list(COMPUTER_EXTRA)
        canonical = next((p for p in COMPUTER_EXTRA + COMPUTER_DEFAULT
                          if p.lower() == name.lower()), None)  # fmt: skip
        if canonical is None:
            call.fail(f"One or more properties are invalid.\nParameter name: {name}",
                      "ActiveDirectoryCmdlet:System.ArgumentException", "InvalidArgument",
                      "System.ArgumentException")  # fmt: skip
        out.append(str(canonical))
    return out


_FILTER = re.compile(r"^\s*(\w[\w-]*)\s+-(eq|ne|like|notlike)\s+['\"]?([^'\"]*)['\"]?\s*$", re.I)


def _filter(call: Call, text: str) -> Any:
    """A predicate for the simple filters the labs use: ``*`` or ``Attr -op 'value'``."""
    if text.strip() == "*":
        return lambda values: True
    match = _FILTER.match(text)
    if match is None:
        call.fail(f"Error parsing query: '{text}' Error Message: 'syntax error' at position: "
                  "'1'.", "ActiveDirectoryCmdlet:Microsoft.ActiveDirectory.Management."
                  "ADFilterParsingException", "ParserError",
                  AD + "ADFilterParsingException")  # fmt: skip
    attr, op, value = match.group(1).lower(), match.group(2).lower(), match.group(3)
    pattern = re.compile("^" + re.escape(value).replace("\\*", ".*") + "$", re.I)

    def test(values: dict[str, str]) -> bool:
        have = str(values.get(attr, ""))
        hit = pattern.match(have) is not None if "like" in op else have.lower() == value.lower()
        return hit != op.startswith("n")

    return test


def get_adcomputer(call: Call) -> None:
    ad = _guard(call)
    wanted = _wanted_properties(call)
    if call.has("Filter"):
        test = _filter(call, str(call.get("Filter")))
        for comp in sorted(ad.computers.values(), key=lambda c: c.name):
            values = {"name": comp.name, "samaccountname": comp.name + "$",
                      "dnshostname": comp.dns_host_name}  # fmt: skip
            if test(values):
                call.out(computer_object(call.world, comp, wanted))
        return
    call.out(computer_object(call.world, _computer(call), wanted))


# ---------------------------------------------------------------- Set-ADComputer


def _attr(call: Call, name: str) -> tuple[str, bool]:
    low = str(name).lower()
    if low in MULTI_VALUED:
        return MULTI_VALUED[low], True
    if low in SINGLE_VALUED:
        return SINGLE_VALUED[low], False
    call.fail(f"{BAD_ATTRIBUTE}\nParameter name: {name}",
              "ActiveDirectoryCmdlet:System.ArgumentException", "InvalidArgument",
              "System.ArgumentException")  # fmt: skip
    raise AssertionError


def _values(comp: AdComputer, attr: str) -> list[str]:
    if attr == DELEGATE_TO:
        return comp.allowed_to_delegate_to
    return []  # servicePrincipalName edits are accepted but not modelled beyond the defaults


def _table(call: Call, name: str) -> dict[str, list[str]]:
    raw = call.get(name) or {}
    if not isinstance(raw, dict):
        call.fail(f"Cannot bind parameter '{name}'. Cannot convert the \"{raw}\" value of type "
                  "\"System.String\" to type \"System.Collections.Hashtable\".",
                  "CannotConvertArgumentNoMessage", "InvalidArgument",
                  "System.Management.Automation.ParameterBindingException")  # fmt: skip
    return {str(k): [str(v) for v in as_list(val)] for k, val in raw.items()}


def set_adcomputer(call: Call) -> None:
    comp = _computer(call)
    before = _state(comp)
    for name, values in _table(call, "Remove").items():
        attr, _ = _attr(call, name)
        current = _values(comp, attr)
        current[:] = [v for v in current if v.lower() not in {x.lower() for x in values}]
    for name, values in _table(call, "Add").items():
        attr, _ = _attr(call, name)
        current = _values(comp, attr)
        for value in values:
            if value.lower() in {v.lower() for v in current}:
                call.fail(VALUE_EXISTS, "ActiveDirectoryServer:8323", "NotSpecified", AD_EXC,
                          comp.distinguished_name)  # fmt: skip
            current.append(value)
    for name, values in _table(call, "Replace").items():
        attr, _ = _attr(call, name)
        _values(comp, attr)[:] = values
    for name in as_list(call.get("Clear")):
        attr, _ = _attr(call, str(name))
        _values(comp, attr).clear()
    if call.has("PrincipalsAllowedToDelegateToAccount"):
        principals = as_list(call.get("PrincipalsAllowedToDelegateToAccount"))
        comp.principals_allowed_to_delegate = [_principal_dn(call, p) for p in principals]
    if call.has("Enabled"):
        comp.enabled = bool(call.get("Enabled"))
    record_delegation_change(comp, before, call.sim.clock.now())
    if call.switch("PassThru"):
        call.out(computer_object(call.world, comp, []))


def _principal_dn(call: Call, value: Any) -> str:
    key = _identity_key(value)
    comp = find_computer(call.world.ad, key)
    if comp is None:
        _not_found(call, key)
    assert comp is not None
    return comp.distinguished_name


def find_account(ad: Directory, identity: str) -> AdComputer | None:
    """An ``ADAccount`` identity: distinguished name, GUID, SID or SAM account name. A
    computer's SAM account name ends with ``$``; its bare name (``SVR1``) names no account
    (Set-ADAccountControl, Microsoft Learn: "You can identify an account by its distinguished
    name, GUID, security identifier (SID), or security accounts manager (SAM) account name").
    Get-ADComputer/Set-ADComputer (``ADComputer`` identities) also accept the name."""
    low = identity.strip().lower()
    for comp in ad.computers.values():
        dn = comp.distinguished_name
        if low in {(comp.name + "$").lower(), dn.lower(), comp.sid.lower(), _guid(dn)}:
            return comp
    return None


def _account(call: Call) -> AdComputer:
    ad = _guard(call)
    key = _identity_key(_identity_arg(call))
    comp = find_account(ad, key)
    if comp is None:
        _not_found(call, key)
    assert comp is not None
    return comp


def set_adaccountcontrol(call: Call) -> None:
    comp = _account(call)
    before = _state(comp)
    if call.has("TrustedToAuthForDelegation"):
        comp.trusted_to_auth_for_delegation = bool(call.get("TrustedToAuthForDelegation"))
    if call.has("TrustedForDelegation"):
        comp.trusted_for_delegation = bool(call.get("TrustedForDelegation"))
    if call.has("Enabled"):
        comp.enabled = bool(call.get("Enabled"))
    record_delegation_change(comp, before, call.sim.clock.now())
    if call.switch("PassThru"):
        call.out(computer_object(call.world, comp, []))


def remove_adcomputer(call: Call) -> None:
    comp = _computer(call)
    if comp.name.lower() == call.world.ad.dc.lower():
        call.fail("Access is denied", "ActiveDirectoryServer:8344", "PermissionDenied", AD_EXC)
    del call.world.ad.computers[comp.name]


# ---------------------------------------------------------------- users and groups


def user_object(ad: Directory, user: AdUser) -> Any:
    return ps_object(
        [AD + "ADUser", AD + "ADAccount", AD + "ADPrincipal", AD + "ADObject", AD + "ADEntity"],
        DistinguishedName=user.distinguished_name, Enabled=user.enabled, GivenName=None,
        Name=user.name, ObjectClass="user", ObjectGUID=_guid(user.distinguished_name),
        SamAccountName=user.sam_account_name, SID=None, Surname=None,
        UserPrincipalName=f"{user.sam_account_name}@{ad.fqdn}",
    )  # fmt: skip


def group_object(group: AdGroup) -> Any:
    return ps_object(
        [AD + "ADGroup", AD + "ADPrincipal", AD + "ADObject", AD + "ADEntity"],
        DistinguishedName=group.distinguished_name, GroupCategory="Security",
        GroupScope="Global", Name=group.name, ObjectClass="group",
        ObjectGUID=_guid(group.distinguished_name), SamAccountName=group.name, SID=None,
    )  # fmt: skip


def _find_user(ad: Directory, identity: str) -> AdUser | None:
    for user in ad.users.values():
        if _matches(identity, user.name, user.sam_account_name, user.distinguished_name):
            return user
    return None


def _find_group(ad: Directory, identity: str) -> AdGroup | None:
    return next((g for g in ad.groups.values()
                 if _matches(identity, g.name, g.name, g.distinguished_name)), None)  # fmt: skip


def get_aduser(call: Call) -> None:
    ad = _guard(call)
    if call.has("Filter"):
        test = _filter(call, str(call.get("Filter")))
        for user in sorted(ad.users.values(), key=lambda u: u.name):
            if test({"name": user.name, "samaccountname": user.sam_account_name}):
                call.out(user_object(ad, user))
        return
    key = _identity_key(_identity_arg(call))
    found = _find_user(ad, key)
    if found is None:
        _not_found(call, key)
    assert found is not None
    call.out(user_object(ad, found))


def get_adgroup(call: Call) -> None:
    ad = _guard(call)
    key = _identity_key(_identity_arg(call))
    group = _find_group(ad, key)
    if group is None:
        _not_found(call, key)
    assert group is not None
    call.out(group_object(group))


def get_adgroupmember(call: Call) -> None:
    ad = _guard(call)
    key = _identity_key(_identity_arg(call))
    group = _find_group(ad, key)
    if group is None:
        _not_found(call, key)
    assert group is not None
    for member in group.members:
        call.out(_member_object(call.world, member))


def _member_object(world: World, member: str) -> Any:
    ad = world.ad
    user = _find_user(ad, member)
    if user is not None:
        dn, cls, sam, name = user.distinguished_name, "user", user.sam_account_name, user.name
    elif (comp := find_computer(ad, member)) is not None:
        dn, cls, sam, name = comp.distinguished_name, "computer", comp.name + "$", comp.name
    else:
        dn, cls, sam, name = f"CN={member},CN=Users,{ad.base_dn}", "group", member, member
    return ps_object([AD + "ADPrincipal", AD + "ADObject", AD + "ADEntity"],
                     distinguishedName=dn, name=name, objectClass=cls,
                     objectGUID=_guid(dn), SamAccountName=sam, SID=None)  # fmt: skip


# ---------------------------------------------------------------- account names (SIDs)


WELL_KNOWN = {
    "everyone": "Everyone",
    "builtin\\administrators": "BUILTIN\\Administrators",
    "administrators": "BUILTIN\\Administrators",
    "builtin\\users": "BUILTIN\\Users",
    "users": "BUILTIN\\Users",
    "nt authority\\system": "NT AUTHORITY\\SYSTEM",
    "system": "NT AUTHORITY\\SYSTEM",
    "nt authority\\authenticated users": "NT AUTHORITY\\Authenticated Users",
    "authenticated users": "NT AUTHORITY\\Authenticated Users",
    "creator owner": "CREATOR OWNER",
}


def resolve_account(world: World, host: Host, name: str) -> str | None:
    """The account as Windows displays it (``KOSA\\SVR1$``), or None when no SID maps to it.

    Domain accounts resolve on domain members and the DC: users, groups and computer
    accounts (``NAME$``), with the NetBIOS or DNS domain prefix or none.
    """
    raw = str(name).strip()
    if raw.lower() in WELL_KNOWN:
        return WELL_KNOWN[raw.lower()]
    if host.domain is None and host.role != "dc":
        return None
    ad = world.ad
    domain, _, account = raw.rpartition("\\")
    if domain and domain.lower() not in (ad.netbios.lower(), ad.fqdn.lower()):
        return None
    return _domain_account(ad, account)


def _domain_account(ad: Directory, account: str) -> str | None:
    low = account.lower()
    if low.endswith("$"):
        comp = ad.computer(low[:-1])
        return f"{ad.netbios}\\{comp.name}$" if comp is not None else None
    user = next((u for u in ad.users.values() if u.sam_account_name.lower() == low), None)
    if user is not None:
        return f"{ad.netbios}\\{user.sam_account_name}"
    group = next((g for g in ad.groups.values() if g.name.lower() == low), None)
    return f"{ad.netbios}\\{group.name}" if group is not None else None
