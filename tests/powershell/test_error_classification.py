"""Classification of a host's error into hvlab's RemoteError tree (hvlab.powershell.errors).

Each rule is exercised by the identifier it keys on (HRESULT, Hyper-V message id,
FullyQualifiedErrorId, .NET exception type) and by a near miss that must not match it.
"""

from __future__ import annotations

import pytest

from hvlab.powershell import errors
from hvlab.powershell.errors import (
    AccessDenied,
    AlreadyExists,
    AuthenticationFailed,
    CommandNotFound,
    CredentialUnavailable,
    DelegationMissing,
    GuestUnsupported,
    HostRebooting,
    HostUnreachable,
    IncompatibleHost,
    InsecureTransport,
    InsufficientMemory,
    InvalidParameter,
    NotFound,
    PreconditionFailed,
    RemoteCommandFailed,
    RemoteError,
    SwitchMissing,
    TransientRemoteError,
    VirtualizationUnavailable,
    classify_message,
)

NEUTRAL = "The operation failed."


def kind(message: str, error_id: str = "") -> type[RemoteError]:
    return type(classify_message("SVR1", "Move-VM -Name vm1", message, error_id))


# (text that must select the kind, as message; the kind)
BY_MESSAGE = [
    ("Failed to authenticate: 0x8009030E.", DelegationMissing),
    ("failed with error 0x8009030e", DelegationMissing),
    ("The credentials supplied: no suitable credentials exist", DelegationMissing),
    ("No credentials are available in the security package", DelegationMissing),
    ("could not initialize memory: 0x800705AA", InsufficientMemory),
    ("Insufficient system resources exist to complete the requested service", InsufficientMemory),
    ("Not enough memory in the system to start the virtual machine", InsufficientMemory),
    ("The virtual machine cannot be moved because the hardware on the destination computer is "
     "not compatible with the hardware requirements", IncompatibleHost),
    ("Could not find Ethernet switch 'External'.", SwitchMissing),
    ("Event 33012 was logged", SwitchMissing),
    ("General access denied error (0x80070005).", AccessDenied),
    ("Access is denied.", AccessDenied),
    ("The virtual machine could not be started because the hypervisor is not running: "
     "virtualization capabilities are missing", VirtualizationUnavailable),
    ("the processor lacks second level address translation", VirtualizationUnavailable),
    ("The term 'Get-VM' is not recognized as the name of a cmdlet, function", CommandNotFound),
    ("A remote session might have ended.", GuestUnsupported),
    ("The guest does not support PowerShell Direct", GuestUnsupported),
    ("Cannot bind parameter 'MemoryStartupBytes'.", InvalidParameter),
    ("Cannot validate argument on parameter 'Generation'.", InvalidParameter),
    ('Hyper-V was unable to find a virtual machine with name "x".', NotFound),
    ("The path C:\\x was not found", NotFound),
    ("The file does not exist", NotFound),
    ("Cannot find path 'C:\\x'", NotFound),
    ("A virtual machine named 'vm1' already exists.", AlreadyExists),
    ("The file is being used by running virtual machines.", PreconditionFailed),
    ("The operation cannot be performed while the object is in its current state "
     "(invalid state).", PreconditionFailed),
    ("The operation cannot be performed while the virtual machine is running.",
     PreconditionFailed),
]

# (FullyQualifiedErrorId or exception type alone, with a neutral message; the kind)
BY_ERROR_ID = [
    ("0x8009030E,Microsoft.HyperV.PowerShell.Commands.MoveVM", DelegationMissing),
    ("0x800705AA,Microsoft.HyperV.PowerShell.Commands.StartVM", InsufficientMemory),
    ("33012,Microsoft.HyperV.PowerShell.Commands.MoveVM", SwitchMissing),
    ("0x80070005,Microsoft.HyperV.PowerShell.Commands.NewVHD", AccessDenied),
    ("UnauthorizedAccess,Microsoft.HyperV.PowerShell.Commands.NewVHD", AccessDenied),
    ("System.UnauthorizedAccessException", AccessDenied),
    ("CommandNotFoundException", CommandNotFound),
    ("System.Management.Automation.CommandNotFoundException", CommandNotFound),
    ("NamedParameterNotFound,Microsoft.HyperV.PowerShell.Commands.NewVM", InvalidParameter),
    ("ParameterArgumentValidationError,Microsoft.HyperV.PowerShell.Commands.NewVM",
     InvalidParameter),
    ("MissingMandatoryParameter,Microsoft.HyperV.PowerShell.Commands.NewVM", InvalidParameter),
    ("AmbiguousParameterSet,Microsoft.HyperV.PowerShell.Commands.NewVM", InvalidParameter),
    ("CannotConvertArgumentNoMessage,Microsoft.HyperV.PowerShell.Commands.NewVM",
     InvalidParameter),
    ("System.Management.Automation.ParameterBindingException", InvalidParameter),
    ("ObjectNotFound,Microsoft.HyperV.PowerShell.Commands.GetVM", NotFound),
    ("ResourceExists,Microsoft.HyperV.PowerShell.Commands.NewVMSwitch", AlreadyExists),
    ("InvalidOperation,Microsoft.HyperV.PowerShell.Commands.StartVM", PreconditionFailed),
]

# near misses: an id one digit off, or the words without the rule's phrase
NEAR_MISSES = [
    "0x8009030F", "0x800705AB", "0x80070006", "Event 330120", "Event 133012",
    "credentials were accepted", "enough memory", "hardware is compatible",
    "Ethernet switch 'External' created", "access granted", "virtualization",
    "CommandFoundException", "remote session", "Parameter", "found", "exists",
    "Operation", "state is valid",
]


@pytest.mark.parametrize(("message", "expected"), BY_MESSAGE)
def test_message_selects_its_kind(message: str, expected: type[RemoteError]) -> None:
    """A host message carrying a rule's identifier or phrase is classified as that rule's kind."""
    assert kind(message) is expected


@pytest.mark.parametrize(("error_id", "expected"), BY_ERROR_ID)
def test_error_id_alone_selects_its_kind(error_id: str, expected: type[RemoteError]) -> None:
    """The FullyQualifiedErrorId (or exception type) decides even when the message is neutral."""
    assert kind(NEUTRAL, error_id) is expected
    assert kind(NEUTRAL, error_id.lower()) is expected


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_near_misses_are_unclassified(text: str) -> None:
    """Text that only resembles a rule's identifier falls through to RemoteCommandFailed."""
    assert kind(text) is RemoteCommandFailed
    assert kind(NEUTRAL, text) is RemoteCommandFailed


def test_unmatched_error_keeps_the_host_words_and_is_permanent() -> None:
    """An error matching no rule is RemoteCommandFailed: not retried, no fix, host text kept."""
    error = classify_message("SVR2", "Get-VM", "Something odd happened", "Weird,Id")
    assert type(error) is RemoteCommandFailed
    assert not error.retryable and error.fix == ""
    assert str(error) == "SVR2: Get-VM: Something odd happened"
    assert (error.host, error.command, error.host_message) == (
        "SVR2", "Get-VM", "Something odd happened")
    assert error.type_name == "RemoteCommandFailed"


def test_the_first_matching_rule_wins() -> None:
    """Rules are tried in order: a delegation HRESULT beats an access-denied text, an access
    denial beats not-found, and a parameter binding error beats not-found."""
    assert kind("Access is denied (0x8009030E)") is DelegationMissing
    assert kind("cannot find the share: Access is denied") is AccessDenied
    assert kind(NEUTRAL, "NamedParameterNotFound,New-VM") is InvalidParameter
    assert kind("already exists", "InvalidOperation") is AlreadyExists
    assert kind("Could not find Ethernet switch 'X'") is SwitchMissing


def test_error_id_and_message_are_both_searched_separately() -> None:
    """The error id and the message are searched as separate lines: an id ending and a message
    starting cannot join into a match, but either alone matches."""
    assert kind("Found", "Object") is RemoteCommandFailed
    assert kind("0005", "0x8007") is RemoteCommandFailed
    assert kind("x", "ObjectNotFound") is NotFound


def test_classified_error_carries_host_command_and_message() -> None:
    """The classified error keeps the host, the described command and the host's own words."""
    error = classify_message("DC1", "New-VM -Name a", "A virtual machine named 'a' already exists.")
    assert isinstance(error, AlreadyExists)
    assert error.host == "DC1"
    assert error.command == "New-VM -Name a"
    assert error.host_message == "A virtual machine named 'a' already exists."
    assert str(error) == "DC1: New-VM -Name a: A virtual machine named 'a' already exists."
    assert error.type_name == "AlreadyExists"


def test_message_without_command_names_only_the_host() -> None:
    """Without a command the text is 'host: message' (no empty command part)."""
    error = RemoteCommandFailed("SVR1", "", "no answer")
    assert str(error) == "SVR1: no answer"
    assert error.command == ""


def test_fix_is_appended_to_the_text() -> None:
    """A kind with a fix appends '(fix: ...)' after the host's message."""
    error = classify_message("SVR1", "Move-VM", "error 0x8009030E")
    assert str(error) == f"SVR1: Move-VM: error 0x8009030E (fix: {DelegationMissing.fix})"
    assert error.host_message == "error 0x8009030E"


@pytest.mark.parametrize(("cls", "words"), [
    (AuthenticationFailed, ["user name", "secret"]),
    (CredentialUnavailable, ["environment variable", "secrets file"]),
    (InsecureTransport, ["HTTPS", "insecure: true"]),
    (DelegationMissing, ["constrained delegation", "cifs", "Microsoft Virtual System Migration "
                         "Service", "use any authentication protocol", "purge tickets"]),
    (InsufficientMemory, ["free memory", "startup memory"]),
    (IncompatibleHost, ["processor compatibility", "same CPU family"]),
    (SwitchMissing, ["virtual switch", "destination host"]),
    (AccessDenied, ["computer account", "share", "NTFS", "cifs delegation"]),
    (CommandNotFound, ["install the feature", "reboot"]),
    (VirtualizationUnavailable, ["hardware virtualization", "VT-x/EPT"]),
    (HostUnreachable, ["running", "on the network", "WinRM listener", "address and port",
                       "hvlab doctor FILE"]),
])
def test_fix_names_the_remedy(cls: type[RemoteError], words: list[str]) -> None:
    """Each kind with a fix tells the operator what to change, in the error's text."""
    text = str(cls("H", "C", "m"))
    assert text.startswith("H: C: m (fix: ")
    for word in words:
        assert word in cls.fix
        assert word in text


@pytest.mark.parametrize("cls", [
    InvalidParameter, NotFound, AlreadyExists, PreconditionFailed, GuestUnsupported,
    RemoteCommandFailed, HostRebooting, TransientRemoteError,
])
def test_kinds_without_fix_add_nothing(cls: type[RemoteError]) -> None:
    """Kinds without a fix show just 'host: command: message'."""
    assert str(cls("H", "C", "m")) == "H: C: m"


@pytest.mark.parametrize(("cls", "retryable"), [
    (HostUnreachable, True), (HostRebooting, True), (TransientRemoteError, True),
    (AuthenticationFailed, False), (CredentialUnavailable, False), (InsecureTransport, False),
    (DelegationMissing, False), (InsufficientMemory, False), (IncompatibleHost, False),
    (SwitchMissing, False), (AccessDenied, False), (InvalidParameter, False),
    (CommandNotFound, False), (NotFound, False), (AlreadyExists, False),
    (PreconditionFailed, False), (VirtualizationUnavailable, False), (GuestUnsupported, False),
    (RemoteCommandFailed, False),
])
def test_only_transport_kinds_are_retryable(cls: type[RemoteError], retryable: bool) -> None:
    """Unreachable, rebooting and transient errors are retried; what the host refused is not."""
    error = cls("H", "C", "m")
    assert error.retryable is retryable
    assert error.type_name == cls.__name__
    assert isinstance(error, RemoteError) and isinstance(error, Exception)


def test_classification_never_returns_a_retryable_kind() -> None:
    """Whatever the host said, a classified host error is permanent (the host said no)."""
    for message, _ in BY_MESSAGE:
        assert not classify_message("H", "C", message).retryable
    assert all(not c.retryable for _, c in errors._RULES)
