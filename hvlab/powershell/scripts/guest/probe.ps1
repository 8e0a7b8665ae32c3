# hvlab-script: guest/probe@1
# Readiness probe: returns 'ok' once PowerShell Direct into the VM works. Needs a Windows
# Server 2016+ guest that has booted; older and Linux guests never answer (use the network).
[CmdletBinding()]
param(
    [Parameter(Mandatory)][string]$VMName,
    [Parameter(Mandatory)][PSCredential]$Credential
)

$ErrorActionPreference = 'Stop'
Invoke-Command -VMName $VMName -Credential $Credential -ScriptBlock { 'ok' }
