"""The host's display language: the one place the fleet words what it says.

A host of the lab file may be ``locale: ko-KR``. Like a Korean Windows Server it then words its
error messages, warnings, job error descriptions and the localized display names of built-in
objects (firewall rules) in Korean, while everything a program should key on stays as it is:
FullyQualifiedErrorIds, HRESULTs, message ids, categories, exception types, rule ``Name``s,
enum values and property names (docs/simulator-fidelity.md, "Korean hosts").

Cmdlet implementations keep writing the English (en-US) text; :class:`simulator.engine.HostHandler`
passes every error, warning and terminating error of a host through :func:`localize`, and jobs
their ErrorDescription. A message is matched against :data:`MESSAGES` (English template ->
Korean template, placeholders carried over, themselves localized when they are messages);
a line no template matches becomes a marked approximation that keeps only the message's
identifiers (HRESULTs, quoted names, numbers in parentheses) and no English words, so a client
can never pass on a Korean host by reading English it would not get there.

Korean texts marked ``[UNCONF ko]`` are approximations (no public Korean source found); the
others give their source in the comment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

DEFAULT = "en-US"
LOCALES = ("en-US", "ko-KR")
UNCONFIRMED = "[UNCONF ko]"
_HANGUL = re.compile(r"[\uac00-\ud7a3]")


@dataclass(frozen=True)
class Text:
    """One message: its en-US template, its ko-KR template, where the Korean comes from."""

    en: str
    ko: str
    source: str = UNCONFIRMED


# English template -> Korean template. Placeholders are {name}; a placeholder repeated in the
# English template must match the same text each time.
MESSAGES: tuple[Text, ...] = (
    # -- PowerShell engine (System.Management.Automation resources, ko-KR)
    Text("The term '{name}' is not recognized as the name of a cmdlet, function, script file, "
         "or operable program. Check the spelling of the name, or if a path was included, "
         "verify that the path is correct and try again.",
         "'{name}' 용어가 cmdlet, 함수, 스크립트 파일 또는 실행할 수 있는 프로그램 이름으로 "
         "인식되지 않습니다. 이름이 정확한지 확인하고 경로가 포함된 경우 경로가 올바른지 검증한 "
         "다음 다시 시도하십시오.",
         "Korean Windows PowerShell 5.1 console output quoted in public posts"),
    Text("A parameter cannot be found that matches parameter name '{name}'.",
         "'{name}' 매개 변수 이름과 일치하는 매개 변수를 찾을 수 없습니다."),
    Text("Cannot bind parameter '{name}'. {reason}",
         "'{name}' 매개 변수를 바인딩할 수 없습니다. {reason}"),
    Text("Cannot validate argument on parameter '{name}'. {reason}",
         "'{name}' 매개 변수의 인수를 확인할 수 없습니다. {reason}"),
    # -- Hyper-V (Microsoft.HyperV.PowerShell, ko-KR)
    Text("The operation cannot be performed while the object is in its current state.",
         "개체가 현재 상태에 있는 동안에는 작업을 수행할 수 없습니다."),
    Text('Hyper-V was unable to find a virtual machine with name "{name}".',
         'Hyper-V에서 이름이 "{name}"인 가상 컴퓨터를 찾을 수 없습니다.'),
    Text('Hyper-V was unable to find a virtual switch with name "{name}".',
         'Hyper-V에서 이름이 "{name}"인 가상 스위치를 찾을 수 없습니다.'),
    Text('Hyper-V was unable to find a network adapter with name "{name}" on virtual machine '
         '"{vm}".',
         'Hyper-V에서 가상 컴퓨터 "{vm}"의 이름이 "{name}"인 네트워크 어댑터를 찾을 수 '
         '없습니다.'),
    Text("The virtual switch '{name}' cannot be deleted because it is being used by running "
         "virtual machines or assigned to child pools.",
         "가상 스위치 '{name}'을(를) 실행 중인 가상 컴퓨터에서 사용 중이거나 자식 풀에 할당되어 "
         "있으므로 삭제할 수 없습니다."),
    Text("Could not find Ethernet switch '{name}'.",
         "이더넷 스위치 '{name}'을(를) 찾을 수 없습니다."),
    Text("The Hyper-V Management Tools could not access an expected WMI class on computer "
         "'{host}'. This may indicate that the Hyper-V Platform is not enabled on the computer "
         "or not fully configured.",
         "Hyper-V 관리 도구가 컴퓨터 '{host}'에서 필요한 WMI 클래스에 액세스할 수 없습니다. "
         "컴퓨터에서 Hyper-V 플랫폼을 사용하도록 설정하지 않았거나 완전히 구성하지 않았을 수 "
         "있습니다."),
    Text("You do not have the required permission to complete this task. Contact the "
         "administrator of the authorization policy for the computer '{host}'.",
         "이 작업을 완료하는 데 필요한 권한이 없습니다. 컴퓨터 '{host}'의 권한 부여 정책 "
         "관리자에게 문의하십시오."),
    Text("'{vm}' failed to start.", "'{vm}'을(를) 시작하지 못했습니다."),
    Text("'{vm}' could not initialize.", "'{vm}'을(를) 초기화할 수 없습니다."),
    Text("'{vm}' failed to start. (Virtual machine ID {id})",
         "'{vm}'을(를) 시작하지 못했습니다. (가상 컴퓨터 ID {id})"),
    Text("'{vm}' could not initialize. (Virtual machine ID {id})",
         "'{vm}'을(를) 초기화할 수 없습니다. (가상 컴퓨터 ID {id})"),
    Text("Not enough memory in the system to start the virtual machine {vm}.",
         "가상 컴퓨터 {vm}을(를) 시작하는 데 필요한 메모리가 시스템에 부족합니다."),
    Text("Not enough memory in the system to start the virtual machine {vm} with ram size "
         "{mb} megabytes. (Virtual machine ID {id})",
         "RAM 크기가 {mb}MB인 가상 컴퓨터 {vm}을(를) 시작하는 데 필요한 메모리가 시스템에 "
         "부족합니다. (가상 컴퓨터 ID {id})"),
    Text("Unable to allocate {mb} MB of RAM: {reason}",
         "{mb}MB의 RAM을 할당할 수 없습니다. {reason}"),
    Text("'{vm}' failed to add device 'Virtual Hard Disk'. (Virtual machine ID {id})",
         "'{vm}'에서 '가상 하드 디스크' 장치를 추가하지 못했습니다. (가상 컴퓨터 ID {id})"),
    Text("Failed to open attachment '{path}'. Error: '{reason}' ({code})",
         "첨부 파일 '{path}'을(를) 열지 못했습니다. 오류: '{reason}' ({code})"),
    Text("'{vm}' failed to apply checkpoint '{snap}'. (Virtual machine ID {id})",
         "'{vm}'에서 검사점 '{snap}'을(를) 적용하지 못했습니다. (가상 컴퓨터 ID {id})"),
    Text("'{vm}' failed to create external configuration store at '{path}': {reason} "
         "(Virtual machine ID {id})",
         "'{vm}'에서 '{path}'에 외부 구성 저장소를 만들지 못했습니다. {reason} "
         "(가상 컴퓨터 ID {id})"),
    Text("'{dst}' failed to register the configuration for the virtual machine '{vm}' at "
         "'{path}': {reason} (Virtual machine ID {id})",
         "'{dst}'에서 '{path}'에 있는 가상 컴퓨터 '{vm}'의 구성을 등록하지 못했습니다. "
         "{reason} (가상 컴퓨터 ID {id})"),
    Text("The virtual machine '{vm}' cannot be shut down because the shutdown integration "
         "service is unavailable. Use -TurnOff or -Force to turn it off.",
         "종료 통합 서비스를 사용할 수 없으므로 가상 컴퓨터 '{vm}'을(를) 종료할 수 없습니다. "
         "-TurnOff 또는 -Force를 사용하여 끄십시오."),
    Text("The virtual machine cannot be moved to the destination computer. The hardware on the "
         "destination computer is not compatible with the hardware requirements of this "
         "virtual machine.",
         "가상 컴퓨터를 대상 컴퓨터로 이동할 수 없습니다. 대상 컴퓨터의 하드웨어가 이 가상 "
         "컴퓨터의 하드웨어 요구 사항과 호환되지 않습니다."),
    Text("Virtual machine migration operation failed at migration Source. Failed to establish "
         "a connection with host {dst}: {reason}",
         "마이그레이션 원본에서 가상 컴퓨터 마이그레이션 작업이 실패했습니다. 호스트 {dst}과(와) "
         "연결하지 못했습니다. {reason}"),
    Text("Virtual machine migration operation for '{vm}' failed at migration {side} '{host}'. "
         "(Virtual machine ID {id})",
         "마이그레이션 {side} '{host}'에서 '{vm}'에 대한 가상 컴퓨터 마이그레이션 작업이 "
         "실패했습니다. (가상 컴퓨터 ID {id})"),
    Text("Failed to establish a connection with host '{dst}': {reason}",
         "호스트 '{dst}'과(와) 연결하지 못했습니다. {reason}"),
    Text("The Virtual Machine Management Service failed to establish a connection for a "
         "Virtual Machine migration with host '{peer}': {reason}",
         "Virtual Machine Management 서비스에서 호스트 '{peer}'과(와)의 가상 컴퓨터 "
         "마이그레이션 연결을 설정하지 못했습니다. {reason}"),
    Text("Virtual machine migration is not enabled on host '{host}'.",
         "호스트 '{host}'에서 가상 컴퓨터 마이그레이션을 사용하도록 설정하지 않았습니다."),
    Text("The virtual hard disk '{path}' is not accessible from host '{dst}'.",
         "호스트 '{dst}'에서 가상 하드 디스크 '{path}'에 액세스할 수 없습니다."),
    Text("A virtual machine with the identifier '{id}' already exists on '{dst}'.",
         "식별자가 '{id}'인 가상 컴퓨터가 '{dst}'에 이미 있습니다."),
    Text("Hyper-V failed to replicate changes for virtual machine '{vm}': {reason} "
         "(Virtual machine ID {id})",
         "Hyper-V에서 가상 컴퓨터 '{vm}'의 변경 내용을 복제하지 못했습니다. {reason} "
         "(가상 컴퓨터 ID {id})"),
    Text("Hyper-V failed to enable replication for virtual machine '{vm}': The connection with "
         "the Replica server '{replica}' on port {port} could not be established. Verify that "
         "the Replica server is configured to receive replication with {auth} authentication "
         "on that port and that its firewall allows it. ({code})",
         "Hyper-V에서 가상 컴퓨터 '{vm}'의 복제를 사용하도록 설정하지 못했습니다. 포트 {port}의 "
         "복제본 서버 '{replica}'과(와) 연결할 수 없습니다. 복제본 서버가 해당 포트에서 {auth} "
         "인증으로 복제를 받도록 구성되어 있고 방화벽에서 허용하는지 확인하십시오. ({code})"),
    Text("Replication is not enabled for virtual machine '{vm}'.",
         "가상 컴퓨터 '{vm}'에 대해 복제를 사용하도록 설정하지 않았습니다."),
    Text("The connection to the specified Replica server with the specified parameters was "
         "successful.",
         "지정된 매개 변수를 사용하여 지정된 복제본 서버에 연결했습니다."),
    Text("The operation was cancelled.", "작업이 취소되었습니다."),
    Text("Hyper-V cannot be installed: The processor does not have required virtualization "
         "capabilities.",
         "Hyper-V를 설치할 수 없습니다. 프로세서에 필요한 가상화 기능이 없습니다."),
    Text("A prerequisite check for the Hyper-V feature failed.",
         "Hyper-V 기능에 대한 필수 구성 요소 검사가 실패했습니다."),
    # -- Win32 / HRESULT texts (FormatMessage, ko-KR): the code in parentheses is kept
    Text("General access denied error ({code}).", "일반적인 액세스 거부 오류입니다({code})."),
    Text("General access denied error", "일반적인 액세스 거부 오류"),
    Text("Access is denied.", "액세스가 거부되었습니다."),
    Text("Access is denied", "액세스가 거부되었습니다."),
    Text("The system cannot find the file specified.", "지정된 파일을 찾을 수 없습니다."),
    Text("The system cannot find the file specified. ({code}).",
         "지정된 파일을 찾을 수 없습니다. ({code})."),
    Text("The process cannot access the file because it is being used by another process.",
         "다른 프로세스가 파일을 사용 중이기 때문에 프로세스가 액세스할 수 없습니다."),
    Text("The process cannot access the file because it is being used by another process. "
         "({code}).",
         "다른 프로세스가 파일을 사용 중이기 때문에 프로세스가 액세스할 수 없습니다. ({code})."),
    Text("No credentials are available in the security package {code}.",
         "보안 패키지에 사용할 수 있는 자격 증명이 없습니다. {code}."),
    Text("Insufficient system resources exist to complete the requested service. ({code})",
         "시스템 리소스가 부족하기 때문에 요청한 서비스를 완료할 수 없습니다. ({code})"),
    Text("The network path was not found. ({code}).",
         "네트워크 경로를 찾을 수 없습니다. ({code})."),
    Text("No connection could be made because the target machine actively refused it. "
         "({code}).",
         "대상 컴퓨터에서 연결을 거부했으므로 연결하지 못했습니다. ({code})."),
    Text("A connection attempt failed because the connected party did not properly respond "
         "after a period of time, or established connection failed because connected host has "
         "failed to respond. ({code}).",
         "연결된 구성원으로부터 응답이 없어 연결하지 못했거나, 호스트로부터 응답이 없어 연결이 "
         "끊어졌습니다. ({code})."),
    Text("The connection with the server was terminated abnormally ({code}).",
         "서버와의 연결이 비정상적으로 종료되었습니다({code})."),
    Text("No mapping between account names and security IDs was done.",
         "계정 이름과 보안 ID 간의 매핑이 수행되지 않았습니다."),
    Text("The parameter is incorrect.", "매개 변수가 틀립니다."),
    # -- Microsoft.PowerShell.Management
    Text("Cannot find path '{path}' because it does not exist.",
         "'{path}' 경로는 존재하지 않으므로 찾을 수 없습니다."),
    Text("Cannot find any service with service name '{name}'.",
         "서비스 이름이 '{name}'인 서비스를 찾을 수 없습니다."),
    Text("Cannot add computer '{name}' to domain '{domain}' because it is already in that "
         "domain.",
         "'{name}' 컴퓨터가 이미 '{domain}' 도메인에 있으므로 해당 도메인에 추가할 수 없습니다."),
    Text("Computer '{name}' failed to join domain '{domain}' from its current {kind} "
         "'{current}' with following error message: {reason}",
         "'{name}' 컴퓨터가 현재 {kind} '{current}'에서 '{domain}' 도메인에 가입하지 "
         "못했습니다. 오류 메시지: {reason}"),
    Text("The specified domain either does not exist or could not be contacted.",
         "지정된 도메인이 없거나 도메인에 연결할 수 없습니다."),
    Text("The changes will take effect after you restart the computer {name}.",
         "컴퓨터 {name}을(를) 다시 시작해야 변경 내용이 적용됩니다."),
    Text("Testing connection to computer '{name}' failed: {reason}",
         "'{name}' 컴퓨터에 대한 연결을 테스트하지 못했습니다. {reason}"),
    Text("TCP connect to ({address} : {port}) failed",
         "({address} : {port})에 대한 TCP 연결에 실패했습니다."),
    Text("Ping to {address} failed with status: {status}",
         "{address}에 대한 Ping이 실패했습니다. 상태: {status}"),
    Text("Name resolution of {name} failed", "{name}의 이름 확인에 실패했습니다."),
    # -- Active Directory module
    Text("Cannot find an object with identity: '{identity}' under: '{base}'.",
         "'{base}' 아래에서 ID가 '{identity}'인 개체를 찾을 수 없습니다."),
    Text("Unable to find a default server with Active Directory Web Services running.",
         "Active Directory 웹 서비스가 실행 중인 기본 서버를 찾을 수 없습니다."),
    Text("The specified value already exists", "지정한 값이 이미 있습니다."),
    Text("The specified directory service attribute or value does not exist",
         "지정한 디렉터리 서비스 특성 또는 값이 없습니다."),
)

# Built-in firewall rules by Name (not localized) -> ko-KR DisplayName / DisplayGroup
FIREWALL_KO: dict[str, tuple[str, str, str]] = {
    # Name: (DisplayName, DisplayGroup, source)
    "VIRT-HVRHTTPL-In-TCP-NoScope": (
        "Hyper-V 복제본 HTTP 수신기(TCP-In)", "Hyper-V 복제본 HTTP",
        "Microsoft Learning AZ-800 lab instructions, Korean (Get-NetFirewallRule / wf.msc "
        "'Hyper-V 복제본 HTTP 수신기(TCP-In)')"),
    "VIRT-HVRHTTPSL-In-TCP-NoScope": (
        "Hyper-V 복제본 HTTPS 수신기(TCP-In)", "Hyper-V 복제본 HTTPS",
        "by analogy with the HTTP listener's Korean name"),
    "VIRT-MIGL-In-TCP-NoScope": ("Hyper-V(MIG-TCP-In)", "Hyper-V", UNCONFIRMED),
    "WINRM-HTTP-In-TCP": ("Windows 원격 관리(HTTP-In)", "Windows 원격 관리", UNCONFIRMED),
    "FPS-SMB-In-TCP": ("파일 및 프린터 공유(SMB-In)", "파일 및 프린터 공유", UNCONFIRMED),
    "FPS-ICMP4-ERQ-In": ("파일 및 프린터 공유(에코 요청 - ICMPv4-In)", "파일 및 프린터 공유",
                         UNCONFIRMED),
}

_NEVER = ("not simulated",)  # the simulator's own words about itself stay as they are
_IDENTIFIERS = re.compile(
    r"0x[0-9A-Fa-f]{8}|'[^'\n]*'|\"[^\"\n]*\"|\(\d+\)|\b[0-9A-Fa-f]{8}-[0-9A-Fa-f-]{27}\b")


def check(locale: str) -> str:
    """``locale`` if the fleet knows it (else ValueError)."""
    if locale not in LOCALES:
        raise ValueError(f"unknown locale {locale!r} (known: {', '.join(LOCALES)})")
    return locale


@cache
def _pattern(template: str) -> tuple[re.Pattern[str], tuple[str, ...]]:
    parts = re.split(r"\{(\w+)\}", template)
    regex, names, seen = "", [], set()
    for index, part in enumerate(parts):
        if index % 2 == 0:
            regex += re.escape(part)
        elif part in seen:
            regex += f"(?P={part})"
        else:
            seen.add(part)
            names.append(part)
            regex += f"(?P<{part}>[^\\n]*?)"  # within one line: a template is one line
    return re.compile(regex), tuple(names)


def _template(text: str) -> str | None:
    """The Korean rendering of ``text`` by the first template it matches whole, else None."""
    for entry in MESSAGES:
        pattern, names = _pattern(entry.en)
        match = pattern.fullmatch(text)
        if match is None:
            continue
        values = {n: _inner(match.group(n)) for n in names}
        return entry.ko.format(**values)
    return None


def _inner(value: str) -> str:
    """A placeholder's text: itself a message (a reason, a nested line) or a name."""
    if not value or _HANGUL.search(value):
        return value
    return _template(value) or value


def _approximate(line: str) -> str:
    """A line no template knows: a marked Korean approximation keeping only its identifiers."""
    kept = " ".join(dict.fromkeys(m.group(0) for m in _IDENTIFIERS.finditer(line)))
    text = f"{UNCONFIRMED} 작업을 완료하지 못했습니다."
    return f"{text} {kept}" if kept else text


def localize(locale: str, text: str) -> str:
    """``text`` (the fleet's en-US wording) as a host of ``locale`` words it."""
    if locale == DEFAULT or not text or _HANGUL.search(text):
        return text
    if text.lower().startswith(_NEVER):
        return text
    whole = _template(text)
    if whole is not None:
        return whole
    lines = text.split("\n")
    return "\n".join(_template(line) or (_approximate(line) if line.strip() else line)
                     for line in lines)


def firewall_names(locale: str, name: str, display: str, group: str) -> tuple[str, str]:
    """``(DisplayName, DisplayGroup)`` of the built-in rule ``name`` on a ``locale`` host."""
    if locale == "ko-KR" and name in FIREWALL_KO:
        ko = FIREWALL_KO[name]
        return ko[0], ko[1]
    return display, group
