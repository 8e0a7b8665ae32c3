"""What the engine, the cmdlet implementations, native programs and reboots share.

:class:`SimState` is the simulation's state (the world, its lock, the clock, background jobs,
the hosts off the network); :class:`Call` is one command being executed, which an
implementation reads and reports through; :class:`Registry` holds the implementations, each
with the one flag that says whether its command changes the world (:attr:`Entry.mutates`).
:mod:`simulator.engine` dispatches invocations to them; this module imports neither it nor
the cmdlet modules.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from hvlab.powershell.catalog import Bound, Catalog, command_class
from simulator import localization
from simulator.accounts import Accounts
from simulator.clock import Clock
from simulator.faults import SimFaults
from simulator.protocol import PipelineContext, TerminatingError
from simulator.world import Host, Job, World

VIRTUALIZATION_EXCEPTION = "Microsoft.HyperV.PowerShell.VirtualizationException"
HOST_EXCEPTION = "System.Management.Automation.Host.HostException"
ACTION_PREFERENCE_STOP = "System.Management.Automation.ActionPreferenceStopException"
REBOOT_GRACE = 0.05  # real seconds between the command's answer and the host going down
_PROMPT_FAILED = (
    "A command that prompts the user failed because the host program or the command type "
    "does not support user interaction. The host was attempting to request confirmation with "
    "the following message: {query}"
)
# Verbs of commands that only read or wait, from "Approved Verbs for PowerShell Commands"
# (https://learn.microsoft.com/powershell/scripting/developer/cmdlet/
# approved-verbs-for-windows-powershell-commands):
# Get retrieves a resource, Test verifies it, Compare evaluates data from one resource against
# another, Measure identifies resources a command consumes, Resolve maps a shorthand to a
# complete representation, Receive accepts information sent from a source, Wait pauses until an
# event occurs, Out sends data out of the environment. Every other verb changes something.
READ_ONLY_VERBS = frozenset(
    {"Get", "Test", "Compare", "Measure", "Resolve", "Out", "Receive", "Wait"}
)


# ---------------------------------------------------------------- registry


Impl = Callable[["Call"], None]
CimProvider = Callable[["Call"], list[Any]]
CimMethod = Callable[["Call", str, dict[str, Any]], Any]


def cim_key(namespace: str, *parts: str) -> str:
    """Registry key for a CIM class or method: ``root/cimv2:win32_computersystem``."""
    ns = namespace.replace("\\", "/").strip("/").lower()
    return ":".join([ns, *(p.lower() for p in parts)])


def verb_mutates(name: str) -> bool:
    """A cmdlet's default :attr:`Entry.mutates`: False for :data:`READ_ONLY_VERBS`."""
    return name.split("-", 1)[0].capitalize() not in READ_ONLY_VERBS


@dataclass(frozen=True)
class Prompt:
    """How a cmdlet asks for confirmation (docs/simulator-fidelity.md, "Confirmation prompts").

    ``high_impact``: ConfirmImpact High, the ShouldProcess action text (``{target}``,
    ``{scope}``); it asks unless ``-Confirm:$false`` (or ``-Force`` where ``force_skips``: the
    CDXML SMB cmdlets pass it to the provider, which then does not ask). ``should_continue``:
    the ShouldContinue question after ShouldProcess, which only ``-Force`` answers."""

    high_impact: str = ""
    force_skips: bool = False
    should_continue: str = ""


@dataclass(frozen=True)
class Entry:
    """A command's implementation, whether the command changes the world (the one flag the
    engine saves the world by and that tests and the chaos run count changes with,
    :func:`simulator.engine.mutating_counts`) and how it asks for confirmation."""

    fn: Impl
    mutates: bool
    ignores_whatif: bool = False
    prompt: Prompt | None = None


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
        self, *names: str, mutates: bool | None = None, ignores_whatif: bool = False,
        prompt: Prompt | None = None,
    ) -> Callable[[Impl], Impl]:
        """Decorator registering ``fn`` for each cmdlet name (canonical names); ``mutates``
        by default from the verb (:func:`verb_mutates`); ``prompt`` if it asks to confirm."""

        def wrap(fn: Impl) -> Impl:
            for name in names:
                flag = verb_mutates(name) if mutates is None else mutates
                self.cmdlets[name.lower()] = Entry(fn, flag, ignores_whatif, prompt)
            return fn

        return wrap

    def script(self, *names: str, mutates: bool = True) -> Callable[[Impl], Impl]:
        """Decorator registering ``fn`` for packaged scripts (``# hvlab-script: name@ver``)."""

        def wrap(fn: Impl) -> Impl:
            for name in names:
                self.scripts[name.lower()] = Entry(fn, mutates)
            return fn

        return wrap


@dataclass
class Call:
    """One command being executed: what an implementation reads and reports through."""

    sim: SimState
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


class SimState:
    """The world, its lock, the clock and what every host handler shares
    (:class:`simulator.engine.Sim` adds the handlers and the standard registry)."""

    def __init__(
        self,
        world: World,
        registry: Registry,
        clock: Clock | None = None,
        state_path: Path | None = None,
        accounts: Accounts | None = None,
    ) -> None:
        self.world = world
        # who can log on where (the fleet's, from the lab's credentials); none by default
        self.accounts = accounts or Accounts(netbios=world.ad.netbios, fqdn=world.ad.fqdn)
        self.clock = clock or Clock()
        self.lock = threading.RLock()
        self.catalog = Catalog.load()
        self.registry = registry
        self.state_path = state_path
        self.on_host_down: Callable[[str], None] = lambda name: None
        self.on_host_up: Callable[[str], None] = lambda name: None
        # an instant reboot (speed 0): the host never refused connections, but its shells died
        self.on_host_rebooted: Callable[[str], None] = lambda name: None
        # a reboot that took the host down has ended (its listener is back, logons settle)
        self.on_host_booted: Callable[[str], None] = lambda name: None
        self.faults = SimFaults()
        self.on_command: Callable[[Host, str], None] = lambda host, name: None
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
        :data:`REBOOT_GRACE`; 0 = at once) the host's listener goes down (``on_host_down``).
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

    def job_done(self, job_id: str, timeout: float) -> bool:
        event = self._job_events.get(job_id)
        return True if event is None else event.wait(timeout)


def prompt_error(call: Call, query: str) -> TerminatingError:
    """What a prompt becomes in a runspace without a host UI (see :mod:`simulator.engine`,
    "confirmation prompts")."""
    return TerminatingError(
        _PROMPT_FAILED.format(query=query),
        call.qualify("HostFunctionNotImplemented"),
        "NotImplemented",
        HOST_EXCEPTION,
    )
