"""Native Windows programs on the simulated hosts, over WinRM with the real pypsrp client.

A native program arrives either as a command with positional string arguments
(``add_cmdlet("klist").add_argument("purge")``) or as script text of native command lines (what
``Invoke-Command { klist purge -li 0x3e7 }`` sends). Its exit code is read back as
``$LASTEXITCODE`` in a later pipeline of the same runspace pool, as a client does on Windows.
Each test checks the program's output text, its exit code and what it changed in the world
that the cmdlets see; see docs/simulator-fidelity.md, "Native programs".
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from simulator.fleet import Fleet
from tests.sim.conftest import join_domain, run
from tests.sim.test_network import Remote, value

ICMP_RULE = "File and Printer Sharing (Echo Request - ICMPv4-In)"
NO_MATCH = "No rules match the specified criteria."
SUMMARY = "Successfully processed {} files; Failed processing {} files"


@dataclass
class Native:
    """What one native command line answered."""

    output: list[Any] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    error_ids: list[str] = field(default_factory=list)
    had_errors: bool = False
    exit_code: Any = None


class Shell:
    """One runspace pool on a host: native commands, cmdlets and ``$LASTEXITCODE``."""

    def __init__(self, fleet: Fleet, host: str) -> None:
        self.remote = Remote(fleet, host)

    def _invoke(self, build: Any) -> Native:
        from pypsrp.powershell import PowerShell

        ps = PowerShell(self.remote.pool)
        build(ps)
        output = ps.invoke()
        return Native(list(output), [str(e) for e in ps.streams.error],
                      [e.fq_error for e in ps.streams.error], ps.had_errors)  # fmt: skip

    def last_exit_code(self) -> Any:
        return self._invoke(lambda ps: ps.add_script("$LASTEXITCODE")).output[0]

    def native(self, program: str, *args: Any) -> Native:
        """``program`` as a command with positional arguments, then ``$LASTEXITCODE``."""

        def build(ps: Any) -> None:
            ps.add_cmdlet(program)
            for arg in args:
                ps.add_argument(arg)

        reply = self._invoke(build)
        reply.exit_code = self.last_exit_code()
        return reply

    def script(self, text: str) -> Native:
        return self._invoke(lambda ps: ps.add_script(text))

    def cmd(self, name: str, **params: Any) -> Any:
        return self.remote.cmd(name, **params)

    def close(self) -> None:
        self.remote.close()


@pytest.fixture
def shells(fleet: Fleet) -> Iterator[dict[str, Shell]]:
    made: dict[str, Shell] = {}

    class Lazy(dict[str, Shell]):
        def __missing__(self, host: str) -> Shell:
            made[host] = self[host] = Shell(fleet, host)
            return made[host]

    yield Lazy()
    for shell in made.values():
        shell.close()


# ---------------------------------------------------------------- klist


def test_klist_purge_of_the_machine_tickets(fleet: Fleet, shells: dict[str, Shell]) -> None:
    svr1 = shells["SVR1"]
    host = fleet.world.hosts["SVR1"]
    before = host.tickets_purged_at
    purged = svr1.native("klist", "purge", "-li", "0x3e7")
    assert purged.exit_code == 0 and not purged.had_errors
    assert purged.output[0] == "" and purged.output[1].startswith("Current LogonId is 0:0x")
    assert purged.output[2:] == ["Targeted LogonId is 0:0x3e7", "\tDeleting all tickets:",
                                 "\tTicket(s) purged!"]  # fmt: skip
    assert host.tickets_purged_at > before  # the next tickets carry the current delegation
    # the session's own (network) logon holds no tickets
    own = svr1.native("klist.exe")
    assert own.exit_code == 0 and own.output[-2:] == ["Cached Tickets: (0)", ""]
    assert own.output[1] == purged.output[1]  # the same logon session
    # the same through script text, as Invoke-Command -ScriptBlock sends it
    text = svr1.script("klist -li 0x3e7 purge\n$LASTEXITCODE")
    assert text.output[-3:] == ["\tDeleting all tickets:", "\tTicket(s) purged!", 0]


# ---------------------------------------------------------------- icacls


def test_icacls_grant_is_the_ntfs_acl_get_acl_and_smb_see(
    fleet: Fleet, shells: dict[str, Shell]
) -> None:
    world = fleet.world
    join_domain(fleet.sim, "SVR1", "SVR2")
    run(fleet.sim, "DC1", "New-Item", ItemType="Directory", Path="C:\\smb")
    dc1 = shells["DC1"]
    assert not dc1.cmd("New-SmbShare", Name="smb", Path="C:\\smb",
                       FullAccess=["KOSA\\SVR1$"]).errors  # fmt: skip
    svr1 = world.hosts["SVR1"]
    assert not world.computer_can_write(svr1, "\\\\DC1\\smb")
    granted = dc1.script('icacls C:\\smb /grant "KOSA\\SVR1$:(OI)(CI)F"; $LASTEXITCODE')
    assert granted.output == ["processed file: C:\\smb", SUMMARY.format(1, 0), 0]
    assert world.computer_can_write(svr1, "\\\\DC1\\smb\\vm\\disk.vhdx")
    acl = dc1.cmd("Get-Acl", Path="C:\\smb").output[0]
    rule = next(r for r in value(acl, "Access") if value(r, "IdentityReference") == "KOSA\\SVR1$")
    assert value(rule, "FileSystemRights") == "FullControl"
    assert value(rule, "InheritanceFlags") == "ContainerInherit, ObjectInherit"
    shown = dc1.native("icacls", "C:\\smb")
    assert shown.exit_code == 0
    assert shown.output == ["C:\\smb KOSA\\SVR1$:(OI)(CI)(F)",
                            "       BUILTIN\\Administrators:(I)(OI)(CI)(F)",
                            "       NT AUTHORITY\\SYSTEM:(I)(OI)(CI)(F)", "",
                            SUMMARY.format(1, 0)]  # fmt: skip
    removed = dc1.native("icacls", "C:\\smb", "/remove", "KOSA\\SVR1$", "/q")
    assert removed.exit_code == 0 and removed.output == [SUMMARY.format(1, 0)]
    assert not world.computer_can_write(svr1, "\\\\DC1\\smb")


def test_icacls_failures_exit_codes_and_stderr(fleet: Fleet, shells: dict[str, Shell]) -> None:
    dc1 = shells["DC1"]
    missing = dc1.native("icacls", "C:\\nope", "/grant", "Everyone:F")
    assert missing.exit_code == 2
    assert missing.output == [SUMMARY.format(0, 1)]
    assert missing.errors == ["C:\\nope: The system cannot find the file specified."]
    assert missing.error_ids == ["NativeCommandError"]
    unknown = dc1.native("icacls", "C:\\Windows", "/grant", "KOSA\\ghost$:F")
    assert unknown.exit_code == 1332
    assert unknown.errors == ["KOSA\\ghost$: No mapping between account names and security IDs "
                              "was done."]  # fmt: skip
    bad = dc1.native("icacls", "C:\\Windows", "/grant", "Everyone:Z")
    assert bad.exit_code == 87 and bad.output == ['Invalid parameter "Everyone:Z"']
    assert fleet.world.hosts["DC1"].ntfs_acls.get("c:\\windows") is None  # nothing changed


# ---------------------------------------------------------------- netsh


def test_netsh_advfirewall_rules_are_the_rules_get_netfirewallrule_sees(
    fleet: Fleet, shells: dict[str, Shell]
) -> None:
    svr1 = shells["SVR1"]
    added = svr1.native("netsh", "advfirewall", "firewall", "add", "rule", "name=Web 8080",
                        "dir=in", "action=allow", "protocol=TCP", "localport=8080")  # fmt: skip
    assert added.exit_code == 0 and added.output == ["Ok.", ""]
    rule = svr1.cmd("Get-NetFirewallRule", DisplayName="Web 8080").output[0]
    assert value(rule, "Name").startswith("{") and str(value(rule, "Enabled")) == "True"
    shown = svr1.script('netsh advfirewall firewall show rule name="Web 8080"')
    assert "LocalPort:                            8080" in shown.output
    assert shown.output[1] == "Rule Name:                            Web 8080"
    off = svr1.native("netsh", "advfirewall", "firewall", "set", "rule", "name=Web 8080", "new",
                      "enable=no")  # fmt: skip
    assert off.exit_code == 0 and off.output == ["", "Updated 1 rule(s).", "Ok.", ""]
    rule = svr1.cmd("Get-NetFirewallRule", DisplayName="Web 8080").output[0]
    assert str(value(rule, "Enabled")) == "False"
    gone = svr1.native("netsh", "advfirewall", "firewall", "delete", "rule", "name=Web 8080")
    assert gone.exit_code == 0 and gone.output == ["", "Deleted 1 rule(s).", "Ok.", ""]
    again = svr1.native("netsh", "advfirewall", "firewall", "delete", "rule", "name=Web 8080")
    assert again.exit_code == 1 and again.output == [NO_MATCH]
    assert svr1.cmd("Get-NetFirewallRule", DisplayName="Web 8080").errors
    # a group is enabled as a whole, by its (display) group name
    group = svr1.native("netsh", "advfirewall", "firewall", "set", "rule",
                        "group=File and Printer Sharing", "new", "enable=yes")  # fmt: skip
    assert group.output[1] == "Updated 2 rule(s)."  # SMB-In and Echo Request (ICMPv4-In)
    assert all(r.enabled for r in fleet.world.hosts["SVR1"].firewall.values()
               if r.group == "File and Printer Sharing")  # fmt: skip


def test_netsh_routing_without_rras_is_an_unknown_command(shells: dict[str, Shell]) -> None:
    answer = shells["SVR1"].native("netsh", "routing", "ip", "nat", "install")
    assert answer.exit_code == 1
    assert answer.output == ["The following command was not found: routing ip nat install."]


# ---------------------------------------------------------------- ping


def test_ping_follows_the_reachability_model(fleet: Fleet, shells: dict[str, Shell]) -> None:
    svr1 = shells["SVR1"]
    address = fleet.world.hosts["SVR2"].address
    # Windows Server drops inbound echo requests until the ICMPv4-In rule is enabled
    blocked = svr1.native("ping", "-n", "2", address)
    assert blocked.exit_code == 1
    assert blocked.output == ["", f"Pinging {address} with 32 bytes of data:",
                              "Request timed out.", "Request timed out.", "",
                              f"Ping statistics for {address}:",
                              "    Packets: Sent = 2, Received = 0, Lost = 2 (100% loss),"]  # fmt: skip
    enabled = shells["SVR2"].native("netsh", "advfirewall", "firewall", "set", "rule",
                                    f"name={ICMP_RULE}", "new", "enable=yes")  # fmt: skip
    assert enabled.exit_code == 0
    replies = svr1.native("ping", "-n", "2", "SVR2")
    assert replies.exit_code == 0
    assert replies.output[1] == f"Pinging SVR2 [{address}] with 32 bytes of data:"
    assert replies.output[2:4] == [f"Reply from {address}: bytes=32 time<1ms TTL=128"] * 2
    assert "    Packets: Sent = 2, Received = 2, Lost = 0 (0% loss)," in replies.output
    unknown = svr1.native("ping", "nosuch")
    assert unknown.exit_code == 1
    assert unknown.output == ["Ping request could not find host nosuch. Please check the name "
                              "and try again."]  # fmt: skip


# ---------------------------------------------------------------- sc.exe and net


def test_sc_and_net_drive_the_services_get_service_sees(shells: dict[str, Shell]) -> None:
    svr1 = shells["SVR1"]

    def status() -> str:
        return str(value(svr1.cmd("Get-Service", Name="RemoteRegistry").output[0], "Status"))

    assert status() == "Stopped"
    query = svr1.native("sc.exe", "query", "RemoteRegistry")
    assert query.exit_code == 0 and "        STATE              : 1  STOPPED" in query.output
    started = svr1.native("sc.exe", "start", "RemoteRegistry")
    assert started.exit_code == 0 and "        STATE              : 2  START_PENDING" in started.output
    assert status() == "Running"
    twice = svr1.native("sc.exe", "start", "RemoteRegistry")
    assert twice.exit_code == 1056
    assert twice.output == ["[SC] StartService FAILED 1056:", "",
                            "An instance of the service is already running.", ""]  # fmt: skip
    assert svr1.native("sc.exe", "query", "nosuch").exit_code == 1060
    stopped = svr1.native("net", "stop", "Remote Registry")
    assert stopped.exit_code == 0
    assert stopped.output == ["The Remote Registry service is stopping.",
                              "The Remote Registry service was stopped successfully.", ""]  # fmt: skip
    assert status() == "Stopped"
    again = svr1.native("net", "stop", "RemoteRegistry")
    assert again.exit_code == 2 and again.output == []
    assert again.errors[0] == "The Remote Registry service is not started."
    assert again.errors[2] == "More help is available by typing NET HELPMSG 3521."
    assert again.error_ids[:2] == ["NativeCommandError", "NativeCommandErrorMessage"]
    assert svr1.native("sc.exe", "stop", "RemoteRegistry").exit_code == 1062
    assert svr1.native("net", "start", "nosuch").errors[0] == "The service name is invalid."


# ---------------------------------------------------------------- reg


def test_reg_values_and_the_views_of_the_world(fleet: Fleet, shells: dict[str, Shell]) -> None:
    svr1 = shells["SVR1"]
    key = "HKLM\\SOFTWARE\\hvlab"
    full = "HKEY_LOCAL_MACHINE\\SOFTWARE\\hvlab"
    absent = svr1.native("reg", "query", key)
    assert absent.exit_code == 1
    assert absent.errors == ["ERROR: The system was unable to find the specified registry key "
                             "or value."]  # fmt: skip
    added = svr1.native("reg", "add", key, "/v", "Port", "/t", "REG_DWORD", "/d", "8080", "/f")
    assert added.exit_code == 0 and added.output == ["The operation completed successfully.", ""]
    assert svr1.native("reg", "query", key, "/v", "Port").output == [
        "", full, "    Port    REG_DWORD    0x1f90", ""]
    assert fleet.world.hosts["SVR1"].registry[full]["Port"] == ["REG_DWORD", 8080]
    deleted = svr1.native("reg", "delete", key, "/v", "Port", "/f")
    assert deleted.exit_code == 0
    assert svr1.native("reg", "query", key, "/v", "Port").exit_code == 1
    build = svr1.native("reg", "query", "HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion",
                        "/v", "CurrentBuild")  # fmt: skip
    assert build.output[2] == "    CurrentBuild    REG_SZ    20348"
    # the Component Based Servicing RebootPending key exists while a reboot is pending
    pending = ("HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Component Based Servicing"
               "\\RebootPending")  # fmt: skip
    assert svr1.native("reg", "query", pending).exit_code == 1
    assert not svr1.cmd("Install-WindowsFeature", Name="Hyper-V").errors
    assert svr1.native("reg", "query", pending).exit_code == 0


# ---------------------------------------------------------------- not simulated, $LASTEXITCODE


@pytest.mark.parametrize(
    ("program", "args", "named"),
    [
        ("whoami", [], "whoami"),
        ("C:\\Windows\\System32\\ipconfig.exe", ["/all"], "ipconfig"),
        ("netsh", ["interface", "ipv4", "show", "addresses"], "netsh"),
        ("ping", ["-t", "SVR2"], "ping"),
        ("reg", ["load", "HKLM\\x", "C:\\x.hiv"], "reg"),
        ("net", ["user"], "net"),
        ("sc", ["query", "vmms"], "sc"),  # PowerShell's alias of Set-Content, not sc.exe
    ],
)
def test_unmodelled_programs_and_forms_are_not_simulated(
    shells: dict[str, Shell], program: str, args: list[str], named: str
) -> None:
    answer = shells["SVR1"].native(program, *args)
    assert answer.had_errors and answer.error_ids == ["NotSimulated"]
    assert answer.errors[0].startswith(f"not simulated: native program {named}.exe")
    assert "not recognized" not in answer.errors[0]


def test_unknown_program_stays_not_recognized_and_exit_codes_are_per_pool(
    fleet: Fleet, shells: dict[str, Shell]
) -> None:
    svr1 = shells["SVR1"]
    unknown = svr1.native("nosuchtool.exe")
    assert unknown.error_ids == ["CommandNotFoundException"]
    assert svr1.native("netsh", "routing", "ip", "nat", "install").exit_code == 1
    other = Shell(fleet, "SVR1")  # a second runspace pool has its own $LASTEXITCODE
    try:
        assert other.last_exit_code() is None
        assert other.native("klist").exit_code == 0
    finally:
        other.close()
    assert svr1.last_exit_code() == 1
