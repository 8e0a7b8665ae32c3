"""SmbShare module (New/Get/Remove-SmbShare, Grant/Revoke/Get-SmbShareAccess) and Get-Acl.

Shares live in ``world.shares[host]``; share ACEs and NTFS ACEs are :class:`Ace` records with
account names as Windows displays them (``KOSA\\SVR1$``). Accounts are resolved like SIDs are:
a computer account exists only once the host joined the domain. NTFS grants are made by the
packaged script host/ntfs-grant (icacls), implemented in :mod:`simulator.cmdlets.guest`.
"""

from __future__ import annotations

from typing import Any

from simulator.cmdlets.common import as_list
from simulator.cmdlets.directory import resolve_account
from simulator.core import Call, Prompt, Registry
from simulator.pstypes import _enum, member, ps_object, u32
from simulator.world import Ace, Host, Share, World, norm_path

CIM = "Microsoft.Management.Infrastructure.CimInstance"
SMB_NS = "ROOT/Microsoft/Windows/SMB"
CIM_EXC = "Microsoft.Management.Infrastructure.CimException"
GEN = "Microsoft.PowerShell.Cmdletization.GeneratedTypes.SmbShare."
ShareAccessRight = _enum(GEN + "AccessRight", ["Full", "Change", "Read", "Custom"])
AccessControlType = _enum(GEN + "AccessControlType", ["Allow", "Deny"])
ShareState = _enum(GEN + "ShareState", ["Pending", "Online", "Offline"])
SPECIAL = [("ADMIN$", "C:\\Windows", "Remote Admin"), ("C$", "C:\\", "Default share"),
           ("IPC$", "", "Remote IPC")]  # fmt: skip
NOT_FOUND = ("No MSFT_SmbShare objects found with property 'Name' equal to '{name}'.  Verify "
             "the value of the property and retry.")  # fmt: skip
NO_MAPPING = "No mapping between account names and security IDs was done."
RIGHTS = ("Full", "Change", "Read")


def register(registry: Registry) -> None:
    registry.cmdlet("New-SmbShare", ignores_whatif=True)(new_smbshare)
    registry.cmdlet("Get-SmbShare")(get_smbshare)
    registry.cmdlet("Remove-SmbShare", prompt=Prompt(
        "Performing operation 'Remove-Share' on Target '{scope},{target}'.", force_skips=True
    ))(remove_smbshare)
    modify = Prompt("Performing operation 'Modify' on Target '{scope},{target}'.",
                    force_skips=True)
    registry.cmdlet("Grant-SmbShareAccess", prompt=modify)(grant_smbshareaccess)
    registry.cmdlet("Revoke-SmbShareAccess", prompt=modify)(revoke_smbshareaccess)
    registry.cmdlet("Get-SmbShareAccess")(get_smbshareaccess)
    registry.cmdlet("Get-Acl")(get_acl)


# ---------------------------------------------------------------- objects


def _cim(cls: str, **props: Any) -> Any:
    return ps_object([f"{CIM}#{SMB_NS}/{cls}", CIM], **props)


def share_object(host: Host, share: Share, special: bool = False) -> Any:
    return _cim(
        "MSFT_SmbShare", Name=share.name, ScopeName="*", Path=share.path,
        Description=share.description, Special=special, ShareType="FileSystemDirectory",
        ShareState=member(ShareState, "Online"), CurrentUsers=u32(0),
        EncryptData=False, FolderEnumerationMode="Unrestricted", PSComputerName=None,
        PresetPathAcl=None, Temporary=False,
    )  # fmt: skip


def access_object(share: Share, ace: Ace) -> Any:
    deny = ace.right.lower() == "deny"
    right = "Full" if deny else ace.right
    return _cim(
        "MSFT_SmbShareAccessControlEntry", Name=share.name, ScopeName="*",
        AccountName=ace.account, AccessControlType=member(AccessControlType,
                                                          "Deny" if deny else "Allow"),
        AccessRight=member(ShareAccessRight, right), PSComputerName=None,
    )  # fmt: skip


# ---------------------------------------------------------------- helpers


def _shares(world: World, host: Host) -> dict[str, Share]:
    return world.shares.setdefault(host.name, {})


def _find(world: World, host: Host, name: str) -> Share | None:
    return world.share(host.name, name)


def _cim_error(call: Call, message: str, code: int | str, category: str,
               terminating: bool = True) -> None:  # fmt: skip
    error_id = code if isinstance(code, str) else f"Windows System Error {code}"
    if terminating:
        call.fail(message, error_id, category, CIM_EXC, "MSFT_SmbShare")
    call.error(message, error_id, category, "MSFT_SmbShare", CIM_EXC)


def _not_found(call: Call, name: str) -> None:
    call.error(NOT_FOUND.format(name=name), "CmdletizationQuery_NotFound_Name", "ObjectNotFound",
               name, CIM_EXC)  # fmt: skip


def _accounts(call: Call, names: list[Any]) -> list[str]:
    out = []
    for name in names:
        account = resolve_account(call.world, call.host, str(name))
        if account is None:
            _cim_error(call, NO_MAPPING, 1332, "NotSpecified")
        out.append(str(account))
    return out


# ---------------------------------------------------------------- shares


def new_smbshare(call: Call) -> None:
    host, world = call.host, call.world
    name, path = str(call.get("Name")), norm_path(str(call.get("Path")))
    if _find(world, host, name) is not None or name.upper() in {s[0] for s in SPECIAL}:
        _cim_error(call, "The name has already been shared.", 2118, "ResourceExists")
    if not host.folder_exists(path):
        _cim_error(call, "The system cannot find the file specified.", 2, "ObjectNotFound")
    acl: list[Ace] = []
    for param, right in (("FullAccess", "Full"), ("ChangeAccess", "Change"),
                         ("ReadAccess", "Read"), ("NoAccess", "Deny")):  # fmt: skip
        acl += [Ace(account=a, right=right) for a in _accounts(call, as_list(call.get(param)))]
    if not acl:
        acl = [Ace(account="Everyone", right="Read")]
    share = Share(
        name=name, path=path, share_acl=acl, description=str(call.get("Description") or "")
    )
    _shares(world, host)[name] = share
    call.out(share_object(host, share))


def get_smbshare(call: Call) -> None:
    host, world = call.host, call.world
    names = as_list(call.get("Name"))
    if not names:
        for name, path, description in SPECIAL:
            call.out(share_object(host, Share(name=name, path=path, description=description), True))
        for share in sorted(_shares(world, host).values(), key=lambda s: s.name.lower()):
            call.out(share_object(host, share))
        return
    for name in names:
        found = _find(world, host, str(name))
        if found is None:
            _not_found(call, str(name))
            continue
        call.out(share_object(host, found))


def remove_smbshare(call: Call) -> None:
    host, world = call.host, call.world
    for name in as_list(call.get("Name")):
        share = _find(world, host, str(name))
        if share is None:
            _not_found(call, str(name))
            continue
        del _shares(world, host)[share.name]


def _named_shares(call: Call) -> list[Share]:
    out = []
    for name in as_list(call.get("Name")):
        share = _find(call.world, call.host, str(name))
        if share is None:
            _not_found(call, str(name))
        else:
            out.append(share)
    return out


def _drop(share: Share, account: str) -> None:
    share.share_acl = [a for a in share.share_acl
                       if a.account.lower() != account.lower() or a.right == "Deny"]  # fmt: skip


def grant_smbshareaccess(call: Call) -> None:
    right = str(call.get("AccessRight") or "Read")
    right = next((r for r in RIGHTS if r.lower() == right.lower()), right)
    for share in _named_shares(call):
        for account in _accounts(call, as_list(call.get("AccountName"))):
            _drop(share, account)
            share.share_acl.append(Ace(account=account, right=right))
        for ace in share.share_acl:
            call.out(access_object(share, ace))


def revoke_smbshareaccess(call: Call) -> None:
    for share in _named_shares(call):
        for account in _accounts(call, as_list(call.get("AccountName"))):
            _drop(share, account)
        for ace in share.share_acl:
            call.out(access_object(share, ace))


def get_smbshareaccess(call: Call) -> None:
    for name in as_list(call.get("Name")):
        share = _find(call.world, call.host, str(name))
        if share is None:
            _not_found(call, str(name))
            continue
        for ace in share.share_acl:
            call.out(access_object(share, ace))


# ---------------------------------------------------------------- NTFS (Get-Acl)


NTFS_RIGHTS = {"fullcontrol": "FullControl", "modify": "Modify",
               "readandexecute": "ReadAndExecute, Synchronize", "read": "Read, Synchronize",
               "write": "Write, Synchronize"}  # fmt: skip


def _rule(ace: Ace, inherited: bool) -> Any:
    rights = NTFS_RIGHTS.get(ace.right.lower(), ace.right)
    if ace.right.lower() == "fullcontrol":
        rights = "FullControl"
    return ps_object(
        ["System.Security.AccessControl.FileSystemAccessRule",
         "System.Security.AccessControl.AccessRule",
         "System.Security.AccessControl.AuthorizationRule"],
        FileSystemRights=rights, AccessControlType="Allow", IdentityReference=ace.account,
        IsInherited=inherited,
        InheritanceFlags="ContainerInherit, ObjectInherit" if ace.inherit else "None",
        PropagationFlags="None",
    )  # fmt: skip


def get_acl(call: Call) -> None:
    for raw in as_list(call.get("Path") or call.get("LiteralPath")):
        path = norm_path(str(raw))
        host = call.host
        if not host.folder_exists(path) and host.file(path) is None:
            call.error(f"Cannot find path '{raw}' because it does not exist.", "PathNotFound",
                       "ObjectNotFound", str(raw),
                       "System.Management.Automation.ItemNotFoundException")  # fmt: skip
            continue
        explicit = {id(a) for a in host.ntfs_acls.get(path.lower(), [])}
        rules = [_rule(a, id(a) not in explicit) for a in call.world.ntfs_acl(host, path)]
        text = "\n".join(f"{r['IdentityReference']} Allow  {r['FileSystemRights']}" for r in rules)
        call.out(ps_object(
            ["System.Security.AccessControl.DirectorySecurity",
             "System.Security.AccessControl.FileSystemSecurity",
             "System.Security.AccessControl.NativeObjectSecurity",
             "System.Security.AccessControl.CommonObjectSecurity",
             "System.Security.AccessControl.ObjectSecurity"],
            Path=f"Microsoft.PowerShell.Core\\FileSystem::{path}", Owner="BUILTIN\\Administrators",
            Group="NT AUTHORITY\\SYSTEM", Access=rules, AccessToString=text,
        ))  # fmt: skip
