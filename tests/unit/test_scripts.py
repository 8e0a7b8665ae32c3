"""The .ps1 contract: header, param block, called commands, binding, packaged scripts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hvlab.powershell.catalog import BindingError, Catalog
from hvlab.powershell.scripts import (
    CalledCommand,
    ScriptError,
    ScriptInfo,
    bind_script_params,
    header_of,
    load_packaged_scripts,
    parse_script,
    validate_script_commands,
)

CATALOG = Catalog.load()

SCRIPT = """\
# hvlab-script: guest/set-ipv4@3
# Sets a static address.
[CmdletBinding()]
param(
    [Parameter(Mandatory)][string]$InterfaceAlias,
    [Parameter(Mandatory = $true)][string]$IPAddress,
    [Parameter(Mandatory = $false)][ValidateSet('IPv4', "IPv6")][string]$Family = 'IPv4',
    [ValidateRange(8, 32)][int]$PrefixLength = 24,
    [string[]]$DnsServers,
    [switch]$Force,
    $Untyped
)

$ErrorActionPreference = 'Stop'
$adapter = Get-NetAdapter -Name $InterfaceAlias
if ($adapter) {
    Remove-NetIPAddress -InterfaceAlias $InterfaceAlias -Confirm:$false -ErrorAction SilentlyContinue
}
New-NetIPAddress -InterfaceAlias $InterfaceAlias -IPAddress $IPAddress `
    -PrefixLength $PrefixLength | Out-Null
Set-DnsClientServerAddress -InterfaceAlias $InterfaceAlias -ServerAddresses $DnsServers
& netsh.exe interface ipv4 show config
$count = (Get-NetIPAddress -InterfaceAlias $InterfaceAlias).Count
foreach ($i in 1..3) { Start-Sleep -Seconds 1 }
$splat = @{ Name = 'x' }
Get-Service @splat
& $scriptBlock -Anything 1
Write-Output $count
"""


def info_of(body: str, params: str = "param()") -> ScriptInfo:
    return parse_script(f"# hvlab-script: test/x@1\n{params}\n{body}\n")


# --------------------------------------------------------------------------------------------
# Header
# --------------------------------------------------------------------------------------------


def test_header_of() -> None:
    assert header_of(SCRIPT) == ("guest/set-ipv4", 3)
    assert header_of("\ufeff# hvlab-script: host/test-port@1\r\nparam()") == ("host/test-port", 1)
    assert header_of("#hvlab-script:a@12") == ("a", 12)
    assert header_of("param()\n# hvlab-script: a@1") is None
    assert header_of("# hvlab-script: a") is None
    assert header_of("# hvlab-script: a@0") is None
    assert header_of("") is None


@given(
    st.from_regex(r"[a-z][a-z0-9-]{0,10}(/[a-z][a-z0-9-]{0,10}){0,2}", fullmatch=True),
    st.integers(min_value=1, max_value=10**6),
)
def test_header_round_trips(name: str, version: int) -> None:
    assert header_of(f"# hvlab-script: {name}@{version}\nparam()\n") == (name, version)


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------


def test_param_block() -> None:
    info = parse_script(SCRIPT)
    assert (info.name, info.version, info.cmdlet_binding) == ("guest/set-ipv4", 3, True)
    summary = [(p.name, p.type, p.mandatory, p.has_default, p.validate_set) for p in info.params]
    assert summary == [
        ("InterfaceAlias", "string", True, False, None),
        ("IPAddress", "string", True, False, None),
        ("Family", "string", False, True, ["IPv4", "IPv6"]),
        ("PrefixLength", "int", False, True, None),
        ("DnsServers", "string[]", False, False, None),
        ("Force", "switch", False, False, None),
        ("Untyped", None, False, False, None),
    ]
    assert info.params[0].line == 5
    assert info.param("ipaddress") is info.params[1]


def test_called_commands() -> None:
    commands = parse_script(SCRIPT).commands
    assert [(c.name, c.line) for c in commands] == [
        ("Get-NetAdapter", 15),
        ("Remove-NetIPAddress", 17),
        ("New-NetIPAddress", 19),
        ("Out-Null", 20),
        ("Set-DnsClientServerAddress", 21),
        ("netsh.exe", 22),
        ("Get-NetIPAddress", 23),
        ("Start-Sleep", 24),
        ("Get-Service", 26),
        ("Write-Output", 28),
    ]
    by_name = {c.name: c for c in commands}
    assert by_name["Remove-NetIPAddress"].named_params == [
        "InterfaceAlias",
        "Confirm",
        "ErrorAction",
    ]
    assert by_name["New-NetIPAddress"].named_params == [
        "InterfaceAlias",
        "IPAddress",
        "PrefixLength",
    ]
    assert by_name["netsh.exe"].named_params == []
    assert by_name["Get-Service"] == CalledCommand("Get-Service", [], 26, ["splat"])


def test_functions_defined_in_the_script_are_recorded() -> None:
    info = info_of(
        "function Get-Thing {\n    param($Id)\n    Get-Item -Path $Id\n}\nGet-Thing -Id 1"
    )
    assert info.functions == ["Get-Thing"]
    assert [c.name for c in info.commands] == ["Get-Item", "Get-Thing"]


def test_missing_header() -> None:
    with pytest.raises(ScriptError) as caught:
        parse_script("param()\nGet-Date\n")
    assert caught.value.line == 1
    assert "hvlab-script" in str(caught.value)


def test_missing_param_block() -> None:
    with pytest.raises(ScriptError) as caught:
        parse_script("# hvlab-script: a@1\n# comment\nGet-Date\n")
    assert caught.value.line == 3
    assert "param()" in caught.value.message


@pytest.mark.parametrize(
    ("body", "line"),
    [
        ("Get-Item -Path 'a'\nGet-Item -Path C:\\a, C:\\b", 4),  # bare-word list
        ("Get-X -A (1", 3),
        ("$x = @{ a = 1", 3),
        ("\n\n$x = 'unterminated", 5),
        ("if ($true) { }\nelse", 4),
        ("Get-X -Name a }", 3),
        ("$x =", 3),
    ],
)
def test_syntax_errors_are_reported_with_their_line(body: str, line: int) -> None:
    with pytest.raises(ScriptError) as caught:
        info_of(body)
    assert caught.value.line == line
    assert "syntax error" in caught.value.message


def test_param_only_script_is_valid() -> None:
    info = parse_script("# hvlab-script: a@1\n[CmdletBinding()]\nparam([string]$A)\n")
    assert [p.name for p in info.params] == ["A"] and info.commands == []


# --------------------------------------------------------------------------------------------
# Binding script parameters
# --------------------------------------------------------------------------------------------


def test_bind_script_params() -> None:
    info = parse_script(SCRIPT)
    bound = bind_script_params(
        info, {"InterfaceAlias": "Ethernet", "IPAddr": "10.0.0.5", "family": "ipv6", "Force": None}
    )
    assert bound == {
        "InterfaceAlias": "Ethernet",
        "IPAddress": "10.0.0.5",
        "Family": "IPv6",
        "Force": True,
    }
    assert bind_script_params(info, {"InterfaceAlias": "e", "IPAddress": "a", "ea": "Stop"})


def test_bind_script_params_errors_use_the_cmdlet_texts() -> None:
    info = parse_script(SCRIPT)
    base = {"InterfaceAlias": "Ethernet", "IPAddress": "10.0.0.5"}
    with pytest.raises(BindingError) as unknown:
        bind_script_params(info, {**base, "Gateway": "10.0.0.1"})
    assert unknown.value.message == (
        "A parameter cannot be found that matches parameter name 'Gateway'."
    )
    assert unknown.value.error_id == "NamedParameterNotFound,guest/set-ipv4"
    with pytest.raises(BindingError) as missing:
        bind_script_params(info, {"InterfaceAlias": "Ethernet"})
    assert missing.value.message == (
        "Cannot process command because of one or more missing mandatory parameters: IPAddress."
    )
    with pytest.raises(BindingError) as invalid:
        bind_script_params(info, {**base, "Family": "IPX"})
    assert invalid.value.message == (
        "Cannot validate argument on parameter 'Family'. The argument \"IPX\" does not belong to "
        'the set "IPv4,IPv6" specified by the ValidateSet attribute. Supply an argument that is '
        "in the set and then try the command again."
    )
    assert invalid.value.error_id == "ParameterArgumentValidationError,guest/set-ipv4"


def test_script_conversion_errors_are_argument_transformation_errors() -> None:
    info = parse_script(SCRIPT)
    base = {"InterfaceAlias": "Ethernet", "IPAddress": "10.0.0.5"}
    with pytest.raises(BindingError) as caught:
        bind_script_params(info, {**base, "PrefixLength": "wide"}, command_name="")
    assert caught.value.message == (
        "Cannot process argument transformation on parameter 'PrefixLength'. Cannot convert "
        'value "wide" to type "System.Int32". Error: "Input string was not in a correct format."'
    )
    assert caught.value.error_id == "ParameterArgumentTransformationError"
    assert caught.value.category == "InvalidData"
    with pytest.raises(BindingError) as boolean:
        bind_script_params(info, {**base, "Force": "yes"})
    assert boolean.value.message == (
        "Cannot process argument transformation on parameter 'Force'. Cannot convert value "
        '"System.String" to type "System.Management.Automation.SwitchParameter". Boolean '
        "parameters accept only Boolean values and numbers, such as $True, $False, 1 or 0."
    )
    # Unlike compiled cmdlets, script [string] parameters join arrays.
    joined = bind_script_params(info, {**base, "InterfaceAlias": ["a", "b"]})
    assert joined["InterfaceAlias"] == "a b"


# --------------------------------------------------------------------------------------------
# Validating called commands against the catalogue
# --------------------------------------------------------------------------------------------


def test_valid_script_has_no_problems() -> None:
    assert validate_script_commands(parse_script(SCRIPT), CATALOG) == []


def test_command_problems() -> None:
    body = "\n".join(
        [
            "Get-VM -Name dc1 -Bogus 1",  # line 3
            "New-VM -Name a -VHDPath a.vhdx -NewVHDPath b.vhdx",
            "Get-VM -C x",
            "Frobnicate-Thing -Now",
            "sc config w32time start= auto",
            "sc.exe config w32time start= auto",
            "icacls 'C:\\x' /grant 'a:(F)'",
            "C:\\Windows\\System32\\klist.exe purge",
            "Get-VMCheckpoint -VMName dc1 | Select-Object -First 1",
            "Restart-Computer -Force -Wait -For PowerShell",
        ]
    )
    problems = validate_script_commands(info_of(body), CATALOG)
    assert problems == [
        "line 3: Get-VM: A parameter cannot be found that matches parameter name 'Bogus'.",
        "line 4: New-VM: Parameter set cannot be resolved using the specified named parameters.",
        "line 5: Get-VM: Parameter cannot be processed because the parameter name 'C' is "
        "ambiguous. Possible matches include: -CimSession -ClusterObject -ComputerName "
        "-Credential.",  # Get-VM does not support ShouldProcess: no -Confirm
        "line 6: unknown command 'Frobnicate-Thing' (not in the cmdlet catalogue or the "
        "program allowlist)",
        "line 7: 'sc' is the Set-Content alias in Windows PowerShell; call 'sc.exe'",
    ]


# --------------------------------------------------------------------------------------------
# Packaged scripts
# --------------------------------------------------------------------------------------------


def test_packaged_scripts_are_all_valid() -> None:
    scripts = load_packaged_scripts()
    assert "host/test-port" in scripts
    for name, (info, text) in scripts.items():
        assert info.name == name
        assert header_of(text) == (info.name, info.version)
        assert info.cmdlet_binding, name
        assert validate_script_commands(info, CATALOG) == [], name


def test_test_port_script() -> None:
    info, text = load_packaged_scripts()["host/test-port"]
    assert text.startswith("# hvlab-script: host/test-port@1\n")
    assert [(p.name, p.type, p.mandatory) for p in info.params] == [
        ("ComputerName", "string", True),
        ("Port", "int", True),
    ]
    assert [c.name for c in info.commands] == ["Test-NetConnection"]
    assert bind_script_params(info, {"ComputerName": "dc1", "Port": "5985"}) == {
        "ComputerName": "dc1",
        "Port": 5985,
    }
    command = info.commands[0]
    bound = CATALOG.bind(
        command.name, {"ComputerName": "dc1", "Port": 5985, "InformationLevel": "Quiet"}
    )
    assert bound.parameter_set == "RemotePort"
