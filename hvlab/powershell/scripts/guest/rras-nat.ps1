# hvlab-script: guest/rras-nat@1
# RRAS NAT in a guest over PowerShell Direct: the Routing role service, RRAS in routing-only
# mode, NAT with one public (full) interface, private interfaces, and port mappings given as
# 'proto:publicport:privateip:privateport' (e.g. 'tcp:23:10.10.10.2:23'). Interfaces are the
# guest's connection names (see guest/set-ipv4 -InterfaceAlias). Re-running rebuilds the NAT
# configuration of these interfaces.
[CmdletBinding()]
param(
    [Parameter(Mandatory)][string]$VMName,
    [Parameter(Mandatory)][PSCredential]$Credential,
    [Parameter(Mandatory)][string]$PublicInterface,
    [Parameter(Mandatory)][string[]]$PrivateInterfaces,
    [string[]]$Mappings = @()
)

$ErrorActionPreference = 'Stop'
$arguments = @($PublicInterface, $PrivateInterfaces, $Mappings)
Invoke-Command -VMName $VMName -Credential $Credential -ArgumentList $arguments -ScriptBlock {
    param($Public, $Private, $Maps)
    $ErrorActionPreference = 'Stop'
    $names = @(Get-NetAdapter | ForEach-Object { $_.Name })
    foreach ($name in @($Public) + @($Private)) {
        if ($names -notcontains $name) { throw "Interface '$name' not found in the guest" }
    }
    $parsed = foreach ($map in @($Maps)) {
        $p = $map -split ':'
        if ($p.Count -ne 4 -or @('tcp', 'udp') -notcontains $p[0] -or $p[1] -notmatch '^\d+$' -or $p[3] -notmatch '^\d+$') {
            throw "Invalid mapping '$map': expected proto:publicport:privateip:privateport"
        }
        [pscustomobject]@{ Proto = $p[0]; PublicPort = $p[1]; PrivateIp = $p[2]; PrivatePort = $p[3] }
    }
    if (-not (Get-WindowsFeature -Name Routing).Installed) {
        Install-WindowsFeature -Name Routing -IncludeManagementTools | Out-Null
    }
    if ((Get-Service -Name RemoteAccess).Status -ne 'Running') {
        Install-RemoteAccess -VpnType RoutingOnly
    }
    function Invoke-Netsh {
        param([string[]]$Arguments)
        $out = netsh.exe routing ip nat @Arguments 2>&1
        if ($LASTEXITCODE -ne 0) { throw "netsh routing ip nat $($Arguments -join ' ') failed: $out" }
    }
    Invoke-Netsh -Arguments @('install')
    foreach ($name in @($Public) + @($Private)) {
        netsh.exe routing ip nat delete interface "name=$name" 2>&1 | Out-Null
    }
    Invoke-Netsh -Arguments @('add', 'interface', "name=$Public", 'mode=full')
    foreach ($name in $Private) {
        Invoke-Netsh -Arguments @('add', 'interface', "name=$name", 'mode=private')
    }
    foreach ($m in $parsed) {
        Invoke-Netsh -Arguments @('add', 'portmapping', "name=$Public", "proto=$($m.Proto)",
            'publicip=0.0.0.0', "publicport=$($m.PublicPort)", "privateip=$($m.PrivateIp)",
            "privateport=$($m.PrivatePort)")
    }
}
