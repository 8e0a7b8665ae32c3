"""Packaged guest and host scripts: PowerShell Direct guest configuration, offline first-boot
configuration for legacy guests, Kerberos ticket purge, NTFS grants.

PowerShell Direct (``Invoke-Command -VMName``) scripts run on the Hyper-V host that owns the
VM and fail like Windows does: no Hyper-V module, VM name not resolving to one VM, VM not
Running, guest credential rejected, and -- for guests older than Windows Server 2016 and Linux
guests, or a Windows guest that has not finished booting -- the PSRemotingDataStructureException
"An error has occurred which Windows PowerShell cannot handle. A remote session might have
ended.".

Legacy guests (Windows Server 2003) are configured offline by host/offline-guest-config: with
the VM off, the configuration is written into the VHD(X) (``SimFile.first_boot``) and applied
when the VM next boots (Off -> Running through Start-VM; :func:`on_vm_boot`).

RDP port: guest/rdp-port restarts TermService, so the new port answers at once (the 3P
practice; the documentation says "restart the computer"). A port set only in the registry
(offline configuration) takes effect at the next boot, when TermService starts.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from typing import Any, NoReturn

from simulator import reachability
from simulator.cmdlets.common import PathDenied, PathMissing, as_list, session_locate
from simulator.core import Call, Entry, Registry
from simulator.protocol import TerminatingError, credential_parts
from simulator.pstypes import ps_object
from simulator.world import Guest, Host, SimFile, Vm, World, norm_path

INVOKE = "Microsoft.PowerShell.Commands.InvokeCommandCommand"
PSRDS_EXC = "System.Management.Automation.Remoting.PSRemotingDataStructureException"
PSDIRECT_BROKEN = ("An error has occurred which Windows PowerShell cannot handle. A remote "
                   "session might have ended.")  # fmt: skip
NOT_SINGLE = "The input VMName {name} does not resolve to a single virtual machine."
NOT_RUNNING = "The virtual machine {name} is not in running state."
BAD_CREDENTIAL = "The credential is invalid."
NO_HYPERV = "The Hyper-V Module for Windows PowerShell is not available on this machine."
NO_TELNET_SERVER = ("ArgumentNotValid: The role, role service, or feature name is not valid: "
                    "'Telnet-Server'. The name was not found.")  # fmt: skip
MOUNT_FAILED = "Failed to mount the virtual disk.\nThe system failed to mount '{path}': {reason}"
FILE_IN_USE = ("The process cannot access the file because it is being used by another "
               "process. (0x80070020).")  # fmt: skip
FILE_MISSING = "The system cannot find the file specified. (0x80070002)."
ACCESS_DENIED = "General access denied error (0x80070005)."
RDP_KEY = Guest.RDP_KEY
TS_KEY = reachability.TERMINAL_SERVER_KEY


def register(registry: Registry) -> None:
    registry.script("guest/probe", mutates=False)(probe)
    registry.script("guest/set-ipv4")(set_ipv4)
    registry.script("guest/telnet-server")(telnet_server)
    registry.script("guest/rdp-port")(rdp_port)
    registry.script("guest/rras-nat")(rras_nat)
    registry.script("host/offline-guest-config")(offline_guest_config)
    registry.script("host/purge-tickets")(purge)
    registry.script("host/ntfs-grant")(ntfs_grant)
    registry.script("host/test-port", mutates=False)(test_port)
    _hook_start_vm(registry)


# ---------------------------------------------------------------- errors


def throw(message: str) -> NoReturn:
    """``throw "message"`` in a script: RuntimeException, FullyQualifiedErrorId = message."""
    raise TerminatingError(message, message, "OperationStopped",
                           "System.Management.Automation.RuntimeException", message)  # fmt: skip


def _invoke_fail(message: str, error_id: str, category: str, exception: str) -> NoReturn:
    raise TerminatingError(message, f"{error_id},{INVOKE}", category, exception)


# ---------------------------------------------------------------- PowerShell Direct


def password_hash(password: str) -> str:
    return hashlib.sha256(password.encode("utf-8")).hexdigest()


def ps_direct(call: Call) -> Vm:
    """The VM a PowerShell Direct session opens into, or the error Windows reports."""
    host = call.host
    if not host.has_feature("Hyper-V-PowerShell"):
        _invoke_fail(NO_HYPERV, "HyperVModuleNotAvailable", "NotInstalled",
                     "System.ArgumentException")  # fmt: skip
    name = str(call.get("VMName"))
    vms = host.vms_named(name)
    if len(vms) != 1:
        _invoke_fail(NOT_SINGLE.format(name=name), "InvalidVMNameNotSingle", "InvalidArgument",
                     "System.ArgumentException")  # fmt: skip
    vm = vms[0]
    if vm.state != "Running":
        _invoke_fail(NOT_RUNNING.format(name=vm.name), "InvalidVMState", "InvalidArgument",
                     "System.ArgumentException")  # fmt: skip
    booted = reachability.vm_up(vm, call.sim.clock.now())
    if vm.guest.os != "windows" or not booted:
        _invoke_fail(PSDIRECT_BROKEN, "PSSessionStateBroken", "OpenError", PSRDS_EXC)
    _check_credential(vm, call.get("Credential"))
    return vm


def _check_credential(vm: Vm, credential: Any) -> None:
    if credential is None:
        return
    user, password = credential_parts(credential)
    account = user.rsplit("\\", 1)[-1]
    record = next((v for k, v in vm.guest.users.items() if k.lower() == account.lower()), None)
    stored = record.get("password_sha256") if record else None
    if record is None or (stored and stored != password_hash(password)):
        _invoke_fail(BAD_CREDENTIAL, "InvalidCredential", "InvalidArgument",
                     "System.ArgumentException")  # fmt: skip


def probe(call: Call) -> None:
    ps_direct(call)
    call.out("ok")


# ---------------------------------------------------------------- guest state changes


def norm_mac(mac: str) -> str:
    return "".join(ch for ch in str(mac) if ch.isalnum()).upper()


def configure_nic(vm: Vm, mac: str, ip: str, prefix: int, gateway: str | None,
                  dns: list[str], name: str | None = None) -> bool:  # fmt: skip
    """Static IPv4 on the guest adapter with ``mac``; returns whether anything changed."""
    g = vm.guest
    before = (g.ips.get(mac), g.gateways.get(mac), g.dns.get(mac), g.adapter_names.get(mac))
    g.ips[mac] = [f"{ip}/{prefix}"]
    if gateway:
        g.gateways[mac] = gateway
    else:
        g.gateways.pop(mac, None)
    g.dns[mac] = list(dns)
    if name:
        g.adapter_names[mac] = name
    return before != (g.ips.get(mac), g.gateways.get(mac), g.dns.get(mac), g.adapter_names.get(mac))


def add_user(guest: Guest, name: str, password: str | None, groups: list[str]) -> None:
    record = guest.users.setdefault(name, {"enabled": True})
    record["enabled"] = True
    if password is not None:
        record["password_sha256"] = password_hash(password)
    for group in groups:
        members = guest.groups.setdefault(group, [])
        if name.lower() not in {m.lower() for m in members}:
            members.append(name)


def set_service(guest: Guest, name: str, start: str, running: bool) -> None:
    service = guest.services.setdefault(name, {"status": "Stopped", "start": "Manual"})
    service["start"] = start
    if running:
        service["status"] = "Running"


def open_port(guest: Guest, port: int, protocol: str = "TCP") -> None:
    entry = f"{protocol.upper()}:{port}"
    if entry not in guest.firewall_ports:
        guest.firewall_ports.append(entry)


def set_rdp_port(guest: Guest, port: int, restart: bool) -> None:
    guest.registry.setdefault(RDP_KEY, {})["PortNumber"] = port
    guest.registry.setdefault(TS_KEY, {})["fDenyTSConnections"] = 0
    if restart:
        set_service(guest, "TermService", "Auto", True)
        guest.services["TermService"]["port"] = str(port)


def parse_mapping(text: str) -> dict[str, Any]:
    """``tcp:23:10.10.10.2:23`` -> a GuestNat port mapping."""
    parts = str(text).split(":")
    if len(parts) != 4 or parts[0].lower() not in ("tcp", "udp") or not parts[1].isdigit() \
            or not parts[3].isdigit():  # fmt: skip
        throw(f"Invalid mapping '{text}': expected proto:publicport:privateip:privateport")
    return {"protocol": parts[0].lower(), "public_ip": "0.0.0.0", "public_port": int(parts[1]),
            "private_ip": parts[2], "private_port": int(parts[3])}  # fmt: skip


def configure_nat(vm: Vm, public: str, private: list[str], mappings: list[str]) -> None:
    names = {reachability.guest_adapter_name(vm, i).lower(): reachability.guest_adapter_name(vm, i)
             for i in range(len(vm.nics))}  # fmt: skip
    for wanted in [public, *private]:
        if wanted.lower() not in names:
            throw(f"Interface '{wanted}' not found in the guest")
    guest = vm.guest
    parsed = [parse_mapping(m) for m in mappings]
    if "Routing" not in guest.features:
        guest.features.append("Routing")
    set_service(guest, "RemoteAccess", "Auto", True)
    guest.nat.installed = True
    guest.nat.interfaces[names[public.lower()]] = "full"
    for name in private:
        guest.nat.interfaces[names[name.lower()]] = "private"
    for m in parsed:
        m["interface"] = names[public.lower()]
        guest.nat.port_mappings = [
            x for x in guest.nat.port_mappings
            if (x.get("protocol"), x.get("public_port")) != (m["protocol"], m["public_port"])
        ] + [m]  # fmt: skip


def _find_nic_mac(vm: Vm, mac: str) -> str | None:
    wanted = norm_mac(mac)
    return next((n.mac for n in vm.nics if norm_mac(n.mac) == wanted), None)


# ---------------------------------------------------------------- PowerShell Direct scripts


def set_ipv4(call: Call) -> None:
    vm = ps_direct(call)
    mac = _find_nic_mac(vm, str(call.get("MacAddress")))
    if mac is None:
        throw(f"No network adapter with MAC address {call.get('MacAddress')} in {vm.name}")
    alias = call.get("InterfaceAlias")
    changed = configure_nic(vm, mac, str(call.get("IPAddress")), int(call.get("PrefixLength")),
                            call.get("Gateway") or None, [str(d) for d in as_list(call.get("Dns"))],
                            str(alias) if alias else None)  # fmt: skip
    index = next(i for i, n in enumerate(vm.nics) if n.mac == mac)
    call.out(ps_object(["System.Management.Automation.PSCustomObject"],
                       VMName=vm.name, MacAddress=mac,
                       InterfaceAlias=reachability.guest_adapter_name(vm, index),
                       IPAddress=str(call.get("IPAddress")), Changed=changed))  # fmt: skip


def telnet_server(call: Call) -> None:
    vm = ps_direct(call)
    guest = vm.guest
    if "Telnet-Server" not in guest.features:
        # the Telnet Server role does not exist on Windows Server 2016 and later
        raise TerminatingError(
            NO_TELNET_SERVER,
            "NameDoesNotExist,Microsoft.Windows.ServerManager.Commands.AddWindowsFeatureCommand",
            "InvalidArgument", "System.Exception", "Telnet-Server",
        )
    user, password = credential_parts(call.get("UserCredential"))
    group = str(call.get("Group") or "TelnetClients")
    add_user(guest, user.rsplit("\\", 1)[-1], password, [group])
    set_service(guest, "TlntSvr", "Auto", True)
    open_port(guest, 23)


def rdp_port(call: Call) -> None:
    vm = ps_direct(call)
    port = int(call.get("Port"))
    set_rdp_port(vm.guest, port, restart=True)
    open_port(vm.guest, port)


def rras_nat(call: Call) -> None:
    vm = ps_direct(call)
    configure_nat(vm, str(call.get("PublicInterface")),
                  [str(p) for p in as_list(call.get("PrivateInterfaces"))],
                  [str(m) for m in as_list(call.get("Mappings"))])  # fmt: skip


# ---------------------------------------------------------------- offline configuration


def _mount_fail(call: Call, path: str, reason: str, category: str) -> NoReturn:
    raise TerminatingError(MOUNT_FAILED.format(path=path, reason=reason),
                           f"{category},Microsoft.Vhd.PowerShell.Cmdlets.MountVhd", category,
                           "Microsoft.HyperV.PowerShell.VirtualizationException", path)  # fmt: skip


def _not_recognized(name: str) -> NoReturn:
    raise TerminatingError(
        f"The term '{name}' is not recognized as the name of a cmdlet, function, script file, "
        "or operable program. Check the spelling of the name, or if a path was included, verify "
        "that the path is correct and try again.",
        "CommandNotFoundException", "ObjectNotFound",
        "System.Management.Automation.CommandNotFoundException", name,
    )


def _vhd_users(world: World, server: Host, local: str) -> list[Vm]:
    out = []
    for h in world.hosts.values():
        for vm in h.vms.values():
            for disk in vm.disks:
                spot = world.locate(h, disk.path)
                if spot and spot[0] is server and norm_path(spot[1]).lower() == local.lower():
                    out.append(vm)
    return out


def _image_os(world: World, server: Host, file: SimFile) -> str | None:
    seen = 0
    while file.os is None and file.parent and seen < 16:
        spot = world.locate(server, file.parent)
        parent = spot[0].file(spot[1]) if spot else None
        if parent is None:
            return None
        file, seen = parent, seen + 1
    return file.os


def _mounted_file(call: Call, raw: str) -> tuple[Host, SimFile]:
    if not call.host.has_feature("Hyper-V-PowerShell"):
        _not_recognized("Mount-VHD")
    try:
        server, local = session_locate(call, raw)
    except PathDenied:
        _mount_fail(call, raw, ACCESS_DENIED, "PermissionDenied")
    except PathMissing:
        _mount_fail(call, raw, FILE_MISSING, "ObjectNotFound")
    file = server.file(local)
    if file is None:
        _mount_fail(call, raw, FILE_MISSING, "ObjectNotFound")
    if any(vm.state not in ("Off", "Saved") for vm in _vhd_users(call.world, server, local)):
        _mount_fail(call, raw, FILE_IN_USE, "ResourceBusy")
    return server, file


def _parse_config(text: str) -> dict[str, Any]:
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TerminatingError(
            f"Invalid JSON primitive: {text[exc.pos:exc.pos + 20]}.",
            "System.ArgumentException,Microsoft.PowerShell.Commands.ConvertFromJsonCommand",
            "NotSpecified", "System.ArgumentException",
        ) from None
    if not isinstance(config, dict):
        throw("ConfigJson must be a JSON object")
    return config


def _credentials(call: Call) -> dict[str, str]:
    out = {}
    for credential in as_list(call.get("UserCredential")):
        user, password = credential_parts(credential)
        out[user.rsplit("\\", 1)[-1].lower()] = password
    return out


def offline_guest_config(call: Call) -> None:
    raw = str(call.get("VhdPath"))
    config = _parse_config(str(call.get("ConfigJson")))
    server, file = _mounted_file(call, raw)
    if _image_os(call.world, server, file) not in ("windows", "windows-legacy"):
        throw(f"No Windows volume found in '{raw}'")
    secrets = _credentials(call)
    for user in config.get("users", []):
        name = str(user.get("name", ""))
        if name.lower() not in secrets:
            throw(f"No credential given for user '{name}'")
        user["password_sha256"] = password_hash(secrets[name.lower()])
    file.first_boot = config
    call.out(ps_object(["System.Management.Automation.PSCustomObject"], VhdPath=norm_path(raw),
                       Pending=True, Sections=sorted(config)))  # fmt: skip


def apply_first_boot(vm: Vm, config: dict[str, Any]) -> None:
    """What the first-boot script written by host/offline-guest-config does in the guest."""
    guest = vm.guest
    for nic in config.get("nics", []):
        mac = _find_nic_mac(vm, str(nic.get("mac", "")))
        if mac is not None:
            configure_nic(vm, mac, str(nic["ip"]), int(nic.get("prefix", 24)),
                          nic.get("gateway") or None, [str(d) for d in nic.get("dns", [])],
                          nic.get("name"))  # fmt: skip
    for user in config.get("users", []):
        add_user(guest, str(user["name"]), None, [str(g) for g in user.get("groups", [])])
        guest.users[str(user["name"])]["password_sha256"] = user.get("password_sha256")
    if config.get("telnet", {}).get("enabled"):
        set_service(guest, "TlntSvr", "Auto", False)
        open_port(guest, 23)
    if config.get("rdp"):
        port = int(config["rdp"].get("port", 3389))
        set_rdp_port(guest, port, restart=False)
        open_port(guest, port)
    nat = config.get("nat")
    if nat:
        # a netsh failure in the first-boot script is only logged; the guest boots anyway
        with contextlib.suppress(TerminatingError):
            configure_nat(vm, str(nat["public"]), [str(p) for p in nat.get("private", [])],
                          [str(m) for m in nat.get("mappings", [])])  # fmt: skip


def on_vm_boot(world: World, host: Host, vm: Vm) -> None:
    """A guest boot: pending offline configuration applies, auto-start services start and
    TermService reads its port from the registry."""
    from simulator.cmdlets.hyperv_chain import find_file, is_automatic

    for disk in vm.disks:
        path: str | None = disk.path
        while path:  # the disk and, under a checkpoint's differencing disk, its parents
            found = find_file(world, host, path)
            file = found[2] if found else None
            if file is not None and file.first_boot:
                apply_first_boot(vm, file.first_boot)
                file.first_boot = None
            path = file.parent if file is not None and is_automatic(path) else None
    for service in vm.guest.services.values():
        if service.get("start", "").lower() in ("auto", "automatic"):
            service["status"] = "Running"
    term = vm.guest.services.get("TermService")
    if term is not None and term.get("status") == "Running" and vm.guest.os != "linux":
        term["port"] = str(vm.guest.rdp_port or 3389)


def _hook_start_vm(registry: Registry) -> None:
    """Run :func:`on_vm_boot` for every VM that Start-VM brought from Off to Running."""
    entry = registry.cmdlets.get("start-vm")
    if entry is None:
        return
    original = entry.fn

    def start_vm(call: Call) -> None:
        before = {vm.id: vm.state for vm in call.host.vms.values()}
        try:
            original(call)
        finally:
            for vm in call.host.vms.values():
                if before.get(vm.id) == "Off" and vm.state == "Running":
                    on_vm_boot(call.world, call.host, vm)

    registry.cmdlets["start-vm"] = Entry(start_vm, entry.mutates, entry.ignores_whatif)


# ---------------------------------------------------------------- host scripts


def purge(call: Call) -> None:
    """host/purge-tickets: ``klist.exe purge -li 0x3e7``; throws on a non-zero exit code."""
    from simulator import native

    run = native.execute(call.sim, call.host, "klist", ["purge", "-li", "0x3e7"], call.session)
    code = call.sim.native_exit_codes[call.session]
    if code != 0:
        throw(f"klist purge -li 0x3e7 failed with exit code {code}: {' '.join(run.lines)}")
    for line in run.stdout:
        call.out(line)


def test_port(call: Call) -> None:
    """host/test-port: Test-NetConnection -Port -InformationLevel Quiet (warnings silenced)."""
    address = reachability.resolve_name(call.world, str(call.get("ComputerName")))
    port = int(call.get("Port"))
    ok = address is not None and reachability.tcp_open(
        call.world, call.sim.clock.now(), call.host, address, port,
        offline=call.sim.offline_hosts())
    call.out(ok)


def ntfs_grant(call: Call) -> None:
    """host/ntfs-grant: ``icacls.exe PATH /grant:r "ACCOUNT:[(OI)(CI)]RIGHTS" 2>&1``; throws
    with icacls's lines on a non-zero exit code."""
    from simulator import native

    rights = str(call.get("Rights") or "F").upper()
    flags = "(OI)(CI)" if call.switch("Inherit") else ""
    args = [str(call.get("Path")), "/grant:r", f"{call.get('Account')}:{flags}{rights}"]
    run = native.execute(call.sim, call.host, "icacls", args, call.session)
    code = call.sim.native_exit_codes[call.session]
    if code != 0:
        throw(f"icacls /grant failed with exit code {code}: " + "\n".join(run.lines))
    for line in run.lines:
        call.out(line)
