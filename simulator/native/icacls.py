"""icacls: display, grant and remove NTFS permissions (the ACLs Get-Acl and SMB access see).

Modelled forms (``PATH`` local or UNC; options ``/t``, ``/c``, ``/q`` anywhere after it):

- ``icacls PATH``: the effective ACL (explicit entries, then inherited ones marked ``(I)``);
- ``icacls PATH /grant[:r] ACCOUNT:PERM [ACCOUNT:PERM ...]`` with ``PERM`` a simple right
  (``F``, ``M``, ``RX``, ``R``, ``W``) optionally preceded by ``(OI)(CI)`` (both or neither:
  the world keeps "inherits to files and folders" or nothing);
- ``icacls PATH /remove[:g] ACCOUNT [ACCOUNT ...]``.

Exit codes: 0; 2 (path not found); 5 (access denied: a UNC path on another host without
delegation of cifs to it, or share rights that do not allow writing); 1332 (account does not
map to a SID); 87 (a permission that is no icacls syntax). The per-file error goes to standard
error, the summary line to standard output.
"""

from __future__ import annotations

import re

from simulator.native.run import NativeRun, NotModelled
from simulator.world import Ace, Host, norm_path

RIGHTS = {"F": "FullControl", "M": "Modify", "RX": "ReadAndExecute", "R": "Read", "W": "Write"}
LETTERS = {v.lower(): k for k, v in RIGHTS.items()}
# what each simple right includes (for /grant without :r, which adds to an explicit grant)
INCLUDES = {"F": set("rxwdc"), "M": set("rxwd"), "RX": set("rx"), "R": set("r"), "W": set("w")}
_PERM = re.compile(r"^((?:\((?:OI|CI|IO|NP|I)\))*)(\([A-Z,]+\)|[A-Z]+)$", re.IGNORECASE)
SUMMARY = "Successfully processed {ok} files; Failed processing {failed} files"
ERRORS = {
    2: "The system cannot find the file specified.",
    5: "Access is denied.",
    1332: "No mapping between account names and security IDs was done.",
}


def _fail(r: NativeRun, subject: str, code: int) -> int:
    r.err(f"{subject}: {ERRORS[code]}")
    r.out(SUMMARY.format(ok=0, failed=1))
    return code


def _parse_perm(text: str) -> tuple[str, bool] | None:
    """``(right letter, inherit)`` of a permission, None when it is no icacls syntax."""
    match = _PERM.match(text)
    if match is None:
        return None
    flags = {f.upper() for f in re.findall(r"\((\w+)\)", match.group(1))}
    right = match.group(2).upper()
    if right.startswith("("):
        raise NotModelled("specific rights lists are not modelled")
    if right not in RIGHTS:
        if right in ("N", "D"):
            raise NotModelled(f"the right {right} is not modelled")
        return None
    if flags not in (set(), {"OI", "CI"}):
        raise NotModelled("only (OI)(CI) or no inheritance flags are modelled")
    return right, flags == {"OI", "CI"}


def run(r: NativeRun) -> int:
    from simulator.cmdlets.common import PathDenied, PathMissing, session_locate
    from simulator.cmdlets.directory import resolve_account

    if not r.args:
        raise NotModelled("icacls without a path")
    raw, rest = r.args[0], r.args[1:]
    options = {a.lower() for a in rest if a.lower() in ("/t", "/c", "/q")}
    rest = [a for a in rest if a.lower() not in ("/t", "/c", "/q")]
    action = rest[0].lower() if rest else ""
    if action not in ("", "/grant", "/grant:r", "/remove", "/remove:g") or (
        action and len(rest) < 2
    ):
        raise NotModelled("modelled: icacls PATH [/grant[:r] ACCOUNT:PERM | /remove[:g] ACCOUNT]")
    grants: list[tuple[str, str, bool]] = []
    for item in rest[1:]:
        if action.startswith("/grant"):
            account, sep, perm = item.rpartition(":")
            parsed = _parse_perm(perm) if sep and account else None
            if parsed is None:
                r.out(f'Invalid parameter "{item}"')
                return 87
            grants.append((account, *parsed))
        else:
            grants.append((item, "", False))
    try:
        server, local = session_locate(r, raw, write=bool(action))  # type: ignore[arg-type]
    except PathDenied:
        return _fail(r, raw, 5)
    except PathMissing:
        return _fail(r, raw, 2)
    if not server.folder_exists(local) and server.file(local) is None:
        return _fail(r, raw, 2)
    if not action:
        return _show(r, server, local, raw, "/t" in options)
    resolved = []
    for account, right, inherit in grants:
        name = resolve_account(r.world, r.host, account)
        if name is None:
            return _fail(r, account, 1332)
        resolved.append((name, right, inherit))
    targets = [(local, raw)]
    if "/t" in options:
        targets += _below(server, local, raw)
    for path, _ in targets:
        _apply(server, path, action, resolved)
    if "/q" not in options:
        r.out(*(f"processed file: {shown}" for _, shown in targets))
    r.out(SUMMARY.format(ok=len(targets), failed=0))
    return 0


def _below(server: Host, local: str, raw: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pending = [(local, raw)]
    while pending:
        path, shown = pending.pop(0)
        for child in server.children(path):
            name = norm_path(child).rsplit("\\", 1)[-1]
            entry = (norm_path(child), shown.rstrip("\\") + "\\" + name)
            out.append(entry)
            pending.append(entry)
    return out


def _apply(server: Host, path: str, action: str, grants: list[tuple[str, str, bool]]) -> None:
    acls = server.ntfs_acls
    key = norm_path(path).lower()
    aces: list[Ace] = list(acls.get(key, []))
    for account, right, inherit in grants:
        mine = [a for a in aces if a.account.lower() == account.lower()]
        if action.startswith("/remove"):
            aces = [a for a in aces if a not in mine]
            continue
        if action == "/grant:r":
            aces = [a for a in aces if a not in mine]
            mine = []
        same = next((a for a in mine if a.inherit == inherit), None)
        if same is not None:
            old = LETTERS.get(same.right.lower())
            if old is not None and INCLUDES[old] >= INCLUDES[right]:
                continue
            if old is not None and INCLUDES[right] >= INCLUDES[old]:
                same.right = RIGHTS[right]
                continue
        aces.append(Ace(account=account, right=RIGHTS[right], inherit=inherit))
    if aces:
        acls[key] = aces
    else:
        acls.pop(key, None)


def _show(r: NativeRun, server: Host, local: str, raw: str, recurse: bool) -> int:
    targets = [(local, raw)] + (_below(server, local, raw) if recurse else [])
    for path, shown in targets:
        explicit = {id(a) for a in server.ntfs_acls.get(norm_path(path).lower(), [])}
        is_dir = server.folder_exists(path)
        entries = []
        for ace in r.world.ntfs_acl(server, path):
            flags = "" if id(ace) in explicit else "(I)"
            if ace.inherit and is_dir:
                flags += "(OI)(CI)"
            letter = LETTERS.get(ace.right.lower(), ace.right)
            entries.append(f"{ace.account}:{flags}({letter})")
        pad = " " * (len(shown) + 1)
        r.out(f"{shown} {entries[0]}", *(pad + e for e in entries[1:]), "")
    r.out(SUMMARY.format(ok=len(targets), failed=0))
    return 0
