"""klist: list and purge Kerberos tickets of a logon session.

Modelled forms (either order of ``-li`` and the subcommand):

- ``klist [tickets]`` / ``klist purge``: the session's own logon (a WinRM network logon: it
  holds no tickets);
- ``klist purge -li 0x3e7`` (also 0x3e4, 0x3e5, the session's own LUID): purges that logon
  session's tickets; for 0x3e7 (the computer account, SYSTEM) the next tickets the host gets
  reflect the directory's current delegation settings (:func:`purge_tickets`).

The tickets of another logon session are not modelled (``klist -li 0x3e7 [tickets]``).
"""

from __future__ import annotations

import hashlib

from simulator.native.run import NativeRun, NotModelled

SYSTEM = 0x3E7
KNOWN = {SYSTEM, 0x3E4, 0x3E5}  # SYSTEM, NETWORK SERVICE, LOCAL SERVICE


def session_luid(session: str) -> int:
    """A stable low part of the LUID of the session's (network) logon."""
    return 0x100000 + int(hashlib.sha256(session.encode()).hexdigest()[:5], 16)


def _luid(text: str) -> int:
    low = text.lower()
    try:
        return int(low[2:] if low.startswith("0x") else low, 16)
    except ValueError:
        raise NotModelled(f"-li {text} is not a hexadecimal LUID") from None


def run(r: NativeRun) -> int:
    sub: str | None = None
    target: int | None = None
    args = list(r.args)
    while args:
        word = args.pop(0)
        low = word.lower().replace("\u2013", "-")
        if low == "-li" and args:
            target = _luid(args.pop(0))
        elif low in ("tickets", "purge") and sub is None:
            sub = low
        else:
            raise NotModelled("modelled: klist [tickets|purge] [-li 0x3e7]")
    own = session_luid(r.session)
    if target is not None and target not in KNOWN | {own}:
        raise NotModelled(f"logon session 0x{target:x} is not modelled")
    lines = ["", f"Current LogonId is 0:0x{own:x}"]
    if target is not None:
        lines.append(f"Targeted LogonId is 0:0x{target:x}")
    if sub == "purge":
        r.out(*lines, "\tDeleting all tickets:", "\tTicket(s) purged!")
        if target == SYSTEM:
            from simulator.cmdlets.directory import purge_tickets

            purge_tickets(r.host, r.now())
        return 0
    if target is not None and target != own:
        raise NotModelled("the tickets of another logon session are not modelled")
    r.out(*lines, "", "Cached Tickets: (0)", "")
    return 0
