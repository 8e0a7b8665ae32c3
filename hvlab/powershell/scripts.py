"""The .ps1 script contract: header, param block, called commands, parameter binding.

Every script hvlab ships under ``hvlab/powershell/scripts/**/*.ps1`` starts with the header
line ``# hvlab-script: <name>@<version>`` (``<name>`` is the path below ``scripts/`` without
``.ps1``, e.g. ``host/test-port``; ``<version>`` a positive integer) and has a top-level
``param()`` block.  Scripts are parsed with the tree-sitter PowerShell grammar; any ERROR or
MISSING node is a syntax error.

Known grammar limitations (write scripts so that they parse):

* unquoted bare-word lists (``-Path C:\\a, C:\\b``) are errors -- quote list elements;
* the end-of-parameters token ``--`` is an error;
* ``foreach ($i in 1..3)`` parses ``1..3`` as a command; numeric "command names" are ignored;
* a MISSING ``;`` is ignored (PowerShell never requires one; the grammar inserts it after a
  script that consists of a param block only).

Parameter binding for scripts (:func:`bind_script_params`) reuses the cmdlet binder with a
single parameter set, the common parameters, and the script-parameter wording of conversion
errors (``ParameterArgumentTransformationError``).  ``ParameterSetName`` in ``[Parameter()]``
attributes is not modelled.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any, Final

import tree_sitter_powershell
from tree_sitter import Language, Node, Parser

from hvlab.powershell.catalog import (
    COMMON_PARAMETERS,
    Arguments,
    BindingError,
    Catalog,
    CmdletInfo,
    ParameterInfo,
    bind_command,
    parse_type,
)

__all__ = [
    "EXTERNAL_PROGRAMS",
    "UNCATALOGUED_CMDLETS",
    "CalledCommand",
    "ScriptError",
    "ScriptInfo",
    "ScriptParam",
    "bind_script_params",
    "header_of",
    "load_packaged_scripts",
    "parse_script",
    "script_command_info",
    "validate_script_commands",
]

# Native programs a script may call (compared lower-case, without directory and ".exe").
EXTERNAL_PROGRAMS: Final = frozenset(
    {
        "arp", "auditpol", "bcdedit", "certutil", "cmd", "dcdiag", "dism", "fsutil",
        "gpresult", "gpupdate", "hostname", "icacls", "ipconfig", "klist", "net", "netdom",
        "netsh", "nltest", "nslookup", "ping", "powershell", "reg", "repadmin", "robocopy",
        "route", "sc", "schtasks", "secedit", "setspn", "shutdown", "takeown", "w32tm",
        "wevtutil", "whoami", "winrm",
    }
)  # fmt: skip

# Microsoft.PowerShell.Utility (Windows PowerShell 5.1) is not in the catalogue data; these
# are allowed by name, without parameter checks.
UNCATALOGUED_CMDLETS: Final = frozenset(
    name.lower()
    for name in (
        "Add-Member", "Add-Type", "Clear-Variable", "Compare-Object", "ConvertFrom-Csv",
        "ConvertFrom-Json", "ConvertFrom-String", "ConvertFrom-StringData", "Convert-String",
        "ConvertTo-Csv", "ConvertTo-Html", "ConvertTo-Json", "ConvertTo-Xml", "Export-Clixml",
        "Export-Csv", "Format-Custom", "Format-Hex", "Format-List", "Format-Table",
        "Format-Wide", "Get-Alias", "Get-Culture", "Get-Date", "Get-FileHash", "Get-Host",
        "Get-Member", "Get-Random", "Get-Unique", "Get-Variable", "Group-Object",
        "Import-Clixml", "Import-Csv", "Import-LocalizedData", "Import-PowerShellDataFile",
        "Invoke-Expression", "Invoke-RestMethod", "Invoke-WebRequest", "Measure-Command",
        "Measure-Object", "New-Alias", "New-Guid", "New-Object", "New-TemporaryFile",
        "New-TimeSpan", "New-Variable", "Out-File", "Out-String", "Read-Host",
        "Remove-Variable", "Select-Object", "Select-String", "Select-Xml", "Set-Alias",
        "Set-Variable", "Sort-Object", "Start-Sleep", "Tee-Object", "Unblock-File",
        "Write-Debug", "Write-Error", "Write-Host", "Write-Information", "Write-Output",
        "Write-Progress", "Write-Verbose", "Write-Warning",
    )
)  # fmt: skip

# Built-in aliases that shadow a native program of the same name in Windows PowerShell 5.1.
_SHADOWING_ALIASES: Final[dict[str, str]] = {
    "sc": "Set-Content",
    "curl": "Invoke-WebRequest",
    "wget": "Invoke-WebRequest",
}

_HEADER_RE: Final = re.compile(
    r"^#\s*hvlab-script:\s*(?P<name>[A-Za-z0-9][A-Za-z0-9_./-]*)@(?P<version>[1-9][0-9]*)\s*$"
)
_NUMERIC_NAME_RE: Final = re.compile(r"^[\d.]+$")


class ScriptError(ValueError):
    """A script violates the .ps1 contract (header, syntax, param block, packaging)."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        self.message = message
        self.line = line
        self.column = column
        where = f"line {line}: " if line is not None else ""
        super().__init__(f"{where}{message}")


@dataclass(frozen=True)
class ScriptParam:
    """One parameter of the script's ``param()`` block."""

    name: str
    type: str | None
    mandatory: bool
    has_default: bool
    validate_set: list[str] | None
    line: int = 0


@dataclass(frozen=True)
class CalledCommand:
    """A command invocation: ``named_params`` without dashes, in order; ``splatted`` holds
    the names of splatted variables (``@args`` -> ``args``)."""

    name: str
    named_params: list[str]
    line: int
    splatted: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ScriptInfo:
    """What the contract needs to know about a script."""

    name: str
    version: int
    params: list[ScriptParam]
    commands: list[CalledCommand]
    functions: list[str] = field(default_factory=list)
    cmdlet_binding: bool = False

    def param(self, name: str) -> ScriptParam | None:
        """The parameter called ``name`` (case-insensitive), or None."""
        return next((p for p in self.params if p.name.lower() == name.lower()), None)


# --------------------------------------------------------------------------------------------
# Header
# --------------------------------------------------------------------------------------------


def header_of(text: str) -> tuple[str, int] | None:
    """``(name, version)`` from the first line of ``text``, without parsing; None if absent."""
    first = text.lstrip("\ufeff").split("\n", 1)[0].rstrip("\r")
    match = _HEADER_RE.match(first)
    if match is None:
        return None
    return match.group("name"), int(match.group("version"))


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _parser() -> Parser:
    return Parser(Language(tree_sitter_powershell.language()))


def _text(node: Node | None) -> str:
    if node is None or node.text is None:
        return ""
    return node.text.decode("utf-8", errors="replace")


def _line(node: Node) -> int:
    return node.start_point[0] + 1


def _walk(node: Node) -> Iterator[Node]:
    yield node
    for child in node.children:
        yield from _walk(child)


def parse_script(text: str) -> ScriptInfo:
    """Parse and check a script; raises :class:`ScriptError` (with a line) on violations."""
    header = header_of(text)
    if header is None:
        raise ScriptError("missing header line '# hvlab-script: <name>@<version>'", 1)
    tree = _parser().parse(text.lstrip("\ufeff").encode("utf-8"))
    root = tree.root_node
    _check_syntax(root)
    block = next((c for c in root.children if c.type == "param_block"), None)
    if block is None:
        raise ScriptError("no top-level param() block", _first_code_line(root))
    return ScriptInfo(
        name=header[0],
        version=header[1],
        params=_script_params(block),
        commands=_called_commands(root),
        functions=_functions(root),
        cmdlet_binding=_has_cmdlet_binding(block),
    )


def _first_code_line(root: Node) -> int:
    code = next((c for c in root.children if c.type != "comment"), None)
    return _line(code) if code is not None else 1


def _check_syntax(root: Node) -> None:
    problems = [n for n in _walk(root) if n.is_error or (n.is_missing and n.type != ";")]
    if not problems:
        return
    innermost = [n for n in problems if not any(d.is_error for d in _walk(n) if d != n)]
    node = min(innermost or problems, key=lambda n: n.start_byte)
    if node.is_missing:
        raise ScriptError(f"syntax error: missing '{node.type}'", _line(node), _column(node))
    located = _error_location(node)
    snippet = _text(located).strip().splitlines()[0][:40] if _text(located).strip() else ""
    detail = f" near '{snippet}'" if snippet else ""
    raise ScriptError(f"syntax error{detail}", _line(located), _column(located))


def _error_location(node: Node) -> Node:
    """An ERROR node's own start is vague when it swallows whole statements; its last
    non-comment child is where the parser gave up."""
    children = [c for c in node.children if c.type != "comment"]
    return children[-1] if children else node


def _column(node: Node) -> int:
    return node.start_point[1] + 1


def _has_cmdlet_binding(block: Node) -> bool:
    names = (_attribute_name(a) for a in _walk(block) if a.type == "attribute")
    return any(name in ("cmdletbinding", "parameter") for name in names)


# -- param block ------------------------------------------------------------------------------


def _script_params(block: Node) -> list[ScriptParam]:
    return [_script_param(node) for node in _walk(block) if node.type == "script_parameter"]


def _script_param(node: Node) -> ScriptParam:
    variable = next(c for c in node.children if c.type == "variable")
    attributes = [a for c in node.children if c.type == "attribute_list" for a in c.children]
    attributes = [a for a in attributes if a.type == "attribute"]
    return ScriptParam(
        name=_text(variable).lstrip("$"),
        type=_param_type(attributes),
        mandatory=any(_is_mandatory(a) for a in attributes),
        has_default=any(c.type == "script_parameter_default" for c in node.children),
        validate_set=_validate_set(attributes),
        line=_line(node),
    )


def _attribute_name(attribute: Node) -> str:
    name = next((c for c in attribute.children if c.type == "attribute_name"), None)
    return _text(name).rsplit(".", 1)[-1].lower() if name is not None else ""


def _attribute_arguments(attribute: Node) -> list[Node]:
    args = next((c for c in attribute.children if c.type == "attribute_arguments"), None)
    if args is None:
        return []
    return [c for c in args.children if c.type == "attribute_argument"]


def _param_type(attributes: list[Node]) -> str | None:
    for attribute in attributes:
        literal = next((c for c in attribute.children if c.type == "type_literal"), None)
        if literal is not None:
            return _text(literal).strip()[1:-1].strip()
    return None


def _is_mandatory(attribute: Node) -> bool:
    if _attribute_name(attribute) != "parameter":
        return False
    for argument in _attribute_arguments(attribute):
        key = next((c for c in argument.children if c.type == "simple_name"), None)
        if key is None or _text(key).lower() != "mandatory":
            continue
        values = [c for c in argument.children if c.type not in ("simple_name", "=")]
        if not values:
            return True
        return _text(values[0]).strip().lower() in ("$true", "1")
    return False


def _validate_set(attributes: list[Node]) -> list[str] | None:
    for attribute in attributes:
        if _attribute_name(attribute) != "validateset":
            continue
        values = []
        for argument in _attribute_arguments(attribute):
            if any(c.type == "simple_name" for c in argument.children):
                continue  # named argument such as IgnoreCase = $false
            values.append(_unquote(_text(argument).strip()))
        return values
    return None


def _unquote(literal: str) -> str:
    if len(literal) >= 2 and literal[0] == literal[-1] == "'":
        return literal[1:-1].replace("''", "'")
    if len(literal) >= 2 and literal[0] == literal[-1] == '"':
        return literal[1:-1].replace('`"', '"').replace('""', '"')
    return literal


# -- commands ---------------------------------------------------------------------------------


def _called_commands(root: Node) -> list[CalledCommand]:
    commands = []
    for node in _walk(root):
        if node.type != "command":
            continue
        name = _command_name(node)
        if name is None or _NUMERIC_NAME_RE.match(name):
            continue
        named, splatted = _command_arguments(node)
        commands.append(CalledCommand(name, named, _line(node), splatted))
    return commands


def _command_name(command: Node) -> str | None:
    """Static command name, or None when it is computed (``& $cmd``, ``. $path``)."""
    direct = next((c for c in command.children if c.type == "command_name"), None)
    if direct is not None:
        return _text(direct)
    expr = next((c for c in command.children if c.type == "command_name_expr"), None)
    if expr is not None and len(expr.children) == 1 and expr.children[0].type == "command_name":
        return _text(expr.children[0])
    return None


def _command_arguments(command: Node) -> tuple[list[str], list[str]]:
    elements = next((c for c in command.children if c.type == "command_elements"), None)
    named: list[str] = []
    splatted: list[str] = []
    if elements is None:
        return named, splatted
    for element in elements.children:
        if element.type == "command_parameter":
            named.append(_text(element).lstrip("-").rstrip(":"))
        elif element.type == "array_literal_expression":
            token = _text(element).strip()
            if re.fullmatch(r"@[A-Za-z_][\w]*", token):
                splatted.append(token[1:])
    return named, splatted


def _functions(root: Node) -> list[str]:
    names = []
    for node in _walk(root):
        if node.type == "function_statement":
            name = next((c for c in node.children if c.type == "function_name"), None)
            if name is not None:
                names.append(_text(name))
    return names


# --------------------------------------------------------------------------------------------
# Binding
# --------------------------------------------------------------------------------------------


def script_command_info(info: ScriptInfo, command_name: str | None = None) -> CmdletInfo:
    """The script's param block as a single-set :class:`CmdletInfo` (plus common params)."""
    params: dict[str, ParameterInfo] = {}
    for param in info.params:
        values = tuple(param.validate_set) if param.validate_set is not None else None
        params[param.name] = ParameterInfo(param.name, parse_type(param.type), (), values)
    for common in COMMON_PARAMETERS:
        params.setdefault(common.name, common)
    members = {p.name: p.mandatory for p in info.params}
    name = info.name if command_name is None else command_name
    return CmdletInfo(name, "", {"__AllParameterSets": members}, params)


def bind_script_params(
    info: ScriptInfo, given: Arguments, *, command_name: str | None = None
) -> dict[str, Any]:
    """Bind ``given`` (a mapping or ``(name, value)`` pairs) to the script's param block with
    the cmdlet binder's texts.

    Raises :class:`~hvlab.powershell.catalog.BindingError`: NamedParameterNotFound,
    AmbiguousParameter, ParameterArgumentTransformationError, ParameterArgumentValidationError
    (ValidateSet), MissingMandatoryParameter.  FullyQualifiedErrorIds end with
    ``command_name`` (default: the script name; ``""`` for none).
    """
    bound = bind_command(script_command_info(info, command_name), given, script=True)
    return bound.params


# --------------------------------------------------------------------------------------------
# Packaged scripts
# --------------------------------------------------------------------------------------------


def _ps1_files(folder: Traversable, prefix: str = "") -> Iterator[tuple[str, Traversable]]:
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.is_dir():
            yield from _ps1_files(entry, f"{prefix}{entry.name}/")
        elif entry.name.lower().endswith(".ps1"):
            yield f"{prefix}{entry.name[:-4]}", entry


@lru_cache(maxsize=1)
def _packaged() -> tuple[tuple[str, ScriptInfo, str], ...]:
    root = resources.files("hvlab.powershell") / "scripts"
    found: dict[str, tuple[ScriptInfo, str]] = {}
    for relative, entry in _ps1_files(root):
        text = entry.read_text(encoding="utf-8-sig")
        try:
            info = parse_script(text)
        except ScriptError as error:
            raise ScriptError(f"scripts/{relative}.ps1: {error.message}", error.line) from error
        if info.name != relative:
            raise ScriptError(
                f"scripts/{relative}.ps1: header names '{info.name}', expected '{relative}'", 1
            )
        found[info.name] = (info, text)
    return tuple((name, info, text) for name, (info, text) in found.items())


def load_packaged_scripts() -> dict[str, tuple[ScriptInfo, str]]:
    """Every ``hvlab/powershell/scripts/**/*.ps1``: ``name -> (info, text)``.

    Raises :class:`ScriptError` when a script breaks the contract or its header name does not
    match its path.
    """
    return {name: (info, text) for name, info, text in _packaged()}


# --------------------------------------------------------------------------------------------
# Command validation
# --------------------------------------------------------------------------------------------


def _program_key(name: str) -> str:
    base = re.split(r"[\\/]", name)[-1].lower()
    return base[:-4] if base.endswith(".exe") else base


def validate_script_commands(info: ScriptInfo, catalog: Catalog) -> list[str]:
    """Problems with the commands a script calls (empty list: all fine).

    Catalogued cmdlets must accept the named parameters used (names exist, one parameter set
    contains them all -- values and mandatory parameters are not known statically).  Native
    programs must be in :data:`EXTERNAL_PROGRAMS`; Utility cmdlets in
    :data:`UNCATALOGUED_CMDLETS` and functions defined in the script are accepted as is.
    """
    problems: list[str] = []
    functions = {name.lower() for name in info.functions}
    for command in info.commands:
        problem = _command_problem(command, catalog, functions)
        if problem is not None:
            problems.append(f"line {command.line}: {problem}")
    return problems


def _command_problem(command: CalledCommand, catalog: Catalog, functions: set[str]) -> str | None:
    name = command.name
    lowered = name.lower()
    if lowered in functions or lowered in UNCATALOGUED_CMDLETS:
        return None
    if catalog.exists(name):
        try:
            catalog.resolve_names(name, command.named_params)
        except BindingError as error:
            return f"{catalog.canonical(name)}: {error.message}"
        return None
    if lowered in _SHADOWING_ALIASES:
        return (
            f"'{name}' is the {_SHADOWING_ALIASES[lowered]} alias in Windows PowerShell; "
            f"call '{name}.exe'"
        )
    if _program_key(name) in EXTERNAL_PROGRAMS:
        return None
    return f"unknown command '{name}' (not in the cmdlet catalogue or the program allowlist)"
