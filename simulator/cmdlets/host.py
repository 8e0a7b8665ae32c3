"""Host cmdlets: Windows features, domain membership, reboots, services, CIM basics, Get-Date."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from psrpcore.types import PSDateTime

from simulator import boot
from simulator.cmdlets import host_fs, host_jobs
from simulator.cmdlets.common import as_list
from simulator.core import Call, Registry, cim_key
from simulator.protocol import credential_parts
from simulator.pstypes import (
    SM,
    FeatureOperationExitCode,
    InstallState,
    RestartState,
    ServiceControllerStatus,
    cim_instance,
    member,
    ps_object,
    u64,
)
from simulator.world import Host

# name -> (display name, type, parent, needs reboot)
FEATURES: dict[str, tuple[str, str, str | None, bool]] = {
    "AD-Domain-Services": ("Active Directory Domain Services", "Role", None, True),
    "DNS": ("DNS Server", "Role", None, False),
    "FileAndStorage-Services": ("File and Storage Services", "Role", None, False),
    "Storage-Services": ("Storage Services", "Role Service", "FileAndStorage-Services", False),
    "Hyper-V": ("Hyper-V", "Role", None, True),
    "RemoteAccess": ("Remote Access", "Role", None, False),
    "Routing": ("Routing", "Role Service", "RemoteAccess", False),
    "DirectAccess-VPN": ("DirectAccess and VPN (RAS)", "Role Service", "RemoteAccess", False),
    "NET-Framework-45-Features": (".NET Framework 4.8 Features", "Feature", None, False),
    "NET-Framework-45-Core": (".NET Framework 4.8", "Feature", "NET-Framework-45-Features", False),
    "PowerShellRoot": ("Windows PowerShell", "Feature", None, False),
    "PowerShell": ("Windows PowerShell 5.1", "Feature", "PowerShellRoot", False),
    "WoW64-Support": ("WoW64 Support", "Feature", None, False),
    "Telnet-Client": ("Telnet Client", "Feature", None, False),
    "Failover-Clustering": ("Failover Clustering", "Feature", None, False),
    "RSAT": ("Remote Server Administration Tools", "Feature", None, False),
    "RSAT-Role-Tools": ("Role Administration Tools", "Feature", "RSAT", False),
    "RSAT-Hyper-V-Tools": ("Hyper-V Management Tools", "Feature", "RSAT-Role-Tools", False),
    "Hyper-V-Tools": ("Hyper-V GUI Management Tools", "Feature", "RSAT-Hyper-V-Tools", False),
    "Hyper-V-PowerShell": (
        "Hyper-V Module for Windows PowerShell",
        "Feature",
        "RSAT-Hyper-V-Tools",
        False,
    ),
    "RSAT-AD-Tools": ("AD DS and AD LDS Tools", "Feature", "RSAT-Role-Tools", False),
    "RSAT-AD-PowerShell": (
        "Active Directory module for Windows PowerShell",
        "Feature",
        "RSAT-AD-Tools",
        False,
    ),
    "RSAT-ADDS": ("AD DS Tools", "Feature", "RSAT-AD-Tools", False),
    "RSAT-DNS-Server": ("DNS Server Tools", "Feature", "RSAT-Role-Tools", False),
    "RSAT-RemoteAccess": ("Remote Access Management Tools", "Feature", "RSAT-Role-Tools", False),
    "RSAT-RemoteAccess-PowerShell": (
        "Remote Access module for Windows PowerShell",
        "Feature",
        "RSAT-RemoteAccess",
        False,
    ),
    "GPMC": ("Group Policy Management", "Feature", None, False),
}
MANAGEMENT_TOOLS = {
    "Hyper-V": [
        "RSAT",
        "RSAT-Role-Tools",
        "RSAT-Hyper-V-Tools",
        "Hyper-V-Tools",
        "Hyper-V-PowerShell",
    ],
    "AD-Domain-Services": [
        "RSAT",
        "RSAT-Role-Tools",
        "RSAT-AD-Tools",
        "RSAT-AD-PowerShell",
        "RSAT-ADDS",
    ],
    "RemoteAccess": [
        "RSAT",
        "RSAT-Role-Tools",
        "RSAT-RemoteAccess",
        "RSAT-RemoteAccess-PowerShell",
    ],
}
NO_VT = (
    "Hyper-V cannot be installed: The processor does not have required virtualization capabilities."
)


def register(registry: Registry) -> None:
    registry.cmdlet("Get-WindowsFeature")(get_windows_feature)
    registry.cmdlet("Install-WindowsFeature")(install_windows_feature)
    registry.cmdlet("Uninstall-WindowsFeature")(uninstall_windows_feature)
    registry.cmdlet("Restart-Computer")(restart_computer)
    registry.cmdlet("Add-Computer")(add_computer)
    registry.cmdlet("Remove-Computer")(remove_computer)
    registry.cmdlet("Get-Service")(get_service)
    registry.cmdlet("Start-Service", "Stop-Service", "Restart-Service")(change_service)
    registry.cmdlet("Get-CimInstance", "Get-WmiObject")(get_cim_instance)
    registry.cmdlet("Invoke-CimMethod")(invoke_cim_method)
    registry.cmdlet("Get-Date", mutates=False)(get_date)
    registry.cmdlet("Out-Null", mutates=False)(lambda call: None)
    registry.cim_class("root/cimv2", "Win32_ComputerSystem")(_win32_computer_system)
    registry.cim_class("root/cimv2", "Win32_OperatingSystem")(_win32_operating_system)
    registry.cim_class("root/cimv2", "Win32_Processor")(_win32_processor)
    host_fs.register(registry)
    host_jobs.register(registry)


def target_host(call: Call) -> Host:
    """The host a -ComputerName parameter points at (this host when absent)."""
    names = as_list(call.get("ComputerName"))
    if not names or names[0].lower() in ("localhost", ".", call.host.name.lower()):
        return call.host
    host = call.world.host(str(names[0]))
    if host is None:
        call.fail(
            f"The WinRM client cannot process the request because the server name "
            f"'{names[0]}' cannot be resolved.",
            "ComputerNotFound",
            "ResourceUnavailable",
            "System.Management.Automation.Remoting.PSRemotingTransportException",
        )
    return host


# ---------------------------------------------------------------- features


def _install_state(host: Host, name: str) -> str:
    low = name.lower()
    if any(f.lower() == low for f in host.pending_removal):
        return "UninstallPending"
    if any(f.lower() == low for f in host.pending_features):
        return "InstallPending"
    return "Installed" if host.has_feature(name) else "Available"


def feature_object(host: Host, name: str) -> Any:
    display, kind, parent, _ = FEATURES[name]
    state = _install_state(host, name)
    subs = [n for n, v in FEATURES.items() if v[2] == name]
    return ps_object(
        [SM + "Feature"],
        Name=name,
        DisplayName=display,
        Description=display,
        Installed=state == "Installed",
        InstallState=member(InstallState, state),
        FeatureType=kind,
        Path=display,
        Depth=1 if parent is None else 2,
        DependsOn=[],
        Parent=parent,
        SubFeatures=subs,
    )


def _feature_name(name: str) -> str | None:
    return next((n for n in FEATURES if n.lower() == str(name).lower()), None)


def get_windows_feature(call: Call) -> None:
    host = target_host(call)
    names = as_list(call.get("Name")) or list(FEATURES)
    for name in names:
        pattern = re.compile("^" + re.escape(str(name)).replace("\\*", ".*") + "$", re.I)
        for feature in FEATURES:
            if pattern.match(feature):
                call.out(feature_object(host, feature))


def _check_names(call: Call, names: list[Any]) -> list[str]:
    out = []
    for name in names:
        canonical = _feature_name(name)
        if canonical is None:
            call.fail(
                f"ArgumentNotValid: The role, role service, or feature name is not valid: "
                f"'{name}'. The name was not found.",
                "NameDoesNotExist",
                "InvalidArgument",
                "System.Exception",
                str(name),
            )
        out.append(canonical)
    return out


def _with_tools(call: Call, names: list[str]) -> list[str]:
    wanted = list(names)
    for name in names:
        if call.switch("IncludeManagementTools"):
            wanted += MANAGEMENT_TOOLS.get(name, [])
        if call.switch("IncludeAllSubFeature"):
            wanted += [n for n, v in FEATURES.items() if v[2] == name]
    return list(dict.fromkeys(wanted))


def install_windows_feature(call: Call) -> None:
    host = target_host(call)
    names = _with_tools(call, _check_names(call, as_list(call.get("Name"))))
    if "Hyper-V" in names and not host.virtualization_exposed:
        call.fail(
            f"A prerequisite check for the Hyper-V feature failed.\n1. {NO_VT}",
            "Alteration_PrerequisiteCheck_Failed",
            "InvalidOperation",
            "System.Exception",
        )
    new = [n for n in names if _install_state(host, n) == "Available"]
    reboot = any(FEATURES[n][3] for n in new)
    with call.unlocked():
        call.sim.clock.sleep(call.sim.clock.d.feature_install if new else 0)
    if reboot:
        host.pending_features += new
    else:
        host.features += new
    _feature_result(call, new, reboot)
    if reboot and call.switch("Restart"):
        boot.restart(call.sim, host)


def _feature_result(call: Call, changed: list[str], reboot: bool) -> None:
    results = [
        ps_object(
            [SM + "FeatureResult"],
            DisplayName=FEATURES[n][0],
            Id=i + 1,
            Name=n,
            Message="",
            RestartNeeded=reboot,
            SkipReason="NotSkipped",
            Success=True,
        )
        for i, n in enumerate(changed)
    ]
    code = "SuccessRestartRequired" if reboot else ("Success" if changed else "NoChangeNeeded")
    if reboot:
        call.warning(
            "You must restart this server to finish the installation process."
            if call.name.startswith("Install")
            else "You must restart this server to finish the removal process."
        )
    call.out(
        ps_object(
            [SM + "FeatureOperationResult"],
            Success=True,
            RestartNeeded=member(RestartState, "Yes" if reboot else "No"),
            FeatureResult=results,
            ExitCode=member(FeatureOperationExitCode, code),
        )
    )


def uninstall_windows_feature(call: Call) -> None:
    host = target_host(call)
    names = _with_tools(call, _check_names(call, as_list(call.get("Name"))))
    if "Hyper-V" in names and host.vms:
        call.fail(
            "Hyper-V cannot be removed while virtual machines exist on the host. "
            "Remove the virtual machines first.",
            "Alteration_Failed",
        )
    present = [n for n in names if _install_state(host, n) in ("Installed", "InstallPending")]
    reboot = any(FEATURES[n][3] for n in present)
    host.pending_features = [f for f in host.pending_features if f not in present]
    installed = [n for n in present if host.has_feature(n)]
    if reboot:
        host.pending_removal += installed
    else:
        host.features = [f for f in host.features if f not in installed]
    _feature_result(call, present, reboot)
    if reboot and call.switch("Restart"):
        boot.restart(call.sim, host)


# ---------------------------------------------------------------- computer


def restart_computer(call: Call) -> None:
    names = as_list(call.get("ComputerName")) or [call.host.name]
    for name in names:
        call.params["ComputerName"] = [name]
        host = target_host(call)
        if call.switch("Wait") and host is call.host:
            call.fail(
                "The computer name localhost is not valid for Wait; use it with remote "
                "computers only.",
                "RestartComputerInvalidParameter",
                "InvalidArgument",
                "System.InvalidOperationException",
            )
        boot.restart(call.sim, host)
        if call.switch("Wait") and not call.sim.clock.instant:
            with call.unlocked():
                while host.rebooting and not call.ctx.stopping():
                    call.ctx.sleep(0.05)


def _dns_reaches_dc(call: Call, host: Host) -> bool:
    dc = call.world.dc()
    return any(
        dc.address in a.dns or ("127.0.0.1" in a.dns and host is dc) for a in host.adapters.values()
    )


def add_computer(call: Call) -> None:
    host = call.host
    domain = str(call.get("DomainName", ""))
    ad = call.world.ad
    current = host.domain or host.workgroup
    if domain.lower() not in (ad.fqdn.lower(), ad.netbios.lower()):
        _join_failed(
            call,
            host,
            domain,
            current,
            "The specified domain either does not exist or could not be contacted.",
        )
    if (host.pending_domain or host.domain or "").lower() == ad.fqdn.lower():
        call.fail(
            f"Cannot add computer '{host.name}' to domain '{domain}' because it is "
            "already in that domain.",
            "AddComputerToSameDomain",
            "InvalidOperation",
            "System.InvalidOperationException",
        )
    if not _dns_reaches_dc(call, host):
        _join_failed(
            call,
            host,
            domain,
            current,
            "The specified domain either does not exist or could not be contacted.",
        )
    if not _domain_credential_valid(call):
        # the DC refuses the credential (ERROR_LOGON_FAILURE, 1326): nothing is created
        _join_failed(call, host, domain, current, LOGON_FAILURE)
    new_name = call.get("NewName")
    if new_name:
        call.warning("Renaming at join time is not simulated; the host keeps its name.")
    ad.add_computer(host.name)
    host.pending_domain = ad.fqdn
    if call.switch("Restart"):
        boot.restart(call.sim, host)
    else:
        call.warning(f"The changes will take effect after you restart the computer {host.name}.")


# Win32 ERROR_LOGON_FAILURE (1326) as Win32Exception.Message words it on Server 2016 and later;
# Add-Computer puts it in its FailToJoinDomainFromWorkgroup record (the code is not in the record)
LOGON_FAILURE = "The user name or password is incorrect."


def _domain_credential_valid(call: Call) -> bool:
    """-Credential (mandatory in the catalogue) names a domain account with its password."""
    credential = call.get("Credential")
    if credential is None:
        return False
    user, password = credential_parts(credential)
    return call.sim.accounts.domain_logon(user, password) is not None


def _join_failed(call: Call, host: Host, domain: str, current: str, reason: str) -> None:
    kind = "domain" if host.domain else "workgroup"
    call.fail(
        f"Computer '{host.name}' failed to join domain '{domain}' from its current "
        f"{kind} '{current}' with following error message: {reason}",
        "FailToJoinDomainFromWorkgroup",
        "OperationStopped",
        "System.InvalidOperationException",
        host.name,
    )


def remove_computer(call: Call) -> None:
    host = call.host
    if not host.domain or host.role == "dc":
        call.fail(
            f"Cannot remove computer '{host.name}' from its domain because it is not in a domain.",
            "ComputerNotInDomain",
            "InvalidOperation",
            "System.InvalidOperationException",
        )
    host.workgroup = str(call.get("WorkgroupName") or "WORKGROUP")
    host.pending_domain = ""
    comp = call.world.ad.computer(host.name)
    if comp is not None:
        comp.enabled = False
    if call.switch("Restart"):
        boot.restart(call.sim, host)
    else:
        call.warning(f"The changes will take effect after you restart the computer {host.name}.")


# ---------------------------------------------------------------- services


def _service_object(name: str, status: str) -> Any:
    return ps_object(
        [
            "System.ServiceProcess.ServiceController",
            "System.ComponentModel.Component",
            "System.MarshalByRefObject",
        ],
        Name=name,
        ServiceName=name,
        DisplayName=name,
        Status=member(ServiceControllerStatus, status),
        StartType="Automatic",
    )


def _services(call: Call, host: Host) -> list[str]:
    names = as_list(call.get("Name")) or list(host.services)
    out = []
    for name in names:
        key = next((k for k in host.services if k.lower() == str(name).lower()), None)
        if key is None:
            call.error(
                f"Cannot find any service with service name '{name}'.",
                "NoServiceFoundForGivenName",
                "ObjectNotFound",
                str(name),
                "Microsoft.PowerShell.Commands.ServiceCommandException",
            )
        else:
            out.append(key)
    return out


def get_service(call: Call) -> None:
    host = target_host(call)
    for name in _services(call, host):
        call.out(_service_object(name, host.services[name]))


def change_service(call: Call) -> None:
    host = call.host
    status = "Stopped" if call.name == "Stop-Service" else "Running"
    for name in _services(call, host):
        host.services[name] = status
        if call.switch("PassThru"):
            call.out(_service_object(name, status))


# ---------------------------------------------------------------- CIM / WMI


def _class_and_namespace(call: Call) -> tuple[str, str]:
    namespace = str(call.get("Namespace") or "root/cimv2")
    cls = call.get("ClassName") or call.get("Class")
    query = call.get("Query")
    if not cls and query:
        match = re.search(r"\bfrom\s+(\w+)", str(query), re.I)
        cls = match.group(1) if match else ""
    return str(cls or ""), namespace


def get_cim_instance(call: Call) -> None:
    cls, namespace = _class_and_namespace(call)
    ns_key = cim_key(namespace)
    if ns_key == "root/virtualization/v2" and not call.host.has_feature("Hyper-V"):
        call.fail(
            "Invalid namespace ",
            "HRESULT 0x8004100e",
            "MetadataError",
            "Microsoft.Management.Infrastructure.CimException",
            namespace,
        )
    provider = call.sim.registry.cim_classes.get(cim_key(namespace, cls))
    if provider is None:
        call.fail(
            "Invalid class ",
            "HRESULT 0x80041010",
            "MetadataError",
            "Microsoft.Management.Infrastructure.CimException",
            cls,
        )
    query = call.get("Query") or ""
    wanted = _where_instance_id(str(query))
    for instance in provider(call):
        if wanted is None or _instance_id(instance) == wanted:
            call.out(instance)


def _where_instance_id(query: str) -> str | None:
    match = re.search(r"InstanceID\s*=\s*['\"]([^'\"]+)['\"]", query, re.I)
    return match.group(1) if match else None


def _instance_id(instance: Any) -> str | None:
    from simulator.pstypes import prop

    value = prop(instance, "InstanceID")
    return None if value is None else str(value)


def invoke_cim_method(call: Call) -> None:
    from simulator.pstypes import prop, type_names

    method = str(call.get("MethodName"))
    target = call.get("InputObject") or (call.input[0] if call.input else None)
    if target is not None:
        chain = [t for t in type_names(target) if "#" in t]
        namespace, _, cls = chain[0].split("#", 1)[1].rpartition("/") if chain else ("", "", "")
        instance_id = str(prop(target, "InstanceID") or "")
    else:
        cls, namespace = _class_and_namespace(call)
        instance_id = _where_instance_id(str(call.get("Query") or "")) or ""
    fn = call.sim.registry.cim_methods.get(cim_key(namespace, cls, method))
    if fn is None:
        call.fail(
            "Method not found ",
            "HRESULT 0x80041055",
            "MetadataError",
            "Microsoft.Management.Infrastructure.CimException",
            method,
        )
    arguments = dict(call.get("Arguments") or {})
    result = fn(call, instance_id, arguments)
    call.out(
        ps_object(
            ["Microsoft.Management.Infrastructure.CimMethodResult"],
            ReturnValue=result,
            PSComputerName=None,
        )
    )


def _boot_time(host: Host) -> PSDateTime:
    return PSDateTime.fromtimestamp(host.boot_time or 0, dt.UTC)


def _win32_computer_system(call: Call) -> list[Any]:
    host = call.host
    return [
        cim_instance(
            "root/cimv2",
            ["Win32_ComputerSystem", "CIM_UnitaryComputerSystem", "CIM_ComputerSystem"],
            Name=host.computer_name,
            DNSHostName=host.computer_name,
            Domain=host.domain or host.workgroup,
            PartOfDomain=host.domain is not None,
            Workgroup=None if host.domain else host.workgroup,
            Manufacturer="VMware, Inc.",
            Model="VMware7,1",
            TotalPhysicalMemory=u64(host.memory_total),
            HypervisorPresent=host.has_feature("Hyper-V"),
            NumberOfLogicalProcessors=host.logical_processors,
            PSComputerName=None,
        )
    ]


def _win32_operating_system(call: Call) -> list[Any]:
    host = call.host
    return [
        cim_instance(
            "root/cimv2",
            ["Win32_OperatingSystem", "CIM_OperatingSystem"],
            Caption=host.os_caption,
            Version=host.os_version,
            BuildNumber=host.os_version.split(".")[-1],
            CSName=host.computer_name,
            LastBootUpTime=_boot_time(host),
            LocalDateTime=PSDateTime.fromtimestamp(call.sim.clock.now() + host.clock_skew, dt.UTC),
            TotalVisibleMemorySize=u64(host.memory_total // 1024),
            FreePhysicalMemory=u64(host.memory_free() // 1024),
            PSComputerName=None,
        )
    ]


def _win32_processor(call: Call) -> list[Any]:
    host = call.host
    vt = host.virtualization_exposed
    return [
        cim_instance(
            "root/cimv2",
            ["Win32_Processor", "CIM_Processor"],
            Name=host.cpu_family,
            Manufacturer=host.cpu_vendor,
            NumberOfLogicalProcessors=host.logical_processors,
            VirtualizationFirmwareEnabled=vt,
            VMMonitorModeExtensions=vt,
            SecondLevelAddressTranslationExtensions=vt,
            PSComputerName=None,
        )
    ]


def get_date(call: Call) -> None:
    now = call.sim.clock.now() + call.host.clock_skew
    call.out(PSDateTime.fromtimestamp(now, dt.UTC))
