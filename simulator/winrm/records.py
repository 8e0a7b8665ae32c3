"""PowerShell-shaped values the simulated host exchanges with a client.

Invocations handed to handlers (:func:`build_invocation`, :func:`plain`) and the records the
server writes back (:func:`error_record`, ``$null`` output, the pool's application data).
"""

from __future__ import annotations

import enum
from typing import Any

from psrpcore.types import (
    ErrorCategory,
    ErrorCategoryInfo,
    ErrorRecord,
    NETException,
    PSVersion,
)

from simulator.protocol import CommandCall, Invocation, Parameter

RUNTIME_EXCEPTION = "System.Management.Automation.RuntimeException"
_RUNTIME_HRESULT = -2146233087


DEFAULT_PS_VERSION = "5.1.20348.2652"


def shipped_powershell(os_version: str) -> str:
    """The Windows PowerShell a Windows version ships with: 5.1 from Windows Server 2016
    (10.0.14393), 4.0 on 2012 R2 (6.3), 3.0 on 2012 (6.2), 2.0 before
    (docs/simulator-fidelity.md)."""
    parts = [int(p) for p in os_version.split(".")[:2] if p.isdigit()]
    major_minor = tuple(parts) if len(parts) == 2 else (10, 0)
    if major_minor >= (10, 0):
        build = os_version.split(".")[-1]
        return f"5.1.{build}.2652" if build.isdigit() and build != "0" else DEFAULT_PS_VERSION
    if major_minor >= (6, 3):
        return "4.0"
    if major_minor >= (6, 2):
        return "3.0"
    return "2.0"


def application_private_data(ps_version: str = DEFAULT_PS_VERSION) -> dict[str, Any]:
    """What a Windows PowerShell endpoint advertises when a pool opens."""
    return {
        "DebugMode": 1,
        "DebugStop": False,
        "DebugBreakpointCount": 0,
        "PSVersionTable": {
            "PSVersion": PSVersion(ps_version),
            "PSEdition": "Desktop",
            "BuildVersion": PSVersion("10.0.20348.2652"),
            "CLRVersion": PSVersion("4.0.30319.42000"),
            "WSManStackVersion": PSVersion("3.0"),
            "PSRemotingProtocolVersion": PSVersion("2.3"),
            "SerializationVersion": PSVersion("1.1.0.1"),
        },
    }


def plain(value: Any) -> Any:
    """Turn psrpcore's deserialized primitives into plain Python values.

    Strings, integers, floats, lists and hashtables become ``str``/``int``/``float``/``list``/
    ``dict``; enums, SecureStrings, PSCredentials and other objects are kept as psrpcore gives
    them (see :func:`simulator.protocol.credential_parts`).
    """
    if value is None or isinstance(value, (bool, enum.Enum)):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def build_invocation(
    host: str, metadata: Any, inputs: list[Any], username: str, runspace: str = ""
) -> Invocation:
    """An :class:`Invocation` from a psrpcore ``PowerShell`` (CreatePipeline) object."""
    statements: list[tuple[CommandCall, ...]] = []
    current: list[CommandCall] = []
    for cmd in metadata.commands:
        params = tuple(Parameter(name, plain(value)) for name, value in cmd.parameters)
        current.append(CommandCall(str(cmd.command_text), bool(cmd.is_script), params))
        if cmd.end_of_statement:
            statements.append(tuple(current))
            current = []
    if current:
        statements.append(tuple(current))
    return Invocation(
        host=host,
        statements=tuple(statements),
        input=tuple(plain(i) for i in inputs),
        username=username,
        runspace=runspace,
    )


class _CategoryInfo(ErrorCategoryInfo):
    """CategoryInfo whose message reads like PowerShell's ``CategoryInfo.GetMessage()``."""

    def __str__(self) -> str:
        return (
            f"{self.Category.name}: ({self.TargetName or ''}:{self.TargetType or ''}) "
            f"[{self.Activity or ''}], {self.Reason or ''}"
        )


def error_record(
    message: str,
    error_id: str,
    category: str,
    exception_type: str = RUNTIME_EXCEPTION,
    target: str | None = None,
    activity: str = "",
) -> ErrorRecord:
    """An ErrorRecord shaped like PowerShell's.

    pypsrp shows it as: ``str(record)`` -> ``message``; ``record.fq_error`` -> ``error_id``;
    ``record.category`` -> the ErrorCategory number; ``record.reason`` -> the exception's short
    type name; ``record.message`` -> the category line, e.g.
    ``ObjectNotFound: (vm1:String) [Get-VM], VirtualizationException``.
    """
    exc = _exception(message, exception_type)
    info = _CategoryInfo(
        Category=ErrorCategory[category]
        if category in ErrorCategory.__members__
        else ErrorCategory.NotSpecified,
        Activity=activity,
        Reason=exception_type.rsplit(".", 1)[-1],
        TargetName=target or "",
        TargetType="String" if target is not None else "",
    )
    record = ErrorRecord(
        Exception=exc,
        CategoryInfo=info,
        TargetObject=target,
        FullyQualifiedErrorId=error_id,
    )
    record.PSObject.to_string = message
    return record


def _exception(message: str, exception_type: str) -> NETException:
    exc = NETException(Message=message, HResult=_RUNTIME_HRESULT)
    names = [exception_type]
    if exception_type != RUNTIME_EXCEPTION and exception_type.startswith(
        "System.Management.Automation."
    ):
        names.append(RUNTIME_EXCEPTION)
    names += [
        n for n in ("System.SystemException", "System.Exception", "System.Object") if n not in names
    ]
    exc.PSObject.type_names = names
    exc.PSObject.to_string = f"{exception_type}: {message}"
    return exc


class Null:
    """Serializes as ``<Nil />`` (psrpcore would send ``$null`` output as an empty message)."""

    @classmethod
    def ToPSObjectForRemoting(cls, instance: Null, **kwargs: Any) -> None:
        return None


NULL = Null()
