"""Host preparation activities: domain join, Hyper-V role, reboot and wait, folders, default
paths, virtual switches (and the switch's compensation).

Each activity probes, compares, acts only when the host differs, verifies, and returns
``changed`` with the observed state. The ``*_command`` functions build the exact commands the
activities emit (the catalogue test binds every one of them).
"""

from __future__ import annotations

import ipaddress
import time
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError, CancelledError

from activities.base import (
    SILENT,
    Beat,
    Remote,
    WaitBeat,
    application_errors,
    cancelled,
    conflict,
    heartbeat,
    last_heartbeat,
    verify_failed,
)
from activities.marks import CREATED_BY, not_created_here, with_mark
from activities.models import (
    DefaultPathsInput,
    DnsInput,
    DomainJoinInput,
    FoldersInput,
    HostInput,
    HyperVRoleInput,
    RemoveSwitchInput,
    StepResult,
    SwitchInput,
    WaitReadyInput,
)
from hvlab.powershell.command import SWITCH, Command, CredentialRef
from hvlab.powershell.endpoints import EndpointSource
from hvlab.powershell.errors import NotFound, RemoteError, error_id_of
from hvlab.powershell.session import SessionPool

# Add-Computer's error id when the computer is already in (or pending a join to) the domain
_PENDING_JOIN = "AddComputerToSameDomain"


# -- commands ------------------------------------------------------------------------------


def computer_system_command() -> Command:
    return Command.of("Get-CimInstance", ClassName="Win32_ComputerSystem")


def operating_system_command() -> Command:
    return Command.of("Get-CimInstance", ClassName="Win32_OperatingSystem")


PENDING_JOIN_KEY = "HKLM:\\SYSTEM\\CurrentControlSet\\Services\\Netlogon\\JoinDomain"


def pending_join_command() -> Command:
    """Netlogon's JoinDomain key exists while a domain join waits for its restart (what
    pending-reboot checks read): PartOfDomain stays False until then."""
    return Command.of("Test-Path", Path=PENDING_JOIN_KEY)


def add_computer_command(request: DomainJoinInput) -> Command:
    """Join without -Restart: the reboot is its own step."""
    return Command.of("Add-Computer", DomainName=request.domain,
                      Credential=CredentialRef(request.credential), Force=SWITCH)


def ip_address_command(address: str) -> Command:
    return Command.of("Get-NetIPAddress", IPAddress=address, ErrorAction=SILENT)


def get_dns_command(alias: str) -> Command:
    return Command.of("Get-DnsClientServerAddress", InterfaceAlias=alias, AddressFamily="IPv4")


def set_dns_command(alias: str, servers: list[str]) -> Command:
    return Command.of("Set-DnsClientServerAddress", InterfaceAlias=alias,
                      ServerAddresses=list(servers))


def get_feature_command(request: HyperVRoleInput) -> Command:
    return Command.of("Get-WindowsFeature", Name=request.feature)


def install_feature_command(request: HyperVRoleInput) -> Command:
    return Command.of("Install-WindowsFeature", Name=request.feature,
                      IncludeManagementTools=SWITCH)


def restart_command() -> Command:
    return Command.of("Restart-Computer", Force=SWITCH)


def service_command(name: str) -> Command:
    return Command.of("Get-Service", Name=name)


def path_exists_command(paths: list[str]) -> Command:
    return Command.of("Test-Path", Path=list(paths))


def new_folders_command(paths: list[str]) -> Command:
    return Command.of("New-Item", ItemType="Directory", Path=list(paths), Force=SWITCH)


def get_vmhost_command() -> Command:
    return Command.of("Get-VMHost")


def set_vmhost_command(virtual_machines: str | None, virtual_hard_disks: str | None) -> Command:
    return Command.of("Set-VMHost", VirtualMachinePath=virtual_machines,
                      VirtualHardDiskPath=virtual_hard_disks)


def get_switch_command(name: str) -> Command:
    return Command.of("Get-VMSwitch", Name=name, ErrorAction=SILENT)


def new_switch_command(request: SwitchInput) -> Command:
    """External switches bind an adapter (that makes them External); others take a type.
    The Notes carry the ``hvlab: created-by=<lab>`` mark (:mod:`activities.marks`)."""
    notes = with_mark("", CREATED_BY, request.lab)
    if request.type == "External":
        return Command.of("New-VMSwitch", Name=request.name, NetAdapterName=request.adapter,
                          AllowManagementOS=request.allow_management_os, Notes=notes)
    return Command.of("New-VMSwitch", Name=request.name, SwitchType=request.type, Notes=notes)


def vnic_addresses_command(switch: str) -> Command:
    """The addresses of the switch's host vNIC (named 'vEthernet (<switch>)' by
    New-VMSwitch -AllowManagementOS $true)."""
    return Command.of("Get-NetIPAddress", InterfaceAlias=f"vEthernet ({switch})",
                      ErrorAction=SILENT)


def remove_switch_command(name: str) -> Command:
    return Command.of("Remove-VMSwitch", Name=name, Force=SWITCH)


# -- helpers -------------------------------------------------------------------------------


def _same_path(a: Any, b: str) -> bool:
    return str(a or "").rstrip("\\").lower() == b.rstrip("\\").lower()


# host.reboot: how long a Restart-Computer may take to end the old boot, and how long a retried
# attempt whose predecessor died around the call waits for that before restarting itself.
REBOOT_TIMEOUT = 600.0
RESTART_GRACE = 30.0


class RebootBeat(Beat):
    """host.reboot: the boot the host ran before the restart, and whether the restart is
    about to be sent (``restart_pending``) or was sent (``restart_requested``)."""

    KIND = "host.reboot"
    last_boot_before: str = ""
    restart_pending: bool = False
    restart_requested: bool = False


def _rebooted(before: str) -> StepResult:
    return StepResult(changed=True, observed={"restart_requested": True,
                                              "last_boot_before": before})


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _text(value: Any) -> str:
    return "" if value is None else str(value)


class HostActivities:
    """Host preparation steps on lab hosts reached through ``sessions`` and ``endpoints``."""

    def __init__(self, sessions: SessionPool, endpoints: EndpointSource) -> None:
        self._remote = Remote(sessions, endpoints)

    # -- domain join ---------------------------------------------------------------------
    @activity.defn(name="host.domain_join")
    def domain_join(self, request: DomainJoinInput) -> StepResult:
        """Join the domain without restarting; ``restart_needed`` when the join is pending."""
        with application_errors():
            return self._domain_join(request)

    def _computer(self, host: str) -> dict[str, Any]:
        return self._remote.query_one(host, computer_system_command()) or {}

    def _domain_join(self, request: DomainJoinInput) -> StepResult:
        before = self._computer(request.host)
        observed = {"domain": before.get("Domain"), "part_of_domain": before.get("PartOfDomain")}
        if before.get("PartOfDomain") and _text(before.get("Domain")).lower() == \
                request.domain.lower():
            return StepResult(changed=False, observed={**observed, "restart_needed": False})
        if True in self._remote.query(request.host, pending_join_command()):
            # joined by an earlier attempt (e.g. a worker killed before it reported): only the
            # restart is missing, so no second Add-Computer
            return StepResult(changed=False, observed={**observed, "restart_needed": True,
                                                      "pending_join": True})
        try:
            self._remote.run(request.host, add_computer_command(request))
        except RemoteError as error:
            if error_id_of(error.error_id).lower() != _PENDING_JOIN.lower():
                raise
            return StepResult(changed=False, observed={**observed, "restart_needed": True})
        return StepResult(changed=True, observed={**observed, "restart_needed": True,
                                                  "pending_domain": request.domain})

    # -- DNS -------------------------------------------------------------------------------
    @activity.defn(name="host.dns")
    def dns(self, request: DnsInput) -> StepResult:
        """Point the adapter that carries the host's address at the given DNS servers (the DC),
        which a domain join needs."""
        with application_errors():
            return self._dns(request)

    def _dns_servers(self, host: str, alias: str) -> list[str]:
        found = self._remote.query_one(host, get_dns_command(alias)) or {}
        return [str(s) for s in (found.get("ServerAddresses") or [])]

    def _dns(self, request: DnsInput) -> StepResult:
        address = self._remote.query_one(request.host, ip_address_command(request.address))
        if address is None:
            raise conflict(request.host, f"no adapter carries {request.address}")
        alias = _text(address.get("InterfaceAlias"))
        before = self._dns_servers(request.host, alias)
        if before[: len(request.servers)] == request.servers:
            return StepResult(changed=False, observed={"interface": alias, "dns": before})
        self._remote.run(request.host, set_dns_command(alias, request.servers))
        after = self._dns_servers(request.host, alias)
        if after[: len(request.servers)] != request.servers:
            raise verify_failed(request.host, "DNS servers did not change", after)
        return StepResult(changed=True, observed={"interface": alias, "dns": after,
                                                  "before": before})

    # -- Hyper-V role --------------------------------------------------------------------
    @activity.defn(name="host.hyperv_role")
    def hyperv_role(self, request: HyperVRoleInput) -> StepResult:
        """Install the role with management tools (no -Restart); reports ``restart_needed``."""
        with application_errors():
            return self._hyperv_role(request)

    def _install_state(self, request: HyperVRoleInput) -> str:
        feature = self._remote.query_one(request.host, get_feature_command(request)) or {}
        return _text(feature.get("InstallState"))

    def _hyperv_role(self, request: HyperVRoleInput) -> StepResult:
        state = self._install_state(request)
        if state in ("Installed", "InstallPending"):
            return StepResult(changed=False, observed={
                "install_state": state, "restart_needed": state == "InstallPending"})
        output = self._remote.run(request.host, install_feature_command(request))
        result = next((o for o in output if isinstance(o, dict)), {})
        after = self._install_state(request)
        if after not in ("Installed", "InstallPending"):
            raise verify_failed(request.host, f"{request.feature} is not installed", after)
        restart = _text(result.get("RestartNeeded")) != "No" or after == "InstallPending"
        return StepResult(changed=True, observed={
            "install_state": after, "restart_needed": restart,
            "exit_code": _text(result.get("ExitCode"))})

    # -- reboot and wait -----------------------------------------------------------------
    @activity.defn(name="host.reboot")
    def reboot(self, request: HostInput) -> StepResult:
        """Restart the host (-Force), then wait through the session it already has until the
        old boot stops answering, so the next step's shell is opened on the new boot (probing
        with a new shell right away opened one on the boot shutting down: an extra shell and
        logon per reboot). A connection cut by the restart itself counts as the reboot under
        way.

        A retried attempt does not restart the host again. The first heartbeats the boot it
        saw before sending Restart-Computer and again once it was sent. A successor that
        finds only the first (the worker died around the call) gives the host
        ``RESTART_GRACE`` seconds to leave that boot and restarts it only if it does not.
        """
        with application_errors():
            previous = last_heartbeat(RebootBeat)
            before = previous.last_boot_before if previous is not None else ""
            if previous is not None and previous.restart_requested:
                pass  # the predecessor sent it
            elif previous is not None and before and \
                    self._old_boot_gone(request.host, before, RESTART_GRACE, previous):
                return _rebooted(before)  # the predecessor's restart went through
            else:
                if not before:
                    system = self._remote.query_one(request.host, operating_system_command())
                    before = _text((system or {}).get("LastBootUpTime"))
                heartbeat(RebootBeat(restart_pending=True, last_boot_before=before))
                self._remote.note_reboot(request.host)
                try:
                    self._remote.run(request.host, restart_command())
                except RemoteError as error:
                    if not error.retryable:
                        raise
                heartbeat(RebootBeat(restart_requested=True, last_boot_before=before))
            sent_now = RebootBeat(restart_requested=True, last_boot_before=before)
            if not self._old_boot_gone(request.host, before, REBOOT_TIMEOUT, sent_now):
                raise ApplicationError(
                    f"{request.host}: Restart-Computer was accepted but the host still runs the "
                    f"boot of {before} after {REBOOT_TIMEOUT:.0f} s (a shutdown blocked?); check "
                    "the console", type="HostNotReady", non_retryable=False)  # fmt: skip
            return _rebooted(before)

    def _old_boot_gone(self, host: str, before: str, timeout: float, beat: RebootBeat,
                       interval: float = 0.5) -> bool:
        """Poll LastBootUpTime through the host's current session until the host stops
        answering (going down: the pool drops the broken session) or answers from a new boot
        (an instant reboot: the pool reopened on the new boot and keeps that session): True.
        False when it still runs ``before`` after ``timeout`` seconds. Heartbeats ``beat``
        while it waits."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                system = self._remote.query_one(host, operating_system_command()) or {}
            except RemoteError as error:
                if not error.retryable:
                    raise
                return True  # the old boot is going away
            if _text(system.get("LastBootUpTime")) != before:
                return True
            heartbeat(beat)
            if cancelled():
                raise CancelledError(f"{host}: cancelled while waiting for the restart")
            if time.monotonic() + interval > deadline:
                return False
            time.sleep(interval)

    @activity.defn(name="host.wait_ready")
    def wait_ready(self, request: WaitReadyInput) -> StepResult:
        """Poll until the host answers (and the service runs); transient failures are waited
        out, permanent ones fail at once."""
        with application_errors():
            return self._wait_ready(request)

    def _wait_ready(self, request: WaitReadyInput) -> StepResult:
        deadline = time.monotonic() + request.timeout_seconds
        attempts, last = 0, "no answer yet"
        while True:
            attempts += 1
            answer = self._ready(request)
            if isinstance(answer, dict):
                return StepResult(changed=False, observed={**answer, "attempts": attempts})
            last = answer
            heartbeat(WaitBeat(attempts=attempts, last=last))
            if cancelled():
                raise CancelledError(f"{request.host}: wait cancelled after {attempts} attempts")
            if time.monotonic() + request.interval_seconds > deadline:
                break
            time.sleep(request.interval_seconds)
        raise ApplicationError(f"{request.host}: not ready after {attempts} attempts: {last}",
                               type="HostNotReady", non_retryable=False)

    def _ready(self, request: WaitReadyInput) -> dict[str, Any] | str:
        """The host's answer when ready, else why not (retryable failures only)."""
        try:
            system = self._remote.query_one(request.host, operating_system_command()) or {}
            booted = _text(system.get("LastBootUpTime"))
            if request.booted_before and booted == request.booted_before:
                return f"still on the boot of {booted}: the restart has not happened yet"
            if request.service is None:
                return {"last_boot": booted}
            service = self._remote.query_one(request.host, service_command(request.service))
        except NotFound as error:  # WinRM answers before a new role's service is registered
            return f"service {request.service} not there yet: {error.host_message}"
        except RemoteError as error:
            if not error.retryable:
                raise
            return f"{error.type_name}: {error.host_message}"
        status = _text((service or {}).get("Status"))
        if status != "Running":
            return f"service {request.service} is {status or 'absent'}"
        return {"last_boot": _text(system.get("LastBootUpTime")), "service": status}

    # -- folders and default paths -------------------------------------------------------
    @activity.defn(name="host.folders")
    def folders(self, request: FoldersInput) -> StepResult:
        """Create the folders that do not exist yet."""
        with application_errors():
            return self._folders(request)

    def _missing(self, host: str, paths: list[str]) -> list[str]:
        exists = self._remote.query(host, path_exists_command(paths))
        return [p for p, ok in zip(paths, exists, strict=False) if ok is not True]

    def _folders(self, request: FoldersInput) -> StepResult:
        if not request.paths:
            return StepResult(changed=False, observed={"folders": []})
        missing = self._missing(request.host, request.paths)
        if missing:
            self._remote.run(request.host, new_folders_command(missing))
            still = self._missing(request.host, request.paths)
            if still:
                raise verify_failed(request.host, "folders are still missing", still)
        return StepResult(changed=bool(missing),
                          observed={"folders": request.paths, "created": missing})

    @activity.defn(name="host.default_paths")
    def default_paths(self, request: DefaultPathsInput) -> StepResult:
        """Set the host's default VM and VHD folders where they differ."""
        with application_errors():
            return self._default_paths(request)

    def _paths(self, host: str) -> dict[str, Any]:
        vmhost = self._remote.query_one(host, get_vmhost_command()) or {}
        return {"virtual_machines": vmhost.get("VirtualMachinePath"),
                "virtual_hard_disks": vmhost.get("VirtualHardDiskPath")}

    @staticmethod
    def _path_changes(request: DefaultPathsInput, current: dict[str, Any]) -> dict[str, str]:
        wanted = {"virtual_machines": request.virtual_machines,
                  "virtual_hard_disks": request.virtual_hard_disks}
        return {k: v for k, v in wanted.items() if v is not None and not _same_path(current[k], v)}

    def _default_paths(self, request: DefaultPathsInput) -> StepResult:
        changes = self._path_changes(request, self._paths(request.host))
        if changes:
            self._remote.run(request.host, set_vmhost_command(
                changes.get("virtual_machines"), changes.get("virtual_hard_disks")))
        after = self._paths(request.host)
        if self._path_changes(request, after):
            raise verify_failed(request.host, "host default paths did not change", after)
        return StepResult(changed=bool(changes), observed=after)

    # -- switches ------------------------------------------------------------------------
    @activity.defn(name="host.switch")
    def switch(self, request: SwitchInput) -> StepResult:
        """Create the virtual switch unless one of that name and type exists."""
        with application_errors():
            return self._switch(request)

    def _get_switch(self, host: str, name: str) -> dict[str, Any] | None:
        return self._remote.query_one(host, get_switch_command(name))

    @staticmethod
    def _switch_view(found: dict[str, Any]) -> dict[str, Any]:
        return {"name": found.get("Name"), "type": _text(found.get("SwitchType")),
                "allow_management_os": found.get("AllowManagementOS"),
                "adapter": found.get("NetAdapterInterfaceDescription")}

    def _switch(self, request: SwitchInput) -> StepResult:
        found = self._get_switch(request.host, request.name)
        if found is not None:
            view = self._switch_view(found)
            if view["type"] != request.type:
                raise conflict(request.host, f"switch {request.name} exists as {view['type']}, "
                               f"not {request.type}; remove it first")
            return StepResult(changed=False, observed=view)
        self._remote.run(request.host, new_switch_command(request))
        after = self._get_switch(request.host, request.name)
        if after is None or _text(after.get("SwitchType")) != request.type:
            raise verify_failed(request.host, f"switch {request.name} is not there", after)
        return StepResult(changed=True, observed=self._switch_view(after))

    @activity.defn(name="host.remove_switch")
    def remove_switch(self, request: RemoveSwitchInput) -> StepResult:
        """Compensation of host.switch and teardown: remove the switch; already gone is
        success. ``hvlab down`` (without --force) keeps a switch this lab did not create and
        the External switch that carries the host's management address, saying why
        (``observed["kept"]``)."""
        with application_errors():
            found = self._get_switch(request.host, request.name)
            if found is None:
                return StepResult(changed=False, observed={"absent": True})
            kept = self._keep_switch(request, found)
            if kept is not None:
                return StepResult(changed=False, observed={"kept": kept})
            self._remote.run(request.host, remove_switch_command(request.name))
            if self._get_switch(request.host, request.name) is not None:
                raise verify_failed(request.host, f"switch {request.name} is still there", True)
            return StepResult(changed=True, observed={"absent": True})

    def _keep_switch(self, request: RemoveSwitchInput, found: dict[str, Any]) -> str | None:
        """Why ``hvlab down`` keeps this switch (None: it goes)."""
        if request.keep_adopted:
            why = not_created_here("switch", request.name, request.host, request.lab,
                                   found.get("Notes"))
            if why is not None:
                return why
        if not request.keep_management or _text(found.get("SwitchType")) != "External" \
                or not found.get("AllowManagementOS"):
            return None
        addresses = [str(a.get("IPAddress")) for a in self._remote.query(
            request.host, vnic_addresses_command(request.name))
            if isinstance(a, dict) and "." in str(a.get("IPAddress"))]
        address = request.management_address or ""
        if address in addresses:
            why = f"its host vNIC carries {address}, the address hvlab reaches {request.host} at"
        elif addresses and not _is_ip(address):
            why = (f"its host vNIC carries {', '.join(addresses)} and the lab reaches "
                   f"{request.host} by name ({address or '?'}): it may be the management address")
        else:
            return None
        return (f"External switch {request.name} on {request.host} kept: {why}; removing it "
                "cuts the host off the network while Windows moves the address back to the "
                "physical adapter (a static configuration may not come back): remove it at the "
                "host's console, or `hvlab down FILE --force`")

    def all(self) -> list[Any]:
        """The bound activity methods, for worker registration."""
        return [self.dns, self.domain_join, self.hyperv_role, self.reboot, self.wait_ready,
                self.folders, self.default_paths, self.switch, self.remove_switch]
