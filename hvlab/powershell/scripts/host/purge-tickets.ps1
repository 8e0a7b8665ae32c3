# hvlab-script: host/purge-tickets@1
# Purges the computer account's Kerberos tickets (logon session 0x3e7) on this host, so that
# changed constrained-delegation settings apply without a reboot. Outputs klist's lines.
[CmdletBinding()]
param()

$ErrorActionPreference = 'Stop'
$output = klist.exe purge -li 0x3e7
if ($LASTEXITCODE -ne 0) {
    throw "klist purge -li 0x3e7 failed with exit code ${LASTEXITCODE}: $($output -join ' ')"
}
$output
