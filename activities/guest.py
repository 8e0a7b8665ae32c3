"""Guest configuration activities: offline first-boot configuration of legacy guests, static
IPv4 / Telnet / RDP port / RRAS NAT over PowerShell Direct, waiting for a guest, and the
lab's connectivity checks.

Windows Server 2003 guests (``windows-legacy``) cannot be reached by PowerShell Direct: they
are configured by ``guest.offline_config`` (host/offline-guest-config writes the settings into
the VM's disk while it is off; the guest applies them at its next boot). The PowerShell Direct
steps run only for ``windows`` (2016+) guests; for legacy and Linux guests they return
``changed=False`` with ``observed["skipped"]`` saying why, never a silent success.

Steps whose guest state cannot be read without running a script that changes it (offline
configuration, Telnet, RDP port, RRAS NAT) record what they applied as a digest in the VM's
Notes (a line ``hvlab: key=digest; ...``) once the host reported success; the probe is
``Get-VM``. Static IPv4 is probed through the addresses the guest reports to Hyper-V (KVP),
which shows addresses only: a wrong gateway or DNS server behind the right address is not
seen. The ``*_command`` / ``*_script`` functions build the exact commands the activities emit.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import time
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError, CancelledError

from activities.base import (
    Beat,
    Remote,
    WaitBeat,
    application_errors,
    cancelled,
    conflict,
    heartbeat,
    liveness,
    not_found,
    precondition,
    verify_failed,
)
from activities.marks import read_marks, with_mark
from activities.models import (
    ConnectivityCheck,
    ConnectivityInput,
    GuestAddressInput,
    GuestInput,
    GuestIpv4Input,
    GuestNatInput,
    GuestRdpInput,
    GuestTelnetInput,
    GuestWaitInput,
    OfflineGuestConfigInput,
    StepResult,
)
from activities.vm import get_nic_command, get_vm_command
from hvlab.powershell.command import Command, CredentialRef, Script
from hvlab.powershell.endpoints import EndpointSource
from hvlab.powershell.errors import RemoteError
from hvlab.powershell.session import SessionPool

SKIP_REASONS = {
    "windows-legacy": "PowerShell Direct needs a Windows Server 2016+ guest; legacy guests are "
                      "configured offline before their first start (guest.offline_config)",
    "linux": "PowerShell Direct does not reach Linux guests: their addresses come from the "
             "golden image or DHCP (guest.address_source) and guest.wait_address verifies "
             "them",
}


# -- commands ------------------------------------------------------------------------------


def set_notes_command(vm: str, notes: str) -> Command:
    return Command.of("Set-VM", Name=vm, Notes=notes)


def net_connection_command(check: ConnectivityCheck) -> Command:
    """Test-NetConnection -InformationLevel Quiet: True/False for the port (or ping)."""
    return Command.of("Test-NetConnection", ComputerName=check.address, Port=check.port,
                      InformationLevel="Quiet", WarningAction="SilentlyContinue")


def offline_config_json(request: OfflineGuestConfigInput) -> str:
    """host/offline-guest-config's ConfigJson: names and addresses only, never passwords."""
    config: dict[str, Any] = {}
    if request.nics:
        config["nics"] = [_nic_json(n.mac, n.name, n.ip, n.prefix, n.gateway, n.dns)
                          for n in request.nics]
    if request.users:
        config["users"] = [{"name": u.name, "groups": list(u.groups)} for u in request.users]
    if request.telnet:
        config["telnet"] = {"enabled": True}
    if request.rdp_port is not None:
        config["rdp"] = {"port": request.rdp_port}
    if request.nat is not None:
        config["nat"] = {"public": request.nat.public, "private": list(request.nat.private),
                         "mappings": list(request.nat.mappings)}
    return json.dumps(config, sort_keys=True, separators=(",", ":"))


def _nic_json(mac: str, name: str, ip: str, prefix: int, gateway: str | None,
              dns: list[str]) -> dict[str, Any]:
    nic: dict[str, Any] = {"mac": mac, "name": name, "ip": ip, "prefix": prefix}
    if gateway:
        nic["gateway"] = gateway
    if dns:
        nic["dns"] = list(dns)
    return nic


def offline_config_script(request: OfflineGuestConfigInput) -> Script:
    """The user passwords go out as PSCredential parameters built from credential names."""
    parameters: dict[str, Any] = {"VhdPath": request.vhd_path,
                                  "ConfigJson": offline_config_json(request)}
    if request.users:
        parameters["UserCredential"] = [CredentialRef(u.credential) for u in request.users]
    return Script(name="host/offline-guest-config", parameters=parameters)


def _direct(request: GuestInput, name: str, **parameters: Any) -> Script:
    values = {"VMName": request.vm, "Credential": CredentialRef(request.credential or "")}
    values.update({k: v for k, v in parameters.items() if v is not None})
    return Script(name=name, parameters=values)


def probe_script(request: GuestInput) -> Script:
    return _direct(request, "guest/probe")


def set_ipv4_script(request: GuestIpv4Input, mac: str) -> Script:
    nic = request.nic
    return _direct(request, "guest/set-ipv4", MacAddress=mac, IPAddress=nic.ip,
                   PrefixLength=nic.prefix, Gateway=nic.gateway, Dns=list(nic.dns) or None,
                   InterfaceAlias=nic.name)


def telnet_scripts(request: GuestTelnetInput) -> list[Script]:
    """One guest/telnet-server run per user (the script takes one UserCredential)."""
    return [_direct(request, "guest/telnet-server", UserCredential=CredentialRef(u.credential),
                    Group=request.group) for u in request.users]


def rdp_script(request: GuestRdpInput) -> Script:
    return _direct(request, "guest/rdp-port", Port=request.port)


def rras_nat_script(request: GuestNatInput) -> Script:
    nat = request.nat
    return _direct(request, "guest/rras-nat", PublicInterface=nat.public,
                   PrivateInterfaces=list(nat.private), Mappings=list(nat.mappings) or None)


# -- VM notes marks ------------------------------------------------------------------------


def digest(*parts: Any) -> str:
    """A short, stable digest of what a step applies (names and values, no secrets)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# -- helpers -------------------------------------------------------------------------------


def skipped(request: GuestInput) -> StepResult | None:
    """The result for a guest PowerShell Direct cannot reach; None for a windows guest."""
    if request.os == "windows":
        if not request.credential:
            raise ApplicationError(f"{request.vm}: no guest credential for PowerShell Direct",
                                   type="InvalidInput", non_retryable=True)
        return None
    return StepResult(changed=False, observed={"skipped": SKIP_REASONS[request.os],
                                               "os": request.os})


def _mac(value: Any) -> str:
    return "".join(ch for ch in str(value or "") if ch.isalnum()).upper()


def _addresses(nic: dict[str, Any]) -> list[str]:
    """The IPv4 addresses a VM NIC reports through KVP, without prefix lengths."""
    raw = nic.get("IPAddresses") or []
    values = raw if isinstance(raw, list) else [raw]
    return [str(v).split("/")[0] for v in values if "." in str(v)]


def _expected_address(request: GuestAddressInput, found: list[str]) -> str | None:
    """The reported address that satisfies the lab (None: none does yet)."""
    if request.address is not None:
        wanted = request.address.split("/")[0]
        return wanted if wanted in found else None
    usable = [a for a in found if not a.startswith("169.254.")]
    if request.subnet is not None:
        net = ipaddress.ip_network(request.subnet, strict=False)
        usable = [a for a in usable if ipaddress.ip_address(a) in net]
    return usable[0] if usable else None


def _address_failure(request: GuestAddressInput, found: list[str], mac: Any) -> str:
    what = (request.address or f"an address in {request.subnet}" if request.subnet
            else request.address or "an IPv4 address")
    where = f"{request.host}: VM {request.vm} NIC {request.nic} (MAC {mac or '?'})"
    seen = (f"reports {', '.join(found)}" if found else
            "reports no address to Hyper-V")
    after = f"after {request.timeout_seconds:.0f} s"
    if not found:
        fix = ("the guest's KVP daemon (hv_kvp_daemon: package hyperv-daemons, or "
               "linux-cloud-tools on Ubuntu) must run for Hyper-V to see its addresses; check "
               "that the guest booted and its network came up")
    elif request.source == "golden":
        fix = (f"the golden image must configure {what} on this adapter (its network "
               "configuration, e.g. netplan or NetworkManager), or change the NIC's ipv4 in "
               "the lab file to what the image has")
    else:
        fix = (f"the DHCP server on {request.nic}'s network must lease {what} to MAC "
               f"{mac or '?'} (a reservation)")
    return f"{where} {seen}, not {what}, {after}: {fix}"


class ChecksBeat(Beat):
    """guest.check_connectivity: the round and the checks still failing (progress only)."""

    KIND = "guest.checks"
    round: int
    failing: list[str]


class AddressBeat(Beat):
    """guest.wait_address: the round and what the NIC reported (progress only)."""

    KIND = "guest.address"
    round: int
    reported: list[str]


class GuestActivities:
    """Guest steps, run on the Hyper-V host that owns the VM."""

    def __init__(self, sessions: SessionPool, endpoints: EndpointSource) -> None:
        self._remote = Remote(sessions, endpoints)

    def _vm(self, host: str, vm: str) -> dict[str, Any]:
        found = self._remote.query_one(host, get_vm_command(vm))
        if found is None:
            raise not_found(host, f"VM {vm}")
        return found

    def _marked(self, host: str, vm: str, key: str, value: str) -> bool:
        return read_marks(self._vm(host, vm).get("Notes")).get(key) == value

    def _mark(self, host: str, vm: str, key: str, value: str) -> None:
        """Record ``key=value`` in the VM's Notes and check it is there."""
        notes = self._vm(host, vm).get("Notes")
        self._remote.run(host, set_notes_command(vm, with_mark(notes, key, value)))
        if not self._marked(host, vm, key, value):
            raise verify_failed(host, f"VM {vm} notes do not record {key}", value)

    # -- offline configuration -----------------------------------------------------------
    @activity.defn(name="guest.offline_config")
    def offline_config(self, request: OfflineGuestConfigInput) -> StepResult:
        """Write the legacy guest's first-boot configuration into its disk while the VM is
        off (before its first start); the same configuration again changes nothing. Other
        guests are skipped."""
        with application_errors():
            return self._offline_config(request)

    def _offline_config(self, request: OfflineGuestConfigInput) -> StepResult:
        if request.os != "windows-legacy":
            return StepResult(changed=False, observed={
                "skipped": f"{request.os} guests are not configured offline", "os": request.os})
        wanted = digest(offline_config_json(request), [u.credential for u in request.users])
        vm = self._vm(request.host, request.vm)
        state = str(vm.get("State"))
        observed = {"digest": wanted, "vhd_path": request.vhd_path}
        if read_marks(vm.get("Notes")).get("offline-config") == wanted:
            return StepResult(changed=False, observed={**observed, "state": state})
        if state != "Off":
            raise precondition(request.host, f"VM {request.vm} is {state}: its offline "
                               "configuration is written while it is off, before it starts "
                               "(stop it and run this step again)")
        self._check_macs(request)
        output = self._remote.script(request.host, offline_config_script(request))
        result = next((o for o in output if isinstance(o, dict)), {})
        if result.get("Pending") is not True:
            raise verify_failed(request.host, f"no first-boot configuration in "
                                f"{request.vhd_path}", result)
        self._mark(request.host, request.vm, "offline-config", wanted)
        return StepResult(changed=True, observed={**observed, "state": state, "pending": True,
                                                  "sections": result.get("Sections")})

    def _check_macs(self, request: OfflineGuestConfigInput) -> None:
        """The guest finds its adapters by MAC: every configured NIC must exist with it."""
        nics = self._remote.query(request.host, get_nic_command(request.vm))
        macs = {str(n.get("Name")).lower(): _mac(n.get("MacAddress"))
                for n in nics if isinstance(n, dict)}
        for nic in request.nics:
            found = macs.get(nic.name.lower())
            if found is None:
                raise not_found(request.host, f"NIC {nic.name} of VM {request.vm}")
            if found != _mac(nic.mac):
                raise conflict(request.host, f"NIC {nic.name} of VM {request.vm} has MAC "
                               f"{found}, the configuration expects {_mac(nic.mac)} (create "
                               "it with that static MAC)")

    # -- readiness -----------------------------------------------------------------------
    @activity.defn(name="guest.wait_ready")
    def wait_ready(self, request: GuestWaitInput) -> StepResult:
        """Poll guest/probe until PowerShell Direct into the guest answers; a guest that is
        still booting is waited out, other failures fail at once."""
        with application_errors():
            return skipped(request) or self._wait_ready(request)

    def _wait_ready(self, request: GuestWaitInput) -> StepResult:
        deadline = time.monotonic() + request.timeout_seconds
        attempts, last = 0, "no answer yet"
        while True:
            attempts += 1
            try:
                output = self._remote.script(request.host, probe_script(request))
                if "ok" in output:
                    return StepResult(changed=False, observed={"ready": True,
                                                               "attempts": attempts})
                last = f"probe answered {output!r}"
            except RemoteError as error:
                if not (error.retryable or error.type_name == "GuestUnsupported"):
                    raise
                last = f"{error.type_name}: {error.host_message}"
            heartbeat(WaitBeat(attempts=attempts, last=last))
            if cancelled():
                raise CancelledError(f"{request.vm}: wait cancelled after {attempts} attempts")
            if time.monotonic() + request.interval_seconds > deadline:
                raise ApplicationError(f"{request.vm}: guest not ready after {attempts} "
                                       f"attempts: {last}", type="GuestNotReady",
                                       non_retryable=False)
            time.sleep(request.interval_seconds)

    # -- static IPv4 ---------------------------------------------------------------------
    @activity.defn(name="guest.set_ipv4")
    def set_ipv4(self, request: GuestIpv4Input) -> StepResult:
        """Static IPv4 on the guest adapter with the NIC's MAC unless the guest already
        reports the address on that NIC (KVP)."""
        with application_errors():
            return skipped(request) or self._set_ipv4(request)

    def _nic(self, request: GuestIpv4Input) -> dict[str, Any]:
        nic = self._remote.query_one(request.host, get_nic_command(request.vm, request.nic.name))
        if nic is None:
            raise not_found(request.host, f"NIC {request.nic.name} of VM {request.vm}")
        return nic

    def _set_ipv4(self, request: GuestIpv4Input) -> StepResult:
        nic = self._nic(request)
        observed = {"nic": request.nic.name, "mac": nic.get("MacAddress"),
                    "ip": request.nic.ip}
        if request.nic.ip in _addresses(nic):
            return StepResult(changed=False, observed={**observed,
                                                       "addresses": _addresses(nic)})
        output = self._remote.script(request.host,
                                     set_ipv4_script(request, str(nic.get("MacAddress"))))
        result = next((o for o in output if isinstance(o, dict)), {})
        after = _addresses(self._nic(request))
        if request.nic.ip not in after:
            raise verify_failed(request.host, f"{request.vm} does not report {request.nic.ip}",
                                after)
        return StepResult(changed=True, observed={
            **observed, "addresses": after, "interface_alias": result.get("InterfaceAlias")})

    # -- Telnet, RDP, RRAS NAT -----------------------------------------------------------
    @activity.defn(name="guest.telnet")
    def telnet(self, request: GuestTelnetInput) -> StepResult:
        """Telnet Server with the lab's users in the Telnet group (guest/telnet-server)."""
        with application_errors():
            if (skip := skipped(request)) is not None:
                return skip
            users = [u.name for u in request.users]
            return self._marked_step(request, "telnet", telnet_scripts(request),
                                     digest(users, request.group), {"users": users})

    @activity.defn(name="guest.rdp")
    def rdp(self, request: GuestRdpInput) -> StepResult:
        """Remote Desktop on the lab's port (guest/rdp-port; TermService restarts)."""
        with application_errors():
            if (skip := skipped(request)) is not None:
                return skip
            return self._marked_step(request, "rdp", [rdp_script(request)],
                                     digest(request.port), {"port": request.port})

    @activity.defn(name="guest.rras_nat")
    def rras_nat(self, request: GuestNatInput) -> StepResult:
        """RRAS NAT with the public and private interfaces and port mappings
        (guest/rras-nat)."""
        with application_errors():
            if (skip := skipped(request)) is not None:
                return skip
            return self._marked_step(request, "rras-nat", [rras_nat_script(request)],
                                     digest(request.nat.model_dump()),
                                     {"public": request.nat.public,
                                      "mappings": request.nat.mappings})

    def _marked_step(self, request: GuestInput, key: str, scripts: list[Script], value: str,
                     observed: dict[str, Any]) -> StepResult:
        """Run ``scripts`` (each stops on its first failure) unless the VM's notes record
        this configuration; then record it."""
        vm = self._vm(request.host, request.vm)
        if str(vm.get("State")) != "Running":
            raise precondition(request.host, f"VM {request.vm} is {vm.get('State')}, not "
                               "Running: PowerShell Direct needs a running guest")
        if read_marks(vm.get("Notes")).get(key) == value:
            return StepResult(changed=False, observed={**observed, "digest": value})
        for script in scripts:
            self._remote.script(request.host, script)
        self._mark(request.host, request.vm, key, value)
        return StepResult(changed=True, observed={**observed, "digest": value})

    # -- connectivity --------------------------------------------------------------------
    @activity.defn(name="guest.check_connectivity")
    def check_connectivity(self, request: ConnectivityInput) -> StepResult:
        """Run every check (Test-NetConnection from its host), trying the failing ones again
        until ``timeout_seconds`` (what a first boot configures answers only after it), and
        report each result; fails with VerificationFailed (not retried) listing the checks
        that still fail.

        Probes start on hosts, so traffic between two internal subnets is not tried directly:
        the lab's checks (:meth:`ConnectivityInput.from_spec`) reach a server in each internal
        subnet through the router's port forwards, which needs the router to route into that
        subnet and the server to route back through it."""
        with application_errors():
            results, rounds = self._poll_checks(request)
        failed = [r["name"] for r in results if not r["ok"]]
        if failed:
            raise ApplicationError(
                f"{len(failed)} of {len(results)} connectivity checks failed: "
                + "; ".join(failed), {"checks": results, "rounds": rounds},
                type="VerificationFailed", non_retryable=True)
        return StepResult(changed=False, observed={"checks": results, "rounds": rounds})

    def _poll_checks(self, request: ConnectivityInput) -> tuple[list[dict[str, Any]], int]:
        """Every check once, then the failing ones again every ``interval_seconds`` until
        they pass or ``timeout_seconds`` have passed (a first boot is still configuring)."""
        deadline = time.monotonic() + request.timeout_seconds
        results = [self._check(c) for c in request.checks]
        rounds = 1
        while not all(r["ok"] for r in results):
            if time.monotonic() + request.interval_seconds > deadline:
                break
            heartbeat(ChecksBeat(round=rounds,
                                 failing=[r["name"] for r in results if not r["ok"]]))
            if cancelled():
                raise CancelledError(f"connectivity checks cancelled after {rounds} rounds")
            time.sleep(request.interval_seconds)
            rounds += 1
            results = [r if r["ok"] else self._check(c)
                       for r, c in zip(results, request.checks, strict=True)]
        return results, rounds

    def _check(self, check: ConnectivityCheck) -> dict[str, Any]:
        output = self._remote.query(check.host, net_connection_command(check))
        liveness()
        return {"name": check.name, "host": check.host, "address": check.address,
                "port": check.port, "ok": output == [True]}

    # -- addresses hvlab does not configure --------------------------------------------
    @activity.defn(name="guest.wait_address")
    def wait_address(self, request: GuestAddressInput) -> StepResult:
        """Wait until the NIC reports the lab's address through the Hyper-V data exchange
        (KVP: ``Get-VMNetworkAdapter``'s IPAddresses), polling until ``timeout_seconds``:
        a Linux guest's address comes from its golden image or from DHCP, and its KVP daemon
        reports it once the guest has booted. Fails with VerificationFailed (not retried)
        saying what the NIC reported and what to fix. Read-only."""
        with application_errors():
            return self._wait_address(request)

    def _wait_address(self, request: GuestAddressInput) -> StepResult:
        deadline = time.monotonic() + request.timeout_seconds
        rounds = 0
        while True:
            rounds += 1
            nic = self._remote.query_one(request.host, get_nic_command(request.vm, request.nic))
            if nic is None:
                raise not_found(request.host, f"NIC {request.nic} of VM {request.vm}")
            found = _addresses(nic)
            match = _expected_address(request, found)
            if match is not None:
                return StepResult(changed=False, observed={
                    "address": match, "reported": found, "source": request.source,
                    "rounds": rounds})
            if time.monotonic() + request.interval_seconds > deadline:
                break
            heartbeat(AddressBeat(round=rounds, reported=found))
            if cancelled():
                raise CancelledError(f"waiting for {request.vm}'s address cancelled")
            time.sleep(request.interval_seconds)
        raise ApplicationError(
            _address_failure(request, found, nic.get("MacAddress")),
            {"vm": request.vm, "nic": request.nic, "reported": found, "rounds": rounds},
            type="VerificationFailed", non_retryable=True)

    def all(self) -> list[Any]:
        """The bound activity methods, for worker registration."""
        return [self.offline_config, self.wait_ready, self.set_ipv4, self.telnet, self.rdp,
                self.rras_nat, self.check_connectivity, self.wait_address]

