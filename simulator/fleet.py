"""A running simulated fleet: the world, one WinRM server per host, endpoints and a control API.

Each host listens on its own loopback address 127.0.0.(10+i) (port 5985 when free, else an
ephemeral port; ``port=0`` always asks for an ephemeral one). Every account has its own password
(:mod:`simulator.accounts`): a credential reference's value where the lab's resolution has one
(``resolve``: the environment and ``HVLAB_SECRETS_FILE``, as hvlab resolves them), else one
generated per reference and fleet. The generated ones are written by reference with the
endpoints to ``$HVLAB_HOME/sim/endpoints.json`` (mode 0600), never a resolved one. A small
HTTP control API on 127.0.0.1 (port and token in ``$HVLAB_HOME/sim/control.json``) serves
state/reset/faults/stop for ``hvlab sim``.

One fleet per home: a fleet holds an exclusive lock on ``$HVLAB_HOME/sim/fleet.lock`` (with its
pid in it) from before it reads or writes anything there until it stops; a second one raises
:class:`FleetRunning` describing the first, without touching its world or endpoints.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from hvlab.spec import HostRole, LabSpec
from simulator import gaps
from simulator.accounts import Accounts, lookup_from, reference_passwords
from simulator.clock import Clock
from simulator.engine import Sim
from simulator.faults import FaultPlan, SimFaults, install
from simulator.winrm.auth import UserDirectory
from simulator.winrm.faults import FaultHooks
from simulator.winrm.server import WinRMServer
from simulator.world import World
from simulator.world_build import state_json, world_from_spec

WINRM_PORT = 5985


def sim_dir(home: Path) -> Path:
    return home / "sim"


LOCK_FILE = "fleet.lock"


class FleetRunning(RuntimeError):
    """Another simulated fleet serves this home; its pid and endpoints when known."""

    def __init__(self, home: Path, pid: int | None, endpoints: dict[str, str]) -> None:
        self.home, self.pid, self.endpoints = home, pid, endpoints
        where = ", ".join(f"{host} {address}" for host, address in endpoints.items())
        details = "; ".join(part for part in (f"pid {pid}" if pid else "", where) if part)
        super().__init__(
            f"a simulated fleet already runs for HVLAB_HOME {home}"
            + (f" ({details})" if details else "")
            + ": stop it with `hvlab sim stop`, or use another HVLAB_HOME")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _running(home: Path, lock: Any) -> FleetRunning:
    lock.seek(0)
    text = lock.read().strip()
    pid = int(text) if text.isdigit() else None
    hosts = _read_json(sim_dir(home) / "endpoints.json").get("hosts")
    endpoints = {
        str(name): f"{entry.get('address')}:{entry.get('port')}"
        for name, entry in (hosts.items() if isinstance(hosts, dict) else ())
        if isinstance(entry, dict)
    }
    return FleetRunning(home, pid, endpoints)


def _lock(home: Path) -> Any:
    """The home's fleet lock, held (with this pid in it); FleetRunning when another has it."""
    path = sim_dir(home) / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held until the fleet stops
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        running = _running(home, lock)
        lock.close()
        raise running from None
    lock.seek(0)
    lock.truncate()
    lock.write(str(os.getpid()))
    lock.flush()
    return lock


def running_fleet(home: Path) -> FleetRunning | None:
    """The fleet serving ``home`` now, or None (the lock is taken and released at once)."""
    try:
        lock = _lock(home)
    except FleetRunning as running:
        return running
    lock.close()
    return None


def _write_private(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, path)


class Fleet:
    """Builds or reloads the world and serves every host of the lab over WinRM."""

    def __init__(
        self,
        spec: LabSpec,
        home: Path,
        speed: float = 0.0,
        faults: FaultPlan | None = None,
        fresh: bool = False,
        *,
        port: int | None = None,
        control: bool = True,
        max_receive_wait: float = 20.0,
        password: str | None = None,
        resolve: Callable[[str], str | None] | None = None,
    ) -> None:
        self.spec = spec
        self.home = Path(home)
        self.dir = sim_dir(self.home)
        self._lock = _lock(self.home)
        self.state_path = self.dir / "world.json"
        self.plan = faults or FaultPlan()
        # each credential reference's password (``password``, when given, stands for every one
        # the lab's resolution leaves without a value), and the accounts they make
        self.passwords, self.generated = reference_passwords(
            spec, resolve or (lambda reference: None), password)
        self.accounts = Accounts.from_spec(spec, self.passwords.__getitem__)
        self.port = port
        self.max_receive_wait = max_receive_wait
        try:
            world = self._world(fresh)
        except BaseException:
            self._lock.close()
            raise
        self.sim = Sim(world, Clock(speed), state_path=self.state_path, accounts=self.accounts)
        self.sim.faults = SimFaults(self.plan)
        self.sim.on_host_down = self._down
        self.sim.on_host_up = self._up
        self.sim.on_host_rebooted = self._rebooted
        self.sim.on_host_booted = self._booted
        self.servers: dict[str, WinRMServer] = {}
        self.hooks: dict[str, FaultHooks] = {}
        self.endpoints: dict[str, dict[str, Any]] = {}
        self._control: ThreadingHTTPServer | None = None
        self._want_control = control
        self.stopped = threading.Event()
        self._stop_lock = threading.Lock()
        self._finished = False

    # -- world
    def _world(self, fresh: bool) -> World:
        if not fresh and self.state_path.exists():
            world = World.load(self.state_path)
            if world.lab == self.spec.lab:
                return world
        world = self._initial_world()
        world.save(self.state_path)
        return world

    def _initial_world(self) -> World:
        world = world_from_spec(self.spec)
        gaps.apply(world, self.plan.gaps)
        return world

    @property
    def world(self) -> World:
        return self.sim.world

    def state(self) -> dict[str, Any]:
        with self.sim.lock:
            return state_json(self.sim.world)

    def reset(self) -> None:
        """Back to the lab's initial state; every open session is dropped."""
        with self.sim.lock:
            self.sim.world = self._initial_world()
            self.sim.cut_off.clear()  # the fresh world's hosts all carry their addresses
            self.sim.save()
        for server in self.servers.values():
            server.go_down()
            server.come_up()

    def set_faults(self, plan: FaultPlan) -> None:
        self.plan = plan
        self.sim.faults.replace(plan)
        for name, hooks in self.hooks.items():
            install(hooks, plan, name)
        self._schedule_timed_reboots()

    # -- accounts
    def secret(self, credential: str) -> str:
        """The password of the lab credential ``credential`` (tests)."""
        return self.passwords[self.spec.credentials[credential].secret]

    def directory(self, host: str) -> UserDirectory:
        """The accounts ``host``'s listener accepts: decided per logon by the host's state."""
        return UserDirectory(accounts=lookup_from(self.accounts, lambda: self._host(host)))

    def _host(self, name: str) -> Any:
        with self.sim.lock:
            return self.sim.world.host(name)

    def access(self, name: str) -> tuple[str, str | None]:
        """``(user, password)`` of an account that logs on to host ``name`` whether it is joined
        or not (its local Administrator; a DC's connection credential). The password only when
        the fleet generated it (a resolved secret is never written out)."""
        host = self.spec.host(name)
        if host.role is HostRole.dc:
            cred = self.spec.credentials[host.connection.credential]
            return cred.username, self.generated.get(cred.secret)
        account = self.accounts.local[host.name.upper()]["administrator"]
        bootstrap = self.spec.credentials.get(host.bootstrap_credential or "")
        if bootstrap is not None and bootstrap.secret not in self.generated:
            return bootstrap.username, None
        return (bootstrap.username if bootstrap else account.name), account.password

    def start(self) -> Fleet:
        try:
            return self._start()
        except BaseException:
            self.stop()  # the listeners already started, and the home's lock
            raise

    def _start(self) -> Fleet:
        for index, host in enumerate(self.spec.hosts):
            address = f"127.0.0.{10 + index}"
            hooks = FaultHooks()
            install(hooks, self.plan, host.name)
            server = self._serve(address, host.name, hooks)
            self.servers[host.name], self.hooks[host.name] = server, hooks
            username, password = self.access(host.name)
            self.endpoints[host.name] = {
                "address": address,
                "port": server.port,
                "scheme": "http",
                "auth": "ntlm",
                "username": username,
                **({"password": password} if password is not None else {}),
            }
        _write_private(self.dir / "endpoints.json",
                       {"hosts": self.endpoints, "secrets": dict(self.generated)})
        for name, server in self.servers.items():
            if name.upper() in gaps.listeners_down(self.plan.gaps):
                server.go_down()
        self._cut_off_hosts()
        if self._want_control:
            self._start_control()
        self._schedule_timed_reboots()
        return self

    def _serve(self, address: str, name: str, hooks: FaultHooks) -> WinRMServer:
        ports = [self.port] if self.port is not None else [WINRM_PORT, 0]
        error: OSError | None = None
        for port in ports:
            server = WinRMServer(
                address,
                port,
                name,
                self.sim.handler(name),
                self.directory(name),
                faults=hooks,
                max_receive_wait=self.max_receive_wait,
            )
            try:
                server.start()
                return server
            except OSError as exc:
                error = exc
        assert error is not None
        raise error

    def _down(self, name: str) -> None:
        server = self.servers.get(name)
        if server is not None:
            server.go_down()

    def _rebooted(self, name: str) -> None:
        server = self.servers.get(name)
        if server is not None:
            server.service.expire_shells()

    def _booted(self, name: str) -> None:
        server = self.servers.get(name)
        if server is not None:
            server.refuse_logons(self.sim.clock.real(self.sim.clock.d.logon_settle))

    def _up(self, name: str) -> None:
        server = self.servers.get(name)
        cut_off = name.upper() in self.sim.cut_off  # back only when its address is
        if server is not None and not self.stopped.is_set() and not cut_off:
            server.come_up()

    def _cut_off_hosts(self) -> None:
        """A reloaded world may hold hosts whose management address an External switch took:
        their listeners go down at once."""
        from simulator.cmdlets.hyperv_switch import management_cut_off

        with self.sim.lock:
            cut = [h.name for h in self.world.hosts.values() if management_cut_off(h)]
        for name in cut:
            self.sim.management_lost(name, grace=0)

    def _schedule_timed_reboots(self) -> None:
        from simulator import boot

        for fault in self.sim.faults.timed_reboots():
            host = self.world.host(fault.host or "")
            if host is None or fault.fired:
                continue
            fault.fired = 1

            def fire(name: str = host.name) -> None:
                with self.sim.lock:
                    boot.restart(self.sim, self.sim.host(name))

            timer = threading.Timer(self.sim.clock.real(fault.at or 0), fire)
            timer.daemon = True
            timer.start()

    def stop(self) -> None:
        """Stop serving (idempotent) and save the world."""
        with self._stop_lock:
            if self._finished:
                return
            self._finished = True
        self.stopped.set()
        # Each listener needs up to one poll interval to notice its shutdown: stop them at once.
        stopping = [threading.Thread(target=server.stop, name=f"stop-{name}")
                    for name, server in self.servers.items()]
        for thread in stopping:
            thread.start()
        for thread in stopping:
            thread.join()
        if self._control is not None:
            self._control.shutdown()
            self._control.server_close()
            self._control = None
        try:
            self.sim.save()
        finally:
            with contextlib.suppress(OSError):
                self._lock.close()  # another fleet may serve this home now

    def __enter__(self) -> Fleet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- control API
    def _start_control(self) -> None:
        token = secrets.token_urlsafe(18)
        handler = _control_handler(self, token)
        self._control = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._control.daemon_threads = True
        port = int(self._control.server_address[1])
        threading.Thread(
            target=self._control.serve_forever, kwargs={"poll_interval": 0.1}, name="sim-control",
            daemon=True
        ).start()
        _write_private(
            self.dir / "control.json", {"port": port, "token": token, "pid": os.getpid()}
        )


def _control_handler(fleet: Fleet, token: str) -> type[BaseHTTPRequestHandler]:
    class Control(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def _answer(self, code: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorised(self) -> bool:
            if secrets.compare_digest(self.headers.get("X-Hvlab-Token", ""), token):
                return True
            self._answer(403, {"error": "bad token"})
            return False

        def do_GET(self) -> None:
            if self._authorised():
                if self.path == "/state":
                    self._answer(200, fleet.state())
                else:
                    self._answer(404, {"error": "unknown"})

        def do_POST(self) -> None:
            if not self._authorised():
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"null") if length else None
            if self.path == "/reset":
                fleet.reset()
                self._answer(200, {"ok": True})
            elif self.path == "/faults":
                fleet.set_faults(FaultPlan.parse(body))
                self._answer(200, {"ok": True})
            elif self.path == "/stop":
                self._answer(200, {"ok": True})
                threading.Thread(target=fleet.stop, daemon=True).start()
            else:
                self._answer(404, {"error": "unknown"})

    return Control
