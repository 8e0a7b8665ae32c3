"""Structured remote commands: a cmdlet and its parameters, or a named packaged script.

Values are never formatted into script text. Integers go out with the .NET type the cmdlet's
parameter declares (pypsrp would send every Python int as Int32, which a real host rejects for
4 GB of memory), credentials go out as PSCredential built on the worker from a credential
*reference*, and :meth:`Command.describe` never shows a secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


@dataclass(frozen=True)
class CredentialRef:
    """A parameter value that becomes a PSCredential for the named lab credential."""

    name: str

    def __str__(self) -> str:
        return f"<credential {self.name}>"


@dataclass(frozen=True)
class Switch:
    """A switch parameter: ``SWITCH`` is ``-Force``; ``Switch(False)`` is ``-Force:$false``.

    Plain Python booleans are Boolean *values* (``-AllowManagementOS $true``).
    """

    value: bool = True


SWITCH = Switch(True)


def _fmt(value: Any) -> str:
    if isinstance(value, CredentialRef):
        return f" {value}"
    if isinstance(value, Switch):
        return "" if value.value else ":$false"
    if isinstance(value, list | tuple):
        return " " + ",".join(_quote(v) for v in value)
    if isinstance(value, dict):
        inner = "; ".join(f"{_literal(k)}={_items(v)}" for k, v in value.items())
        return " @{" + inner + "}"
    return " " + _quote(value)


def _literal(value: Any) -> str:
    """A value in expression mode (inside @{...}): strings always quoted."""
    if isinstance(value, str) and not isinstance(value, bool):
        return "'" + value.replace("'", "''") + "'"
    return _quote(value)


def _items(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(_literal(v) for v in value)
    return _literal(value)


def _quote(value: Any) -> str:
    if isinstance(value, CredentialRef):
        return str(value)
    if isinstance(value, bool):
        return "$true" if value else "$false"
    if isinstance(value, int | float):
        return str(value)
    text = str(value)
    if text and text[0].isalnum() and all(c.isalnum() or c in "-_.:\\/" for c in text):
        return text
    return "'" + text.replace("'", "''") + "'"


class Command(BaseModel):
    """One cmdlet call, e.g. ``Command.of("New-VM", Name="x", MemoryStartupBytes=512 * MB)``."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    cmdlet: str
    parameters: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def of(cls, cmdlet: str, **parameters: Any) -> Command:
        """Build a command; parameters whose value is ``None`` are left out."""
        return cls(cmdlet=cmdlet, parameters={k: v for k, v in parameters.items() if v is not None})

    def describe(self) -> str:
        """PowerShell-like text for plans and logs; credentials show as references only."""
        parts = [self.cmdlet]
        for name, value in self.parameters.items():
            parts.append(f"-{name}{_fmt(value)}")
        return " ".join(parts)



class Script(BaseModel):
    """A packaged ``.ps1`` (``hvlab/powershell/scripts/<name>.ps1``) run with parameters."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    name: str = Field(description="e.g. 'guest/set-ipv4'")
    parameters: dict[str, Any] = Field(default_factory=dict)

    def describe(self) -> str:
        """``& <script name> -P v ...`` without the script body."""
        args = " ".join(f"-{k}{_fmt(v)}" for k, v in self.parameters.items())
        return f"& {self.name}.ps1 {args}".rstrip()



@dataclass(frozen=True)
class Pipeline:
    """Commands piped into each other (``Get-VM x | Stop-VM``); most steps have one."""

    commands: tuple[Command | Script, ...]

    @classmethod
    def one(cls, command: Command | Script) -> Pipeline:
        return cls((command,))

    def describe(self) -> str:
        return " | ".join(c.describe() for c in self.commands)
