"""Remote errors, classified once at the PSRP edge.

Every failure of a remote step becomes one :class:`RemoteError` subclass with a stable
``type_name`` (the Temporal ``ApplicationError.type``), the host, the command (as described,
never with secrets) and the host's own message. Transient kinds are retried by Temporal;
permanent ones fail fast as non-retryable errors.
"""

from __future__ import annotations

import re
from typing import ClassVar


class RemoteError(Exception):
    """A remote step failed; ``retryable`` says whether trying again can help."""

    retryable: ClassVar[bool] = False
    fix: ClassVar[str] = ""

    def __init__(self, host: str, command: str, message: str) -> None:
        self.host = host
        self.command = command
        self.host_message = message
        text = f"{host}: {command}: {message}" if command else f"{host}: {message}"
        if self.fix:
            text += f" (fix: {self.fix})"
        super().__init__(text)

    @property
    def type_name(self) -> str:
        return type(self).__name__


class HostUnreachable(RemoteError):
    retryable = True


class HostRebooting(RemoteError):
    retryable = True


class TransientRemoteError(RemoteError):
    retryable = True


class AuthenticationFailed(RemoteError):
    fix = "check the credential's user name and secret for this host"


class BootstrapCredentialMissing(AuthenticationFailed):
    """A host the lab joins to the domain, reached without a bootstrap credential, refused the
    connection credential: before the join only its local accounts log on."""

    fix = (
        "until a host is joined, only its local accounts log on: add "
        "`bootstrap_credential: <credential of the host's local Administrator>` to the host in "
        "the lab file (e.g. `bootstrap_credential: local-admin` with its secret set for the "
        "worker), or check the secret of the connection credential"
    )


class CredentialUnavailable(RemoteError):
    fix = "set the environment variable or secrets file the lab's credential refers to"


class InsecureTransport(RemoteError):
    fix = "use HTTPS, or mark the host `insecure: true` for a rehearsal lab"


class DelegationMissing(RemoteError):
    fix = (
        "add Kerberos constrained delegation (cifs and 'Microsoft Virtual System Migration "
        "Service') with 'use any authentication protocol' on the source host, then purge tickets"
    )


class InsufficientMemory(RemoteError):
    fix = "free memory on the host or lower the VM's startup memory"


class IncompatibleHost(RemoteError):
    fix = "enable processor compatibility (VM off) or use hosts of the same CPU family"


class SwitchMissing(RemoteError):
    fix = "create a virtual switch of the same name on the destination host"


class AccessDenied(RemoteError):
    fix = "grant the host computer account share and NTFS rights, and cifs delegation"


class InvalidParameter(RemoteError):
    pass


class CommandNotFound(RemoteError):
    fix = "install the feature that provides this cmdlet (and reboot), or use another host"


class NotFound(RemoteError):
    pass


class AlreadyExists(RemoteError):
    pass


class PreconditionFailed(RemoteError):
    pass


class VirtualizationUnavailable(RemoteError):
    fix = "expose hardware virtualization (VT-x/EPT) to the host"


class GuestUnsupported(RemoteError):
    pass


class RemoteCommandFailed(RemoteError):
    """A host error that matches no known kind; not retried (the host said no)."""


# (pattern on message or error id, class); the first match wins.
_RULES: tuple[tuple[re.Pattern[str], type[RemoteError]], ...] = tuple(
    (re.compile(p, re.IGNORECASE), c)
    for p, c in (
        (r"0x8009030E|no suitable credentials|No credentials are available", DelegationMissing),
        (r"0x800705AA|Insufficient system resources|Not enough memory", InsufficientMemory),
        (r"hardware on the destination computer is not compatible", IncompatibleHost),
        (r"Could not find Ethernet switch|\b33012\b", SwitchMissing),
        (r"0x80070005|access denied|Access is denied|UnauthorizedAccess", AccessDenied),
        (r"virtualization capabilities|second level address translation",
         VirtualizationUnavailable),
        (r"CommandNotFoundException|is not recognized as the name of a cmdlet", CommandNotFound),
        (r"A remote session might have ended|PowerShell Direct", GuestUnsupported),
        (r"ParameterBinding|NamedParameterNotFound|ParameterArgumentValidation|"
         r"MissingMandatoryParameter|AmbiguousParameterSet|CannotConvertArgument|"
         r"Cannot bind parameter|Cannot validate argument", InvalidParameter),
        (r"unable to find|ObjectNotFound|was not found|does not exist|cannot find|"
         r"0x80041002", NotFound),  # WBEM_E_NOT_FOUND: a CIM instance that is gone
        (r"already exists|ResourceExists", AlreadyExists),
        (r"is being used by running virtual machines|invalid state|cannot be performed while|"
         r"InvalidOperation", PreconditionFailed),
    )
)


def classify_message(host: str, command: str, message: str, error_id: str = "") -> RemoteError:
    """The RemoteError for a host's error text (and its FullyQualifiedErrorId)."""
    haystack = f"{error_id}\n{message}"
    for pattern, kind in _RULES:
        if pattern.search(haystack):
            return kind(host, command, message)
    return RemoteCommandFailed(host, command, message)
