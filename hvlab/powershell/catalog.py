"""Cmdlet catalogue and a Windows PowerShell 5.1 style parameter binder.

The catalogue is read from ``data/cmdlets.json`` (parameter sets, types, aliases and accepted
values of ~1,000 real cmdlets, extracted from the published reference help).  The binder
reproduces what ``CmdletParameterBinderController`` does for a *remote, non-interactive*
invocation, including the exact error texts and FullyQualifiedErrorIds:

1. Every named argument is matched to a parameter: exact name or alias first, then unique
   case-insensitive prefix over names *and* aliases; when a prefix matches several parameters
   and exactly one of them is declared by the cmdlet (not a common parameter) that one wins,
   otherwise ``AmbiguousParameter``.  Unknown names are reported (``NamedParameterNotFound``)
   only after all other named arguments were bound, like PowerShell does.
2. Each matched argument is converted to the parameter type (``CannotConvertArgumentNoMessage``
   / ``CannotConvertArgument``), validated against its ValidateSet (``ParameterArgument-
   ValidationError``) and, for parameters mandatory in some set, checked for null / empty.
3. The parameter set is resolved (``AmbiguousParameterSet``) and missing mandatory parameters
   are reported (``MissingMandatoryParameter``) -- a remote runspace cannot prompt.

Parameter-set resolution (the default parameter set is not part of the data):

* candidates = the sets that contain every given declared parameter (common parameters and
  parameters that belong to no listed set never narrow); none -> ``AmbiguousParameterSet``;
* one candidate -> it;
* several -> the candidates whose mandatory parameters are all satisfied; exactly one -> it;
  several -> deterministic stand-in for PowerShell's *default set*: fewest mandatory
  parameters, then fewest parameters, then data order (:attr:`Bound.candidate_sets` lists the
  tie); none -> if every candidate misses the same mandatory parameters report those
  (``MissingMandatoryParameter``), else ``AmbiguousParameterSet``.

Positional arguments (name ``None``) bind after the named ones, like
``BindPositionalParameters``: the data's ``positions`` give each parameter's position per set
(ordinals, not indexes); the i-th positional argument goes to the i-th lowest position among
the unbound positional parameters of the sets still possible.  Where several parameters share
a position (``Get-VM [-Name] | [-Id] | [-ClusterObject]``) the argument goes to the first one
whose type accepts it -- value types (strings, numbers, enums, Guid) before the catch-all
``PSObject``/``Object``, a string never to an object type such as ``VirtualMachine`` -- the
stand-in for PowerShell trying the default parameter set first.  Binding a parameter narrows
the sets for the next position.  An argument no parameter takes is
``PositionalParameterNotFound`` (or is returned in :attr:`Bound.positional` with
``positional_ok``).

Pipeline input (``pipeline_input=True``): a mandatory parameter counts as satisfiable from the
pipeline when the data says it accepts pipeline input (``pipeline``: by value or by property
name).  For descriptions without that data (script param blocks) it counts when it is called
``InputObject`` or its type is an object type -- anything that is not a string, number,
boolean, switch, enum (has accepted values) or one of a few value-like .NET types (Guid,
DateTime, TimeSpan, Version, Uri, IPAddress, SecureString, PSCredential, CimSession,
Hashtable, ScriptBlock).

WhatIf and Confirm exist only on cmdlets that support ShouldProcess (the data's
``supports_should_process``); elsewhere they are ``NamedParameterNotFound``.  The other
common parameters are always accepted.

FullyQualifiedErrorIds end with the implementing .NET type (:func:`command_class`):
``NamedParameterNotFound,Microsoft.HyperV.PowerShell.Commands.GetVM``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Final, NoReturn

__all__ = [
    "COMMON_PARAMETERS",
    "Arguments",
    "BindingError",
    "Bound",
    "Catalog",
    "CmdletInfo",
    "Kind",
    "ParameterInfo",
    "TypeSpec",
    "bind_command",
    "build_cmdlet",
    "command_class",
    "parse_type",
    "ps_text",
    "ps_type_name",
]

# --------------------------------------------------------------------------------------------
# Error model
# --------------------------------------------------------------------------------------------

_SMA: Final = "System.Management.Automation."
PARAMETER_BINDING_EXCEPTION: Final = _SMA + "ParameterBindingException"
PARAMETER_VALIDATION_EXCEPTION: Final = _SMA + "ParameterBindingValidationException"
PARAMETER_TRANSFORMATION_EXCEPTION: Final = _SMA + "ParameterBindingArgumentTransformationException"
COMMAND_NOT_FOUND_EXCEPTION: Final = _SMA + "CommandNotFoundException"


class BindingError(Exception):
    """A PowerShell parameter-binding (or command-discovery) error.

    ``error_id`` is the FullyQualifiedErrorId (``NamedParameterNotFound,`` and the command's
    .NET type, :func:`command_class`), ``category`` the ErrorCategory name and
    ``exception_type`` the full .NET exception type name.
    """

    def __init__(
        self,
        message: str,
        error_id: str,
        category: str,
        exception_type: str,
        *,
        target_object: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.error_id = error_id
        self.category = category
        self.exception_type = exception_type
        self.target_object = target_object

    @property
    def fully_qualified_error_id(self) -> str:
        """Alias of :attr:`error_id`."""
        return self.error_id

    def __repr__(self) -> str:
        return f"BindingError({self.message!r}, {self.error_id!r}, {self.category!r})"


def _command_not_found(name: str) -> BindingError:
    message = (
        f"The term '{name}' is not recognized as the name of a cmdlet, function, script file, "
        "or operable program. Check the spelling of the name, or if a path was included, "
        "verify that the path is correct and try again."
    )
    return BindingError(
        message,
        "CommandNotFoundException",
        "ObjectNotFound",
        COMMAND_NOT_FOUND_EXCEPTION,
        target_object=name,
    )


class _Flavour(Enum):
    """Compiled cmdlets and script parameters word conversion failures differently."""

    CMDLET = "cmdlet"
    SCRIPT = "script"


def command_class(cmdlet: str, module: str) -> str:
    """The .NET type PowerShell puts at the end of a command's FullyQualifiedErrorIds.

    Binary modules name their cmdlet classes ``<Verb><Noun>`` (Hyper-V, ActiveDirectory) or
    ``<Verb><Noun>Command``; CDXML modules (NetTCPIP, SmbShare, NetNat, ...) and scripts are
    functions, whose errors end with the command name itself.  Sources and the choices made
    where no public record exists: ``docs/simulator-fidelity.md``.
    """
    verb, _, noun = cmdlet.partition("-")
    if module == "Hyper-V":
        return f"Microsoft.HyperV.PowerShell.Commands.{verb}{noun}"
    if module == "ServerManager":
        verb = {"Install": "Add", "Uninstall": "Remove"}.get(verb, verb)
        return f"Microsoft.Windows.ServerManager.Commands.{verb}{noun}Command"
    if module.startswith("Microsoft.PowerShell"):
        return f"Microsoft.PowerShell.Commands.{verb}{noun}Command"
    if module == "CimCmdlets":
        return f"Microsoft.Management.Infrastructure.CimCmdlets.{verb}{noun}Command"
    if module == "ActiveDirectory":
        return f"Microsoft.ActiveDirectory.Management.Commands.{verb}{noun}"
    if module == "ADDSDeployment":
        return f"Microsoft.DirectoryServices.Deployment.PowerShell.Commands.{verb}{noun}Command"
    return cmdlet


@dataclass(frozen=True, slots=True)
class _ErrorContext:
    """Who is being bound: used to build FullyQualifiedErrorIds."""

    command: str
    flavour: _Flavour
    module: str = ""

    def fail(
        self,
        message: str,
        error_id: str,
        *,
        category: str = "InvalidArgument",
        exception_type: str = PARAMETER_BINDING_EXCEPTION,
    ) -> NoReturn:
        owner = command_class(self.command, self.module) if self.command else ""
        qualified = f"{error_id},{owner}" if owner else error_id
        raise BindingError(message, qualified, category, exception_type)

    def fail_validation(self, message: str, error_id: str) -> NoReturn:
        self.fail(
            message, error_id, category="InvalidData", exception_type=PARAMETER_VALIDATION_EXCEPTION
        )


# --------------------------------------------------------------------------------------------
# Types
# --------------------------------------------------------------------------------------------

# name -> (minimum, maximum, "an Int32" as used by System.OverflowException messages)
_INTEGER_TYPES: Final[dict[str, tuple[int, int, str]]] = {
    "Byte": (0, 2**8 - 1, "an unsigned byte"),
    "SByte": (-(2**7), 2**7 - 1, "a signed byte"),
    "Int16": (-(2**15), 2**15 - 1, "an Int16"),
    "UInt16": (0, 2**16 - 1, "a UInt16"),
    "Int32": (-(2**31), 2**31 - 1, "an Int32"),
    "UInt32": (0, 2**32 - 1, "a UInt32"),
    "Int64": (-(2**63), 2**63 - 1, "an Int64"),
    "UInt64": (0, 2**64 - 1, "a UInt64"),
}
_FLOAT_TYPES: Final = frozenset({"Double", "Single", "Decimal"})
_SHORT_NAMES: Final[dict[str, str]] = {
    **{name.lower(): name for name in _INTEGER_TYPES},
    **{name.lower(): name for name in _FLOAT_TYPES},
    "string": "String",
    "boolean": "Boolean",
    "switchparameter": "SwitchParameter",
    # PowerShell type accelerators used in script param blocks
    "int": "Int32",
    "long": "Int64",
    "short": "Int16",
    "ushort": "UInt16",
    "uint": "UInt32",
    "ulong": "UInt64",
    "bool": "Boolean",
    "switch": "SwitchParameter",
    "float": "Single",
}
# Value-like types: never satisfiable from the pipeline under the documented rule.
_VALUE_TYPES: Final = frozenset(
    name.lower()
    for name in (
        *_INTEGER_TYPES,
        *_FLOAT_TYPES,
        "String",
        "Boolean",
        "SwitchParameter",
        "Char",
        "Guid",
        "DateTime",
        "TimeSpan",
        "Version",
        "Uri",
        "IPAddress",
        "SecureString",
        "PSCredential",
        "CimSession",
        "Hashtable",
        "IDictionary",
        "ScriptBlock",
    )
)
# Modules whose enum types live in one well-known namespace (used only in error texts).
_ENUM_NAMESPACES: Final[dict[str, str]] = {
    "Hyper-V": "Microsoft.HyperV.PowerShell",
    "ActiveDirectory": "Microsoft.ActiveDirectory.Management",
}


class Kind(Enum):
    """How values for a parameter type are converted."""

    SWITCH = "switch"
    BOOLEAN = "boolean"
    INTEGER = "integer"
    FLOAT = "float"
    STRING = "string"
    ENUM = "enum"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class TypeSpec:
    """A parameter type as far as the binder cares.

    ``element`` is the short element type name (``Int32``, ``VMSwitchType``), ``full_name``
    the .NET name used in error texts (``System.Int32``).
    """

    raw: str | None
    kind: Kind
    element: str
    full_name: str
    is_array: bool = False
    nullable: bool = False

    @property
    def pipeline_object(self) -> bool:
        """True for object types (see the module docstring for the pipeline rule)."""
        if self.kind is not Kind.OTHER or not self.element:
            return False
        return self.element.lower() not in _VALUE_TYPES


_NULLABLE_RE: Final = re.compile(r"^(?:System\.)?Nullable(?:`1)?\[(?P<inner>.+)\]$", re.I)


def parse_type(raw: str | None, *, has_values: bool = False, module: str = "") -> TypeSpec:
    """Classify a type string from the data (or a script ``[type]`` literal)."""
    if not raw:
        return TypeSpec(raw, Kind.OTHER, "", "System.Object")
    text, nullable = raw.strip(), False
    match = _NULLABLE_RE.match(text)
    if match:
        text, nullable = match.group("inner").strip(), True
    is_array = text.endswith("[]")
    if is_array:
        text = text[:-2].strip()
    if "`" in text or "[" in text:
        return TypeSpec(raw, Kind.OTHER, "", text, is_array, nullable)
    short = text.rsplit(".", 1)[-1]
    canonical = _SHORT_NAMES.get(short.lower())
    if canonical is not None:
        return _primitive_spec(raw, canonical, is_array, nullable)
    if has_values:
        namespace = _ENUM_NAMESPACES.get(module)
        full = text if "." in text or namespace is None else f"{namespace}.{text}"
        return TypeSpec(raw, Kind.ENUM, short, full, is_array, nullable)
    return TypeSpec(raw, Kind.OTHER, short, text, is_array, nullable)


def _primitive_spec(raw: str, name: str, is_array: bool, nullable: bool) -> TypeSpec:
    if name == "SwitchParameter":
        return TypeSpec(raw, Kind.SWITCH, name, _SMA + name, is_array, nullable)
    if name == "Boolean":
        kind = Kind.BOOLEAN
    elif name == "String":
        kind = Kind.STRING
    elif name in _INTEGER_TYPES:
        kind = Kind.INTEGER
    else:
        kind = Kind.FLOAT
    return TypeSpec(raw, kind, name, f"System.{name}", is_array, nullable)


# --------------------------------------------------------------------------------------------
# Value rendering (how .NET would print a value in an error message)
# --------------------------------------------------------------------------------------------


def ps_text(value: Any) -> str:
    """Render ``value`` the way ``Object.ToString()`` would in Windows PowerShell 5.1."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float):
        return _double_text(value)
    if isinstance(value, list | tuple):
        return "System.Object[]"
    if isinstance(value, Mapping):
        return "System.Collections.Hashtable"
    return str(value)


def _double_text(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return format(value, ".15G")


def ps_type_name(value: Any) -> str:
    """The .NET type name PowerShell would see for a deserialised Python value."""
    if isinstance(value, bool):
        return "System.Boolean"
    if isinstance(value, int):
        return "System.Int32" if -(2**31) <= value < 2**31 else "System.Int64"
    if isinstance(value, float):
        return "System.Double"
    if isinstance(value, str):
        return "System.String"
    if isinstance(value, list | tuple):
        return "System.Object[]"
    if isinstance(value, Mapping):
        return "System.Collections.Hashtable"
    return "System.Management.Automation.PSObject"


# --------------------------------------------------------------------------------------------
# Catalogue model
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParameterInfo:
    """One bindable parameter of a command (declared or common)."""

    name: str
    type: TypeSpec
    aliases: tuple[str, ...] = ()
    accepted_values: tuple[str, ...] | None = None
    common: bool = False
    # (parameter set, position) pairs; empty: named only
    positions: tuple[tuple[str, int], ...] = ()
    # "value", "property", "value+property"; None: no pipeline input (or unknown, see
    # CmdletInfo.pipeline_data)
    pipeline: str | None = None

    def position_in(self, set_name: str) -> int | None:
        """The parameter's position in ``set_name`` (``__AllParameterSets`` counts for every
        set), or None when it is named only there."""
        found = dict(self.positions)
        return found.get(set_name, found.get("__AllParameterSets"))


_ACTION_PREFERENCE: Final = ("SilentlyContinue", "Stop", "Continue", "Inquire", "Ignore", "Suspend")


def _common(
    name: str, alias: str, type_name: str, values: tuple[str, ...] | None = None
) -> ParameterInfo:
    spec = parse_type(type_name, has_values=values is not None)
    return ParameterInfo(name, spec, (alias,), values, common=True)


# Declaration order of CommonParameters, then the ShouldProcess parameters (only on cmdlets
# that support ShouldProcess).
COMMON_PARAMETERS: Final[tuple[ParameterInfo, ...]] = (
    _common("Verbose", "vb", "SwitchParameter"),
    _common("Debug", "db", "SwitchParameter"),
    _common("ErrorAction", "ea", _SMA + "ActionPreference", _ACTION_PREFERENCE),
    _common("WarningAction", "wa", _SMA + "ActionPreference", _ACTION_PREFERENCE),
    _common("InformationAction", "infa", _SMA + "ActionPreference", _ACTION_PREFERENCE),
    _common("ErrorVariable", "ev", "String"),
    _common("WarningVariable", "wv", "String"),
    _common("InformationVariable", "iv", "String"),
    _common("OutVariable", "ov", "String"),
    _common("OutBuffer", "ob", "Int32"),
    _common("PipelineVariable", "pv", "String"),
    _common("WhatIf", "wi", "SwitchParameter"),
    _common("Confirm", "cf", "SwitchParameter"),
)
_COMMON_NAMES: Final = frozenset(p.name.lower() for p in COMMON_PARAMETERS)
SHOULD_PROCESS_PARAMETERS: Final = frozenset({"WhatIf", "Confirm"})


@dataclass(frozen=True)
class CmdletInfo:
    """A command's parameters and parameter sets (``set -> canonical parameter -> mandatory``).

    ``parameters`` holds declared parameters followed by the common parameters (WhatIf and
    Confirm only when ``supports_should_process``); a declared parameter that is in no listed
    set is treated as a member of every set.  ``pipeline_data`` says the parameters'
    ``pipeline`` fields come from the data (else the pipeline rule is the heuristic of the
    module docstring).
    """

    name: str
    module: str
    parameter_sets: Mapping[str, Mapping[str, bool]]
    parameters: Mapping[str, ParameterInfo]
    supports_should_process: bool = True
    pipeline_data: bool = False
    _exact: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        for info in self.parameters.values():
            for key in (info.name, *info.aliases):
                self._exact.setdefault(key.lower(), info.name)

    @property
    def declared(self) -> list[str]:
        """Declared (non-common) parameter names in data order."""
        return [p.name for p in self.parameters.values() if not p.common]

    def mandatory_anywhere(self, name: str) -> bool:
        """True when ``name`` is mandatory in at least one parameter set."""
        return any(members.get(name, False) for members in self.parameter_sets.values())

    def in_sets(self, name: str) -> bool:
        """True when ``name`` narrows the parameter set (it is in some but not all sets)."""
        containing = sum(1 for members in self.parameter_sets.values() if name in members)
        return 0 < containing < len(self.parameter_sets)

    def lookup(self, name: str) -> str | None:
        """Exact (case-insensitive) parameter name or alias -> canonical name."""
        return self._exact.get(name.lower())

    def match(self, typed: str, errors: _ErrorContext | None = None) -> ParameterInfo | None:
        """Resolve a typed parameter name like PowerShell's ``GetMatchingParameter``.

        Returns None for an unknown name; raises ``AmbiguousParameter``.
        """
        errors = errors or _ErrorContext(self.name, _Flavour.CMDLET, self.module)
        exact = self.lookup(typed)
        if exact is not None:
            return self.parameters[exact]
        prefix = typed.lower()
        matches: list[ParameterInfo] = []
        for info in self.parameters.values():
            keys = (info.name, *info.aliases)
            if any(k.lower().startswith(prefix) for k in keys) and info not in matches:
                matches.append(info)
        if len(matches) <= 1:
            return matches[0] if matches else None
        declared = [m for m in matches if not m.common]
        if len(declared) == 1:
            return declared[0]
        listed = "".join(f" -{m.name}" for m in matches)
        errors.fail(
            f"Parameter cannot be processed because the parameter name '{typed}' is ambiguous. "
            f"Possible matches include:{listed}.",
            "AmbiguousParameter",
        )


def build_cmdlet(name: str, raw: Mapping[str, Any]) -> CmdletInfo:
    """Build a :class:`CmdletInfo` from one ``cmdlets.<Name>`` entry of the data file."""
    module = str(raw.get("module", ""))
    raw_params: Mapping[str, Any] = raw.get("parameters", {})
    spelling = {p.lower(): p for p in raw_params if p.lower() not in _COMMON_NAMES}
    sets: dict[str, dict[str, bool]] = {}
    for set_name, members in raw.get("parameter_sets", {}).items():
        sets[set_name] = {}
        for pname, mandatory in members.items():
            canonical = spelling.setdefault(pname.lower(), pname)
            sets[set_name][canonical] = bool(mandatory)
    params: dict[str, ParameterInfo] = {}
    for canonical in spelling.values():
        params[canonical] = _declared_parameter(canonical, raw_params, module)
    should_process = bool(raw.get("supports_should_process", True))
    for common in COMMON_PARAMETERS:
        if should_process or common.name not in SHOULD_PROCESS_PARAMETERS:
            params.setdefault(common.name, common)
    pipeline_data = any("pipeline" in entry for entry in raw_params.values())
    return CmdletInfo(
        name,
        module,
        sets or {"__AllParameterSets": {}},
        params,
        supports_should_process=should_process,
        pipeline_data=pipeline_data,
    )


def _declared_parameter(name: str, raw_params: Mapping[str, Any], module: str) -> ParameterInfo:
    entry: Mapping[str, Any] = next(
        (v for k, v in raw_params.items() if k.lower() == name.lower()), {}
    )
    values = entry.get("accepted_values")
    accepted = tuple(str(v) for v in values) if values else None
    raw_type = entry.get("type") or ("SwitchParameter" if entry.get("switch") else None)
    spec = parse_type(raw_type, has_values=accepted is not None, module=module)
    if spec.kind in (Kind.SWITCH, Kind.BOOLEAN, Kind.OTHER):
        accepted = None  # help-text artefacts such as SwitchParameter "true"
    aliases = tuple(str(a) for a in entry.get("aliases") or ())
    positions = tuple((str(k), int(v)) for k, v in (entry.get("positions") or {}).items())
    if spec.kind is Kind.SWITCH:
        positions = ()  # a switch takes no argument, so never a positional one
    pipeline = entry.get("pipeline")
    return ParameterInfo(
        name,
        spec,
        aliases,
        accepted,
        positions=positions,
        pipeline=str(pipeline) if pipeline else None,
    )


# --------------------------------------------------------------------------------------------
# Binding result
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bound:
    """A successfully bound invocation.

    ``params`` is keyed by canonical parameter name; switches are ``True``/``False``, values of
    array parameters are lists, integers are ``int``, ValidateSet/enum values use the set's
    spelling.  ``candidate_sets`` lists the sets that tied when the set had to be picked
    without knowing the cmdlet's default set (empty when resolution was unambiguous).
    """

    cmdlet: str
    module: str
    parameter_set: str
    params: dict[str, Any]
    positional: tuple[Any, ...] = ()
    candidate_sets: tuple[str, ...] = ()
    info: CmdletInfo | None = field(default=None, repr=False, compare=False)

    def was_given(self, name: str) -> bool:
        """True when parameter ``name`` (canonical name or alias, any case) was bound."""
        canonical = self.info.lookup(name) if self.info is not None else None
        wanted = (canonical or name).lower()
        return any(key.lower() == wanted for key in self.params)

    def get(self, name: str, default: Any = None) -> Any:
        """Value of parameter ``name`` (canonical name or alias), or ``default``."""
        canonical = self.info.lookup(name) if self.info is not None else None
        wanted = (canonical or name).lower()
        return next((v for k, v in self.params.items() if k.lower() == wanted), default)


Arguments = Mapping[str, Any] | Sequence[tuple[str | None, Any]]
"""Named arguments as a mapping, or ``(name, value)`` pairs in order (``name`` None:
positional).  Leading ``-`` and trailing ``:`` of names are ignored."""


# --------------------------------------------------------------------------------------------
# Value conversion
# --------------------------------------------------------------------------------------------


class _ConversionFailure(Exception):
    """Raised by converters; wrapped into the flavour-specific binding error."""

    def __init__(
        self, inner: str, *, not_supported_from: str | None = None, detail: str = ""
    ) -> None:
        super().__init__(inner)
        self.inner = inner
        self.not_supported_from = not_supported_from
        self.detail = detail


def _invalid_cast(value: Any, type_name: str, error: str) -> _ConversionFailure:
    text = f'Cannot convert value "{ps_text(value)}" to type "{type_name}". Error: "{error}"'
    return _ConversionFailure(text)


_FORMAT_ERROR: Final = "Input string was not in a correct format."
_HEX_RE: Final = re.compile(r"^(?:0x|&h|#)(?P<digits>[0-9a-f]+)$", re.I)
_INT_RE: Final = re.compile(r"^[+-]?\d+$")
_FLOAT_RE: Final = re.compile(r"^[+-]?(?:\d[\d,]*\.?\d*|\.\d+)(?:e[+-]?\d+)?$", re.I)


def _overflow(name: str) -> str:
    return f"Value was either too large or too small for {_INTEGER_TYPES[name][2]}."


def _to_integer(value: Any, spec: TypeSpec) -> int:
    """LanguagePrimitives.ConvertTo(value, [IntN]) for scalars."""
    name = spec.element
    low, high, _ = _INTEGER_TYPES[name]
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        if not low <= value <= high:
            raise _invalid_cast(value, spec.full_name, _overflow(name))
        return value
    if isinstance(value, float):
        return _float_to_integer(value, value, spec)
    if isinstance(value, str):
        return _string_to_integer(value, spec)
    raise _cast_to_type(value, spec.full_name)


def _float_to_integer(original: Any, number: float, spec: TypeSpec) -> int:
    low, high, _ = _INTEGER_TYPES[spec.element]
    if math.isnan(number) or math.isinf(number) or not low <= round(number) <= high:
        raise _invalid_cast(original, spec.full_name, _overflow(spec.element))
    return round(number)  # banker's rounding, like Convert.ToInt32(double)


def _string_to_integer(text: str, spec: TypeSpec) -> int:
    """Int32Converter.ConvertFrom, falling back to the Double path on FormatException."""
    stripped = text.strip()
    if not stripped:
        return 0
    low, high, _ = _INTEGER_TYPES[spec.element]
    hex_match = _HEX_RE.match(stripped)
    if hex_match:
        return _hex_to_integer(text, hex_match.group("digits"), spec)
    if _INT_RE.match(stripped):
        number = int(stripped)
        if not low <= number <= high:
            raise _invalid_cast(text, spec.full_name, _overflow(spec.element))
        return number
    if _FLOAT_RE.match(stripped):
        try:
            return _float_to_integer(text, float(stripped.replace(",", "")), spec)
        except _ConversionFailure:
            pass  # PowerShell reports the original FormatException
    raise _invalid_cast(text, spec.full_name, _FORMAT_ERROR)


def _hex_to_integer(text: str, digits: str, spec: TypeSpec) -> int:
    low, high, _ = _INTEGER_TYPES[spec.element]
    number = int(digits, 16)
    width = (high - low).bit_length()
    if number >= 2**width:
        raise _invalid_cast(text, spec.full_name, _overflow(spec.element))
    if low < 0 and number > high:
        number -= 2**width  # two's complement, like Convert.ToInt32("ffffffff", 16)
    return number


def _to_float(value: Any, spec: TypeSpec) -> float:
    if isinstance(value, bool | int | float):
        return float(value)
    if isinstance(value, str):
        stripped = value.strip()
        if not stripped:
            return 0.0
        if _FLOAT_RE.match(stripped):
            return float(stripped.replace(",", ""))
        raise _invalid_cast(value, spec.full_name, _FORMAT_ERROR)
    raise _cast_to_type(value, spec.full_name)


def _cast_to_type(value: Any, type_name: str) -> _ConversionFailure:
    return _ConversionFailure(
        f'Cannot convert the "{ps_text(value)}" value of type "{ps_type_name(value)}" '
        f'to type "{type_name}".'
    )


def _to_string(value: Any) -> Any:
    if isinstance(value, bool | int | float):
        return ps_text(value)
    return value


def _to_enum(value: Any, spec: TypeSpec, names: Sequence[str]) -> Any:
    """String -> enum with PowerShell's case-insensitive minimum disambiguation."""
    if not isinstance(value, str):
        return value  # numbers map to enum values we do not know; accept
    parts = [part.strip() for part in value.split(",")]
    if any(part.lstrip("+-").isdigit() for part in parts):
        return value
    resolved = [_enum_member(part, value, spec, names) for part in parts]
    return ", ".join(resolved)


def _enum_member(part: str, original: str, spec: TypeSpec, names: Sequence[str]) -> str:
    lowered = part.lower()
    exact = [n for n in names if n.lower() == lowered]
    if exact:
        return exact[0]
    prefixed = [n for n in names if n.lower().startswith(lowered)] if part else []
    if len(prefixed) == 1:
        return prefixed[0]
    if prefixed:
        error = (
            f"The identifier name {part} cannot be processed because it is either too similar "
            f"or identical to the following enumerator names: {', '.join(prefixed)}. "
            "Use a more specific identifier name."
        )
    else:
        error = (
            f"Unable to match the identifier name {part} to a valid enumerator name. Specify "
            f"one of the following enumerator names and try again:\r\n{', '.join(names)}"
        )
    raise _invalid_cast(original, spec.full_name, error)


_BOOL_SCRIPT_ERROR: Final = (
    'Cannot convert value "{source}" to type "{target}". Boolean parameters accept only '
    "Boolean values and numbers, such as $True, $False, 1 or 0."
)


def _to_boolean(value: Any, spec: TypeSpec) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    raise _ConversionFailure(
        _BOOL_SCRIPT_ERROR.format(source=ps_type_name(value), target=spec.full_name),
        not_supported_from=ps_type_name(value),
    )


def _truthy(value: Any) -> bool:
    """LanguagePrimitives.IsTrue (used for elements of Boolean[] parameters)."""
    if isinstance(value, list | tuple):
        return len(value) > 0
    return bool(value)


def _convert_scalar(value: Any, param: ParameterInfo) -> Any:
    spec = param.type
    if value is None:
        return None
    if spec.kind is Kind.INTEGER:
        return _to_integer(value, spec)
    if spec.kind is Kind.FLOAT:
        return _to_float(value, spec)
    if spec.kind is Kind.STRING:
        return _to_string(value)
    if spec.kind is Kind.ENUM:
        return _to_enum(value, spec, param.accepted_values or ())
    if spec.kind is Kind.BOOLEAN:
        return _truthy(value)
    return value


# --------------------------------------------------------------------------------------------
# The binder
# --------------------------------------------------------------------------------------------


_GUID_RE: Final = re.compile(
    r"^\{?[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}\}?$", re.I
)


def _is_guid(text: str) -> bool:
    return bool(_GUID_RE.match(text.strip()))


def _catch_all(param: ParameterInfo) -> bool:
    """``PSObject``/``Object`` parameters take any argument, so they are tried last."""
    element = param.type.element.lower()
    return param.type.kind is Kind.OTHER and element in ("", "psobject", "object")


@dataclass
class _Argument:
    name: str | None
    value: Any


@dataclass
class _BindState:
    info: CmdletInfo
    errors: _ErrorContext
    bound: dict[str, Any] = field(default_factory=dict)
    leftovers: list[_Argument] = field(default_factory=list)


def _arguments(params: Arguments) -> list[_Argument]:
    items: Sequence[tuple[str | None, Any]]
    items = list(params.items()) if isinstance(params, Mapping) else list(params)
    result = []
    for name, value in items:
        if name is not None:
            name = name[1:] if name.startswith("-") else name
            name = name[:-1] if name.endswith(":") else name
        result.append(_Argument(name, value))
    return result


class _Binder:
    """Binds arguments to one command description (cmdlet or script)."""

    def __init__(self, info: CmdletInfo, flavour: _Flavour) -> None:
        self.info = info
        self.errors = _ErrorContext(info.name, flavour, info.module)

    # -- public entry ---------------------------------------------------------------------
    def bind(self, params: Arguments, *, positional_ok: bool, pipeline_input: bool) -> Bound:
        state = _BindState(self.info, self.errors)
        for argument in _arguments(params):
            self._bind_argument(state, argument)
        positional = self._check_leftovers(state, positional_ok)
        chosen, tie = self._resolve_set(set(state.bound), pipeline_input)
        self._check_mandatory(chosen, set(state.bound), pipeline_input)
        return Bound(
            cmdlet=self.info.name,
            module=self.info.module,
            parameter_set=chosen,
            params=state.bound,
            positional=positional,
            candidate_sets=tie,
            info=self.info,
        )

    def resolve_names(self, names: Sequence[str]) -> tuple[str, ...]:
        """Names-only check: match each name, then find the sets containing all of them."""
        bound: set[str] = set()
        for typed in names:
            param = self.info.match(typed, self.errors)
            if param is None:
                self._not_found(typed)
            bound.add(param.name)
        return tuple(self._candidates(bound))

    # -- named arguments ------------------------------------------------------------------
    def _bind_argument(self, state: _BindState, argument: _Argument) -> None:
        if argument.name is None:
            state.leftovers.append(argument)
            return
        param = self.info.match(argument.name, self.errors)
        if param is None:
            state.leftovers.append(argument)
            return
        if param.name in state.bound:
            self.errors.fail(
                f"Cannot bind parameter because parameter '{argument.name}' is specified more "
                "than once. To provide multiple values to parameters that can accept multiple "
                'values, use the array syntax. For example, "-parameter value1,value2,value3".',
                "ParameterAlreadyBound",
            )
        state.bound[param.name] = self._bind_value(param, argument.value)

    def _bind_value(self, param: ParameterInfo, value: Any) -> Any:
        converted = self._coerce(param, value)
        if param.accepted_values is not None and param.type.kind is not Kind.ENUM:
            converted = self._validate_set(param, converted)
        if self.info.mandatory_anywhere(param.name):
            self._validate_not_null_or_empty(param, converted)
        return converted

    def _check_leftovers(self, state: _BindState, positional_ok: bool) -> tuple[Any, ...]:
        for argument in state.leftovers:
            if argument.name is not None:
                self._not_found(argument.name)
        remaining = self._bind_positional(state, [a.value for a in state.leftovers])
        if remaining and not positional_ok:
            value = remaining[0]
            self.errors.fail(
                "A positional parameter cannot be found that accepts argument "
                f"'{ps_text(value) if value is not None else '$null'}'.",
                "PositionalParameterNotFound",
            )
        return tuple(remaining)

    # -- positional arguments -------------------------------------------------------------
    def _possible_sets(self, given: set[str]) -> list[str]:
        narrowing = [name for name in given if self.info.in_sets(name)]
        return [
            set_name
            for set_name, members in self.info.parameter_sets.items()
            if all(name in members for name in narrowing)
        ]

    def _next_position(
        self, state: _BindState, after: int
    ) -> tuple[int, list[ParameterInfo]] | None:
        """The unbound parameters at the lowest position above ``after`` in any set still
        possible, value-typed ones first (see the module docstring)."""
        sets = self._possible_sets(set(state.bound))
        best: int | None = None
        bucket: list[ParameterInfo] = []
        for param in self.info.parameters.values():
            if param.common or param.name in state.bound or not param.positions:
                continue
            members = [s for s in sets if param.name in self.info.parameter_sets[s]]
            if not self.info.in_sets(param.name) and not members:
                members = sets  # in no listed set: a member of every set
            found = [p for p in (param.position_in(s) for s in members) if p is not None]
            found = [p for p in found if p > after]
            if not found:
                continue
            position = min(found)
            if best is None or position < best:
                best, bucket = position, [param]
            elif position == best:
                bucket.append(param)
        bucket.sort(key=_catch_all)
        return None if best is None else (best, bucket)

    def _bind_positional(self, state: _BindState, values: list[Any]) -> list[Any]:
        """Bind positional ``values`` in order; returns those no parameter takes."""
        after = -1
        pending = list(values)
        while pending:
            found = self._next_position(state, after)
            if found is None:
                break
            after, bucket = found
            value = pending[0]
            chosen = next((p for p in bucket if self._accepts(p, value)), None)
            if chosen is None:
                self._reject(bucket[0], value)
            state.bound[chosen.name] = self._bind_value(chosen, value)
            pending.pop(0)
        return pending

    def _accepts(self, param: ParameterInfo, value: Any) -> bool:
        spec = param.type
        if spec.kind is Kind.SWITCH:
            return False
        if spec.kind is not Kind.OTHER:
            try:
                self._coerce(param, value)
            except BindingError:
                return False
            return True
        element = spec.element.lower()
        if _catch_all(param):
            return True
        primitive = isinstance(value, str | int | float | bool)
        if element == "guid":
            return not primitive or (isinstance(value, str) and _is_guid(value))
        if element in _VALUE_TYPES:
            return True
        return not primitive

    def _reject(self, param: ParameterInfo, value: Any) -> NoReturn:
        if param.type.kind is not Kind.OTHER:
            self._coerce(param, value)  # raises the conversion error
        self._conversion_error(param, value, _cast_to_type(value, param.type.full_name))

    def _not_found(self, typed: str) -> NoReturn:
        self.errors.fail(
            f"A parameter cannot be found that matches parameter name '{typed}'.",
            "NamedParameterNotFound",
        )

    # -- conversion -----------------------------------------------------------------------
    def _coerce(self, param: ParameterInfo, value: Any) -> Any:
        spec = param.type
        try:
            if spec.kind is Kind.SWITCH and not spec.is_array:
                return True if value is None else _to_boolean(value, spec)
            if spec.kind is Kind.BOOLEAN and not spec.is_array:
                return self._coerce_boolean(param, value)
            if spec.is_array:
                return self._coerce_array(param, value)
            return self._coerce_scalar(param, value)
        except _ConversionFailure as failure:
            self._conversion_error(param, value, failure)

    def _coerce_boolean(self, param: ParameterInfo, value: Any) -> bool | None:
        if value is None:
            if param.type.nullable:
                return None
            self.errors.fail_validation(
                f"Cannot bind argument to parameter '{param.name}' because it is null.",
                "ParameterArgumentValidationErrorNullNotAllowed",
            )
        return _to_boolean(value, param.type)

    def _coerce_array(self, param: ParameterInfo, value: Any) -> list[Any] | None:
        if value is None:
            return None
        items = list(value) if isinstance(value, list | tuple) else [value]
        return [_convert_scalar(item, param) for item in items]

    def _coerce_scalar(self, param: ParameterInfo, value: Any) -> Any:
        if isinstance(value, list | tuple) and param.type.kind not in (Kind.OTHER, Kind.ENUM):
            if self.errors.flavour is _Flavour.SCRIPT:
                return self._script_list_to_scalar(param, value)
            raise _ConversionFailure(
                "Specified method is not supported.",
                not_supported_from="System.Object[]",
                detail="Specified method is not supported.",
            )
        if isinstance(value, list | tuple):
            return [_convert_scalar(item, param) for item in value]
        return _convert_scalar(value, param)

    def _script_list_to_scalar(self, param: ParameterInfo, value: Sequence[Any]) -> Any:
        if param.type.kind is Kind.STRING:
            return " ".join(ps_text(item) for item in value)
        if len(value) == 1:
            return _convert_scalar(value[0], param)
        raise _cast_to_type(list(value), param.type.full_name)

    def _conversion_error(
        self, param: ParameterInfo, value: Any, failure: _ConversionFailure
    ) -> NoReturn:
        if self.errors.flavour is _Flavour.SCRIPT:
            self.errors.fail(
                f"Cannot process argument transformation on parameter '{param.name}'. "
                f"{failure.inner}",
                "ParameterArgumentTransformationError",
                category="InvalidData",
                exception_type=PARAMETER_TRANSFORMATION_EXCEPTION,
            )
        if failure.not_supported_from is not None:
            # CannotConvertArgument: "Cannot convert '{6}' to the type '{2}' required by
            # parameter '{1}'. {7}" -- {7} is empty for Boolean/switch (trailing space kept).
            self.errors.fail(
                f"Cannot convert '{failure.not_supported_from}' to the type "
                f"'{param.type.full_name}' required by parameter '{param.name}'. "
                f"{failure.detail}",
                "CannotConvertArgument",
            )
        self.errors.fail(
            f"Cannot bind parameter '{param.name}'. {failure.inner}",
            "CannotConvertArgumentNoMessage",
        )

    # -- validation -----------------------------------------------------------------------
    def _validate_set(self, param: ParameterInfo, value: Any) -> Any:
        allowed = param.accepted_values or ()
        if value is None:
            self._validation_failed(
                param,
                "The argument is null, empty, or an element of the argument collection contains "
                "a null value. Supply a collection that does not contain any null values and "
                "then try the command again.",
            )
        if isinstance(value, list):
            return [self._validate_set_element(param, item, allowed) for item in value]
        return self._validate_set_element(param, value, allowed)

    def _validate_set_element(self, param: ParameterInfo, item: Any, allowed: Sequence[str]) -> Any:
        if item is None:
            self._validation_failed(
                param,
                "The argument is null. Provide a valid value for the argument, and then try "
                "running the command again.",
            )
        text = ps_text(item)
        for candidate in allowed:
            if candidate.lower() == text.lower():
                return candidate if isinstance(item, str) else item
        self._validation_failed(
            param,
            f'The argument "{text}" does not belong to the set "{",".join(allowed)}" specified '
            "by the ValidateSet attribute. Supply an argument that is in the set and then try "
            "the command again.",
        )

    def _validation_failed(self, param: ParameterInfo, message: str) -> NoReturn:
        self.errors.fail_validation(
            f"Cannot validate argument on parameter '{param.name}'. {message}",
            "ParameterArgumentValidationError",
        )

    def _validate_not_null_or_empty(self, param: ParameterInfo, value: Any) -> None:
        spec = param.type
        if spec.kind is Kind.SWITCH or (value is None and spec.nullable):
            return
        if value is None:
            self._empty_error(param, "null", "NullNotAllowed")
        if isinstance(value, str) and value == "" and spec.kind is Kind.STRING:
            self._empty_error(param, "an empty string", "EmptyStringNotAllowed")
        if spec.is_array and isinstance(value, list):
            for item in value:
                if item is None:
                    self._empty_error(param, "null", "NullNotAllowed")
                if item == "" and spec.kind is Kind.STRING:
                    self._empty_error(param, "an empty string", "EmptyStringNotAllowed")
            if not value:
                self._empty_error(param, "an empty array", "EmptyArrayNotAllowed")

    def _empty_error(self, param: ParameterInfo, what: str, suffix: str) -> NoReturn:
        self.errors.fail_validation(
            f"Cannot bind argument to parameter '{param.name}' because it is {what}.",
            f"ParameterArgumentValidationError{suffix}",
        )

    # -- parameter sets -------------------------------------------------------------------
    def _candidates(self, given: set[str]) -> list[str]:
        narrowing = [name for name in given if self.info.in_sets(name)]
        candidates = [
            set_name
            for set_name, members in self.info.parameter_sets.items()
            if all(name in members for name in narrowing)
        ]
        if not candidates:
            self._ambiguous_set()
        return candidates

    def _ambiguous_set(self) -> NoReturn:
        self.errors.fail(
            "Parameter set cannot be resolved using the specified named parameters.",
            "AmbiguousParameterSet",
        )

    def _missing(self, set_name: str, given: set[str], pipeline_input: bool) -> list[str]:
        members = self.info.parameter_sets[set_name]
        return [
            name
            for name, mandatory in members.items()
            if mandatory
            and name not in given
            and not (pipeline_input and self._from_pipeline(name))
        ]

    def _from_pipeline(self, name: str) -> bool:
        param = self.info.parameters.get(name)
        if self.info.pipeline_data:
            return param is not None and param.pipeline is not None
        return name.lower() == "inputobject" or (param is not None and param.type.pipeline_object)

    def _resolve_set(self, given: set[str], pipeline_input: bool) -> tuple[str, tuple[str, ...]]:
        candidates = self._candidates(given)
        if len(candidates) == 1:
            return candidates[0], ()
        missing = {name: self._missing(name, given, pipeline_input) for name in candidates}
        satisfied = [name for name in candidates if not missing[name]]
        if len(satisfied) == 1:
            return satisfied[0], ()
        if satisfied:
            return self._tie_break(satisfied), tuple(satisfied)
        if all(missing[name] == missing[candidates[0]] for name in candidates):
            return candidates[0], ()  # the mandatory check reports the common missing ones
        self._ambiguous_set()

    def _tie_break(self, satisfied: list[str]) -> str:
        def rank(set_name: str) -> tuple[int, int, int]:
            members = self.info.parameter_sets[set_name]
            mandatory = sum(1 for flag in members.values() if flag)
            return (mandatory, len(members), satisfied.index(set_name))

        return min(satisfied, key=rank)

    def _check_mandatory(self, set_name: str, given: set[str], pipeline_input: bool) -> None:
        missing = self._missing(set_name, given, pipeline_input)
        if missing:
            self.errors.fail(
                "Cannot process command because of one or more missing mandatory parameters:"
                + "".join(f" {name}" for name in missing)
                + ".",
                "MissingMandatoryParameter",
            )


def bind_command(
    info: CmdletInfo,
    params: Arguments,
    *,
    positional_ok: bool = False,
    pipeline_input: bool = False,
    script: bool = False,
) -> Bound:
    """Bind ``params`` to an arbitrary command description (used for .ps1 param blocks too).

    With ``script=True`` conversion failures use the script-parameter wording
    (``ParameterArgumentTransformationError``) instead of the compiled-cmdlet one.
    """
    flavour = _Flavour.SCRIPT if script else _Flavour.CMDLET
    return _Binder(info, flavour).bind(
        params, positional_ok=positional_ok, pipeline_input=pipeline_input
    )


# --------------------------------------------------------------------------------------------
# Catalogue
# --------------------------------------------------------------------------------------------

_DATA_PACKAGE: Final = "hvlab.powershell"
_DATA_FILE: Final = "cmdlets.json"


class Catalog:
    """Cmdlet catalogue backed by ``cmdlets.json`` (parsed once per path, then cached)."""

    def __init__(self, raw_cmdlets: Mapping[str, Any], aliases: Mapping[str, str]) -> None:
        self._raw = {name.lower(): (name, data) for name, data in raw_cmdlets.items()}
        self._aliases = {alias.lower(): target for alias, target in aliases.items()}
        self._built: dict[str, CmdletInfo] = {}

    @classmethod
    def load(cls, path: Path | None = None) -> Catalog:
        """The catalogue at ``path``, default: the packaged ``data/cmdlets.json``."""
        return _load_cached(str(Path(path).resolve()) if path is not None else None)

    @classmethod
    def from_json(cls, text: str | bytes) -> Catalog:
        """Parse a catalogue document (``{"cmdlets": ..., "aliases": ...}``)."""
        document = json.loads(text)
        return cls(document.get("cmdlets", {}), document.get("aliases", {}))

    # -- discovery ------------------------------------------------------------------------
    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.exists(name)

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._raw.values())

    def __len__(self) -> int:
        return len(self._raw)

    @property
    def aliases(self) -> dict[str, str]:
        """Command aliases (``Get-VMCheckpoint -> Get-VMSnapshot``), lower-cased keys."""
        return dict(self._aliases)

    def canonical(self, name: str) -> str | None:
        """Canonical cmdlet name for ``name`` (any case, aliases resolved), or None."""
        key = self._aliases.get(name.lower(), name).lower()
        entry = self._raw.get(key)
        return entry[0] if entry is not None else None

    def exists(self, name: str) -> bool:
        """True when ``name`` is a known cmdlet or alias."""
        return self.canonical(name) is not None

    def module_of(self, name: str) -> str | None:
        """Module of cmdlet ``name`` (aliases resolved), or None."""
        canonical = self.canonical(name)
        return self.cmdlet(canonical).module if canonical is not None else None

    def cmdlet(self, name: str) -> CmdletInfo:
        """The :class:`CmdletInfo` for ``name``; unknown names raise CommandNotFoundException."""
        canonical = self.canonical(name)
        if canonical is None:
            raise _command_not_found(name)
        key = canonical.lower()
        if key not in self._built:
            self._built[key] = build_cmdlet(canonical, self._raw[key][1])
        return self._built[key]

    # -- binding --------------------------------------------------------------------------
    def bind(
        self,
        name: str,
        params: Arguments,
        *,
        positional_ok: bool = False,
        pipeline_input: bool = False,
    ) -> Bound:
        """Bind ``params`` to cmdlet ``name`` (see the module docstring for the rules)."""
        return bind_command(
            self.cmdlet(name), params, positional_ok=positional_ok, pipeline_input=pipeline_input
        )

    def resolve_names(self, name: str, param_names: Sequence[str]) -> tuple[str, ...]:
        """Check parameter *names* only: every name must match a parameter and one parameter
        set must contain them all.  Returns the candidate sets; raises :class:`BindingError`
        (CommandNotFoundException, NamedParameterNotFound, AmbiguousParameter,
        AmbiguousParameterSet).  Mandatory parameters are not checked."""
        return _Binder(self.cmdlet(name), _Flavour.CMDLET).resolve_names(param_names)


@lru_cache(maxsize=8)
def _load_cached(path: str | None) -> Catalog:
    if path is None:
        text = (resources.files(_DATA_PACKAGE) / "data" / _DATA_FILE).read_bytes()
    else:
        text = Path(path).read_bytes()
    return Catalog.from_json(text)
