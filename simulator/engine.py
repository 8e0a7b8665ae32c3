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

from hvlab.powershell.catalog import BindingError, Bound, Catalog
from simulator.clock import Clock
from simulator.faults import SimFaults
from simulator.protocol import (
    CommandCall,
    Invocation,
    Parameter,
    PipelineContext,
    TerminatingError,
)
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


def command_class(cmdlet: str, module: str) -> str:
    """The .NET class name PowerShell puts at the end of a FullyQualifiedErrorId."""
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
    return cmdlet


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
    ) -> None:
        self.outer.error(message, error_id, category, target)

    def warning(self, message: str) -> None:
        self.outer.warning(message)

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
        self.ctx.warning(message)

    def progress(self, activity: str, percent: int, status: str = "") -> None:
        self.ctx.progress(activity, percent, status)

    def fail(
        self,
        message: str,
        error_id: str = "InvalidOperation",
        category: str = "InvalidOperation",
        exception_type: str = "Microsoft.HyperV.PowerShell.VirtualizationException",
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
        exception_type: str = "Microsoft.HyperV.PowerShell.VirtualizationException",
    ) -> None:
        """A non-terminating error, subject to -ErrorAction."""
        action = self.error_action.lower()
        if action in ("silentlycontinue", "ignore"):
            return
        if action == "stop":
            self.fail(message, error_id, category, exception_type, target)
        self.ctx.error(message, self.qualify(error_id), category, target)

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
    ) -> None:
        self.world = world
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
                    job.state, job.error_code, job.error_description = 10, 32768, exc.message
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
            job.error_description = "The operation was cancelled."
            return True
        peer = (job.peer or job.destination or "").upper()
        if (peer in self.down or peer in self.cut_off) and job.kind in PEER_LOST:
            job.state, job.error_code = 10, 32768
            job.error_description = PEER_LOST[job.kind].format(
                vm=job.vm_name, id=job.vm_id.upper(), src=job.host, peer=job.peer or job.destination
            )
            return True
        if self.faults.job_fails(job, percent):
            job.state, job.error_code = 10, 32768
            job.error_description = (
                f"{job.command} operation for '{job.vm_name}' failed at {percent} percent "
                "(injected fault)."
            )
            return True
        return False

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

    def invoke(self, invocation: Invocation, ctx: PipelineContext) -> None:
        pending = list(invocation.input)
        for statement in invocation.statements:
            self._statement(statement, pending, ctx)
            pending = []

    def _statement(
        self, commands: tuple[CommandCall, ...], items: list[Any], ctx: PipelineContext
    ) -> None:
        for index, command in enumerate(commands):
            last = index == len(commands) - 1
            sink: PipelineContext = ctx if last else Collector(ctx)
            self._command(command, items, sink, piped=index > 0)
            items = [] if last else sink.items  # type: ignore[attr-defined]

    def _command(
        self, command: CommandCall, items: list[Any], ctx: PipelineContext, piped: bool
    ) -> None:
        sim = self.sim
        with sim.lock:
            host = sim.host(self.host_name)
            if command.is_script:
                name, entry, params = self._script(host, command)
                module = "Script"
            else:
                name, module, entry, bound = self._resolve(host, command, items, piped)
                params = dict(bound.params)
            sim.on_command(host, name)
            call = Call(sim, host, name, module, params, items, ctx)
            if not command.is_script:
                call.bound = bound
            self._run(call, entry)

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

    def _run(self, call: Call, entry: Entry) -> None:
        call.error_action = str(call.params.pop("ErrorAction", "Continue"))
        whatif = call.params.pop("WhatIf", False)
        for common in COMMON - {"Confirm"}:
            call.params.pop(common, None)
        if whatif and not entry.ignores_whatif:
            return
        try:
            entry.fn(call)
        finally:
            if _mutating(call.name, entry):
                self.sim.save()


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
