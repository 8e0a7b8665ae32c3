"""The lab's accounts and where each one can log on (see docs/simulator-fidelity.md, "Accounts").

Every account has its own password, taken from the lab's credential references:

- *domain accounts* (held by the DC): the user of every credential whose user name carries the
  lab's domain (``KOSA\\Administrator``, ``administrator@kosa.vm``), and the domain's
  Administrator (``domain.admin_credential``);
- *local accounts* of a member or workgroup host: its built-in ``Administrator`` (the password
  of the host's ``bootstrap_credential``, else one of its own that the lab file does not know,
  as on a freshly installed host) and the user of a connection credential without a domain.
  A domain controller has no local accounts: its account database is the domain's.

An NTLM logon names ``DOMAIN`` and ``user``; which database answers follows Windows' network
logon rules (KB 103390, KB 163632): the host's own domain goes to the DC (only once the host is
joined), no domain or the host's own name to the local accounts first, and a domain the host
does not know (every domain, on a workgroup host) falls back to the local account of the same
name, which authenticates only with the local account's own password.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from hvlab.spec import HostRole, LabSpec
from simulator.world import Host

# a reference's password when the lab's resolution has none for it (the fleet generates one)
Resolve = Callable[[str], str | None]


def split_account(name: str) -> tuple[str, str]:
    """``(domain, user)`` of ``DOMAIN\\user``, ``user@realm`` or ``user`` (domain "" then)."""
    if "\\" in name:
        domain, _, user = name.rpartition("\\")
        return domain, user
    if "@" in name:
        user, _, realm = name.partition("@")
        return realm, user
    return "", name


@dataclass(frozen=True)
class Account:
    """One account that can log on: its name as configured, its password and where it lives."""

    name: str
    password: str = field(repr=False)
    scope: str  # "domain" or the host's name (local account)


@dataclass
class Accounts:
    """Every account of the lab with its password, and the logon rules."""

    netbios: str = ""
    fqdn: str = ""
    domain: dict[str, Account] = field(default_factory=dict)  # user (lower) -> account
    local: dict[str, dict[str, Account]] = field(default_factory=dict)  # HOST -> user -> acct

    # -- building ----------------------------------------------------------------------------
    def is_lab_domain(self, domain: str) -> bool:
        return bool(domain) and domain.lower() in (self.netbios.lower(), self.fqdn.lower())

    def add_domain(self, user: str, password: str) -> None:
        self.domain.setdefault(user.lower(), Account(user, password, "domain"))

    def add_local(self, host: str, user: str, password: str) -> None:
        self.local.setdefault(host.upper(), {}).setdefault(
            user.lower(), Account(user, password, host.upper()))

    @classmethod
    def from_spec(cls, spec: LabSpec, password: Callable[[str], str]) -> Accounts:
        """The lab's accounts; ``password(reference)`` is each credential reference's value."""
        accounts = cls(netbios=spec.domain.netbios, fqdn=spec.domain.fqdn)

        def credential(name: str | None) -> tuple[str, str, str] | None:
            cred = spec.credentials.get(name) if name else None
            if cred is None:
                return None
            domain, user = split_account(cred.username)
            return domain, user, password(cred.secret)

        admin = credential(spec.domain.admin_credential)
        if admin is not None:
            accounts.add_domain(admin[1], admin[2])
        for cred in spec.credentials.values():
            domain, user = split_account(cred.username)
            if accounts.is_lab_domain(domain):
                accounts.add_domain(user, password(cred.secret))
        for host in spec.hosts:
            if host.role is HostRole.dc:
                continue
            for name in (host.bootstrap_credential, host.connection.credential):
                local = credential(name)
                if local is not None and _names_local(local[0], host.name):
                    accounts.add_local(host.name, local[1], local[2])
            # a fresh host's own Administrator password, unknown to a lab without a bootstrap
            accounts.add_local(host.name, "Administrator", secrets.token_urlsafe(18))
        return accounts

    # -- logging on --------------------------------------------------------------------------
    def logon(self, host: Host, domain: str, user: str) -> Account | None:
        """The account an NTLM network logon as ``domain\\user`` is checked against on ``host``
        in its current state (None: no such account, the logon fails)."""
        if "@" in user and not domain:
            domain, user = split_account(user)
        key = user.lower()
        local_names = ("", ".", host.name.lower())
        if host.role == "dc":
            if domain.lower() in local_names or self.is_lab_domain(domain):
                return self.domain.get(key)
            return None
        joined = host.domain is not None
        local = self.local.get(host.name.upper(), {}).get(key)
        if self.is_lab_domain(domain) and joined:
            return self.domain.get(key)  # pass-through to the DC
        if domain.lower() in local_names:
            return local or (self.domain.get(key) if joined else None)
        # a domain the host does not know (any domain, before the join): the local account of
        # the same name, which only its own password opens
        return local

    def domain_logon(self, name: str, password: str) -> Account | None:
        """The domain account ``name`` (``KOSA\\user``, ``user@kosa.vm`` or ``user``) when
        ``password`` is its password (what a DC checks for Add-Computer's -Credential)."""
        domain, user = split_account(name)
        if domain and not self.is_lab_domain(domain):
            return None
        account = self.domain.get(user.lower())
        if account is None or not secrets.compare_digest(account.password.encode(),
                                                          password.encode()):
            return None
        return account


def _names_local(domain: str, host: str) -> bool:
    return domain.lower() in ("", ".", host.lower())


def reference_passwords(
    spec: LabSpec, resolve: Resolve, fallback: str | None = None
) -> tuple[dict[str, str], dict[str, str]]:
    """``(every reference's password, the ones generated)``: the lab's resolution where it has a
    value, else ``fallback`` or a distinct generated password per reference."""
    values: dict[str, str] = {}
    generated: dict[str, str] = {}
    for cred in spec.credentials.values():
        if cred.secret in values:
            continue
        value = resolve(cred.secret)
        if value is None:
            value = fallback or secrets.token_urlsafe(18)
            generated[cred.secret] = value
        values[cred.secret] = value
    return values, generated


def lookup_from(accounts: Accounts, host: Callable[[], Host | None]) -> Callable[
        [str, str], tuple[str, str] | None]:
    """A WinRM listener's account lookup for one host: ``(domain, user) -> (name, password)``
    under the host's state at the time of the logon."""

    def lookup(domain: str, user: str) -> tuple[str, str] | None:
        current = host()
        account = accounts.logon(current, domain, user) if current is not None else None
        return (account.name, account.password) if account is not None else None

    return lookup
