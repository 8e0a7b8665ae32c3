"""The contract between the simulator's WinRM/PSRP server and its world model.

The server (``simulator.winrm``) knows WS-Management, NTLM and PSRP; it knows nothing about
Hyper-V. For every pipeline a client invokes it builds an :class:`Invocation` and calls the
host's :class:`Handler`. The handler (``simulator.fleet``) validates commands, applies them to
the world and reports results through the :class:`PipelineContext`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Parameter:
    """One parameter as the client sent it; ``name`` is None for a positional argument.

    A switch parameter sent by pypsrp as ``add_parameter("Force")`` arrives with value None.
    """

    name: str | None
    value: Any


@dataclass(frozen=True)
class CommandCall:
    """One command of a statement: a cmdlet name, or a script body when ``is_script``."""

    text: str
    is_script: bool
    parameters: tuple[Parameter, ...] = ()

    def named(self) -> dict[str, Any]:
        """Named parameters as a dict (later duplicates win)."""
        return {p.name: p.value for p in self.parameters if p.name is not None}


@dataclass(frozen=True)
class Invocation:
    """A whole pipeline: statements, each a list of piped commands, plus pipeline input."""

    host: str
    statements: tuple[tuple[CommandCall, ...], ...]
    input: tuple[Any, ...] = field(default_factory=tuple)
    username: str = ""
    runspace: str = ""  # the runspace pool (WS-Man shell) it runs in


RUNTIME_EXCEPTION = "System.Management.Automation.RuntimeException"


class TerminatingError(Exception):
    """Raised by a handler to fail the pipeline (PipelineState Failed with an ErrorRecord).

    ``error_id`` is the FullyQualifiedErrorId (e.g. ``CommandNotFoundException``),
    ``category`` the PowerShell ErrorCategory name (e.g. ``ObjectNotFound``),
    ``exception_type`` the .NET exception type name shown to the client.
    """

    def __init__(
        self,
        message: str,
        error_id: str = "RuntimeException",
        category: str = "NotSpecified",
        exception_type: str = RUNTIME_EXCEPTION,
        target: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.error_id = error_id
        self.category = category
        self.exception_type = exception_type
        self.target = target


class PipelineContext(Protocol):
    """What a handler may do while a pipeline runs."""

    def output(self, obj: Any) -> None:
        """Write one object to the output stream (a psrpcore PSObject, dict, str, int...)."""

    def error(
        self,
        message: str,
        error_id: str = "RuntimeException",
        category: str = "NotSpecified",
        target: str | None = None,
        *,
        exception_type: str = RUNTIME_EXCEPTION,
    ) -> None:
        """Write a non-terminating error record (pypsrp leaves had_errors False) whose
        exception is of .NET type ``exception_type``."""

    def warning(self, message: str) -> None:
        """Write a warning record."""

    def progress(self, activity: str, percent: int, status: str = "") -> None:
        """Write a progress record."""

    def stopping(self) -> bool:
        """True once the client asked to stop the pipeline (Signal ctrl_c)."""

    def sleep(self, seconds: float) -> bool:
        """Wait up to ``seconds``; returns False early if the pipeline is being stopped."""


class Handler(Protocol):
    """Executes invocations for one simulated host."""

    def invoke(self, invocation: Invocation, ctx: PipelineContext) -> None:
        """Run the pipeline; raise TerminatingError to fail it."""


class PipelineStopped(Exception):
    """Raised by a :class:`PipelineContext` write once the pipeline was stopped or closed.

    Handlers need not catch it: the server treats it as the normal end of a stopped pipeline.
    """


def secret_text(value: Any) -> str:
    """Plaintext of a SecureString parameter value.

    SecureString values (e.g. the ``Password`` of a PSCredential) arrive still encrypted with
    the runspace pool's session key; this decrypts them. Any other value is returned as ``str``.
    """
    decrypt = getattr(value, "decrypt", None)
    return str(decrypt()) if callable(decrypt) else str(value)


def credential_parts(value: Any) -> tuple[str, str]:
    """``(UserName, plaintext password)`` of a PSCredential parameter value."""
    return str(value.UserName), secret_text(value.Password)
