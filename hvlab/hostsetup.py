"""``hvlab host-setup FILE HOST``: the one-time PowerShell for a fresh host's console.

A freshly installed Windows Server cannot be reached by the worker yet: WinRM may not listen,
an unidentified network is Public (WinRM's Public firewall rule admits only the local subnet),
and the computer may carry a generated name. These lines, run once in an elevated Windows
PowerShell at the host's console, allow the first contact; ``hvlab doctor FILE`` then checks
the rest. Sources (Microsoft Learn):

- Enable-PSRemoting (``powershell/module/microsoft.powershell.core/enable-psremoting``): starts
  WinRM, creates the HTTP listener on 5985 and the firewall rules: "On server versions of
  Windows, Enable-PSRemoting creates firewall rules for private and domain networks that allow
  remote access, and creates a firewall rule for public networks that allows remote access
  only from computers in the same local subnet." ``-Force`` suppresses the prompts.
- Set-NetConnectionProfile (``powershell/module/netconnection/set-netconnectionprofile``):
  ``-NetworkCategory Private``; a domain network becomes DomainAuthenticated by itself.
- Set-NetFirewallRule (``powershell/module/netsecurity/set-netfirewallrule``) ``-Name``
  ``-RemoteAddress``: the rule names ``WINRM-HTTP-In-TCP`` (Domain, Private) and
  ``WINRM-HTTP-In-TCP-PUBLIC`` are the same in every display language.
- "How to configure WinRM for HTTPS" (``troubleshoot/windows-client/system-management-
  components/configure-winrm-for-https``): ``New-Item -Path WSMan:\\localhost\\Listener
  -Transport HTTPS -Address * -CertificateThumbPrint ...`` with a Server Authentication
  certificate whose CN/SAN is the name clients use.
- User Account Control and remote restrictions (``troubleshoot/windows-server/windows-security/
  user-account-control-and-remote-restriction``): a local account other than the built-in
  Administrator gets a filtered token over the network unless LocalAccountTokenFilterPolicy=1.
- Rename-Computer (``powershell/module/microsoft.powershell.management/rename-computer``).
"""

from __future__ import annotations

from hvlab.powershell.command import SWITCH, Command
from hvlab.spec import Host, HostRole, LabSpec, Transport

HTTP_RULE = "WINRM-HTTP-In-TCP"
HTTP_RULE_PUBLIC = "WINRM-HTTP-In-TCP-PUBLIC"
HTTPS_RULE = "hvlab-WinRM-HTTPS-In"


def rename_command(host: Host) -> Command:
    return Command.of("Rename-Computer", NewName=host.name, Restart=SWITCH)


def remoting_command() -> Command:
    return Command.of("Enable-PSRemoting", Force=SWITCH)


def scope_command(worker: str) -> Command:
    """Both WinRM HTTP rules (Domain/Private and Public) admit only the worker."""
    return Command.of("Set-NetFirewallRule", Name=[HTTP_RULE, HTTP_RULE_PUBLIC],
                      RemoteAddress=worker)


# The WSMan provider's listener parameters (-Transport, -Address) are dynamic: the catalogue
# does not list them, so this line is text (Microsoft's "configure WinRM for HTTPS").
HTTPS_LISTENER = ("New-Item -Path WSMan:\\localhost\\Listener -Transport HTTPS -Address * "
                  "-CertificateThumbPrint $cert.Thumbprint -Force")


def https_rule_command(port: int, worker: str | None) -> Command:
    return Command.of("New-NetFirewallRule", Name=HTTPS_RULE,
                      DisplayName="Windows Remote Management (HTTPS-In, hvlab)",
                      Direction="Inbound", Protocol="TCP", LocalPort=str(port), Action="Allow",
                      RemoteAddress=worker)


def setup_commands(spec: LabSpec, host: Host, worker: str | None) -> list[Command]:
    """The catalogued commands of the script (for the catalogue test)."""
    out = [rename_command(host), remoting_command()]
    if host.connection.transport is Transport.https:
        out.append(https_rule_command(host.connection.effective_port, worker))
    elif worker:
        out.append(scope_command(worker))
    return out


def _bootstrap_user(spec: LabSpec, host: Host) -> str | None:
    name = getattr(host, "bootstrap_credential", None)
    cred = spec.credentials.get(name) if isinstance(name, str) else None
    return cred.username if cred is not None else None


def setup_script(spec: LabSpec, host: Host, worker: str | None = None) -> str:
    """The PowerShell text an operator runs once at ``host``'s console."""
    conn = host.connection
    url = f"{conn.transport.value}://{conn.address}:{conn.effective_port}"
    lines = [
        f"# hvlab host-setup: {host.name} ({host.role.value}) of lab {spec.lab}",
        "# Run once in an elevated Windows PowerShell at the host's console. Afterwards the",
        f"# worker reaches {host.name} at {url}; check with `hvlab doctor FILE`.",
        "",
        "# 1. The computer's name must be the lab's (the restart ends the script: run it again",
        "#    afterwards; the name is then right and this line does nothing).",
        f"if ($env:COMPUTERNAME -ne '{host.name}') {{ {rename_command(host).describe()} }}",
        "",
        "# 2. A Public network admits WinRM only from the local subnet: make it Private",
        "#    (a domain network turns DomainAuthenticated by itself).",
        "Get-NetConnectionProfile | Where-Object NetworkCategory -eq 'Public' | "
        "Set-NetConnectionProfile -NetworkCategory Private",
        "",
        "# 3. WinRM: the service, the HTTP listener on 5985 and its firewall rules.",
        remoting_command().describe(),
    ]
    if conn.transport is Transport.https:
        lines += [
            "",
            f"# 4. The HTTPS listener on {conn.effective_port}: a Server Authentication "
            "certificate in LocalMachine\\My",
            f"#    whose SAN holds {conn.address!r} (the name the lab file connects to).",
            "$cert = Get-ChildItem Cert:\\LocalMachine\\My | Where-Object { "
            f"$_.DnsNameList.Unicode -contains '{conn.address}' }} | Select-Object -First 1",
            HTTPS_LISTENER,
            https_rule_command(conn.effective_port, worker).describe(),
        ]
        if conn.effective_port != 5986:
            lines.append(f"# the lab uses port {conn.effective_port}: add -Port "
                         f"{conn.effective_port} to New-Item above")
    elif worker:
        lines += ["", "# 4. Firewall scope: only the worker may open WinRM sessions.",
                  scope_command(worker).describe()]
    elif conn.effective_port != 5985:
        lines += ["", f"# the lab uses port {conn.effective_port}: change the listener's port "
                  f"(Set-Item WSMan:\\localhost\\Listener\\<Listener>\\Port {conn.effective_port})"
                  f" and allow TCP {conn.effective_port} in the firewall"]
    user = _bootstrap_user(spec, host)
    if host.role is HostRole.hyperv and host.join_domain:
        lines += [
            "",
            "# Until it joins the domain this host accepts only its local accounts: the lab's",
            f"# bootstrap credential{f' ({user})' if user else ''} must be one of them, "
            "with this host's password.",
        ]
        if user is not None and user.split("\\")[-1].lower() != "administrator":
            lines += [
                "# It is not the built-in Administrator, so UAC filters its token over the "
                "network:",
                "New-ItemProperty -Path HKLM:\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion"
                "\\Policies\\System -Name LocalAccountTokenFilterPolicy -Value 1 "
                "-PropertyType DWord -Force",
            ]
    if host.name.lower() != spec.domain.dc.lower():
        dc = spec.host(spec.domain.dc).connection.address
        lines += [
            "",
            f"# Kerberos needs this clock within 5 minutes of {spec.domain.dc}'s (w32tm.exe):",
            f"w32tm /config /manualpeerlist:{dc} /syncfromflags:manual /update",
            "w32tm /resync /force",
        ]
    return "\n".join(lines) + "\n"
