"""Executes PSRP invocations against the world: binding, module gating, dispatch, pipelines.

One :class:`Sim` holds the world, its lock, the clock and the cmdlet registry; one
:class:`HostHandler` per simulated host implements :class:`simulator.protocol.Handler`.
Cmdlet implementations receive a :class:`Call` and report through it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from hvlab.powershell.catalog import BindingError, Bound, Catalog, command_class
from simulator import localization
from simulator.accounts import Accounts
from simulator.clock import Clock
from simulator.faults import SimFaults
from simulator.protocol import (
    RUNTIME_EXCEPTION,
    CommandCall,
    Invocation,
    Parameter,
    PipelineContext,
    TerminatingError,
)
from simulator.pstypes import prop
from simulator.world import Host, Job, World

MODULE_FEATURE = {
    "Hyper-V": "Hyper-V-PowerShell",
    "ActiveDirectory": "RSAT-AD-PowerShell",
    "ADDSDeployment": "AD-Domain-Services",
    "RemoteAccess": "RSAT-RemoteAccess-PowerShell",
}
READ_ONLY_VERBS = {"Get", "Test", "Compare", "Measure", "Resolve", "Out", "Receive", "Wait"}
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
VIRTUALIZATION_EXCEPTION = "Microsoft.HyperV.PowerShell.VirtualizationException"
HOST_EXCEPTION = "System.Management.Automation.Host.HostException"
ACTION_PREFERENCE_STOP = "System.Management.Automation.ActionPreferenceStopException"
_PREFERENCE = re.compile(
    r"^\s*\$(WarningPreference)\s*=\s*['\"]?([A-Za-z]+)['\"]?\s*;?\s*$", re.IGNORECASE
)
_ACTION_PREFERENCES = ("SilentlyContinue", "Stop", "Continue", "Inquire", "Ignore", "Suspend")


# ---------------------------------------------------------------- registry


Impl = Callable[["Call"], None]
CimProvider = Callable[["Call"], list[Any]]
CimMethod = Callable[["Call", str, dict[str, Any]], Any]


def cim_key(namespace: str, *parts: str) -> str:
    """Registry key for a CIM class or method: ``root/cimv2:win32_computersystem``."""
    ns = namespace.replace("\\", "/").strip("/").lower()
    return ":".join([ns, *(p.lower() for p in parts)])


@dataclass(frozen=True)
class Entry:
    fn: Impl
    mutating: bool | None = None  # None: decide by verb
    ignores_whatif: bool = False


@dataclass
class Registry:
    """Cmdlet and script implementations, keyed by lower-case canonical name."""

    cmdlets: dict[str, Entry] = field(default_factory=dict)
    scripts: dict[str, Entry] = field(default_factory=dict)
    cim_classes: dict[str, CimProvider] = field(default_factory=dict)
    cim_methods: dict[str, CimMethod] = field(default_factory=dict)

    def cim_class(self, namespace: str, *names: str) -> Callable[[CimProvider], CimProvider]:
        """Decorator: ``fn(call) -> list of instances`` for Get-CimInstance/Get-WmiObject."""

        def wrap(fn: CimProvider) -> CimProvider:
            for name in names:
                self.cim_classes[cim_key(namespace, name)] = fn
            return fn

        return wrap

    def cim_method(self, namespace: str, cls: str, method: str) -> Callable[[CimMethod], CimMethod]:
        """Decorator: ``fn(call, instance_id, arguments) -> return value`` for Invoke-CimMethod."""

        def wrap(fn: CimMethod) -> CimMethod:
            self.cim_methods[cim_key(namespace, cls, method)] = fn
            return fn

        return wrap

    def cmdlet(
        self, *names: str, mutating: bool | None = None, ignores_whatif: bool = False
    ) -> Callable[[Impl], Impl]:
        """Decorator registering ``fn`` for each cmdlet name (canonical names)."""

        def wrap(fn: Impl) -> Impl:
            for name in names:
                self.cmdlets[name.lower()] = Entry(fn, mutating, ignores_whatif)
            return fn

        return wrap

    def script(self, *names: str, mutating: bool = True) -> Callable[[Impl], Impl]:
        """Decorator registering ``fn`` for packaged scripts (``# hvlab-script: name@ver``)."""

        def wrap(fn: Impl) -> Impl:
            for name in names:
                self.scripts[name.lower()] = Entry(fn, mutating)
            return fn

        return wrap


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


@dataclass
class Call:
    """One command being executed: what an implementation reads and reports through."""

    sim: Sim
    host: Host
    name: str
    module: str
    params: dict[str, Any]
    input: list[Any]
    ctx: PipelineContext
    bound: Bound | None = None
    error_action: str = "Continue"
    warning_action: str = "Continue"
    session: str = ""  # the runspace pool (Invocation.runspace)

    @property
    def world(self) -> World:
        return self.sim.world

    def get(self, name: str, default: Any = None) -> Any:
        low = name.lower()
        return next((v for k, v in self.params.items() if k.lower() == low), default)

    def has(self, name: str) -> bool:
        low = name.lower()
        return any(k.lower() == low for k in self.params)

    def switch(self, name: str) -> bool:
        """A switch or bool parameter: given and not False."""
        return self.has(name) and self.get(name) is not False

    def qualify(self, error_id: str) -> str:
        return f"{error_id},{command_class(self.name, self.module)}"

    def out(self, obj: Any) -> None:
        self.ctx.output(obj)

    def warning(self, message: str) -> None:
        """A warning, subject to -WarningAction (``$WarningPreference`` when not given)."""
        action = self.warning_action.lower()
        if action in ("silentlycontinue", "ignore"):
            return
        if action == "inquire":
            raise prompt_error(self, message)
        self.ctx.warning(message)
        if action == "stop":
            raise TerminatingError(
                "The running command stopped because the preference variable "
                f'"WarningPreference" or common parameter is set to Stop: {message}',
                self.qualify("ActionPreferenceStop"),
                "OperationStopped",
                ACTION_PREFERENCE_STOP,
            )

    def progress(self, activity: str, percent: int, status: str = "") -> None:
        self.ctx.progress(activity, percent, status)

    def fail(
        self,
        message: str,
        error_id: str = "InvalidOperation",
        category: str = "InvalidOperation",
        exception_type: str = VIRTUALIZATION_EXCEPTION,
        target: str | None = None,
    ) -> NoReturn:
        """A terminating error for this command."""
        raise TerminatingError(message, self.qualify(error_id), category, exception_type, target)

    def error(
        self,
        message: str,
        error_id: str = "InvalidOperation",
        category: str = "InvalidOperation",
        target: str | None = None,
        exception_type: str = VIRTUALIZATION_EXCEPTION,
    ) -> None:
        """A non-terminating error, subject to -ErrorAction; the record carries
        ``exception_type`` (a Hyper-V cmdlet's errors are VirtualizationExceptions)."""
        action = self.error_action.lower()
        if action in ("silentlycontinue", "ignore"):
            return
        if action == "stop":
            self.fail(message, error_id, category, exception_type, target)
        self.ctx.error(
            message, self.qualify(error_id), category, target, exception_type=exception_type
        )

    @contextmanager
    def unlocked(self) -> Iterator[None]:
        with self.sim.unlocked():
            yield

    def wait_job(self, job: Job) -> None:
        """Block (without the world lock) until a background job ends or the client stops."""
        with self.sim.unlocked():
            while not job.done:
                if self.sim.job_done(job.id, timeout=0.05):
                    break


# what a job reports when the host at its other end goes away mid-job (a ``down`` fault)
PEER_LOST = {
    "replication": (
        "Hyper-V failed to replicate changes for virtual machine '{vm}': The connection with "
        "the server was terminated abnormally (0x00002EFE). (Virtual machine ID {id})"
    ),
    "migration": (
        "Virtual machine migration operation for '{vm}' failed at migration source '{src}'. "
        "(Virtual machine ID {id})\nThe Virtual Machine Management Service failed to establish "
        "a connection for a Virtual Machine migration with host '{peer}': A connection attempt "
        "failed because the connected party did not properly respond after a period of time, "
        "or established connection failed because connected host has failed to respond. "
        "(0x8007274C)."
    ),
}


# ---------------------------------------------------------------- the simulation


class Sim:
    """The world, its lock, the clock and what every host handler shares."""

    def __init__(
        self,
        world: World,
        clock: Clock | None = None,
        registry: Registry | None = None,
        state_path: Path | None = None,
        accounts: Accounts | None = None,
    ) -> None:
        self.world = world
        # who can log on where (the fleet's, from the lab's credentials); none by default
        self.accounts = accounts or Accounts(netbios=world.ad.netbios, fqdn=world.ad.fqdn)
        self.clock = clock or Clock()
        self.lock = threading.RLock()
        self.catalog = Catalog.load()
        self.registry = registry or default_registry()
        self.state_path = state_path
        self.on_host_down: Callable[[str], None] = lambda name: None
        self.on_host_up: Callable[[str], None] = lambda name: None
        # an instant reboot (speed 0): the host never refused connections, but its shells died
        self.on_host_rebooted: Callable[[str], None] = lambda name: None
        # a reboot that took the host down has ended (its listener is back, logons settle)
        self.on_host_booted: Callable[[str], None] = lambda name: None
        self.faults = SimFaults()
        self.on_command: Callable[[Host, str], None] = self._fault_reboot
        self._job_events: dict[str, threading.Event] = {}
        self._boot_events: dict[str, threading.Event] = {}
        self.down: set[str] = set()  # hosts a ``down`` fault has taken off the network
        # hosts whose management address is gone (an External switch took it from the adapter
        # the WinRM endpoint stands for): their listener stays down until it is back
        self.cut_off: set[str] = set()
        self._cut_lock = threading.Lock()
        # $LASTEXITCODE of each runspace pool (Invocation.runspace) after a native program
        self.native_exit_codes: dict[str, int] = {}

    def booted(self, host_name: str) -> threading.Event:
        """Set when the host's last reboot finished (tests wait on it)."""
        return self._boot_events.setdefault(host_name.upper(), threading.Event())

    def save(self) -> None:
        if self.state_path is not None:
            with self.lock:
                self.world.save(self.state_path)

    @contextmanager
    def unlocked(self) -> Iterator[None]:
        """Release the world lock for a long wait (the caller holds it exactly once)."""
        self.lock.release()
        try:
            yield
        finally:
            self.lock.acquire()

    def handler(self, host_name: str) -> HostHandler:
        return HostHandler(self, host_name)

    def host(self, name: str) -> Host:
        host = self.world.host(name)
        if host is None:
            raise KeyError(name)
        return host

    # -- background jobs
    def start_job(self, job: Job, work: Callable[[Job], None]) -> None:
        """Run ``work(job)`` in a daemon thread; ``job_done`` wakes waiters when it ends."""
        event = threading.Event()
        self._job_events[job.id] = event

        def run() -> None:
            try:
                work(job)
            finally:
                event.set()

        threading.Thread(target=run, name=f"sim-job-{job.number}", daemon=True).start()

    def run_job(
        self,
        job: Job,
        sim_seconds: float,
        complete: Callable[[Job], None],
        abort: Callable[[Job], None] = lambda job: None,
    ) -> None:
        """Start a background job that progresses over ``sim_seconds`` of simulated time.

        ``complete(job)`` / ``abort(job)`` run under the world lock at the end; a cancel
        request (RequestStateChange 4, Stop-Job) ends it as Terminated, an injected fault as
        Exception. The job goes on if the client that started it disconnects.
        """
        job.started = self.clock.now()
        self.start_job(job, lambda j: self._progress(j, sim_seconds, complete, abort))

    def _progress(
        self,
        job: Job,
        seconds: float,
        complete: Callable[[Job], None],
        abort: Callable[[Job], None],
    ) -> None:
        steps = max(1, self.clock.d.job_steps)
        for step in range(1, steps + 1):
            self.clock.sleep(seconds / steps)
            for fault in self.faults.downs_due(job, step * 100 // steps):
                self.host_down(fault.host or "", fault.seconds)
            with self.lock:
                if self._interrupted(job, step * 100 // steps):
                    abort(job)
                    break
                job.percent = step * 100 // steps if step < steps else 99
        else:
            with self.lock:
                try:
                    complete(job)
                    job.state, job.percent = 7, 100
                except TerminatingError as exc:
                    job.state, job.error_code = 10, 32768
                    job.error_description = self.job_text(job, exc.message)
                    abort(job)
        with self.lock:
            job.finished = self.clock.now()
        self.save()

    def host_down(self, name: str, seconds: float) -> None:
        """Take ``name`` off the network for ``seconds`` real seconds: its WinRM listener
        refuses connections, jobs talking to it lose their connection, and neither it nor the
        VMs it runs answer other machines' pings and TCP connections."""
        with self.lock:
            self.down.add(name.upper())
        self.on_host_down(name)
        timer = threading.Timer(seconds, self.host_up, args=(name,))
        timer.daemon = True
        timer.start()

    def host_up(self, name: str) -> None:
        """End a ``down`` fault on ``name`` (its timer calls this): back on the network."""
        with self.lock:
            self.down.discard(name.upper())
        self.on_host_up(name)

    def offline_hosts(self) -> frozenset[str]:
        """Upper-case names of the hosts a ``down`` fault has taken off the network."""
        with self.lock:
            return frozenset(self.down)

    def management_lost(self, name: str, grace: float | None = None) -> None:
        """``name`` no longer carries the address its WinRM endpoint stands for.

        Once the current command's answer had time to leave (``grace`` real seconds, by default
        ``boot.REBOOT_GRACE``; 0 = at once) the host's listener goes down (``on_host_down``).
        It stays down, across reboots and ``down`` faults, until :meth:`management_restored`.
        """
        key = name.upper()
        with self._cut_lock:
            if key in self.cut_off:
                return
            self.cut_off.add(key)
            if grace == 0:
                self.on_host_down(name)
                return

        def cut() -> None:
            from simulator.boot import REBOOT_GRACE

            threading.Event().wait(REBOOT_GRACE if grace is None else grace)
            with self._cut_lock:
                if key in self.cut_off:  # not restored meanwhile
                    self.on_host_down(name)

        threading.Thread(target=cut, name=f"cut-off-{name}", daemon=True).start()

    def management_restored(self, name: str) -> None:
        """The host's management address answers again: its listener comes back up (unless a
        reboot or a ``down`` fault keeps it down; they bring it up when they end)."""
        key = name.upper()
        with self._cut_lock:
            if key not in self.cut_off:
                return
            self.cut_off.discard(key)
            host = self.world.host(name)
            if key not in self.down and not (host is not None and host.rebooting):
                self.on_host_up(name)

    def _interrupted(self, job: Job, percent: int) -> bool:
        if job.cancel_requested:
            job.state, job.error_code = 8, 32768
            job.error_description = self.job_text(job, "The operation was cancelled.")
            return True
        peer = (job.peer or job.destination or "").upper()
        if (peer in self.down or peer in self.cut_off) and job.kind in PEER_LOST:
            job.state, job.error_code = 10, 32768
            job.error_description = self.job_text(job, PEER_LOST[job.kind].format(
                vm=job.vm_name, id=job.vm_id.upper(), src=job.host, peer=job.peer or job.destination
            ))
            return True
        if self.faults.job_fails(job, percent):
            job.state, job.error_code = 10, 32768
            job.error_description = self.job_text(job, (
                f"{job.command} operation for '{job.vm_name}' failed at {percent} percent "
                "(injected fault)."
            ))
            return True
        return False

    def job_text(self, job: Job, text: str) -> str:
        """``text`` as the job's host words it (a job's ErrorDescription is the host's)."""
        host = self.world.host(job.host)
        return localization.localize(host.locale if host else localization.DEFAULT, text)

    def _fault_reboot(self, host: Host, name: str) -> None:
        if self.faults.reboot_due(host.name, name):
            from simulator import boot

            boot.restart(self, host)

    def job_done(self, job_id: str, timeout: float) -> bool:
        event = self._job_events.get(job_id)
        return True if event is None else event.wait(timeout)


def default_registry() -> Registry:
    from simulator.cmdlets import build_registry

    return build_registry()


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
        from simulator.winrm.records import shipped_powershell

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
        from simulator import native

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
            confirm_or_fail(call, confirm)
        try:
            entry.fn(call)
        finally:
            if _mutating(call.name, entry):
                self.sim.save()


# ---------------------------------------------------------------- confirmation prompts
#
# A remote runspace opened without a host (pypsrp) cannot prompt: the prompt is a
# HostException "HostFunctionNotImplemented" that ends the command.  Sources and choices:
# docs/simulator-fidelity.md, "Confirmation prompts".

_PROMPT_FAILED = (
    "A command that prompts the user failed because the host program or the command type "
    "does not support user interaction. The host was attempting to request confirmation with "
    "the following message: {query}"
)
_SHOULD_PROCESS_QUERY = "Are you sure you want to perform this action?\r\n{action}"
# ShouldContinue after ShouldProcess: only -Force skips it (-Confirm:$false does not)
FORCE_TO_CONTINUE: dict[str, str] = {
    "remove-vm": 'Are you sure you want to remove virtual machine "{target}"?',
    "remove-vmswitch": 'Are you sure you want to remove virtual switch "{target}"?',  # [UNCONF]
}
# ConfirmImpact High: ShouldProcess prompts unless -Confirm:$false (or, where the second item
# is True, -Force: the CDXML SMB cmdlets pass it to the provider, which then does not ask)
HIGH_IMPACT: dict[str, tuple[str, bool]] = {
    "restore-vmsnapshot": ('Restore-VMSnapshot will restore checkpoint "{target}".', False),
    "remove-smbshare": ("Performing operation 'Remove-Share' on Target '{scope},{target}'.", True),
    "grant-smbshareaccess": ("Performing operation 'Modify' on Target '{scope},{target}'.", True),
    "revoke-smbshareaccess": ("Performing operation 'Modify' on Target '{scope},{target}'.", True),
    "remove-adcomputer": ('Performing the operation "Remove" on target "{target}".', False),
}


def prompt_error(call: Call, query: str) -> TerminatingError:
    """What a prompt becomes in a runspace without a host UI."""
    return TerminatingError(
        _PROMPT_FAILED.format(query=query),
        call.qualify("HostFunctionNotImplemented"),
        "NotImplemented",
        HOST_EXCEPTION,
    )


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


def confirm_or_fail(call: Call, confirm: Any) -> None:
    """Raise the prompt error when the command would ask for confirmation."""
    key = call.name.lower()
    target = _prompt_target(call)
    forced = call.switch("Force")
    if key in FORCE_TO_CONTINUE and not forced and confirm is not True:
        # ShouldProcess passes (ConfirmImpact below High), then ShouldContinue asks
        raise prompt_error(call, FORCE_TO_CONTINUE[key].format(target=target))
    if confirm is False:
        return
    if confirm is True:  # -Confirm asks whatever the impact
        action = f'Performing the operation "{call.name}" on target "{target}".'
        raise prompt_error(call, _SHOULD_PROCESS_QUERY.format(action=action))
    high = HIGH_IMPACT.get(key)
    if high is not None and not (high[1] and forced):
        action = high[0].format(target=target, scope=call.host.name)
        raise prompt_error(call, _SHOULD_PROCESS_QUERY.format(action=action))


def _value(p: Parameter) -> Any:
    return p.value


def _mutating(name: str, entry: Entry) -> bool:
    if entry.mutating is not None:
        return entry.mutating
    return name.split("-", 1)[0] not in READ_ONLY_VERBS


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
