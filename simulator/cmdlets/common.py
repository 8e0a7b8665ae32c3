"""Small helpers shared by cmdlet modules."""

from __future__ import annotations

from typing import Any

from simulator.core import Call
from simulator.world import Host, World, is_unc, norm_path

ADMIN_ACCOUNTS = ("everyone", "builtin\\administrators", "administrators")
WRITE_RIGHTS = {"full", "change", "fullcontrol", "modify", "write"}


def as_list(value: Any) -> list[Any]:
    """A parameter value as a list (string[] parameters may arrive as one string)."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


class PathDenied(Exception):
    """The session may not touch that path (second hop without delegation, share rights)."""


class PathMissing(Exception):
    """The path's share or server does not exist."""


def session_locate(call: Call, path: str, *, write: bool = False) -> tuple[Host, str]:
    """Where ``path`` used in this remote session lives, checking the second hop for UNC.

    A session on SVRx reaching ``\\\\DC1\\share`` is a second hop: it works only with Kerberos
    constrained delegation of SVRx to cifs/DC1 with protocol transition (the session was
    authenticated by NTLM/WinRM), and the user needs share + NTFS rights.
    """
    if not is_unc(path):
        return call.host, norm_path(path)
    world = call.world
    hit = world.resolve_unc(path)
    if hit is None:
        raise PathMissing(path)
    server, local, share = hit
    if server.name != call.host.name and not world.delegates(call.host.name, "cifs", server.name):
        raise PathDenied(path)
    if write and not _user_may_write(world, share.share_acl):
        raise PathDenied(path)
    return server, local


def _user_may_write(world: World, aces: list[Any]) -> bool:
    names = {
        *ADMIN_ACCOUNTS,
        f"{world.ad.netbios}\\domain admins".lower(),
        f"{world.ad.netbios}\\administrator".lower(),
    }
    return any(a.account.lower() in names and a.right.lower() in WRITE_RIGHTS for a in aces)
