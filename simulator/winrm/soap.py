"""WS-Management SOAP envelopes: parsing requests and building responses and faults.

Only the subset a PowerShell Remoting client (pypsrp) uses is modelled: the WS-Transfer
Create/Get/Delete actions and the MS-WSMV shell actions Command/Send/Receive/Signal.
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "wsa": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "wsman": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "wsmv": "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd",
    "wsmanfault": "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
    "wst": "http://schemas.xmlsoap.org/ws/2004/09/transfer",
    "cfg": "http://schemas.microsoft.com/wbem/wsman/1/config",
    "pwsh": "http://schemas.microsoft.com/powershell",
}

ANONYMOUS = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
FAULT_ACTION = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault"
TRANSFER = "http://schemas.xmlsoap.org/ws/2004/09/transfer/"
SHELL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/"
COMMAND_DONE = SHELL + "CommandState/Done"
COMMAND_RUNNING = SHELL + "CommandState/Running"

# WSManFault codes (HRESULTs as unsigned ints, the way pypsrp exposes WSManFaultError.code).
OPERATION_TIMEDOUT = 0x80338029  # 2150858793, swallowed by pypsrp's poll_invoke
SHELL_NOT_FOUND = 0x8033805B  # 2150858843, ERROR_WSMAN_INVALID_SELECTORS
RESOURCE_NOT_FOUND = 0x80338000  # 2150858752
ACTION_NOT_SUPPORTED = 0x80338001  # 2150858753, ERROR_WSMAN_INVALID_ACTIONURI
INTERNAL_ERROR = 0x8007054F  # 2147943759, HRESULT_FROM_WIN32(ERROR_INTERNAL_ERROR)
QUOTA_MAX_SHELLS = 0x803381A5  # 2150859173, ERROR_WSMAN_QUOTA_MAX_SHELLS (MaxShellsPerUser)
QUOTA_MAX_OPERATIONS = 0x803381A6  # 2150859174, ERROR_WSMAN_QUOTA_MAX_OPERATIONS (...PerUser)

TIMED_OUT_MESSAGE = (
    "The WS-Management service cannot complete the operation within the time specified in "
    "OperationTimeout."
)

_ENVELOPE_OPEN = (
    '<s:Envelope xml:lang="en-US"'
    + "".join(f' xmlns:{prefix}="{uri}"' for prefix, uri in NS.items() if prefix != "pwsh")
    + ">"
)
_DURATION = re.compile(r"^P(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


class WSManFault(Exception):
    """A SOAP fault to answer with HTTP 500 (pypsrp raises it as ``WSManFaultError``)."""

    def __init__(self, code: int, message: str, subcode: str = "w:InternalError") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.subcode = subcode


def shell_not_found(shell_id: str) -> WSManFault:
    """The fault a Windows host returns for an unknown or deleted ShellId."""
    return WSManFault(
        SHELL_NOT_FOUND,
        f"The request for the Windows Remote Shell with ShellId {shell_id} failed because the "
        "shell was not found on the server. Possible causes are: the specified ShellId is "
        "incorrect or the shell no longer exists on the server. Provide the correct ShellId or "
        "create a new shell and retry the operation.",
        "w:InvalidSelectors",
    )


def quota_max_shells(limit: int) -> WSManFault:
    """wsman:QuotaLimit on Create: the user already has MaxShellsPerUser shells open."""
    return WSManFault(
        QUOTA_MAX_SHELLS,
        "The WS-Management service cannot process the request. This user is allowed a maximum "
        f"number of {limit} concurrent shells, which has been exceeded. Close existing shells "
        "or raise the quota for this user.",
        "w:QuotaLimit",
    )


def quota_max_operations(limit: int) -> WSManFault:
    """wsman:QuotaLimit: the user has MaxConcurrentOperationsPerUser requests in progress."""
    return WSManFault(
        QUOTA_MAX_OPERATIONS,
        "The WS-Management service cannot process the request. This user is allowed a maximum "
        f"number of {limit} concurrent operations, which has been exceeded. Close existing "
        "operations for this user, or raise the quota for this user.",
        "w:QuotaLimit",
    )


def timed_out() -> WSManFault:
    """The OperationTimeout fault a long-polled Receive ends with when no output was ready."""
    return WSManFault(OPERATION_TIMEDOUT, TIMED_OUT_MESSAGE, "w:TimedOut")


@dataclass
class WSManRequest:
    """The parts of a WS-Man request envelope the server acts on."""

    action: str
    message_id: str
    resource_uri: str
    body: ET.Element
    selectors: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    operation_timeout: float | None = None
    max_envelope_size: int | None = None

    @property
    def name(self) -> str:
        """Short action name: ``Create``, ``Command``, ``Receive`` ..."""
        return self.action.rstrip("/").rsplit("/", 1)[-1]


def _text(root: ET.Element, path: str) -> str | None:
    node = root.find(path, NS)
    return None if node is None or node.text is None else node.text.strip()


def parse_duration(value: str | None) -> float | None:
    """Seconds of an xs:duration such as ``PT20S`` or ``PT20.000S`` (None if absent/odd)."""
    if not value:
        return None
    match = _DURATION.match(value.strip())
    if match is None:
        return None
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def _named_values(root: ET.Element, path: str) -> dict[str, str]:
    return {n.get("Name", ""): (n.text or "").strip() for n in root.findall(path, NS)}


def parse_request(data: bytes) -> WSManRequest:
    """Parse a SOAP request; raises WSManFault for malformed envelopes."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise WSManFault(ACTION_NOT_SUPPORTED, f"Malformed SOAP envelope: {exc}") from exc
    header = root.find("s:Header", NS)
    body = root.find("s:Body", NS)
    if header is None or body is None:
        raise WSManFault(ACTION_NOT_SUPPORTED, "The SOAP envelope has no Header or Body.")
    max_env = _text(header, "wsman:MaxEnvelopeSize")
    return WSManRequest(
        action=_text(header, "wsa:Action") or "",
        message_id=_text(header, "wsa:MessageID") or "",
        resource_uri=_text(header, "wsman:ResourceURI") or "",
        body=body,
        selectors=_named_values(header, "wsman:SelectorSet/wsman:Selector"),
        options=_named_values(header, "wsman:OptionSet/wsman:Option"),
        operation_timeout=parse_duration(_text(header, "wsman:OperationTimeout")),
        max_envelope_size=int(max_env) if max_env and max_env.isdigit() else None,
    )


def envelope(action: str, relates_to: str, body: str) -> bytes:
    """A response envelope whose RelatesTo echoes the request MessageID (pypsrp checks it)."""
    return (
        f"{_ENVELOPE_OPEN}<s:Header>"
        f"<wsa:Action>{escape(action)}</wsa:Action>"
        f"<wsa:MessageID>uuid:{str(uuid.uuid4()).upper()}</wsa:MessageID>"
        f"<wsa:RelatesTo>{escape(relates_to)}</wsa:RelatesTo>"
        f"<wsa:To>{ANONYMOUS}</wsa:To>"
        f"</s:Header><s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def response(request: WSManRequest, body: str) -> bytes:
    """The ``<Action>Response`` envelope for a request."""
    return envelope(request.action + "Response", request.message_id, body)


def fault_envelope(fault: WSManFault, relates_to: str, machine: str) -> bytes:
    """SOAP 1.2 fault with the wsmanfault:WSManFault detail pypsrp parses ``code`` from."""
    text = escape(fault.message)
    body = (
        "<s:Fault><s:Code><s:Value>s:Receiver</s:Value>"
        f"<s:Subcode><s:Value>{escape(fault.subcode)}</s:Value></s:Subcode></s:Code>"
        f'<s:Reason><s:Text xml:lang="en-US">{text}</s:Text></s:Reason>'
        f"<s:Detail><wsmanfault:WSManFault Code={quoteattr(str(fault.code))} "
        f"Machine={quoteattr(machine)}><wsmanfault:Message>{text}</wsmanfault:Message>"
        "</wsmanfault:WSManFault></s:Detail></s:Fault>"
    )
    return envelope(FAULT_ACTION, relates_to, body)


def shell_xml(shell_id: str, resource_uri: str, owner: str, client_ip: str) -> str:
    """The ``rsp:Shell`` description returned by Create and Get."""
    return (
        f"<rsp:Shell><rsp:ShellId>{escape(shell_id)}</rsp:ShellId>"
        "<rsp:Name>WinRM1</rsp:Name>"
        f"<rsp:ResourceUri>{escape(resource_uri)}</rsp:ResourceUri>"
        f"<rsp:Owner>{escape(owner)}</rsp:Owner><rsp:ClientIP>{escape(client_ip)}</rsp:ClientIP>"
        "<rsp:ProcessId>4242</rsp:ProcessId><rsp:State>Connected</rsp:State>"
        "<rsp:IdleTimeOut>PT7200.000S</rsp:IdleTimeOut>"
        "<rsp:InputStreams>stdin pr</rsp:InputStreams><rsp:OutputStreams>stdout</rsp:OutputStreams>"
        "<rsp:ShellRunTime>P0DT0H0M0S</rsp:ShellRunTime>"
        "<rsp:ShellInactivity>P0DT0H0M0S</rsp:ShellInactivity></rsp:Shell>"
    )


def resource_created(address: str, resource_uri: str, shell_id: str) -> str:
    """``wst:ResourceCreated``: pypsrp copies its selector set into every later request."""
    return (
        f"<wst:ResourceCreated><wsa:Address>{escape(address)}</wsa:Address>"
        "<wsa:ReferenceParameters>"
        f"<wsman:ResourceURI>{escape(resource_uri)}</wsman:ResourceURI>"
        f'<wsman:SelectorSet><wsman:Selector Name="ShellId">{escape(shell_id)}</wsman:Selector>'
        "</wsman:SelectorSet></wsa:ReferenceParameters></wst:ResourceCreated>"
    )


def receive_xml(command_id: str | None, payloads: list[str], done: bool | None) -> str:
    """``rsp:ReceiveResponse`` with one stdout stream per base64 payload."""
    cid = f" CommandId={quoteattr(command_id)}" if command_id else ""
    streams = "".join(f'<rsp:Stream Name="stdout"{cid}>{p}</rsp:Stream>' for p in payloads)
    state = ""
    if done is not None:
        uri = COMMAND_DONE if done else COMMAND_RUNNING
        state = f"<rsp:CommandState{cid} State={quoteattr(uri)}/>"
    return f"<rsp:ReceiveResponse>{streams}{state}</rsp:ReceiveResponse>"


def config_xml(max_envelope_kb: int) -> str:
    """A minimal WinRM config (pypsrp's update_max_payload_size reads MaxEnvelopeSizekb)."""
    return (
        f"<cfg:Config><cfg:MaxEnvelopeSizekb>{max_envelope_kb}</cfg:MaxEnvelopeSizekb>"
        "<cfg:MaxTimeoutms>60000</cfg:MaxTimeoutms><cfg:MaxBatchItems>32000</cfg:MaxBatchItems>"
        "</cfg:Config>"
    )
