# hvlab-script: guest/rdp-port@1
# Remote Desktop on a custom port over PowerShell Direct: PortNumber in the RDP-Tcp key,
# fDenyTSConnections 0, an inbound firewall rule, then TermService is restarted so the port
# takes effect at once (the documentation asks for a reboot; restarting the service is the
# common practice). The caller's own RDP sessions into the guest drop.
[CmdletBinding()]
param(
    [Parameter(Mandatory)][string]$VMName,
    [Parameter(Mandatory)][PSCredential]$Credential,
    [Parameter(Mandatory)][ValidateRange(1, 65535)][int]$Port
)

$ErrorActionPreference = 'Stop'
Invoke-Command -VMName $VMName -Credential $Credential -ArgumentList $Port -ScriptBlock {
    param($RdpPort)
    $ErrorActionPreference = 'Stop'
    $key = 'HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server'
    reg.exe add "$key\WinStations\RDP-Tcp" /v PortNumber /t REG_DWORD /d $RdpPort /f | Out-Null
    if ($LASTEXITCODE -ne 0) { throw "reg add PortNumber failed with exit code $LASTEXITCODE" }
    reg.exe add $key /v fDenyTSConnections /t REG_DWORD /d 0 /f | Out-Null
    if ($LASTEXITCODE -ne 0) { throw "reg add fDenyTSConnections failed with exit code $LASTEXITCODE" }
    $rule = "hvlab-rdp-tcp-$RdpPort"
    if (-not (Get-NetFirewallRule -Name $rule -ErrorAction SilentlyContinue)) {
        New-NetFirewallRule -Name $rule -DisplayName "Remote Desktop (TCP $RdpPort)" `
            -Direction Inbound -Protocol TCP -LocalPort $RdpPort -Action Allow | Out-Null
    }
    Restart-Service -Name TermService -Force
}
