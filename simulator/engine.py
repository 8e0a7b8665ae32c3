"""Executes PSRP invocations against the world: binding, module gating, dispatch, pipelines.

One :class:`Sim` holds the world, its lock, the clock and the cmdlet registry; one
:class:`HostHandler` per simulated host implements :class:`simulator.protocol.Handler`.
Cmdlet implementations (:mod:`simulator.cmdlets`) receive a :class:`simulator.core.Call` and
report through it; they import :mod:`simulator.core`, never this module.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hvlab.powershell.catalog import BindingError, Bound
from simulator import boot, localization, native
from simulator.accounts import Accounts
from simulator.clock import Clock
from simulator.cmdlets import build_registry
from simulator.core import Call, Entry, Prompt, Registry, SimState, prompt_error
from simulator.protocol import (
    RUNTIME_EXCEPTION,
    CommandCall,
    Invocation,
    Parameter,
    PipelineContext,
    TerminatingError,
)
from simulator.pstypes import prop
from simulator.winrm.records import shipped_powershell
from simulator.world import Host, World

MODULE_FEATURE = {
    "Hyper-V": "Hyper-V-PowerShell",
    "ActiveDirectory": "RSAT-AD-PowerShell",
    "ADDSDeployment": "AD-Domain-Services",
    "RemoteAccess": "RSAT-RemoteAccess-PowerShell",
}
COMMON = {
    "ErrorAction",
    "WarningAction",
    "InformationAction",
    "ErrorVariable",
    "WarningVariable",
    "InformationVariable",
    "OutVariable",
    "OutBuffer",
    "PipelineVariable",
    "Verbose",
    "Debug",
    "WhatIf",
    "Confirm",
}
_HEADER = re.compile(r"^\s*#\s*hvlab-script:\s*([\w.-]+)@([\w.-]+)", re.MULTILINE)
_PREFERENCE = re.compile(
    r"^\s*\$(WarningPreference)\s*=\s*['\"]?([A-Za-z]+)['\"]?\s*;?\s*$", re.IGNORECASE
)
_ACTION_PREFERENCES = ("SilentlyContinue", "Stop", "Continue", "Inquire", "Ignore", "Suspend")


# ---------------------------------------------------------------- the call


class Collector:
    """A PipelineContext that keeps output for the next command and forwards the rest."""

    def __init__(self, outer: PipelineContext) -> None:
        self.outer = outer
        self.items: list[Any] = []

    def output(self, obj: Any) -> None:
        self.items.append(obj)

    def error(
        self,
        message: str,
        error_id: str = "RuntimeException",
        category: str = "NotSpecified",
        target: str | None = None,
        exception_type: str = RUNTIME_EXCEPTION,
    ) -> None:
        self.outer.error(message, error_id, category, target, exception_type=exception_type)

    def warning(self, message: str) -> None:
        self.outer.warning(message)

    def progress(self, activity: str, percent: int, status: str = "") -> None:
        self.outer.progress(activity, percent, status)

    def stopping(self) -> bool:
        return self.outer.stopping()

    def sleep(self, seconds: float) -> bool:
        return self.outer.sleep(seconds)


class LocalizedContext:
    """A PipelineContext for a host whose display language is not en-US: its errors and
    warnings are worded as that host words them (simulator/localization.py)."""

    def __init__(self, outer: PipelineContext, locale: str) -> None:
        self.outer = outer
        self.locale = locale

    def output(self, obj: Any) -> None:
        self.outer.output(obj)

    def error(
        self,
        message: str,
        error_id: str = "RuntimeException",
        category: str = "NotSpecified",
        target: str | None = None,
        *,
        exception_type: str = RUNTIME_EXCEPTION,
    ) -> None:
        self.outer.error(localization.localize(self.locale, message), error_id, category, target,
                         exception_type=exception_type)

    def warning(self, message: str) -> None:
        self.outer.warning(localization.localize(self.locale, message))

    def progress(self, activity: str, percent: int, status: str = "") -> None:
        self.outer.progress(activity, percent, status)

    def stopping(self) -> bool:
        return self.outer.stopping()

    def sleep(self, seconds: float) -> bool:
        return self.outer.sleep(seconds)

def default_registry() -> Registry:
    """Every cmdlet, script and CIM implementation of :mod:`simulator.cmdlets`."""
    return build_registry()


class Sim(SimState):
    """The simulation with its host handlers: the standard registry unless one is given, and
    the ``reboot`` faults applied as commands arrive."""

    def __init__(
        self,
        world: World,
        clock: Clock | None = None,
        registry: Registry | None = None,
        state_path: Path | None = None,
        accounts: Accounts | None = None,
    ) -> None:
        super().__init__(world, registry or default_registry(), clock, state_path, accounts)
        self.on_command = self._fault_reboot

    def handler(self, host_name: str) -> HostHandler:
        return HostHandler(self, host_name)

    def _fault_reboot(self, host: Host, name: str) -> None:
        if self.faults.reboot_due(host.name, name):
            boot.restart(self, host)


def mutates(registry: Registry, name: str) -> bool:
    """Whether the command the world counts as ``name`` changes the world, by its handler's
    flag: a cmdlet's or packaged script's :attr:`Entry.mutates`, a native program's
    :attr:`simulator.native.NativeProgram.mutates` (counted as ``<program>.exe``). A name
    without a handler (a command that was not found or not simulated) counts as a change, so
    that a check for "nothing changed" never passes by not knowing a command."""
    low = name.lower()
    entry = registry.cmdlets.get(low) or registry.scripts.get(low)
    if entry is not None:
        return entry.mutates
    if low.endswith(".exe") and low[:-4] in native.PROGRAMS:
        return native.PROGRAMS[low[:-4]].mutates
    return True


def mutating_counts(
    registry: Registry, counters: Mapping[str, Mapping[str, int]]
) -> dict[str, dict[str, int]]:
    """Per host, the counts (``World.count``, a fleet state's ``counters``) of the commands
    that change the world (:func:`mutates`)."""
    return {host: {name: n for name, n in counts.items() if mutates(registry, name)}
            for host, counts in counters.items()}


# ---------------------------------------------------------------- the handler


class HostHandler:
    """protocol.Handler for one host."""

    def __init__(self, sim: Sim, host_name: str) -> None:
        self.sim = sim
        self.host_name = host_name
        # preference variables a runspace set (``$WarningPreference = 'SilentlyContinue'``)
        self.preferences: dict[str, dict[str, str]] = {}
        self._runspace = ""

    def ps_version(self) -> str:
        """The Windows PowerShell the host's Windows ships (PSVersionTable.PSVersion)."""
        with self.sim.lock:
            host = self.sim.world.host(self.host_name)
            return shipped_powershell(host.os_version if host is not None else "")

    def invoke(self, invocation: Invocation, ctx: PipelineContext) -> None:
        locale = self.sim.host(self.host_name).locale
        if locale != localization.DEFAULT:
            ctx = LocalizedContext(ctx, locale)
        pending = list(invocation.input)
        self._runspace = invocation.runspace
        try:
            for statement in invocation.statements:
                self._statement(statement, pending, ctx, invocation.runspace)
                pending = []
        except TerminatingError as exc:
            # a packaged script's own ``throw "text"`` (FullyQualifiedErrorId = the text) is
            # hvlab's wording and stays as it is; everything else is the host's
            if locale != localization.DEFAULT and exc.error_id != exc.message:
                exc.message = localization.localize(locale, exc.message)
                exc.args = (exc.message,)
            raise

    def _statement(
        self,
        commands: tuple[CommandCall, ...],
        items: list[Any],
        ctx: PipelineContext,
        session: str = "",
    ) -> None:
        for index, command in enumerate(commands):
            last = index == len(commands) - 1
            sink: PipelineContext = ctx if last else Collector(ctx)
            self._command(command, items, sink, piped=index > 0, session=session)
            items = [] if last else sink.items  # type: ignore[attr-defined]

    def _command(
        self,
        command: CommandCall,
        items: list[Any],
        ctx: PipelineContext,
        piped: bool,
        session: str = "",
    ) -> None:
        sim = self.sim
        with sim.lock:
            host = sim.host(self.host_name)
            if command.is_script and self._preference(command):
                return
            if self._native(host, command, items, ctx, session):
                return
            if command.is_script:
                name, entry, params = self._script(host, command)
                module = "Script"
            else:
                name, module, entry, bound = self._resolve(host, command, items, piped)
                params = dict(bound.params)
            sim.on_command(host, name)
            call = Call(sim, host, name, module, params, items, ctx, session=session)
            if not command.is_script:
                call.bound = bound
            self._run(call, entry, piped)

    def _native(
        self, host: Host, command: CommandCall, items: list[Any], ctx: PipelineContext, session: str
    ) -> bool:
        """Run ``command`` when it is a native program (or an ad-hoc script of native command
        lines and ``$LASTEXITCODE``); False when it is something else."""
        if command.is_script:
            if script_header(command.text) is not None:
                return False
            lines = native.script_statements(command.text)
            if lines is None:
                return False
            calls = [(line.program, list(line.args)) for line in lines]
        else:
            program = native.program_of(command.text)
            alias = native.SHADOWING_ALIASES.get(command.text.strip().lower())
            if alias is not None and self.sim.catalog.canonical(command.text.strip()) is None:
                raise native.not_simulated(
                    command.text, [], f"in Windows PowerShell it is the alias of {alias}"
                )
            if program is None:
                return False
            named = [p.name for p in command.parameters if p.name is not None]
            if named:
                raise native.not_simulated(
                    program, [], f"named parameter -{named[0]}: pass its arguments positionally"
                )
            calls = [(program, native.arguments([p.value for p in command.parameters]))]
        if items:
            raise native.not_simulated(calls[0][0] or "", [], "pipeline input (stdin)")
        for program, args in calls:
            if program is None:  # $LASTEXITCODE
                ctx.output(native.last_exit_code(self.sim, session))
                continue
            self._count(host, f"{program}.exe")
            self.sim.on_command(host, f"{program}.exe")
            try:
                run = native.execute(self.sim, host, program, args, session)
            finally:
                if mutates(self.sim.registry, f"{program}.exe"):
                    self.sim.save()
            native.write(run, ctx)
        return True

    def _count(self, host: Host, name: str) -> None:
        self.sim.world.count(host.name, name)

    def _resolve(
        self, host: Host, command: CommandCall, items: list[Any], piped: bool
    ) -> tuple[str, str, Entry, Bound]:
        catalog = self.sim.catalog
        name = catalog.canonical(command.text) or command.text
        self._count(host, name)
        module = catalog.module_of(name)
        if module is None or not _module_available(host, module):
            raise _not_found(command.text)
        params = [(p.name, _value(p)) for p in command.parameters]
        try:
            bound = catalog.bind(name, params, pipeline_input=bool(items) or piped)
        except BindingError as exc:
            raise TerminatingError(
                exc.message, exc.error_id, exc.category, exc.exception_type, exc.target_object
            ) from None
        entry = self.sim.registry.cmdlets.get(name.lower())
        if entry is None:
            raise TerminatingError(f"not simulated: {name}", "NotSimulated", "NotImplemented")
        return name, module, entry, bound

    def _preference(self, command: CommandCall) -> bool:
        """``$WarningPreference = 'X'`` as a script of its own: set for the runspace."""
        match = _PREFERENCE.match(command.text)
        if match is None:
            return False
        value = next((v for v in _ACTION_PREFERENCES if v.lower() == match.group(2).lower()), None)
        if value is None:
            raise TerminatingError(
                f'Cannot convert value "{match.group(2)}" to type '
                '"System.Management.Automation.ActionPreference".',
                "RuntimeException",
                "InvalidArgument",
            )
        self.preferences.setdefault(self._runspace, {})[match.group(1).lower()] = value
        return True

    def _script(self, host: Host, command: CommandCall) -> tuple[str, Entry, dict[str, Any]]:
        header = script_header(command.text)
        name = header[0] if header else "<script>"
        self._count(host, name)
        entry = self.sim.registry.scripts.get(name.lower()) if header else None
        if header is None or entry is None:
            raise TerminatingError(
                f"not simulated: script {name}" if header else "not simulated: ad-hoc script text",
                "NotSimulated",
                "NotImplemented",
            )
        params = bind_script(command.text, command.parameters)
        return name, entry, params

    def _run(self, call: Call, entry: Entry, piped: bool = False) -> None:
        call.error_action = str(call.params.pop("ErrorAction", "Continue"))
        preference = self.preferences.get(self._runspace, {}).get("warningpreference", "Continue")
        call.warning_action = str(call.params.pop("WarningAction", preference))
        whatif = call.params.pop("WhatIf", False)
        confirm = call.params.pop("Confirm", None)
        for common in COMMON:
            call.params.pop(common, None)
        if whatif and not entry.ignores_whatif:
            return
        if not (piped and not call.input):  # nothing piped in: nothing to confirm
            confirm_or_fail(call, confirm, entry.prompt)
        try:
            entry.fn(call)
        finally:
            if entry.mutates:
                self.sim.save()


# ---------------------------------------------------------------- confirmation prompts
#
# A remote runspace opened without a host (pypsrp) cannot prompt: the prompt is a
# HostException "HostFunctionNotImplemented" that ends the command.  Sources and choices:
# docs/simulator-fidelity.md, "Confirmation prompts".

_SHOULD_PROCESS_QUERY = "Are you sure you want to perform this action?\r\n{action}"
def _prompt_target(call: Call) -> str:
    """The name the prompt shows: the first target named or passed in."""
    objects: list[Any] = []
    for name in ("Name", "Identity", "VMSnapshot", "VM", "VMName"):
        value = call.get(name)
        objects += list(value) if isinstance(value, list | tuple) else [value]
    for obj in [*objects, *call.input]:
        name = obj if isinstance(obj, str) else prop(obj, "Name")
        if name:
            return str(name)
    return call.host.name


def confirm_or_fail(call: Call, confirm: Any, prompt: Prompt | None) -> None:
    """Raise the prompt error when the command would ask for confirmation (``prompt``: how
    the command asks, from its handler's registration)."""
    target = _prompt_target(call)
    forced = call.switch("Force")
    if prompt and prompt.should_continue and not forced and confirm is not True:
        # ShouldProcess passes (ConfirmImpact below High), then ShouldContinue asks
        raise prompt_error(call, prompt.should_continue.format(target=target))
    if confirm is False:
        return
    if confirm is True:  # -Confirm asks whatever the impact
        action = f'Performing the operation "{call.name}" on target "{target}".'
        raise prompt_error(call, _SHOULD_PROCESS_QUERY.format(action=action))
    if prompt and prompt.high_impact and not (prompt.force_skips and forced):
        action = prompt.high_impact.format(target=target, scope=call.host.name)
        raise prompt_error(call, _SHOULD_PROCESS_QUERY.format(action=action))


def _value(p: Parameter) -> Any:
    return p.value


def _module_available(host: Host, module: str) -> bool:
    feature = MODULE_FEATURE.get(module)
    return feature is None or host.has_feature(feature)


def _not_found(name: str) -> TerminatingError:
    message = (
        f"The term '{name}' is not recognized as the name of a cmdlet, function, script file, "
        "or operable program. Check the spelling of the name, or if a path was included, "
        "verify that the path is correct and try again."
    )
    exception = "System.Management.Automation.CommandNotFoundException"
    return TerminatingError(message, "CommandNotFoundException", "ObjectNotFound", exception, name)


# ---------------------------------------------------------------- scripts adapter


def script_header(text: str) -> tuple[str, Any] | None:
    """``(name, version)`` from a ``# hvlab-script: name@version`` header, else None."""
    try:
        from hvlab.powershell.scripts import header_of
    except ImportError:
        match = _HEADER.search(text)
        return (match.group(1), match.group(2)) if match else None
    header: tuple[str, Any] | None = header_of(text)
    return header


def bind_script(text: str, parameters: tuple[Parameter, ...]) -> dict[str, Any]:
    """Bind parameters through the script's param block (when the scripts module exists)."""
    given = [(p.name, p.value) for p in parameters]
    try:
        from hvlab.powershell.scripts import bind_script_params, parse_script
    except ImportError:
        return {name: (True if value is None else value) for name, value in given if name}
    try:
        return dict(bind_script_params(parse_script(text), given))
    except BindingError as exc:
        raise TerminatingError(
            exc.message, exc.error_id, exc.category, exc.exception_type
        ) from None
