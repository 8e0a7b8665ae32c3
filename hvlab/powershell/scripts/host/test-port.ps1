# hvlab-script: host/test-port@1
# Reports whether a TCP port on a remote computer accepts connections (True/False).
[CmdletBinding()]
param(
    [Parameter(Mandatory)][string]$ComputerName,
    [Parameter(Mandatory)][int]$Port
)

$ErrorActionPreference = 'Stop'
Test-NetConnection -ComputerName $ComputerName -Port $Port -InformationLevel Quiet -WarningAction SilentlyContinue
