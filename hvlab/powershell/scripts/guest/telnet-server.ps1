# hvlab-script: guest/telnet-server@1
# Telnet Server in a guest over PowerShell Direct: the Telnet-Server feature, a local user in
# the Telnet group, TlntSvr automatic and started, TCP 23 open. PowerShell Direct needs a 2016+
# guest and the Telnet Server role no longer exists there, so on real guests this reports the
# feature error; legacy guests are configured with host/offline-guest-config instead.
[CmdletBinding()]
param(
    [Parameter(Mandatory)][string]$VMName,
    [Parameter(Mandatory)][PSCredential]$Credential,
    [Parameter(Mandatory)][PSCredential]$UserCredential,
    [string]$Group = 'TelnetClients'
)

$ErrorActionPreference = 'Stop'
Invoke-Command -VMName $VMName -Credential $Credential -ArgumentList $UserCredential, $Group -ScriptBlock {
    param($User, $GroupName)
    $ErrorActionPreference = 'Stop'
    if (-not (Get-WindowsFeature -Name Telnet-Server).Installed) {
        Install-WindowsFeature -Name Telnet-Server | Out-Null
    }
    $name = $User.UserName.Split('\')[-1]
    if (Get-LocalUser -Name $name -ErrorAction SilentlyContinue) {
        Set-LocalUser -Name $name -Password $User.Password
    } else {
        New-LocalUser -Name $name -Password $User.Password -PasswordNeverExpires | Out-Null
    }
    if (-not (Get-LocalGroup -Name $GroupName -ErrorAction SilentlyContinue)) {
        New-LocalGroup -Name $GroupName | Out-Null
    }
    $members = @(Get-LocalGroupMember -Group $GroupName | ForEach-Object { $_.Name.Split('\')[-1] })
    if ($members -notcontains $name) { Add-LocalGroupMember -Group $GroupName -Member $name }
    Set-Service -Name TlntSvr -StartupType Automatic
    Start-Service -Name TlntSvr
    if (-not (Get-NetFirewallRule -Name 'hvlab-telnet-tcp-23' -ErrorAction SilentlyContinue)) {
        New-NetFirewallRule -Name 'hvlab-telnet-tcp-23' -DisplayName 'Telnet Server (TCP 23)' `
            -Direction Inbound -Protocol TCP -LocalPort 23 -Action Allow | Out-Null
    }
}
