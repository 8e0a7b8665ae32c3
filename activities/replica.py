"""Hyper-V Replica activities (reference §13): replica server and its listener firewall rule
(with compensations), connection test, enabling replication (compensation: remove it on both
sides with the replica VM), initial replication and waiting for a state, the planned failover
sequence (prepare, fail over, complete, reverse), cancelling a failover on the right side, and
test failover with its cleanup.

Each activity probes Get-VMReplication (states compared by name), acts only when the host
differs, verifies and returns ``changed`` with the observed state. The ``*_command`` functions
build the exact commands the activities emit (the catalogue test binds every one of them).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError, CancelledError

from activities.base import (
    SILENT,
    VIRTUALIZATION,
    Beat,
    Remote,
    application_errors,
    cancelled,
    conflict,
    heartbeat,
    precondition,
    verify_failed,
)
from activities.host import new_folders_command, path_exists_command
from activities.migration import hard_disks_command
from activities.models import (
    HostInput,
    ReplicaFirewallInput,
    ReplicaHealthInput,
    ReplicaServerInput,
    ReplicaServersInput,
    ReplicationInput,
    ReplicaVmInput,
    ReplicaWaitInput,
    StepResult,
)
from activities.vm import get_vm_command, remove_file_command, remove_vm_command, stop_vm_command
from hvlab.metrics import forget_replication, set_replication_health
from hvlab.powershell.command import SWITCH, Command, Switch
from hvlab.powershell.endpoints import EndpointSource
from hvlab.powershell.errors import RemoteError, hresults
from hvlab.powershell.session import SessionPool

# The Hyper-V role's "Hyper-V Replica HTTP Listener (TCP-In)" rule, by its Name: the
# DisplayName is localized (a Korean host words it in Korean), the Name is not (reference §13.1)
HTTP_RULE = "VIRT-HVRHTTPL-In-TCP-NoScope"
NO_CONFIRM = Switch(False)
INITIAL_REPLICATION_JOB = 116  # Msvm_ConcreteJob.JobType "Sending Initial Replica"
FAILED_OVER = ("FailedOverWaitingCompletion", "FailedOver")
# ERROR_INTERNET_CANNOT_CONNECT: the replica server did not accept the connection
_CONNECT_FAILED = 0x00002EFD
DEFAULT_STORAGE = "C:\\Hyper-V\\Replica"
DEFAULT_PORT = 80
# AllowedAuthenticationType values under which a Kerberos relationship connects
KERBEROS = ("Kerberos", "CertificateAndKerberos")


# -- commands ------------------------------------------------------------------------------


def get_server_command() -> Command:
    return Command.of("Get-VMReplicationServer")


def set_server_command(request: ReplicaServerInput, auth: str = "Kerberos") -> Command:
    """Accept Kerberos replication on ``request.port``; ``auth`` keeps a server that also
    accepts certificates (CertificateAndKerberos) doing so."""
    return Command.of("Set-VMReplicationServer", ReplicationEnabled=True,
                      AllowedAuthenticationType=auth,
                      KerberosAuthenticationPort=request.port,
                      ReplicationAllowedFromAnyServer=True,
                      DefaultStorageLocation=request.storage)


def disable_server_command() -> Command:
    return Command.of("Set-VMReplicationServer", ReplicationEnabled=False)


def get_rule_command() -> Command:
    return Command.of("Get-NetFirewallRule", Name=HTTP_RULE)


def get_port_filter_command() -> Command:
    """Piped after get_rule_command: the rule's port filter."""
    return Command.of("Get-NetFirewallPortFilter")


def enable_rule_command() -> Command:
    return Command.of("Enable-NetFirewallRule", Name=HTTP_RULE)


def disable_rule_command() -> Command:
    return Command.of("Disable-NetFirewallRule", Name=HTTP_RULE)


def set_rule_port_command(port: int) -> Command:
    return Command.of("Set-NetFirewallRule", Name=HTTP_RULE, LocalPort=[str(port)])


def test_connection_command(request: ReplicationInput, server: str | None = None) -> Command:
    return Command.of("Test-VMReplicationConnection",
                      ReplicaServerName=server or request.replica_server,
                      ReplicaServerPort=request.port, AuthenticationType=request.auth)


def get_replication_command(vm: str) -> Command:
    return Command.of("Get-VMReplication", VMName=vm, ErrorAction=SILENT)


def all_replications_command() -> Command:
    """Every relationship the host takes part in (either side)."""
    return Command.of("Get-VMReplication")


def enable_replication_command(request: ReplicationInput) -> Command:
    return Command.of("Enable-VMReplication", VMName=request.vm,
                      ReplicaServerName=request.replica_server, ReplicaServerPort=request.port,
                      AuthenticationType=request.auth,
                      ReplicationFrequencySec=request.frequency)


def start_initial_command(vm: str) -> Command:
    return Command.of("Start-VMInitialReplication", VMName=vm, AsJob=SWITCH)


def replication_jobs_command() -> Command:
    return Command.of("Get-CimInstance", Namespace=VIRTUALIZATION, ClassName="Msvm_ConcreteJob")


def remove_replication_command(vm: str) -> Command:
    return Command.of("Remove-VMReplication", VMName=vm)


def prepare_failover_command(vm: str) -> Command:
    return Command.of("Start-VMFailover", VMName=vm, Prepare=SWITCH, Confirm=NO_CONFIRM)


def failover_command(vm: str) -> Command:
    return Command.of("Start-VMFailover", VMName=vm, Confirm=NO_CONFIRM)


def test_failover_command(vm: str) -> Command:
    return Command.of("Start-VMFailover", VMName=vm, AsTest=SWITCH, Confirm=NO_CONFIRM)


def stop_failover_command(vm: str) -> Command:
    return Command.of("Stop-VMFailover", VMName=vm, Confirm=NO_CONFIRM)


def complete_failover_command(vm: str) -> Command:
    return Command.of("Complete-VMFailover", VMName=vm, Confirm=NO_CONFIRM)


def reverse_command(request: ReplicationInput) -> Command:
    """On the failed-over replica: replicate back to the old primary."""
    return Command.of("Set-VMReplication", VMName=request.vm, Reverse=SWITCH,
                      ReplicaServerName=request.primary_server or request.primary,
                      ReplicaServerPort=request.port, AuthenticationType=request.auth)


# -- helpers -------------------------------------------------------------------------------


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _same_path(a: Any, b: str) -> bool:
    return _text(a).rstrip("\\").lower() == b.rstrip("\\").lower()


def _same_server(found: Any, wanted: str) -> bool:
    """Replica server names match by FQDN or by host name."""
    a, b = _text(found).lower(), wanted.lower()
    return a == b or a.split(".")[0] == b.split(".")[0]


def _replication_view(rep: dict[str, Any]) -> dict[str, Any]:
    return {"vm": _text(rep.get("VMName")),
            "mode": _text(rep.get("Mode") or rep.get("ReplicationMode")),
            "state": _text(rep.get("State") or rep.get("ReplicationState")),
            "health": _text(rep.get("Health") or rep.get("ReplicationHealth")),
            "primary": rep.get("PrimaryServer"), "replica": rep.get("ReplicaServer"),
            "port": rep.get("ReplicaPort"), "frequency": rep.get("FrequencySec"),
            "test_vm": rep.get("TestVirtualMachineName"), "vm_id": _text(rep.get("VMId")).upper()}


def _server_view(server: dict[str, Any]) -> dict[str, Any]:
    return {"enabled": bool(server.get("ReplicationEnabled")),
            "auth": _text(server.get("AllowedAuthenticationType")),
            "port": int(server.get("KerberosAuthenticationPort") or 0),
            "allow_any_server": bool(server.get("ReplicationAllowedFromAnyServer")),
            "storage": _text(server.get("DefaultStorageLocation"))}


def _server_drift(request: ReplicaServerInput, view: dict[str, Any]) -> list[str]:
    wanted = {"enabled": True, "port": request.port, "allow_any_server": True}
    drift = [f"{k} {view[k]!r} != {v!r}" for k, v in wanted.items() if view[k] != v]
    if view["auth"] not in KERBEROS:
        drift.append(f"auth {view['auth']!r} != 'Kerberos'")
    if not _same_path(view["storage"], request.storage):
        drift.append(f"storage {view['storage']!r} != {request.storage!r}")
    return drift


def _port_of(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def breaking_changes(host: str, vm: str | None, view: dict[str, Any], port: int, storage: str,
                     relationships: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The replica server settings of ``host`` (``view``) that setting it up for ``vm`` on
    ``port`` into ``storage`` would change under the other relationships on the host (either
    side: a primary needs its own replica server for reverse replication). A disabled server
    serves no one; the port matters to the relationships that use the server's port now."""
    if not view["enabled"]:
        return []
    others = [r for r in relationships if r["vm"].lower() != (vm or "").lower()]
    if not others:
        return []

    def change(setting: str, current: Any, wanted: Any, users: list[dict[str, Any]]
               ) -> list[dict[str, Any]]:
        return [{"host": host, "setting": setting, "current": current, "wanted": wanted,
                 "relationships": [f"{r['vm']} ({r['mode']})" for r in users]}] if users else []

    found: list[dict[str, Any]] = []
    if port != view["port"]:
        found += change("port", view["port"], port,
                        [r for r in others if _port_of(r["port"]) == view["port"]])
    if view["auth"] not in KERBEROS:
        found += change("authentication", view["auth"], "Kerberos", others)
    if not view["allow_any_server"]:
        found += change("allowed primaries", "authorization entries", "any server", others)
    if not _same_path(view["storage"], storage):
        found += change("storage", view["storage"], storage, others)
    return found


def shared_conflict(vm: str | None, changes: list[dict[str, Any]]) -> ApplicationError:
    """Conflict (not retried): the replica server settings ``vm`` needs would break other
    relationships. ``details[0]`` is {"vm", "changes"} with each change's host, setting,
    current and wanted value and the relationships relying on it."""
    what = "; ".join(f"{c['host']}: {vm or 'this replication'} needs replica server "
                     f"{c['setting']} {c['wanted']}, but {', '.join(c['relationships'])} "
                     f"rel{'ies' if len(c['relationships']) == 1 else 'y'} on "
                     f"{c['current']}" for c in changes)
    return ApplicationError(
        f"{what}. Nothing was changed: give {vm or 'the VM'} the same replica server settings "
        "(its replication entry in the lab file), or remove the other replication first",
        {"vm": vm, "changes": changes}, type="Conflict", non_retryable=True)


def _ports(value: Any) -> list[str]:
    """A port filter's LocalPort (a string array, or one comma-separated string) as a list."""
    items = value if isinstance(value, list | tuple) else [value]
    return [p.strip() for item in items for p in _text(item).split(",") if p.strip()]


def replication_failed(host: str, vm: str, found: dict[str, Any], reason: str | None = None
                       ) -> ApplicationError | None:
    """The failure for a relationship in Error or Critical health, else None; ``reason`` is
    the host's own explanation (a failed replication job's ErrorDescription) when known."""
    if found["state"] != "Error" and found["health"] != "Critical":
        return None
    because = f": {reason}" if reason else ""
    return ApplicationError(f"{host}: replication of {vm} is {found['state']}/"
                            f"{found['health']}{because}", found, type="ReplicationFailed",
                            non_retryable=True)


@contextmanager
def connection_errors() -> Iterator[None]:
    """The replica server refusing the connection (listener, port, firewall) becomes
    ReplicaConnectionFailed with the host's message; it needs a fix, not a retry."""
    try:
        yield
    except RemoteError as error:
        if _CONNECT_FAILED not in hresults(error.host_message):
            raise
        raise ApplicationError(str(error), {"host": error.host, "command": error.command,
                                            "message": error.host_message},
                               type="ReplicaConnectionFailed", non_retryable=True) from None


class ReplicationBeat(Beat):
    """replica.wait_state: the relationship at the last poll (progress only; not resumed)."""

    KIND = "replica.state"
    state: str
    health: str
    percent: int | None = None
    polls: int


class ReplicaActivities:
    """Hyper-V Replica steps on lab hosts reached through ``sessions`` and ``endpoints``."""

    def __init__(self, sessions: SessionPool, endpoints: EndpointSource) -> None:
        self._remote = Remote(sessions, endpoints)

    def _replication(self, host: str, vm: str) -> dict[str, Any] | None:
        found = self._remote.query_one(host, get_replication_command(vm))
        if found is None:
            return None
        view = _replication_view(found)
        if view["mode"] == "Primary" and view["health"]:
            set_replication_health(vm, view["health"])  # the primary's view is the VM's health
        return view

    def _require(self, host: str, vm: str) -> dict[str, Any]:
        found = self._replication(host, vm)
        if found is None:
            raise ApplicationError(f"{host}: replication is not enabled for {vm}",
                                   type="NotFound", non_retryable=True)
        return found

    def _transition(self, host: str, vm: str, command: Command, wanted: tuple[str, ...]
                    ) -> StepResult:
        """Run ``command`` and verify the replication reached one of ``wanted`` states."""
        self._remote.run(host, command)
        after = self._require(host, vm)
        if after["state"] not in wanted:
            raise verify_failed(host, f"replication of {vm} is not {'/'.join(wanted)}", after)
        return StepResult(changed=True, observed=after)

    # -- replica server ------------------------------------------------------------------
    @activity.defn(name="replica.server")
    def server(self, request: ReplicaServerInput) -> StepResult:
        """Accept replication (Kerberos on ``port``, from any server, into ``storage``)."""
        with application_errors():
            before = self._server(request.host)
            if not _server_drift(request, before):
                return StepResult(changed=False, observed=before)
            breaking = breaking_changes(request.host, request.vm, before, request.port,
                                        request.storage, self._relationships(request.host))
            if breaking:
                raise shared_conflict(request.vm, breaking)
            auth = before["auth"] if before["enabled"] and before["auth"] in KERBEROS \
                else "Kerberos"
            created = self._storage_folder(request.host, request.storage)
            self._remote.run(request.host, set_server_command(request, auth))
            after = self._server(request.host)
            if _server_drift(request, after):
                raise verify_failed(request.host, "replica server settings did not take", after)
            return StepResult(changed=True, observed={**after, "previous": before,
                                                      "created_storage": created})

    def _storage_folder(self, host: str, storage: str) -> str | None:
        """Create the replica storage folder when it is missing: Set-VMReplicationServer
        does not create it, and the host refuses a DefaultStorageLocation that does not exist
        (docs/simulator-fidelity.md). Returns the folder created, None when it was there (or
        is a share, which the replica host reaches with its own rights)."""
        if storage.startswith("\\\\"):
            return None
        found = self._remote.query(host, path_exists_command([storage]))
        if found and found[0] is True:
            return None
        self._remote.run(host, new_folders_command([storage]))
        return storage

    def _server(self, host: str) -> dict[str, Any]:
        return _server_view(self._remote.query_one(host, get_server_command()) or {})

    def _relationships(self, host: str) -> list[dict[str, Any]]:
        """Every relationship on ``host`` (Get-VMReplication), either side."""
        return [_replication_view(r) for r in self._remote.query(host, all_replications_command())
                if isinstance(r, dict)]

    def _kept(self, host: str, what: str) -> StepResult | None:
        """An undo that leaves ``what`` alone because relationships on the host still use it:
        the result names them (``kept``); None when nothing uses it."""
        users = [f"{r['vm']} ({r['mode']})" for r in self._relationships(host)]
        if not users:
            return None
        return StepResult(changed=False, observed={
            "kept": f"{host}: {what} kept: {', '.join(users)} still replicate(s) through it",
            "relationships": users})

    @activity.defn(name="replica.shared_settings")
    def shared_settings(self, request: ReplicaServersInput) -> StepResult:
        """Read-only: the replica server settings ``request.vm``'s replication uses on each
        of ``request.hosts``, refusing (Conflict, before anything changes) settings the other
        relationships there would not survive. No port asked for: the port the servers
        already listen on (the replica's first), else 80; no storage: each enabled server's
        own. Observed: ``port``, ``storage`` (per host), ``servers``, ``relationships``."""
        with application_errors():
            servers = {h: self._server(h) for h in request.hosts}
            relationships = {h: self._relationships(h) for h in request.hosts}
            port = request.port or next((v["port"] for v in servers.values()
                                         if v["enabled"] and v["port"]), DEFAULT_PORT)
            storage = {h: request.storage or (v["storage"] if v["enabled"] and v["storage"]
                                              else DEFAULT_STORAGE)
                       for h, v in servers.items()}
            breaking = [change for h in request.hosts for change in breaking_changes(
                h, request.vm, servers[h], port, storage[h], relationships[h])]
            if breaking:
                raise shared_conflict(request.vm, breaking)
            return StepResult(changed=False, observed={
                "port": port, "storage": storage, "servers": servers,
                "relationships": {h: [r["vm"] for r in rs] for h, rs in relationships.items()}})

    @activity.defn(name="replica.disable_server")
    def disable_server(self, request: HostInput) -> StepResult:
        """Compensation of replica.server: stop accepting replication, unless relationships
        on the host still use the server (then it is kept and the result says so)."""
        with application_errors():
            if not self._server(request.host)["enabled"]:
                return StepResult(changed=False, observed={"enabled": False})
            kept = self._kept(request.host, "replica server")
            if kept is not None:
                return kept
            self._remote.run(request.host, disable_server_command())
            after = self._server(request.host)
            if after["enabled"]:
                raise verify_failed(request.host, "replica server is still enabled", after)
            return StepResult(changed=True, observed=after)

    # -- firewall ------------------------------------------------------------------------
    def _rule(self, host: str) -> dict[str, Any]:
        rule = self._remote.query_one(host, get_rule_command()) or {}
        ports = self._remote.run(host, get_rule_command(), get_port_filter_command())
        # LocalPort is string[] on Windows (one port is a one-element array): compared as a
        # list of ports, shown joined
        port = next((",".join(_ports(p.get("LocalPort"))) for p in ports
                     if isinstance(p, dict)), "")
        return {"enabled": _text(rule.get("Enabled")) == "True", "port": port}

    def _set_rule(self, host: str, enabled: bool, port: int) -> StepResult:
        before = self._rule(host)
        if enabled and before["enabled"] and str(port) in _ports(before["port"]):
            return StepResult(changed=False, observed={**before, "previous": before})
        if _ports(before["port"]) != [str(port)]:
            self._remote.run(host, set_rule_port_command(port))
        if before["enabled"] != enabled:
            self._remote.run(host, enable_rule_command() if enabled else disable_rule_command())
        after = self._rule(host)
        if after["enabled"] != enabled or _ports(after["port"]) != [str(port)]:
            raise verify_failed(host, f"firewall rule '{HTTP_RULE}' did not change", after)
        return StepResult(changed=after != before, observed={**after, "previous": before})

    @activity.defn(name="replica.firewall")
    def firewall(self, request: ReplicaFirewallInput) -> StepResult:
        """Enable the replica HTTP listener rule on the replica server's Kerberos port."""
        with application_errors():
            return self._set_rule(request.host, True, request.port)

    @activity.defn(name="replica.disable_firewall")
    def disable_firewall(self, request: ReplicaFirewallInput) -> StepResult:
        """Compensation of replica.firewall: disable the rule, its port back to ``port``,
        unless relationships on the host still use it (then it is kept and the result says
        so)."""
        with application_errors():
            if self._rule(request.host)["enabled"]:
                kept = self._kept(request.host, f"firewall rule '{HTTP_RULE}'")
                if kept is not None:
                    return kept
            return self._set_rule(request.host, False, request.port)

    # -- connection, enable, remove ------------------------------------------------------
    @activity.defn(name="replica.test_connection")
    def test_connection(self, request: ReplicationInput) -> StepResult:
        """Test-VMReplicationConnection from the primary; a refusal fails as
        ReplicaConnectionFailed with the host's message."""
        with application_errors(), connection_errors():
            answer = self._remote.query(request.primary, test_connection_command(request))
            return StepResult(changed=False, observed={
                "message": " ".join(_text(a) for a in answer)})

    @activity.defn(name="replica.enable")
    def enable(self, request: ReplicationInput) -> StepResult:
        """Enable-VMReplication on the primary unless it replicates to that server already."""
        with application_errors(), connection_errors():
            return self._enable(request)

    def _enable(self, request: ReplicationInput) -> StepResult:
        found = self._replication(request.primary, request.vm)
        if found is not None:
            if found["mode"] != "Primary" or not _same_server(found["replica"],
                                                              request.replica_server):
                raise conflict(request.primary, f"{request.vm} already replicates as "
                               f"{found['mode']} with {found['replica']}; remove it first")
            return StepResult(changed=False, observed=found)
        self._remote.run(request.primary, enable_replication_command(request))
        after = self._replication(request.primary, request.vm)
        if after is None or after["mode"] != "Primary":
            raise verify_failed(request.primary, f"replication of {request.vm} is not on", after)
        return StepResult(changed=True, observed=after)

    @activity.defn(name="replica.remove")
    def remove(self, request: ReplicationInput) -> StepResult:
        """Compensation of replica.enable: on the replica remove the relationship, the replica
        VM and its disks; then the relationship on the primary. Only a VM in Replica mode is
        ever removed; absent things count as done."""
        with application_errors():
            changed = self._remove_replica_vm(request)
            if self._replication(request.primary, request.vm) is not None:
                self._remote.run(request.primary, remove_replication_command(request.vm))
                changed = True
            left = [h for h in (request.primary, request.replica)
                    if self._replication(h, request.vm) is not None]
            if left:
                raise verify_failed(request.primary, "replication remains", left)
            forget_replication(request.vm)
            return StepResult(changed=changed, observed={"removed": True})

    def _remove_replica_vm(self, request: ReplicationInput) -> bool:
        host, vm = request.replica, request.vm
        found = self._replication(host, vm)
        if found is None:
            return False
        if found["mode"] != "Replica":
            self._remote.run(host, remove_replication_command(vm))
            return True
        disks = [_text(d.get("Path")) for d in self._remote.query(host, hard_disks_command(vm))
                 if isinstance(d, dict)]
        self._remote.run(host, remove_replication_command(vm))
        state = _text((self._remote.query_one(host, get_vm_command(vm)) or {}).get("State"))
        if state and state != "Off":
            self._remote.run(host, stop_vm_command(vm, turn_off=True))
        self._remote.run(host, remove_vm_command(vm))
        exists = self._remote.query(host, path_exists_command(disks)) if disks else []
        for path, there in zip(disks, exists, strict=False):
            if there is True:  # a seeding that never ran wrote no disk
                self._remote.run(host, remove_file_command(path))
        return True

    # -- initial replication and waiting -------------------------------------------------
    @activity.defn(name="replica.start_initial")
    def start_initial(self, request: ReplicationInput) -> StepResult:
        """Start-VMInitialReplication (a host-side job) when the primary is ready for it."""
        with application_errors(), connection_errors():
            found = self._require(request.primary, request.vm)
            if found["state"] in ("InitialReplicationInProgress", "Replicating"):
                return StepResult(changed=False, observed=found)
            if found["state"] != "ReadyForInitialReplication":
                raise precondition(request.primary, f"{request.vm} is {found['state']}, not "
                                   "ReadyForInitialReplication")
            self._remote.run(request.primary, start_initial_command(request.vm))
            after = self._require(request.primary, request.vm)
            failure = self._failure(request.primary, request.vm, after)
            if failure is not None:
                raise failure
            if after["state"] not in ("InitialReplicationInProgress", "Replicating"):
                raise verify_failed(request.primary, f"initial replication of {request.vm} "
                                    "did not start", after)
            return StepResult(changed=True, observed=after)

    @activity.defn(name="replica.wait_state")
    def wait_state(self, request: ReplicaWaitInput) -> StepResult:
        """Poll Get-VMReplication until State and Health are among the wanted ones,
        heartbeating {state, health, percent}; Error/Critical fails, a timeout is retried."""
        with application_errors():
            return self._wait_state(request)

    def _wait_state(self, request: ReplicaWaitInput) -> StepResult:
        deadline = time.monotonic() + request.timeout_seconds
        polls = 0
        while True:
            polls += 1
            found = self._require(request.host, request.vm)
            if found["state"] in request.states and (not request.health
                                                     or found["health"] in request.health):
                return StepResult(changed=False, observed={**found, "polls": polls})
            failure = self._failure(request.host, request.vm, found)
            if failure is not None:
                raise failure
            heartbeat(ReplicationBeat(state=found["state"], health=found["health"],
                                      percent=self._percent(request.host, found), polls=polls))
            if cancelled():
                raise CancelledError(f"{request.host}: wait for {request.vm} cancelled")
            if time.monotonic() + request.interval_seconds > deadline:
                raise ApplicationError(f"{request.host}: {request.vm} still {found['state']}/"
                                       f"{found['health']} after {polls} polls",
                                       type="ReplicationTimeout", non_retryable=False)
            time.sleep(request.interval_seconds)

    @activity.defn(name="replica.health")
    def health(self, request: ReplicaHealthInput) -> StepResult:
        """Read-only: the relationship as its primary side reports it (Get-VMReplication on
        each host; the one in Primary mode counts) and ``hvlab_replication_health`` for the
        VM. No primary found counts as Critical: ``NotConfigured`` when every host answered,
        ``Unreachable`` when one did not."""
        with application_errors():
            sides: dict[str, dict[str, Any] | None] = {}
            unreachable: dict[str, str] = {}
            for host in request.hosts:
                try:
                    sides[host] = self._replication(host, request.vm)
                except RemoteError as exc:
                    if not exc.retryable:  # a command error, not a host out of reach
                        raise
                    unreachable[host] = exc.host_message or str(exc)
            primary = next((h for h, view in sides.items()
                            if view is not None and view["mode"] == "Primary"), None)
            if primary is None:
                state = "Unreachable" if unreachable else "NotConfigured"
                set_replication_health(request.vm, "Critical")
                return StepResult(changed=False, observed={
                    "vm": request.vm, "primary": None, "state": state, "health": "Critical",
                    "unreachable": unreachable,
                    "modes": {h: v["mode"] if v else None for h, v in sides.items()}})
            view = sides[primary] or {}
            return StepResult(changed=False, observed={
                "vm": request.vm, "primary": primary, "replica": view.get("replica"),
                "state": view["state"], "health": view["health"], "unreachable": unreachable})

    def _failure(self, host: str, vm: str, found: dict[str, Any]) -> ApplicationError | None:
        """:func:`replication_failed` with the failed job's reason when it is failing."""
        if found["state"] != "Error" and found["health"] != "Critical":
            return None
        return replication_failed(host, vm, found, self._job_error(host, found))

    def _job_error(self, host: str, found: dict[str, Any]) -> str | None:
        """ErrorDescription of the VM's failed replication job on ``host``, if one is left."""
        try:
            jobs = self._remote.query(host, replication_jobs_command())
        except RemoteError:
            return None  # the reason is a bonus; the state already says it failed
        for job in jobs:
            if isinstance(job, dict) and _text(job.get("VirtualSystemName")).upper() == \
                    found["vm_id"] and int(job.get("ErrorCode") or 0) and \
                    job.get("ErrorDescription"):
                return _text(job.get("ErrorDescription"))
        return None

    def _percent(self, host: str, found: dict[str, Any]) -> int | None:
        """Initial replication progress from its Msvm_ConcreteJob (JobType 116)."""
        if found["state"] != "InitialReplicationInProgress":
            return None
        for job in self._remote.query(host, replication_jobs_command()):
            if isinstance(job, dict) and int(job.get("JobType") or 0) == \
                    INITIAL_REPLICATION_JOB and _text(job.get("VirtualSystemName")).upper() == \
                    found["vm_id"]:
                return int(job.get("PercentComplete") or 0)
        return None

    # -- planned failover ----------------------------------------------------------------
    @activity.defn(name="replica.prepare_failover")
    def prepare_failover(self, request: ReplicaVmInput) -> StepResult:
        """On the primary: Start-VMFailover -Prepare. The VM must be off (vm.stop first)."""
        with application_errors(), connection_errors():
            found = self._require(request.host, request.vm)
            if found["state"] == "PreparedForFailover":
                return StepResult(changed=False, observed=found)
            if found["mode"] != "Primary" or found["state"] != "Replicating":
                raise precondition(request.host, f"{request.vm} is {found['mode']}/"
                                   f"{found['state']}, not a Replicating primary")
            vm = self._remote.query_one(request.host, get_vm_command(request.vm)) or {}
            if _text(vm.get("State")) != "Off":
                raise precondition(request.host, f"{request.vm} is {vm.get('State')}; "
                                   "turn it off first (vm.stop)")
            return self._transition(request.host, request.vm,
                                    prepare_failover_command(request.vm), ("PreparedForFailover",))

    @activity.defn(name="replica.failover")
    def failover(self, request: ReplicationInput) -> StepResult:
        """On the replica: Start-VMFailover once the primary is prepared."""
        with application_errors():
            found = self._require(request.replica, request.vm)
            if found["state"] in FAILED_OVER:
                return StepResult(changed=False, observed=found)
            if found["mode"] != "Replica" or found["state"] != "Replicating":
                raise precondition(request.replica, f"{request.vm} is {found['mode']}/"
                                   f"{found['state']}, not a Replicating replica")
            primary = self._require(request.primary, request.vm)
            if primary["state"] != "PreparedForFailover":
                raise precondition(request.primary, f"{request.vm} is {primary['state']}; "
                                   "prepare the failover first (replica.prepare_failover)")
            return self._transition(request.replica, request.vm, failover_command(request.vm),
                                    ("FailedOverWaitingCompletion",))

    @activity.defn(name="replica.complete")
    def complete(self, request: ReplicaVmInput) -> StepResult:
        """On the replica: Complete-VMFailover (cannot be undone afterwards)."""
        with application_errors():
            found = self._require(request.host, request.vm)
            if found["state"] == "FailedOver" or (found["mode"] == "Primary"):
                return StepResult(changed=False, observed=found)
            if found["state"] != "FailedOverWaitingCompletion":
                raise precondition(request.host, f"{request.vm} is {found['state']}, not "
                                   "FailedOverWaitingCompletion")
            return self._transition(request.host, request.vm,
                                    complete_failover_command(request.vm), ("FailedOver",))

    @activity.defn(name="replica.reverse")
    def reverse(self, request: ReplicationInput) -> StepResult:
        """On the failed-over replica: Set-VMReplication -Reverse towards the old primary.
        ``initial_replication_needed`` when the primary was not prepared."""
        with application_errors(), connection_errors():
            found = self._require(request.replica, request.vm)
            if found["mode"] == "Primary":
                return StepResult(changed=False, observed=self._reversed(found))
            if found["state"] not in FAILED_OVER:
                raise precondition(request.replica, f"{request.vm} is {found['state']}; fail "
                                   "over first (replica.failover)")
            self._remote.run(request.replica, reverse_command(request))
            after = self._require(request.replica, request.vm)
            if after["mode"] != "Primary":
                raise verify_failed(request.replica, f"{request.vm} was not reversed", after)
            return StepResult(changed=True, observed=self._reversed(after))

    @staticmethod
    def _reversed(found: dict[str, Any]) -> dict[str, Any]:
        return {**found, "initial_replication_needed":
                found["state"] == "ReadyForInitialReplication"}

    @activity.defn(name="replica.stop_failover")
    def stop_failover(self, request: ReplicationInput) -> StepResult:
        """Compensation of failover/prepare: Stop-VMFailover on the replica when it failed
        over (not completed), then on the primary when it is prepared."""
        with application_errors():
            replica = self._replication(request.replica, request.vm)
            if replica is not None and replica["state"] == "FailedOver":
                raise precondition(request.replica, "the failover was completed; fail back "
                                   "with a planned failover instead")
            changed = False
            for host, state in ((request.replica, "FailedOverWaitingCompletion"),
                                (request.primary, "PreparedForFailover")):
                found = self._replication(host, request.vm)
                if found is not None and found["state"] == state and not found["test_vm"]:
                    self._transition(host, request.vm, stop_failover_command(request.vm),
                                     ("Replicating",))
                    changed = True
            return StepResult(changed=changed, observed={
                "primary": self._replication(request.primary, request.vm),
                "replica": self._replication(request.replica, request.vm)})

    # -- test failover -------------------------------------------------------------------
    @activity.defn(name="replica.test_failover")
    def test_failover(self, request: ReplicaVmInput) -> StepResult:
        """On the replica: Start-VMFailover -AsTest (one test VM, not connected)."""
        with application_errors():
            found = self._require(request.host, request.vm)
            if found["test_vm"]:
                return StepResult(changed=False, observed=found)
            if found["mode"] != "Replica":
                raise precondition(request.host, f"{request.vm} is {found['mode']}, not a "
                                   "replica")
            self._remote.run(request.host, test_failover_command(request.vm))
            after = self._require(request.host, request.vm)
            test = after["test_vm"]
            if not test or self._remote.query_one(request.host, get_vm_command(test)) is None:
                raise verify_failed(request.host, f"no test VM for {request.vm}", after)
            return StepResult(changed=True, observed=after)

    @activity.defn(name="replica.cleanup_test_failover")
    def cleanup_test_failover(self, request: ReplicaVmInput) -> StepResult:
        """Stop-VMFailover on the replica while a test VM exists (removes it)."""
        with application_errors():
            found = self._require(request.host, request.vm)
            if not found["test_vm"]:
                return StepResult(changed=False, observed=found)
            self._remote.run(request.host, stop_failover_command(request.vm))
            after = self._require(request.host, request.vm)
            if after["test_vm"] or self._remote.query_one(
                    request.host, get_vm_command(found["test_vm"])) is not None:
                raise verify_failed(request.host, "the test VM remains", after)
            return StepResult(changed=True, observed=after)

    def all(self) -> list[Any]:
        """The bound activity methods, for worker registration."""
        return [self.server, self.shared_settings, self.disable_server, self.firewall,
                self.disable_firewall, self.test_connection, self.enable, self.remove,
                self.start_initial, self.wait_state, self.health, self.prepare_failover,
                self.failover, self.complete, self.reverse, self.stop_failover,
                self.test_failover, self.cleanup_test_failover]
