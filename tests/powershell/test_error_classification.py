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


# (a message carrying an HRESULT, in any language; the kind)
BY_MESSAGE = [
    ("Failed to authenticate: 0x8009030E.", DelegationMissing),
    ("failed with error 0x8009030e", DelegationMissing),
    ("보안 패키지에 사용할 수 있는 자격 증명이 없습니다. 0x8009030E.", DelegationMissing),
    ("could not initialize memory: 0x800705AA", InsufficientMemory),
    ("(0x8007000E)", InsufficientMemory),
    ("General access denied error (0x80070005).", AccessDenied),
    ("일반적인 액세스 거부 오류입니다(0x80070005).", AccessDenied),
    ("Not found (0x80041002)", NotFound),
    ("지정된 파일을 찾을 수 없습니다. (0x80070002).", NotFound),
]

# English (or Korean) words alone, without an identifier: never classified by their text.
# Each was classified by its words before hvlab stopped reading host text.
WORDS_ONLY = [
    "The credentials supplied: no suitable credentials exist",
    "No credentials are available in the security package",
    "Insufficient system resources exist to complete the requested service",
    "Not enough memory in the system to start the virtual machine",
    "The virtual machine cannot be moved because the hardware on the destination computer is "
    "not compatible with the hardware requirements",
    "Could not find Ethernet switch 'External'.",
    "Event 33012 was logged",
    "Access is denied.",
    "The virtual machine could not be started because the hypervisor is not running: "
    "virtualization capabilities are missing",
    "the processor lacks second level address translation",
    "The term 'Get-VM' is not recognized as the name of a cmdlet, function",
    "A remote session might have ended.",
    "The guest does not support PowerShell Direct",
    "Cannot bind parameter 'MemoryStartupBytes'.",
    "Cannot validate argument on parameter 'Generation'.",
    'Hyper-V was unable to find a virtual machine with name "x".',
    "The path C:\\x was not found",
    "The file does not exist",
    "Cannot find path 'C:\\x'",
    "A virtual machine named 'vm1' already exists.",
    "The file is being used by running virtual machines.",
    "The operation cannot be performed while the object is in its current state "
    "(invalid state).",
    "The operation cannot be performed while the virtual machine is running.",
    'Hyper-V에서 이름이 "x"인 가상 컴퓨터를 찾을 수 없습니다.',
    "액세스가 거부되었습니다.",
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

# (ErrorCategory alone, with a neutral message and id; the kind)
BY_CATEGORY = [
    ("ObjectNotFound", NotFound),
    ("PermissionDenied", AccessDenied),
    ("ResourceExists", AlreadyExists),
]

# (exception type alone; the kind)
BY_EXCEPTION = [
    ("System.UnauthorizedAccessException", AccessDenied),
    ("System.Management.Automation.CommandNotFoundException", CommandNotFound),
    ("System.Management.Automation.ParameterBindingException", InvalidParameter),
    ("System.Management.Automation.ItemNotFoundException", NotFound),
    ("Microsoft.ActiveDirectory.Management.ADIdentityNotFoundException", NotFound),
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
def test_hresult_in_the_message_selects_its_kind(message: str, expected: type[RemoteError]
                                                 ) -> None:
    """A host message carrying a rule's HRESULT is classified as that rule's kind, whatever
    language the rest of the message is in."""
    assert kind(message) is expected


@pytest.mark.parametrize("message", WORDS_ONLY)
def test_words_alone_never_classify(message: str) -> None:
    """A message's words (English or Korean) without an identifier decide nothing: a Korean
    host words them differently, so hvlab must not depend on them."""
    assert kind(message) is RemoteCommandFailed


@pytest.mark.parametrize(("category", "expected"), BY_CATEGORY)
def test_category_alone_selects_its_kind(category: str, expected: type[RemoteError]) -> None:
    """The ErrorCategory decides when neither an HRESULT, nor the error id, nor the exception
    type does."""
    error = classify_message("SVR1", "Get-Thing", NEUTRAL, "Weird,Id", category=category)
    assert type(error) is expected
    assert type(classify_message("SVR1", "Get-Thing", NEUTRAL, "Weird,Id",
                                 category="NotSpecified")) is RemoteCommandFailed


@pytest.mark.parametrize(("exception", "expected"), BY_EXCEPTION)
def test_exception_type_alone_selects_its_kind(exception: str, expected: type[RemoteError]
                                               ) -> None:
    """The .NET exception type decides when the error id says nothing known."""
    error = classify_message("SVR1", "Get-Thing", NEUTRAL, "Weird,Id",
                             exception_types=(exception, "System.Exception"))
    assert type(error) is expected


def test_classified_error_keeps_the_error_id() -> None:
    """The host's FullyQualifiedErrorId travels with the classified error, so a step can key
    on it (Add-Computer's AddComputerToSameDomain) instead of on the message."""
    error = classify_message("SVR1", "Add-Computer", "이미 도메인에 있습니다",
                             "AddComputerToSameDomain,Microsoft.PowerShell.Commands."
                             "AddComputerCommand")
    assert errors.error_id_of(error.error_id) == "AddComputerToSameDomain"


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
    """An HRESULT beats the error id, the error id beats the exception type, the exception
    type beats the category; among HRESULTs the first known one decides."""
    assert kind("x (0x8009030E)", "AccessDenied,New-VHD") is DelegationMissing
    assert kind("(0x12345678) then (0x80070005) then (0x8009030E)") is AccessDenied
    assert type(classify_message("H", "C", NEUTRAL, "NamedParameterNotFound,New-VM",
                                 exception_types=("System.UnauthorizedAccessException",))
                ) is InvalidParameter
    assert type(classify_message("H", "C", NEUTRAL, "Weird,Id", category="ObjectNotFound",
                                 exception_types=("System.UnauthorizedAccessException",))
                ) is AccessDenied
    assert kind("already exists", "InvalidOperation") is PreconditionFailed


def test_error_id_and_message_are_both_searched_separately() -> None:
    """The error id and the message are searched as separate lines: an id ending and a message
    starting cannot join into a match, but either alone matches."""
    assert kind("Found", "Object") is RemoteCommandFailed
    assert kind("0005", "0x8007") is RemoteCommandFailed
    assert kind("x", "ObjectNotFound") is NotFound


def test_classified_error_carries_host_command_and_message() -> None:
    """The classified error keeps the host, the described command and the host's own words."""
    error = classify_message("DC1", "New-VM -Name a", "A virtual machine named 'a' already exists.",
                             "ObjectAlreadyExists,Microsoft.HyperV.PowerShell.Commands.NewVM")
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
    RemoteCommandFailed, HostUnreachable, HostRebooting, TransientRemoteError,
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
    assert all(not c.retryable for c in errors._RULES)
