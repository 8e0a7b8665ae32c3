"""HTTP authentication for the simulated WinRM listener: NTLM/Negotiate with message encryption,
and Basic on loopback.

NTLM is connection-based, exactly as on Windows: every TCP connection carries its own acceptor
context (pyspnego ``spnego.server(protocol="negotiate")``, which accepts raw NTLM tokens as
pypsrp's ``auth="ntlm"`` sends them and SPNEGO-wrapped ones from ``auth="negotiate"``).

pyspnego's pure-Python NTLM acceptor reads account hashes from the file named by the
``NTLM_USER_FILE`` environment variable. That variable is process-global while every simulated
host has its own accounts: importing this module points it, once and for good, at a scratch
file, and each acceptor step runs under one module lock with that file holding exactly the
account the client's AUTHENTICATE message names (its domain as sent, the password of the
account the logon is checked against). With a fixed user map any domain is accepted and the user
part is matched case-insensitively; the fleet decides per logon which account (local or
domain) a ``DOMAIN\\user`` names on the host as it is then (:mod:`simulator.accounts`).

The variable is set at import and never changed afterwards on purpose: other threads (requests
resolving proxies, for one) iterate ``os.environ``, and removing a key under them raises.
"""

from __future__ import annotations

import atexit
import base64
import binascii
import contextlib
import hmac
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import spnego
from pypsrp.encryption import WinRMEncryption
from spnego._ntlm_raw.crypto import lmowfv1, ntowfv1
from spnego._ntlm_raw.messages import Authenticate
from spnego.exceptions import SpnegoError

ENCRYPTED_CONTENT_TYPE = (
    'multipart/encrypted;protocol="application/HTTP-SPNEGO-session-encrypted";'
    'boundary="Encrypted Boundary"'
)
_NTLM_AUTHENTICATE = b"NTLMSSP\x00\x03\x00\x00\x00"
_NTLM_NEGOTIATE = b"NTLMSSP\x00\x01\x00\x00\x00"
_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)

_NTLM_LOCK = threading.Lock()


def _new_store() -> str:
    fd, path = tempfile.mkstemp(prefix="hvlab-sim-ntlm-", suffix=".txt")
    os.close(fd)
    atexit.register(_remove, path)
    return path


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


_STORE = _new_store()
os.environ["NTLM_USER_FILE"] = _STORE


class AuthFailed(Exception):
    """Credentials were rejected: answer HTTP 401."""


def user_part(name: str) -> str:
    """``user`` of ``DOMAIN\\user``, ``user@realm`` or ``user``."""
    return name.rsplit("\\", 1)[-1].split("@", 1)[0]


AccountLookup = Callable[[str, str], "tuple[str, str] | None"]


class UserDirectory:
    """The accounts one simulated host accepts: a fixed ``username -> password`` map (any
    domain), or ``accounts(domain, user)`` deciding per logon (the fleet's, which follows the
    host's domain membership: :mod:`simulator.accounts`)."""

    def __init__(
        self, users: Mapping[str, str] | None = None, *, accounts: AccountLookup | None = None
    ) -> None:
        self._users = {user_part(name).lower(): (name, pw) for name, pw in (users or {}).items()}
        self._accounts = accounts

    def lookup(self, name: str, domain: str = "") -> tuple[str, str] | None:
        """``(configured username, password)`` of the account a logon as ``domain\\name`` is
        checked against, if there is one."""
        if self._accounts is not None:
            if "\\" in name and not domain:
                domain, _, name = name.rpartition("\\")
            return self._accounts(domain, name)
        return self._users.get(user_part(name).lower())

    def check(self, name: str, password: str) -> str | None:
        """The configured username when ``password`` is right for ``name``."""
        entry = self.lookup(name)
        if entry is None or not hmac.compare_digest(entry[1].encode(), password.encode()):
            return None
        return entry[0]


def _authenticate_identity(token: bytes) -> tuple[str, str] | None:
    """``(domain, user)`` named by an NTLM AUTHENTICATE message in a raw or SPNEGO token."""
    start = token.find(_NTLM_AUTHENTICATE)
    if start < 0:
        return None
    try:
        msg = Authenticate.unpack(token[start:])
    except (ValueError, IndexError, UnicodeDecodeError):
        return None
    return msg.domain_name or "", msg.user_name or ""


def _smbpasswd_line(domain: str, user: str, password: str) -> str:
    """One smbpasswd-format entry (hashes avoid any escaping issue with the password)."""
    name = f"{domain}\\{user}" if domain else user
    lm = base64.b16encode(lmowfv1(password)).decode()
    nt = base64.b16encode(ntowfv1(password)).decode()
    return f"{name}:0:{lm}:{nt}:[U]:LCT-00000000\n"


@contextlib.contextmanager
def _user_file(content: str) -> Iterator[None]:
    """Hold the module lock with the NTLM_USER_FILE store holding ``content``."""
    with _NTLM_LOCK:
        if os.environ.get("NTLM_USER_FILE") != _STORE:  # someone changed it: take it back
            os.environ["NTLM_USER_FILE"] = _STORE
        with open(_STORE, "w", encoding="utf-8") as fh:
            fh.write(content)
        yield


@dataclass
class AuthStep:
    """Result of feeding one ``Authorization`` header to the connection."""

    authenticated: bool
    out_token: bytes | None = None


class ConnectionAuth:
    """Authentication and message-encryption state of one TCP connection."""

    def __init__(self, users: UserDirectory, allow_basic: bool) -> None:
        self._users = users
        self._allow_basic = allow_basic
        self._context: Any = None
        self._encryption: WinRMEncryption | None = None
        self.username: str | None = None

    @property
    def negotiated(self) -> bool:
        """True once an NTLM/Negotiate context completed on this connection."""
        return self._encryption is not None

    def authorize(self, header: str | None) -> AuthStep:
        """Process an ``Authorization`` header (None: rely on the connection's context)."""
        if not header:
            return AuthStep(self.negotiated)
        scheme, _, value = header.strip().partition(" ")
        scheme = scheme.lower()
        if scheme == "basic":
            return self._basic(value.strip())
        if scheme in ("negotiate", "ntlm"):
            return self._negotiate(_b64(value.strip()))
        raise AuthFailed(f"unsupported scheme {scheme}")

    def _basic(self, value: str) -> AuthStep:
        if not self._allow_basic:
            raise AuthFailed("Basic authentication is disabled")
        user, sep, password = _b64(value).decode("utf-8", "replace").partition(":")
        name = self._users.check(user, password) if sep else None
        if name is None:
            raise AuthFailed("bad Basic credentials")
        self.username = name
        return AuthStep(True)

    def _negotiate(self, token: bytes) -> AuthStep:
        identity = _authenticate_identity(token)
        content = ""
        entry = None
        if identity is not None:
            entry = self._users.lookup(identity[1], identity[0])
            if entry is not None:
                content = _smbpasswd_line(identity[0], identity[1], entry[1])
        with _user_file(content):
            if self._context is None or _NTLM_NEGOTIATE in token:
                self._context = spnego.server(protocol="negotiate")
                self._encryption = None
                self.username = None
            try:
                out = self._context.step(token)
            except SpnegoError as exc:
                self._context = None
                raise AuthFailed(str(exc)) from exc
        if not self._context.complete:
            return AuthStep(False, out)
        if entry is None:  # defensive: pyspnego only completes for a known account
            self._context = None
            raise AuthFailed("unknown account")
        self.username = entry[0]
        self._encryption = WinRMEncryption(self._context, WinRMEncryption.SPNEGO)
        return AuthStep(True, out)

    def unwrap(self, body: bytes, content_type: str) -> bytes:
        """Decrypt a ``multipart/encrypted`` request body."""
        if self._encryption is None:
            raise AuthFailed("encrypted body without a negotiated context")
        match = _BOUNDARY.search(content_type)
        boundary = match.group(1) if match else "Encrypted Boundary"
        return bytes(self._encryption.unwrap_message(body, boundary))

    def wrap(self, body: bytes) -> tuple[str, bytes]:
        """Encrypt a response body; returns ``(content type, payload)``."""
        if self._encryption is None:
            raise AuthFailed("no negotiated context to encrypt with")
        return ENCRYPTED_CONTENT_TYPE, bytes(self._encryption.wrap_message(body)[1])


def _b64(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AuthFailed("malformed authorization token") from exc
