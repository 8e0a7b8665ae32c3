# hvlab-script: guest/set-ipv4@1
# Static IPv4 on the guest adapter whose MAC matches (PowerShell Direct, Windows Server 2016+
# guests). Optionally renames the connection (InterfaceAlias). Idempotent: an adapter already
# configured as asked is left alone. Outputs VMName, MacAddress, InterfaceAlias, IPAddress,
# Changed.
[CmdletBinding()]
param(
    [Parameter(Mandatory)][string]$VMName,
    [Parameter(Mandatory)][PSCredential]$Credential,
    [Parameter(Mandatory)][string]$MacAddress,
    [Parameter(Mandatory)][string]$IPAddress,
    [Parameter(Mandatory)][int]$PrefixLength,
    [string]$Gateway,
    [string[]]$Dns,
    [string]$InterfaceAlias
)

$ErrorActionPreference = 'Stop'
$arguments = @($MacAddress, $IPAddress, $PrefixLength, $Gateway, $Dns, $InterfaceAlias, $VMName)
Invoke-Command -VMName $VMName -Credential $Credential -ArgumentList $arguments -ScriptBlock {
    param($Mac, $Ip, $Prefix, $Gw, $DnsServers, $Alias, $Vm)
    $ErrorActionPreference = 'Stop'
    $wanted = ($Mac -replace '[-:]', '').ToUpper()
    $nic = Get-NetAdapter | Where-Object { ($_.MacAddress -replace '-', '') -eq $wanted }
    if (-not $nic) { throw "No network adapter with MAC address $Mac in $Vm" }
    if ($Alias -and $nic.Name -ne $Alias) {
        Rename-NetAdapter -Name $nic.Name -NewName $Alias
        $nic = Get-NetAdapter -Name $Alias
    }
    $index = $nic.ifIndex
    $changed = $false
    $current = @(Get-NetIPAddress -InterfaceIndex $index -AddressFamily IPv4 -ErrorAction SilentlyContinue)
    $same = $current | Where-Object { $_.IPAddress -eq $Ip -and $_.PrefixLength -eq $Prefix }
    if (-not $same -or $current.Count -ne 1) {
        Set-NetIPInterface -InterfaceIndex $index -Dhcp Disabled
        $current | Remove-NetIPAddress -Confirm:$false
        New-NetIPAddress -InterfaceIndex $index -IPAddress $Ip -PrefixLength $Prefix | Out-Null
        $changed = $true
    }
    $route = Get-NetRoute -InterfaceIndex $index -DestinationPrefix '0.0.0.0/0' -ErrorAction SilentlyContinue
    if (($route.NextHop -join ',') -ne [string]$Gw) {
        $route | Remove-NetRoute -Confirm:$false
        if ($Gw) { New-NetRoute -InterfaceIndex $index -DestinationPrefix '0.0.0.0/0' -NextHop $Gw | Out-Null }
        $changed = $true
    }
    $servers = (Get-DnsClientServerAddress -InterfaceIndex $index -AddressFamily IPv4).ServerAddresses
    if (($servers -join ',') -ne ($DnsServers -join ',')) {
        if ($DnsServers) {
            Set-DnsClientServerAddress -InterfaceIndex $index -ServerAddresses $DnsServers
        } else {
            Set-DnsClientServerAddress -InterfaceIndex $index -ResetServerAddresses
        }
        $changed = $true
    }
    [pscustomobject]@{
        VMName         = $Vm
        MacAddress     = $wanted
        InterfaceAlias = $nic.Name
        IPAddress      = $Ip
        Changed        = $changed
    }
}
