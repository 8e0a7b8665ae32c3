"""Shared storage activities: the SMB share (folder + New-SmbShare), its share ACL
(Grant-SmbShareAccess), NTFS rights with inheritance (icacls via host/ntfs-grant), and the
compensations that remove the share and revoke share access.

Each activity probes, compares, acts only when the host differs, verifies, and returns
``changed`` with the observed state. The ``*_command`` / ``*_script`` functions build the
exact commands the activities emit (the catalogue test binds every command).
"""

from __future__ import annotations

from typing import Any

from temporalio import activity

from activities.base import SILENT, Remote, application_errors, conflict, not_found, verify_failed
from activities.host import new_folders_command, path_exists_command
from activities.models import (
    NtfsGrant,
    NtfsInput,
    RemoveShareInput,
    RevokeAccessInput,
    ShareAccessInput,
    ShareGrant,
    ShareInput,
    StepResult,
)
from hvlab.powershell.command import SWITCH, Command, Script
from hvlab.powershell.endpoints import EndpointSource
from hvlab.powershell.session import SessionPool

NTFS_RIGHT = {"F": "FullControl", "M": "Modify", "RX": "ReadAndExecute"}
INHERIT_FLAGS = {"ContainerInherit", "ObjectInherit"}


# -- commands ------------------------------------------------------------------------------


def get_share_command(name: str) -> Command:
    return Command.of("Get-SmbShare", Name=name, ErrorAction=SILENT)


def new_share_command(request: ShareInput) -> Command:
    return Command.of("New-SmbShare", Name=request.name, Path=request.path,
                      FullAccess=list(request.full_access) or None,
                      ChangeAccess=list(request.change_access) or None,
                      ReadAccess=list(request.read_access) or None)


def remove_share_command(name: str) -> Command:
    return Command.of("Remove-SmbShare", Name=name, Force=SWITCH)


def get_share_access_command(name: str) -> Command:
    return Command.of("Get-SmbShareAccess", Name=name)


def grant_share_access_command(name: str, accounts: list[str], right: str) -> Command:
    return Command.of("Grant-SmbShareAccess", Name=name, AccountName=list(accounts),
                      AccessRight=right, Force=SWITCH)


def revoke_share_access_command(name: str, accounts: list[str]) -> Command:
    return Command.of("Revoke-SmbShareAccess", Name=name, AccountName=list(accounts),
                      Force=SWITCH)


def get_acl_command(path: str) -> Command:
    return Command.of("Get-Acl", Path=path)


def ntfs_grant_script(path: str, grant: NtfsGrant, inherit: bool) -> Script:
    """icacls /grant:r ACCOUNT:(OI)(CI)RIGHTS (the (OI)(CI) only with ``inherit``)."""
    parameters: dict[str, Any] = {"Path": path, "Account": grant.account,
                                  "Rights": grant.rights}
    if inherit:
        parameters["Inherit"] = SWITCH
    return Script(name="host/ntfs-grant", parameters=parameters)


# -- helpers -------------------------------------------------------------------------------


def _same(a: Any, b: str) -> bool:
    return str(a or "").rstrip("\\").lower() == b.rstrip("\\").lower()


def _text(value: Any) -> str:
    """A deserialized value as text (an NTAccount arrives as an object with ``Value``)."""
    if isinstance(value, dict):
        return str(value.get("Value", ""))
    return "" if value is None else str(value)


def _tokens(value: Any) -> set[str]:
    return {t.strip() for t in _text(value).split(",") if t.strip()}


def share_view(share: dict[str, Any]) -> dict[str, Any]:
    return {"name": share.get("Name"), "path": share.get("Path")}


def ace_view(ace: dict[str, Any]) -> dict[str, str]:
    return {"account": _text(ace.get("AccountName")), "type": _text(ace.get("AccessControlType")),
            "right": _text(ace.get("AccessRight"))}


def has_share_grant(aces: list[dict[str, str]], grant: ShareGrant) -> bool:
    return any(a["account"].lower() == grant.account.lower() and a["type"] == "Allow"
               and a["right"] == grant.access for a in aces)


def ntfs_rules(acl: dict[str, Any]) -> list[dict[str, Any]]:
    """Explicit allow rules of a Get-Acl result as account / rights / inherit; when the
    rules arrive as text only (serialization depth), AccessToString without inheritance."""
    rules = acl.get("Access") or []
    if all(isinstance(r, dict) for r in rules):
        return [{"account": _text(r.get("IdentityReference")),
                 "rights": _tokens(r.get("FileSystemRights")),
                 "inherit": _tokens(r.get("InheritanceFlags")) >= INHERIT_FLAGS}
                for r in rules
                if _text(r.get("AccessControlType")) == "Allow" and not r.get("IsInherited")]
    out = []
    for line in _text(acl.get("AccessToString")).splitlines():
        account, _, rest = line.partition(" Allow ")
        if rest:
            out.append({"account": account.strip(), "rights": _tokens(rest), "inherit": None})
    return out


def has_ntfs_grant(rules: list[dict[str, Any]], grant: NtfsGrant, inherit: bool) -> bool:
    return any(r["account"].lower() == grant.account.lower()
               and NTFS_RIGHT[grant.rights] in r["rights"]
               and r["inherit"] in (inherit, None) for r in rules)


class StorageActivities:
    """SMB share and ACL steps on the share's host."""

    def __init__(self, sessions: SessionPool, endpoints: EndpointSource) -> None:
        self._remote = Remote(sessions, endpoints)

    def _share(self, host: str, name: str) -> dict[str, Any] | None:
        return self._remote.query_one(host, get_share_command(name))

    def _existing_share(self, host: str, name: str) -> dict[str, Any]:
        share = self._share(host, name)
        if share is None:
            raise not_found(host, f"SMB share {name}")
        return share

    # -- share ---------------------------------------------------------------------------
    @activity.defn(name="storage.share")
    def share(self, request: ShareInput) -> StepResult:
        """Create the folder and the share (with its initial FullAccess/ChangeAccess/
        ReadAccess) unless a share of that name exists; on another path that is a Conflict."""
        with application_errors():
            return self._create_share(request)

    def _create_share(self, request: ShareInput) -> StepResult:
        found = self._share(request.host, request.name)
        if found is not None:
            if not _same(found.get("Path"), request.path):
                raise conflict(request.host, f"share {request.name} exists on "
                               f"{found.get('Path')}, not {request.path}; remove it first")
            return StepResult(changed=False, observed=share_view(found))
        folder = self._remote.query(request.host, path_exists_command([request.path])) != [True]
        if folder:
            self._remote.run(request.host, new_folders_command([request.path]))
        self._remote.run(request.host, new_share_command(request))
        after = self._share(request.host, request.name)
        if after is None or not _same(after.get("Path"), request.path):
            raise verify_failed(request.host, f"share {request.name} is not there", after)
        return StepResult(changed=True, observed={**share_view(after), "created_folder": folder})

    # -- share ACL -----------------------------------------------------------------------
    @activity.defn(name="storage.share_access")
    def share_access(self, request: ShareAccessInput) -> StepResult:
        """Grant-SmbShareAccess for every grant the share's ACL lacks (one call per right)."""
        with application_errors():
            return self._share_access(request)

    def _aces(self, host: str, name: str) -> list[dict[str, str]]:
        output = self._remote.query(host, get_share_access_command(name))
        return [ace_view(o) for o in output if isinstance(o, dict)]

    def _share_access(self, request: ShareAccessInput) -> StepResult:
        self._existing_share(request.host, request.name)
        aces = self._aces(request.host, request.name)
        missing = [g for g in request.grants if not has_share_grant(aces, g)]
        for right in dict.fromkeys(g.access for g in missing):
            accounts = [g.account for g in missing if g.access == right]
            self._remote.run(request.host,
                             grant_share_access_command(request.name, accounts, right))
        after = self._aces(request.host, request.name)
        still = [g.account for g in request.grants if not has_share_grant(after, g)]
        if still:
            raise verify_failed(request.host, f"share {request.name} lacks grants", still)
        return StepResult(changed=bool(missing), observed={
            "granted": [g.account for g in missing], "access": after})

    # -- NTFS ----------------------------------------------------------------------------
    @activity.defn(name="storage.ntfs")
    def ntfs(self, request: NtfsInput) -> StepResult:
        """Grant each account its NTFS rights on the folder (inherited by subfolders and
        files with ``inherit``) unless an explicit allow entry already matches."""
        with application_errors():
            return self._ntfs(request)

    def _rules(self, host: str, path: str) -> list[dict[str, Any]]:
        acl = self._remote.query_one(host, get_acl_command(path))
        if acl is None:
            raise not_found(host, f"folder {path}")
        return ntfs_rules(acl)

    def _ntfs(self, request: NtfsInput) -> StepResult:
        rules = self._rules(request.host, request.path)
        missing = [g for g in request.grants if not has_ntfs_grant(rules, g, request.inherit)]
        for grant in missing:
            self._remote.script(request.host,
                                ntfs_grant_script(request.path, grant, request.inherit))
        after = self._rules(request.host, request.path)
        still = [g.account for g in request.grants
                 if not has_ntfs_grant(after, g, request.inherit)]
        if still:
            raise verify_failed(request.host, f"{request.path} lacks NTFS grants", still)
        return StepResult(changed=bool(missing), observed={
            "granted": [g.account for g in missing],
            "rules": [{**r, "rights": sorted(r["rights"])} for r in after]})

    # -- compensations -------------------------------------------------------------------
    @activity.defn(name="storage.remove_share")
    def remove_share(self, request: RemoveShareInput) -> StepResult:
        """Compensation of storage.share: remove the share (the folder and its files stay);
        already gone is success."""
        with application_errors():
            if self._share(request.host, request.name) is None:
                return StepResult(changed=False, observed={"absent": True})
            self._remote.run(request.host, remove_share_command(request.name))
            if self._share(request.host, request.name) is not None:
                raise verify_failed(request.host, f"share {request.name} is still there", True)
            return StepResult(changed=True, observed={"absent": True})

    @activity.defn(name="storage.revoke_access")
    def revoke_access(self, request: RevokeAccessInput) -> StepResult:
        """Compensation of storage.share_access: revoke the accounts' share access; accounts
        without access, or no share at all, count as done."""
        with application_errors():
            return self._revoke(request)

    def _holders(self, request: RevokeAccessInput) -> list[str]:
        wanted = {a.lower() for a in request.accounts}
        aces = self._aces(request.host, request.name)
        return list(dict.fromkeys(a["account"] for a in aces
                                  if a["account"].lower() in wanted and a["type"] == "Allow"))

    def _revoke(self, request: RevokeAccessInput) -> StepResult:
        if self._share(request.host, request.name) is None:
            return StepResult(changed=False, observed={"absent": True, "revoked": []})
        holders = self._holders(request)
        if holders:
            self._remote.run(request.host, revoke_share_access_command(request.name, holders))
            still = self._holders(request)
            if still:
                raise verify_failed(request.host, f"share {request.name} still grants", still)
        return StepResult(changed=bool(holders), observed={"revoked": holders})

    def all(self) -> list[Any]:
        """The bound activity methods, for worker registration."""
        return [self.share, self.share_access, self.ntfs, self.remove_share, self.revoke_access]
