# hvlab-script: host/offline-guest-config@1
# Configures a guest without PowerShell Direct (Windows Server 2003): run on the Hyper-V host
# with the VM off. Mounts the VHD(X), writes C:\hvlab\firstboot.cmd (+ setnic.vbs) into the
# Windows volume and registers it to run once at the next boot (sysprepped image: mini-setup's
# cmdlines.txt; otherwise RunOnce in the offline SOFTWARE hive, which runs at the next
# administrator logon [INF]). The script deletes itself after running, since it carries the
# user passwords. Mount-VHD fails while a running VM uses the disk.
#
# ConfigJson (all sections optional):
#   nics:   [{mac: '00155D010203', name: 'External', ip: '192.168.1.111', prefix: 24,
#             gateway: '192.168.1.2', dns: ['8.8.8.8']}]     adapters matched by MAC, renamed
#   users:  [{name: 'teluser', groups: ['TelnetClients']}]  passwords from -UserCredential
#   telnet: {enabled: true}                                 TlntSvr automatic + TCP 23 open
#   rdp:    {port: 35000}                                   RDP-Tcp PortNumber, fDeny 0, port open
#   nat:    {public: 'External', private: ['Internal'], mappings: ['tcp:23:10.10.10.2:23']}
[CmdletBinding()]
param(
    [Parameter(Mandatory)][string]$VhdPath,
    [Parameter(Mandatory)][string]$ConfigJson,
    [PSCredential[]]$UserCredential = @()
)

$ErrorActionPreference = 'Stop'
$config = ConvertFrom-Json -InputObject $ConfigJson

function ConvertTo-Mask {
    param([int]$Prefix)
    $bits = ('1' * $Prefix).PadRight(32, '0')
    $octets = foreach ($i in @(0, 1, 2, 3)) { [Convert]::ToInt32($bits.Substring($i * 8, 8), 2) }
    $octets -join '.'
}

function Get-UserPassword {
    param([string]$Name)
    foreach ($credential in $UserCredential) {
        $plain = $credential.GetNetworkCredential()
        if ($plain.UserName -eq $Name) { return $plain.Password }
    }
    throw "No credential given for user '$Name'"
}

$setnic = @'
' setnic.vbs <MAC> <NewName|-> <IP> <Mask> <Gateway|-> <DNS1,DNS2|->
Set args = WScript.Arguments
mac = args(0)
pretty = Mid(mac,1,2) & ":" & Mid(mac,3,2) & ":" & Mid(mac,5,2) & ":" & Mid(mac,7,2) & ":" & Mid(mac,9,2) & ":" & Mid(mac,11,2)
Set wmi = GetObject("winmgmts:\\.\root\cimv2")
Set found = wmi.ExecQuery("SELECT * FROM Win32_NetworkAdapter WHERE MACAddress = '" & pretty & "'")
For Each nic In found
  name = nic.NetConnectionID
  If args(1) <> "-" And name <> args(1) Then
    CreateObject("WScript.Shell").Run "netsh interface set interface name=""" & name & """ newname=""" & args(1) & """", 0, True
  End If
  Set configs = wmi.ExecQuery("SELECT * FROM Win32_NetworkAdapterConfiguration WHERE Index = " & nic.Index)
  For Each c In configs
    c.EnableStatic Array(args(2)), Array(args(3))
    If args(4) <> "-" Then c.SetGateways Array(args(4)), Array(1)
    If args(5) <> "-" Then c.SetDNSServerSearchOrder Split(args(5), ",")
  Next
Next
'@

$lines = New-Object -TypeName System.Collections.Generic.List[string]
$lines.Add('@echo off')
$lines.Add('cd /d %~dp0')
foreach ($nic in @($config.nics)) {
    if (-not $nic) { continue }
    $mac = ($nic.mac -replace '[-:]', '').ToUpper()
    $name = if ($nic.name) { $nic.name } else { '-' }
    $gateway = if ($nic.gateway) { $nic.gateway } else { '-' }
    $dns = if ($nic.dns) { @($nic.dns) -join ',' } else { '-' }
    $mask = ConvertTo-Mask -Prefix ([int]$nic.prefix)
    $lines.Add("cscript //nologo setnic.vbs $mac `"$name`" $($nic.ip) $mask $gateway $dns")
}
foreach ($user in @($config.users)) {
    if (-not $user) { continue }
    $password = Get-UserPassword -Name $user.name
    $lines.Add("net user $($user.name) `"$password`" /add /expires:never || net user $($user.name) `"$password`"")
    foreach ($group in @($user.groups)) {
        $lines.Add("net localgroup `"$group`" /add >nul 2>&1")
        $lines.Add("net localgroup `"$group`" $($user.name) /add")
    }
}
if ($config.telnet -and $config.telnet.enabled) {
    $lines.Add('sc config TlntSvr start= auto')
    $lines.Add('net start TlntSvr')
    $lines.Add('netsh firewall set portopening TCP 23 Telnet')
}
if ($config.rdp) {
    $port = [int]$config.rdp.port
    $ts = 'HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server'
    $lines.Add("reg add `"$ts\WinStations\RDP-Tcp`" /v PortNumber /t REG_DWORD /d $port /f")
    $lines.Add("reg add `"$ts`" /v fDenyTSConnections /t REG_DWORD /d 0 /f")
    $lines.Add("netsh firewall set portopening TCP $port RDP")
}
if ($config.nat) {
    # Windows Server 2003 positional netsh grammar [UNCONF for 'add portmapping']
    $lines.Add('reg add HKLM\SYSTEM\CurrentControlSet\Services\Tcpip\Parameters /v IPEnableRouter /t REG_DWORD /d 1 /f')
    $lines.Add('reg add HKLM\SYSTEM\CurrentControlSet\Services\RemoteAccess\Parameters /v RouterType /t REG_DWORD /d 7 /f')
    $lines.Add('sc config RemoteAccess start= auto')
    $lines.Add('net start RemoteAccess')
    $lines.Add('netsh routing ip nat install')
    $lines.Add("netsh routing ip nat add interface `"$($config.nat.public)`" full")
    foreach ($private in @($config.nat.private)) {
        $lines.Add("netsh routing ip nat add interface `"$private`" private")
    }
    foreach ($map in @($config.nat.mappings)) {
        $p = $map -split ':'
        if ($p.Count -ne 4) { throw "Invalid mapping '$map': expected proto:publicport:privateip:privateport" }
        $lines.Add("netsh routing ip nat add portmapping `"$($config.nat.public)`" $($p[0]) 0.0.0.0 $($p[1]) $($p[2]) $($p[3])")
    }
}
$lines.Add('del /q setnic.vbs')
$lines.Add('del /q "%~f0"')

$disk = Mount-VHD -Path $VhdPath -Passthru
try {
    $partitions = Get-CimInstance -Namespace 'root/Microsoft/Windows/Storage' -ClassName MSFT_Partition `
        -Filter "DiskNumber = $($disk.DiskNumber)"
    $root = $null
    foreach ($partition in $partitions) {
        if ([int]$partition.DriveLetter -eq 0) { continue }
        $candidate = '{0}:\' -f [char]$partition.DriveLetter
        if (Test-Path -Path (Join-Path -Path $candidate -ChildPath 'WINDOWS\system32')) { $root = $candidate }
    }
    if (-not $root) { throw "No Windows volume found in '$VhdPath'" }
    $folder = Join-Path -Path $root -ChildPath 'hvlab'
    New-Item -ItemType Directory -Path $folder -Force | Out-Null
    Set-Content -Path (Join-Path -Path $folder -ChildPath 'setnic.vbs') -Value $setnic -Encoding Ascii
    Set-Content -Path (Join-Path -Path $folder -ChildPath 'firstboot.cmd') -Value $lines -Encoding Ascii
    $sysprep = Join-Path -Path $root -ChildPath 'sysprep\sysprep.inf'
    if (Test-Path -Path $sysprep) {
        $oem = Join-Path -Path $root -ChildPath 'sysprep\i386\$oem$'
        New-Item -ItemType Directory -Path $oem -Force | Out-Null
        Set-Content -Path (Join-Path -Path $oem -ChildPath 'cmdlines.txt') -Encoding Ascii `
            -Value @('[Commands]', '"C:\hvlab\firstboot.cmd"')
        $inf = @(Get-Content -Path $sysprep)
        if (-not ($inf -match '^\s*InstallFilesPath\s*=')) {
            $inf = $inf -replace '^\[Unattended\]\s*$', "[Unattended]`r`nInstallFilesPath=C:\sysprep\i386"
            Set-Content -Path $sysprep -Value $inf -Encoding Ascii
        }
    } else {
        $hive = Join-Path -Path $root -ChildPath 'WINDOWS\system32\config\software'
        reg.exe load 'HKLM\hvlab-offline' $hive | Out-Null
        if ($LASTEXITCODE -ne 0) { throw "reg load of '$hive' failed with exit code $LASTEXITCODE" }
        try {
            reg.exe add 'HKLM\hvlab-offline\Microsoft\Windows\CurrentVersion\RunOnce' /v hvlab `
                /t REG_SZ /d 'C:\hvlab\firstboot.cmd' /f | Out-Null
        } finally {
            [gc]::Collect()
            reg.exe unload 'HKLM\hvlab-offline' | Out-Null
        }
    }
} finally {
    Dismount-VHD -Path $VhdPath
}

[pscustomobject]@{
    VhdPath  = $VhdPath
    Pending  = $true
    Sections = @($config.PSObject.Properties | ForEach-Object { $_.Name } | Sort-Object)
}
