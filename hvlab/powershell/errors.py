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
    error_id: str = ""  # the host's FullyQualifiedErrorId, when the host gave one

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
    fix = ("check that the host is running and on the network and that its WinRM listener "
           "answers at the lab file's address and port (`hvlab doctor FILE`, with --sim for the "
           "simulated fleet)")


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


class CertificateMismatch(RemoteError):
    """The HTTPS listener's certificate does not name the address the lab file uses."""

    fix = ("put a name the certificate's SAN holds (usually the host's FQDN) in the host's "
           "`connection.address`, or issue a certificate whose SAN includes that address, or "
           "use `transport: http` (5985, Negotiate message encryption)")


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


# -- classification --------------------------------------------------------------------
#
# A host's error is classified by what does not change with the host's display language:
# HRESULTs (``0x80070005``, in the message or the id), the FullyQualifiedErrorId's error id
# (the part before the command's .NET type), the .NET exception type and the ErrorCategory.
# Never by the message's words: a Korean (or any non-English) Windows Server words every
# message differently (docs/simulator-fidelity.md, "Korean hosts").

_HRESULT = re.compile(r"(?<![0-9A-Za-z])0x([0-9A-Fa-f]{8})(?![0-9A-Za-z])")

# HRESULT -> kind; the first HRESULT of the text that has a kind decides
_BY_HRESULT: dict[int, type[RemoteError]] = {
    0x8009030E: DelegationMissing,  # SEC_E_NO_CREDENTIALS: no KCD / CredSSP without a logon
    0x800705AA: InsufficientMemory,  # ERROR_NO_SYSTEM_RESOURCES: cannot allocate the VM's RAM
    0x8007000E: InsufficientMemory,  # E_OUTOFMEMORY
    0x80070005: AccessDenied,  # E_ACCESSDENIED
    0x80041002: NotFound,  # WBEM_E_NOT_FOUND: a CIM instance that is gone
    0x80070002: NotFound,  # ERROR_FILE_NOT_FOUND
    0x80070003: NotFound,  # ERROR_PATH_NOT_FOUND
}

# FullyQualifiedErrorId error ids (before the first comma), lower-case -> kind
_BY_ERROR_ID: dict[str, type[RemoteError]] = {
    # Hyper-V's VirtualizationException ids follow the WMI return codes (Msvm_* methods:
    # Access Denied, Invalid state, Out of memory, ...)
    "outofmemory": InsufficientMemory,
    "accessdenied": AccessDenied,
    "unauthorizedaccess": AccessDenied,
    "invalidstate": PreconditionFailed,
    "invalidoperation": PreconditionFailed,
    "objectnotfound": NotFound,
    # Hyper-V answers an argument naming nothing that exists (Get-VM -Name nope, a switch or
    # adapter name) with InvalidParameter/InvalidArgument; a malformed argument never gets
    # there, since hvlab binds every command against the catalogue before sending it
    "invalidparameter": NotFound,
    "33012": SwitchMissing,  # Hyper-V message id: Could not find Ethernet switch
    "resourceexists": AlreadyExists,
    "objectalreadyexists": AlreadyExists,
    "commandnotfoundexception": CommandNotFound,
    "hypervmodulenotavailable": CommandNotFound,
    "pathnotfound": NotFound,
    # Install-WindowsFeature: no such feature (Telnet-Server on 2016 and later)
    "namedoesnotexist": NotFound,
    "noservicefoundforgivenname": NotFound,
    "namedparameternotfound": InvalidParameter,
    "positionalparameternotfound": InvalidParameter,
    "missingmandatoryparameter": InvalidParameter,
    "ambiguousparameterset": InvalidParameter,
    "ambiguousparametername": InvalidParameter,
    "parameterargumentvalidationerror": InvalidParameter,
    "parameterargumentvalidationerrornullnotallowed": InvalidParameter,
    "parameterargumenttransformationerror": InvalidParameter,
    "inputobjectnotbound": InvalidParameter,
    # PowerShell Direct into a guest that cannot host it (too old, not booted yet)
    "pssessionstatebroken": GuestUnsupported,
    # Install-WindowsFeature Hyper-V: the prerequisite check is the processor's
    # virtualization (VT-x/AMD-V, SLAT); hvlab installs no other feature with one
    "alteration_prerequisitecheck_failed": VirtualizationUnavailable,
}
# error id prefixes (lower-case) -> kind
_BY_ERROR_ID_PREFIX: tuple[tuple[str, type[RemoteError]], ...] = (
    ("cannotconvertargument", InvalidParameter),
    ("parameterbinding", InvalidParameter),
    ("cmdletizationquery_notfound", NotFound),
)
# .NET exception types (full or short name, lower-case) -> kind
_BY_EXCEPTION: dict[str, type[RemoteError]] = {
    "system.unauthorizedaccessexception": AccessDenied,
    "system.management.automation.commandnotfoundexception": CommandNotFound,
    "system.management.automation.parameterbindingexception": InvalidParameter,
    "system.management.automation.parameterbindingvalidationexception": InvalidParameter,
    "system.management.automation.itemnotfoundexception": NotFound,
    "microsoft.activedirectory.management.adidentitynotfoundexception": NotFound,
}
# ErrorCategory names (lower-case) -> kind, when nothing more specific says
_BY_CATEGORY: dict[str, type[RemoteError]] = {
    "objectnotfound": NotFound,
    "permissiondenied": AccessDenied,
    "resourceexists": AlreadyExists,
}
_RULES: tuple[type[RemoteError], ...] = tuple(dict.fromkeys(
    [*_BY_HRESULT.values(), *_BY_ERROR_ID.values(), *(k for _, k in _BY_ERROR_ID_PREFIX),
     *_BY_EXCEPTION.values(), *_BY_CATEGORY.values()]))


def hresults(text: str) -> list[int]:
    """The HRESULTs (``0x`` and eight hex digits) in ``text``, in order."""
    return [int(m.group(1), 16) for m in _HRESULT.finditer(text)]


def error_id_of(fully_qualified: str) -> str:
    """The error id of a FullyQualifiedErrorId: the part before the command's .NET type
    (``InvalidState`` of ``InvalidState,Microsoft.HyperV.PowerShell.Commands.StartVM``)."""
    return fully_qualified.split(",", 1)[0].strip()


def _kind_of_id(error_id: str) -> type[RemoteError] | None:
    key = error_id_of(error_id).lower()
    if not key:
        return None
    found = _BY_ERROR_ID.get(key) or _BY_EXCEPTION.get(key)
    if found is None and "." not in key:  # a short exception type name
        found = next((k for name, k in _BY_EXCEPTION.items()
                      if name.rsplit(".", 1)[-1] == key), None)
    if found is None:
        found = next((k for prefix, k in _BY_ERROR_ID_PREFIX if key.startswith(prefix)), None)
    return found


def classify_message(
    host: str,
    command: str,
    message: str,
    error_id: str = "",
    *,
    category: str = "",
    exception_types: tuple[str, ...] = (),
) -> RemoteError:
    """The RemoteError for a host's error: by HRESULT (message or id), then the
    FullyQualifiedErrorId's error id, then the exception type, then the ErrorCategory.

    ``message`` is kept for people (and searched for HRESULTs only); a host error that
    carries none of these identifiers is :class:`RemoteCommandFailed`.
    """
    kind: type[RemoteError] | None = None
    for code in hresults(error_id) + hresults(message):
        kind = _BY_HRESULT.get(code)
        if kind is not None:
            break
    if kind is None:
        kind = _kind_of_id(error_id)
    if kind is None:
        kind = next((k for t in exception_types
                     if (k := _BY_EXCEPTION.get(t.lower())) is not None), None)
    if kind is None:
        kind = _BY_CATEGORY.get(category.lower())
    error = (kind or RemoteCommandFailed)(host, command, message)
    error.error_id = error_id
    return error
