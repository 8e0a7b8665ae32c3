# hvlab-script: host/ntfs-grant@1
# Grants an account NTFS rights on a folder with icacls: F (full), M (modify) or RX (read and
# execute); -Inherit makes the entry inherited by subfolders and files ((OI)(CI)). Granting
# again replaces the account's explicit entry. Outputs icacls's lines.
[CmdletBinding()]
param(
    [Parameter(Mandatory)][string]$Path,
    [Parameter(Mandatory)][string]$Account,
    [ValidateSet('F', 'M', 'RX')][string]$Rights = 'F',
    [switch]$Inherit
)

$ErrorActionPreference = 'Stop'
$flags = if ($Inherit) { '(OI)(CI)' } else { '' }
$output = icacls.exe $Path /grant:r "${Account}:$flags$Rights" 2>&1
if ($LASTEXITCODE -ne 0) {
    throw "icacls /grant failed with exit code ${LASTEXITCODE}: $($output -join "`n")"
}
$output
