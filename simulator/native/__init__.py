"""Native Windows programs on a simulated host: klist, icacls, netsh, ping, sc.exe, net, reg.

A native program reaches a host in one of two ways:

- as a PSRP command whose name is the program (``klist``, ``klist.exe``,
  ``C:\\Windows\\System32\\klist.exe``) with positional arguments, each a string
  (``PowerShell.add_cmdlet("klist").add_argument("purge")``); or
- as script text without an ``# hvlab-script:`` header whose statements are native command
  lines with literal arguments, or ``$LASTEXITCODE`` (what ``Invoke-Command -ScriptBlock {
  klist purge -li 0x3e7 }`` sends), see :func:`script_statements`.

A program writes its standard output as one string per line to the output stream and each
standard-error line as an error record (``NativeCommandError`` for the first line,
``NativeCommandErrorMessage`` for the rest, as Windows PowerShell 5.1 does in a remote
session); its exit code becomes the runspace's ``$LASTEXITCODE``. A non-zero exit code is not
an error record and does not fail the pipeline.

Each program models the forms an administrator of this lab uses (documented with sources in
``docs/simulator-fidelity.md``); any other form of a Windows program, and any program of
:data:`WINDOWS_PROGRAMS` without a model, is a terminating ``NotSimulated`` error that names
the program. A name that is no program of Windows stays "not recognized".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from simulator.native import icacls, klist, net, netsh, ping, reg, sc
from simulator.native.run import NativeRun, NotModelled, Program
from simulator.protocol import PipelineContext, TerminatingError

if TYPE_CHECKING:
    from simulator.core import SimState
    from simulator.world import Host

# Programs in %SystemRoot%\System32 of Windows Server 2019/2022 (with the roles and tools of
# this lab) that an administrator may call; those without a model in PROGRAMS answer
# "not simulated". ``sc`` alone is PowerShell's alias of Set-Content, so only ``sc.exe`` is
# the program.
WINDOWS_PROGRAMS = frozenset(
    {
        "arp", "attrib", "auditpol", "bcdedit", "certutil", "chkdsk", "cmd", "dcdiag",
        "diskpart", "dism", "driverquery", "findstr", "fsutil", "gpresult", "gpupdate",
        "hostname", "icacls", "ipconfig", "klist", "net", "net1", "netdom", "netsh", "netstat",
        "nltest", "nslookup", "pathping", "ping", "powershell", "reg", "repadmin", "robocopy",
        "route", "sc", "schtasks", "secedit", "setspn", "shutdown", "systeminfo", "takeown",
        "taskkill", "tasklist", "tracert", "w32tm", "wevtutil", "where", "whoami", "winrm",
        "wmic", "xcopy",
    }
)  # fmt: skip
# PowerShell aliases that shadow a program of the same name (Windows PowerShell 5.1)
SHADOWING_ALIASES = {"sc": "Set-Content"}
SYSTEM_DIRS = ("", "c:\\windows\\system32", "c:\\windows\\system32\\", "%systemroot%\\system32")


@dataclass(frozen=True)
class NativeProgram:
    """A program's model and whether the program can change the world (then the world is
    saved after it runs and tests count it as a change, :func:`simulator.engine.mutates`)."""

    run: Program
    mutates: bool


# ping only sends echo requests; every other modelled program has forms that change the host
# (klist purge, icacls /grant, netsh ... add, sc.exe config, net localgroup /add, reg add)
PROGRAMS: dict[str, NativeProgram] = {
    "klist": NativeProgram(klist.run, mutates=True),
    "icacls": NativeProgram(icacls.run, mutates=True),
    "netsh": NativeProgram(netsh.run, mutates=True),
    "ping": NativeProgram(ping.run, mutates=False),
    "sc": NativeProgram(sc.run, mutates=True),
    "net": NativeProgram(net.run, mutates=True),
    "reg": NativeProgram(reg.run, mutates=True),
}


def program_of(command: str) -> str | None:
    """The canonical program name when ``command`` names a Windows program, else None."""
    text = command.strip().strip('"').strip("'")
    low = text.lower().replace("/", "\\")
    directory, _, base = low.rpartition("\\")
    if directory not in {d.rstrip("\\") for d in SYSTEM_DIRS}:
        return None
    has_exe = base.endswith(".exe")
    name = base[:-4] if has_exe else base
    if name == "sc" and not has_exe and not directory:
        return None  # PowerShell's alias of Set-Content
    return name if name in WINDOWS_PROGRAMS else None


def not_simulated(program: str, args: list[str], detail: str = "") -> TerminatingError:
    shown = " ".join([program, *args]).strip()
    suffix = f" ({detail})" if detail else ""
    return TerminatingError(
        f"not simulated: native program {program}.exe: '{shown}'{suffix}",
        "NotSimulated",
        "NotImplemented",
        target=program,
    )


def execute(
    sim: SimState, host: Host, program: str, args: list[str], session: str = ""
) -> NativeRun:
    """Run ``program`` with ``args`` against the world (the caller holds the world lock).

    Raises the ``NotSimulated`` TerminatingError for a program or form without a model.
    """
    model = PROGRAMS.get(program)
    if model is None:
        raise not_simulated(program, args, "no model of this program")
    run = NativeRun(sim, host, program, list(args), session)
    try:
        code = model.run(run)
    except NotModelled as exc:
        raise not_simulated(program, args, exc.detail) from None
    sim.native_exit_codes[session] = code
    return run


def write(run: NativeRun, ctx: PipelineContext) -> None:
    """A finished run's lines to the pipeline: stdout as strings, stderr as error records."""
    for line in run.stdout:
        ctx.output(line)
    for index, line in enumerate(run.stderr):
        error_id = "NativeCommandError" if index == 0 else "NativeCommandErrorMessage"
        ctx.error(line, error_id, "NotSpecified", line)


def last_exit_code(sim: SimState, session: str) -> int | None:
    return sim.native_exit_codes.get(session)


def arguments(values: list[Any]) -> list[str]:
    """PSRP argument values as the program's argv: arrays are spread, values as strings."""
    out: list[str] = []
    for value in values:
        if isinstance(value, (list, tuple)):
            out += arguments(list(value))
        elif isinstance(value, bool):
            out.append("True" if value else "False")
        elif value is not None:
            out.append(str(value))
    return out


# ---------------------------------------------------------------- ad-hoc script text


@dataclass(frozen=True)
class NativeLine:
    """One statement of an ad-hoc script: a native command line, or ``$LASTEXITCODE``."""

    program: str | None  # None: the statement is ``$LASTEXITCODE``
    args: tuple[str, ...] = ()


_EXIT_VARIABLE = re.compile(r"^\$(global:)?lastexitcode$", re.IGNORECASE)
_VARIABLE_START = re.compile(r"[A-Za-z0-9_?{(:]")
_BARE_STOP = set("(){}@,|&<>`;\"'")


class _Unsupported(Exception):
    pass


def script_statements(text: str) -> list[NativeLine] | None:
    """The statements of ``text`` when every one is a native command line with literal
    arguments (barewords, '...' and "..." without variables) or ``$LASTEXITCODE``; else None.
    """
    try:
        statements = [s for s in (_tokens(line) for line in _split(text)) if s]
    except _Unsupported:
        return None
    out: list[NativeLine] = []
    for tokens in statements:
        if len(tokens) == 1 and _EXIT_VARIABLE.match(tokens[0][0]) and not tokens[0][1]:
            out.append(NativeLine(None))
            continue
        words = [t for t, _ in tokens]
        if words[0] == "&" and not tokens[0][1]:
            words = words[1:]
        if not words:
            return None
        program = program_of(words[0])
        if program is None:
            return None
        out.append(NativeLine(program, tuple(words[1:])))
    return out or None


def _split(text: str) -> list[str]:
    """Statements split at newlines and ``;`` outside quotes; comments dropped."""
    out, current, quote = [], "", ""
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            current += ch
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
            current += ch
        elif ch == "#" and (not current or current[-1].isspace()):
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        elif ch in ";\n\r":
            out.append(current)
            current = ""
        else:
            current += ch
        i += 1
    if quote:
        raise _Unsupported
    out.append(current)
    return [s for s in out if s.strip()]


def _tokens(statement: str) -> list[tuple[str, bool]]:
    """``(word, quoted)`` pairs of one statement in PowerShell's argument mode."""
    out: list[tuple[str, bool]] = []
    i, n = 0, len(statement)
    while i < n:
        ch = statement[i]
        if ch.isspace():
            i += 1
            continue
        word, quoted = "", False
        while i < n and not statement[i].isspace():
            ch = statement[i]
            if ch == "'":
                end = i + 1
                while True:
                    end = statement.index("'", end)
                    if end + 1 < n and statement[end + 1] == "'":
                        end += 2
                        continue
                    break
                word += statement[i + 1 : end].replace("''", "'")
                quoted, i = True, end + 1
            elif ch == '"':
                end = statement.index('"', i + 1)
                inner = statement[i + 1 : end]
                if "`" in inner or _has_variable(inner):
                    raise _Unsupported
                word += inner
                quoted, i = True, end + 1
            elif ch in _BARE_STOP:
                if ch == "&" and not word and not out:
                    word, i = "&", i + 1
                    break
                raise _Unsupported
            else:
                if ch == "$" and _has_variable(statement[i : i + 2]) and (out or word):
                    raise _Unsupported
                word += ch
                i += 1
        if word.startswith("--%") or word.startswith(("2>", "1>", ">")):
            raise _Unsupported
        out.append((word, quoted))
    return out


def _has_variable(text: str) -> bool:
    """Does ``text`` contain a ``$`` that PowerShell expands (``$name``, ``${x}``, ``$(...)``)?"""
    for index, ch in enumerate(text):
        if ch == "$" and index + 1 < len(text) and _VARIABLE_START.match(text[index + 1]):
            if text[index + 1] == ":":
                continue
            return True
    return False
