"""PSRP sessions: one pypsrp RunspacePool per (host, credential) per worker process.

Pools are opened on first use, reused by every activity, and rebuilt after a failure (a host
reboot kills the remote shell). pypsrp objects are not thread-safe, so each pool has a lock;
remote steps are short, and long work runs as host-side jobs polled by short calls. A pipeline
runs with ``begin_invoke``/``poll_invoke`` so the caller can heartbeat while it waits and stop
the remote pipeline on cancellation.
"""

from __future__ import annotations

import contextlib
import ipaddress
import ssl
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal

import requests
import structlog
from pypsrp.complex_objects import GenericComplexObject, PSCredential, PSInvocationState
from pypsrp.exceptions import AuthenticationError, WinRMTransportError, WSManFaultError
from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.wsman import WSMan

from hvlab.powershell.command import Command, CredentialRef, Pipeline, Script, Switch
from hvlab.powershell.credentials import ResolvedCredential
from hvlab.powershell.errors import (
    AuthenticationFailed,
    BootstrapCredentialMissing,
    CertificateMismatch,
    CredentialUnavailable,
    HostRebooting,
    HostUnreachable,
    InsecureTransport,
    RemoteError,
    TransientRemoteError,
    classify_message,
)

log = structlog.get_logger("hvlab.winrm")

_UNKNOWN_SHELL = 2150858843
# After a reboot a Windows host's WinRM listener is up before logons work (LSA, Netlogon and
# the secure channel to the DC are still starting): it answers HTTP 401 for a while. A 401
# within this many seconds of a reboot the pool caused or observed is retried.
POST_REBOOT_LOGON_WINDOW = 300.0
LOGON_RETRY_SECONDS = 2.0
_INT32 = range(-(2**31), 2**31)
_INT_TAGS = {"Int64": "I64", "UInt64": "U64", "UInt32": "U32", "UInt16": "U16", "Int16": "I16"}
# Seconds to wait for a host to accept the TCP connection (a host that is off or cut off
# answers nothing, so this is how long each attempt of a step takes to find out). Only the
# connection: a command that is slow to answer is bounded by the read timeout, which stays
# operation timeout + 10 s, and long work runs as polled host-side jobs anyway.
CONNECT_TIMEOUT = 5


@dataclass(frozen=True)
class Endpoint:
    """How to reach one host: address, WinRM transport and which lab credential to use."""

    host: str
    address: str
    port: int
    scheme: Literal["http", "https"] = "https"
    auth: str = "negotiate"
    credential: str = ""
    validate_certificate: bool = True
    insecure: bool = False
    # the host's local Administrator, used until the host is joined (then ``credential``)
    bootstrap_credential: str = ""
    joins_domain: bool = False  # a host the lab joins to the domain (for the error's fix)

    def check_transport(self) -> None:
        """Refuse Basic over plain HTTP to a non-loopback address (always), and any other
        auth without message encryption over plain HTTP unless the host is marked insecure."""
        if _is_loopback(self.address) or self.scheme == "https":
            return
        if self.auth == "basic":
            raise InsecureTransport(self.host, "", "basic over plain HTTP is refused")
        if not self.insecure and self.auth not in _ENCRYPTING:
            raise InsecureTransport(self.host, "", f"{self.auth} over plain HTTP is refused")

    @property
    def encryption(self) -> Literal["always", "auto"]:
        """pypsrp's message encryption: always over HTTP (Negotiate/NTLM/Kerberos seal every
        message), TLS's over HTTPS."""
        return "always" if self.scheme == "http" and self.auth in _ENCRYPTING else "auto"


_ENCRYPTING = ("kerberos", "ntlm", "negotiate")


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


@dataclass
class RunResult:
    """Output objects converted to plain Python values, plus warnings."""

    output: list[Any]
    warnings: list[str] = field(default_factory=list)


CredentialLookup = Callable[[str], ResolvedCredential]
ParamType = Callable[[str, str], str | None]


def catalog_param_type(cmdlet: str, name: str) -> str | None:
    """The declared element type of a cmdlet parameter (``Int64``), from the catalogue."""
    from hvlab.powershell.catalog import BindingError, Catalog

    if not cmdlet:
        return None
    try:
        info = Catalog.load().cmdlet(cmdlet).match(name)
    except BindingError:
        return None
    return info.type.element if info is not None else None


def _script_text(name: str) -> str:
    package = resources.files("hvlab.powershell").joinpath("scripts")
    return package.joinpath(f"{name}.ps1").read_text(encoding="utf-8")


def to_plain(value: Any) -> Any:
    """A PSObject (and anything nested) as dicts, lists, strings and numbers."""
    if isinstance(value, GenericComplexObject):
        props = {**value.adapted_properties, **value.extended_properties}
        if not props:
            return str(value) if value.to_string is not None else None
        return {k: to_plain(v) for k, v in props.items()}
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    return value


class _Pool:
    def __init__(self, runspace: RunspacePool, host: str, credential: str = "") -> None:
        self.runspace = runspace
        self.host = host
        self.credential = credential  # the lab credential it logged on with
        self.keys_exchanged = False
        self.lock = threading.Lock()


def _membership_command() -> Pipeline:
    return Pipeline.one(Command.of("Get-CimInstance", ClassName="Win32_ComputerSystem"))


class SessionPool:
    """The worker's PSRP sessions, keyed by (host, credential)."""

    def __init__(
        self,
        credentials: CredentialLookup,
        param_type: ParamType | None = None,
        *,
        operation_timeout: int = 20,
        connection_timeout: int = CONNECT_TIMEOUT,
        on_open: Callable[[str, int], None] | None = None,
        on_request: Callable[[str, str], None] | None = None,
        logon_window: float = POST_REBOOT_LOGON_WINDOW,
        logon_retry: float = LOGON_RETRY_SECONDS,
    ) -> None:
        self._credentials = credentials
        self._param_type = param_type or catalog_param_type
        self._operation_timeout = operation_timeout
        self._connection_timeout = connection_timeout
        self._pools: dict[tuple[str, str, int, str], _Pool] = {}
        self._opening: dict[tuple[str, str, int, str], threading.Lock] = {}
        # hosts with a bootstrap credential last seen joined: they are opened with the domain
        # credential first (the others are asked each time a pool opens, e.g. after the join's
        # reboot)
        self._joined: set[tuple[str, str, int, str]] = set()
        self._guard = threading.Lock()
        self._on_open = on_open or (lambda host, delta: None)
        self._on_request = on_request or (lambda host, outcome: None)
        self._logon_window, self._logon_retry = logon_window, logon_retry
        self._reboots: dict[str, float] = {}  # host -> when a reboot was last seen (monotonic)

    # -- reboots ------------------------------------------------------------------------------
    def note_reboot(self, host: str) -> None:
        """``host`` is rebooting (the caller restarted it, or the pool saw it go away): for
        :data:`POST_REBOOT_LOGON_WINDOW` seconds from now an HTTP 401 is the host starting, not
        a wrong credential, and is retried."""
        with self._guard:
            self._reboots[host.lower()] = time.monotonic()

    def _starting(self, host: str) -> bool:
        with self._guard:
            seen = self._reboots.get(host.lower())
        return seen is not None and time.monotonic() - seen < self._logon_window

    # -- pool lifecycle -------------------------------------------------------------------
    def _open(self, endpoint: Endpoint) -> _Pool:
        """A pool for the host, logged on with the credential its state calls for.

        With a bootstrap credential (the host's local Administrator): a host last seen joined
        is opened with the domain credential; any other is opened with the bootstrap one and
        asked whether it is in a domain (Win32_ComputerSystem.PartOfDomain) and, if so,
        reopened with the domain credential. So the pool switches at the join's reboot (the
        reboot ends the pool's shell, and the reopened pool asks again) and a worker that
        starts on a half-built lab picks the right one. A rejected domain credential on a
        host seen joined before is asked again (rebuilt hosts); a rejected bootstrap
        credential falls back to the domain credential (a joined host whose local
        Administrator is disabled)."""
        endpoint.check_transport()
        if not endpoint.bootstrap_credential:
            runspace = self._logon(endpoint, endpoint.credential)
            return self._opened(endpoint, runspace, endpoint.credential)
        key = self._key(endpoint)
        with self._guard:
            joined = key in self._joined
        if joined:
            try:
                return self._opened(endpoint, self._logon(endpoint, endpoint.credential),
                                    endpoint.credential)
            except AuthenticationFailed:
                with self._guard:
                    self._joined.discard(key)
        try:
            runspace = self._logon(endpoint, endpoint.bootstrap_credential)
        except (AuthenticationFailed, CredentialUnavailable) as bootstrap_failed:
            try:
                runspace = self._logon(endpoint, endpoint.credential)
            except AuthenticationFailed:
                raise AuthenticationFailed(
                    endpoint.host, "", f"the host rejected both the bootstrap credential "
                    f"'{endpoint.bootstrap_credential}' ({bootstrap_failed.host_message}) and "
                    f"the domain credential '{endpoint.credential}'") from None
            with self._guard:
                self._joined.add(key)
            return self._opened(endpoint, runspace, endpoint.credential)
        try:
            member = self._part_of_domain(endpoint, runspace)
        except BaseException:
            self._close_runspace(runspace)
            raise
        if not member:
            return self._opened(endpoint, runspace, endpoint.bootstrap_credential)
        self._close_runspace(runspace)
        runspace = self._logon(endpoint, endpoint.credential)
        with self._guard:
            self._joined.add(key)
        return self._opened(endpoint, runspace, endpoint.credential)

    def _part_of_domain(self, endpoint: Endpoint, runspace: RunspacePool) -> bool:
        pool = _Pool(runspace, endpoint.host)
        ps = PowerShell(pool.runspace)
        self._build(pool, ps, _membership_command())
        output = ps.invoke()
        if ps.had_errors or ps.streams.error:
            raise TransientRemoteError(endpoint.host, "Get-CimInstance Win32_ComputerSystem",
                                       str(ps.streams.error[0]) if ps.streams.error else "failed")
        first = to_plain(output[0]) if output else {}
        return isinstance(first, dict) and first.get("PartOfDomain") is True

    def _close_runspace(self, runspace: RunspacePool) -> None:
        with contextlib.suppress(Exception):
            runspace.close()

    def _opened(self, endpoint: Endpoint, runspace: RunspacePool, credential: str) -> _Pool:
        self._on_open(endpoint.host, 1)
        log.info("winrm session opened", host=endpoint.host, address=endpoint.address,
                 port=endpoint.port, scheme=endpoint.scheme, auth=endpoint.auth,
                 credential=credential)
        return _Pool(runspace, endpoint.host, credential)

    def _logon(self, endpoint: Endpoint, credential: str) -> RunspacePool:
        """An open RunspacePool to the host as the lab credential ``credential``."""
        cred = self._credentials(credential)
        wsman = WSMan(
            endpoint.address, port=endpoint.port, ssl=endpoint.scheme == "https",
            username=cred.username, password=cred.password.value,
            auth="negotiate" if endpoint.auth == "kerberos" else endpoint.auth,
            encryption=endpoint.encryption,
            cert_validation=endpoint.validate_certificate,
            connection_timeout=self._connection_timeout,
            operation_timeout=self._operation_timeout,
            read_timeout=self._operation_timeout + 10, no_proxy=True,
        )
        runspace = RunspacePool(wsman)
        try:
            runspace.open()
        except AuthenticationError:
            message = (f"the host rejected the credentials of {cred.username} "
                       f"(lab credential '{credential}', HTTP 401)")
            if endpoint.joins_domain and not endpoint.bootstrap_credential:
                raise BootstrapCredentialMissing(endpoint.host, "", message) from None
            raise AuthenticationFailed(endpoint.host, "", message) from None
        except requests.exceptions.SSLError as exc:
            mismatch = certificate_mismatch(endpoint, exc)
            if mismatch is None:
                raise
            raise mismatch from None
        return runspace

    @staticmethod
    def _key(endpoint: Endpoint) -> tuple[str, str, int, str]:
        return (endpoint.host.lower(), endpoint.address, endpoint.port, endpoint.credential)

    def _get(self, endpoint: Endpoint) -> _Pool:
        """The host's pool, opened on first use. Activities that need the same host at once
        wait for one opening (each opening its own and closing all but one cost a shell and
        an NTLM logon per extra activity: seen as 2 shells on DC1 in `make bench`)."""
        key = self._key(endpoint)
        with self._guard:
            pool = self._pools.get(key)
            opening = self._opening.setdefault(key, threading.Lock())
        if pool is not None:
            return pool
        with opening:
            with self._guard:
                pool = self._pools.get(key)
            if pool is not None:
                return pool
            pool = self._open(endpoint)
            with self._guard:
                self._pools[key] = pool
            return pool

    def powershell_version(self, endpoint: Endpoint) -> str | None:
        """``PSVersionTable.PSVersion`` as the host announced it when the pool opened (PSRP
        APPLICATION_PRIVATE_DATA); None when it sent none."""
        pool = self._get(endpoint)
        data = getattr(pool.runspace.application_private_data, "data", None)
        table = data.get("PSVersionTable") if isinstance(data, dict) else None
        version = table.get("PSVersion") if isinstance(table, dict) else None
        return None if version is None else str(version)

    def logged_on_as(self, endpoint: Endpoint) -> str | None:
        """The lab credential the host's open pool logged on with (the bootstrap credential
        until the host is joined, else ``endpoint.credential``); None without an open pool."""
        with self._guard:
            pool = self._pools.get(self._key(endpoint))
        return None if pool is None else pool.credential

    def discard(self, endpoint: Endpoint) -> None:
        """Forget the host's pool (after a failure or a reboot); the next call reopens."""
        with self._guard:
            pool = self._pools.pop(self._key(endpoint), None)
        if pool is not None:
            self._on_open(endpoint.host, -1)
            self._close_quietly(pool)
            log.info("winrm session discarded", host=endpoint.host)

    def _close_quietly(self, pool: _Pool) -> None:
        with contextlib.suppress(Exception):
            pool.runspace.close()

    def close(self) -> None:
        with self._guard:
            pools, self._pools = list(self._pools.items()), {}
        for _, pool in pools:
            self._on_open(pool.host, -1)
            self._close_quietly(pool)

    # -- running pipelines ----------------------------------------------------------------
    def run(
        self,
        endpoint: Endpoint,
        pipeline: Pipeline,
        *,
        heartbeat: Callable[[], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
        poll_seconds: int = 5,
    ) -> RunResult:
        """Run a pipeline on the host; raise a classified RemoteError on any failure.

        A dead session (host rebooted, shell gone, HTTP connection and its NTLM context
        closed after idling, a listener restarted with other credentials) is rebuilt once
        before giving up, when the failure shows the request never ran: an unknown shell, or
        HTTP 400/401 on a reused pool (the credential is looked up again on reopening). A dropped
        connection or a read timeout is left to the caller's retry (the command may have run,
        and every step probes before it acts). Within :data:`POST_REBOOT_LOGON_WINDOW` of a
        reboot the pool saw (a refused or cut connection, the shell-not-found fault) or was
        told of (:meth:`note_reboot`), an HTTP 401 is the host still starting: the logon is
        tried again every :data:`LOGON_RETRY_SECONDS` until it works or the window ends.
        """
        description = pipeline.describe()
        attempt = 0
        while True:
            attempt += 1
            with self._guard:
                reused = self._key(endpoint) in self._pools
            try:
                pool = self._get(endpoint)
                started = time.monotonic()
                _acquire(pool, endpoint, description, heartbeat, cancelled, poll_seconds)
                try:
                    result = self._invoke(pool, endpoint, pipeline, heartbeat, cancelled,
                                          poll_seconds)
                finally:
                    pool.lock.release()
                self._on_request(endpoint.host, "ok")
                log.debug("remote command", host=endpoint.host, command=description,
                          ms=round((time.monotonic() - started) * 1000, 1))
                return result
            except AuthenticationFailed as exc:
                if self._starting(endpoint.host):
                    self._on_request(endpoint.host, "transient")
                    self._wait_for_logon(endpoint, exc, heartbeat, cancelled)
                    continue
                self._on_request(endpoint.host, "error")
                raise
            except RemoteError as exc:
                self._on_request(endpoint.host, "error" if not exc.retryable else "transient")
                raise
            except WSManFaultError as exc:
                self.discard(endpoint)
                if exc.code == _UNKNOWN_SHELL:
                    self.note_reboot(endpoint.host)  # the shell's boot has ended
                    if attempt == 1:
                        continue
                self._on_request(endpoint.host, "transient")
                raise TransientRemoteError(endpoint.host, description, str(exc)) from None
            except Exception as exc:
                self.discard(endpoint)
                if isinstance(exc, requests.exceptions.ConnectionError):
                    self.note_reboot(endpoint.host)  # refused or cut: going down or still down
                if attempt == 1 and reused and _not_delivered(exc):
                    continue
                error = _transport_error(endpoint, description, exc,
                                         self._connection_timeout)
                self._on_request(endpoint.host, "transient" if error.retryable else "error")
                raise error from None

    def _wait_for_logon(
        self, endpoint: Endpoint, error: RemoteError,
        heartbeat: Callable[[], None] | None, cancelled: Callable[[], bool] | None,
    ) -> None:
        """Wait before logging on again to a host that refused a logon while starting."""
        log.info("winrm logon refused while the host starts; retrying", host=endpoint.host,
                 credential=endpoint.credential)
        if heartbeat is not None:
            heartbeat()
        if cancelled is not None and cancelled():
            raise error
        time.sleep(self._logon_retry)

    def _invoke(
        self, pool: _Pool, endpoint: Endpoint, pipeline: Pipeline,
        heartbeat: Callable[[], None] | None, cancelled: Callable[[], bool] | None,
        poll_seconds: int,
    ) -> RunResult:
        ps = PowerShell(pool.runspace)
        self._build(pool, ps, pipeline)
        ps.begin_invoke()
        while ps.state == PSInvocationState.RUNNING:
            if cancelled is not None and cancelled():
                ps.stop()
                raise TransientRemoteError(endpoint.host, pipeline.describe(), "cancelled")
            ps.poll_invoke(timeout=poll_seconds)
            # only while it still runs: a quick command sends no heartbeat, so it cannot use
            # up the SDK's throttle window ahead of a step's own (detailed) heartbeat
            if heartbeat is not None and ps.state == PSInvocationState.RUNNING:
                heartbeat()
        ps.end_invoke()
        return self._result(ps, endpoint, pipeline)

    def _result(self, ps: PowerShell, endpoint: Endpoint, pipeline: Pipeline) -> RunResult:
        # pypsrp 0.9 leaves had_errors False for non-terminating errors: read the stream too.
        if ps.had_errors or ps.streams.error:
            record = ps.streams.error[0] if ps.streams.error else None
            message = str(record) if record is not None else "the pipeline failed"
            error_id = getattr(record, "fq_error", "") or ""
            raise classify_message(endpoint.host, pipeline.describe(), message, error_id,
                                   category=_category_name(record),
                                   exception_types=_exception_types(record))
        warnings = [str(getattr(w, "message", w)) for w in ps.streams.warning]
        return RunResult(output=[to_plain(o) for o in ps.output], warnings=warnings)

    def _build(self, pool: _Pool, ps: PowerShell, pipeline: Pipeline) -> None:
        for item in pipeline.commands:
            if isinstance(item, Script):
                ps.add_script(_script_text(item.name))
                cmdlet = ""
            else:
                ps.add_cmdlet(item.cmdlet)
                cmdlet = item.cmdlet
            for name, value in item.parameters.items():
                self._add_parameter(pool, ps, cmdlet, name, value)

    def _add_parameter(
        self, pool: _Pool, ps: PowerShell, cmdlet: str, name: str, value: Any
    ) -> None:
        if isinstance(value, Switch):
            if value.value:
                ps.add_parameter(name)
            else:
                ps.add_parameter(name, False)
            return
        ps.add_parameter(name, self._value(pool, cmdlet, name, value))

    def _value(self, pool: _Pool, cmdlet: str, name: str, value: Any) -> Any:
        if isinstance(value, CredentialRef):
            if not pool.keys_exchanged:
                pool.runspace.exchange_keys()
                pool.keys_exchanged = True
            cred = self._credentials(value.name)
            return PSCredential(  # type: ignore[no-untyped-call]
                username=cred.username, password=cred.password.value
            )
        if isinstance(value, bool | str | float) or value is None:
            return value
        if isinstance(value, int):
            return _int_value(self._param_type(cmdlet, name), value)
        if isinstance(value, list | tuple):
            return [self._value(pool, cmdlet, name, v) for v in value]
        if isinstance(value, dict):
            return {k: self._value(pool, cmdlet, name, v) for k, v in value.items()}
        return str(value)


def _int_value(declared: str | None, value: int) -> Any:
    """An int as the .NET type the parameter declares (a new element for every send)."""
    base = (declared or "").removeprefix("System.").removesuffix("[]")
    tag = _INT_TAGS.get(base)
    if tag is None and value not in _INT32:
        tag = "I64"
    if tag is None:
        return value
    element = ET.Element(tag)
    element.text = str(value)
    return element


def _not_delivered(exc: Exception) -> bool:
    """The host could not read the request (its NTLM context for the connection is gone), so it
    cannot have run. pypsrp raises every HTTP 401 as AuthenticationError: on a reused pool that
    is a listener that no longer knows the pool's logon (a restarted WinRM service, a
    simulated fleet restarted on the same port with a new password), and the pool is reopened
    with the credential looked up again. A dropped connection is not retried here: the
    command may have run."""
    if isinstance(exc, AuthenticationError):
        return True
    return isinstance(exc, WinRMTransportError) and exc.code in (400, 401)


# OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH / X509_V_ERR_IP_ADDRESS_MISMATCH
_NAME_MISMATCH = (62, 64)


def _verify_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The ssl verification error inside requests' and urllib3's wrappers (args, reason,
    cause and context), if any."""
    stack: list[BaseException] = [exc]
    seen: set[int] = set()
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        linked = [*current.args, getattr(current, "reason", None), current.__cause__,
                  current.__context__]
        stack += [item for item in linked if isinstance(item, BaseException)]
    return None


def certificate_mismatch(endpoint: Endpoint, exc: BaseException) -> CertificateMismatch | None:
    """The clear error for an HTTPS listener whose certificate does not name ``address``
    (OpenSSL's verify code, never its message text); None for any other TLS failure."""
    error = _verify_error(exc)
    if error is None or error.verify_code not in _NAME_MISMATCH:
        return None
    kind = "IP address" if _is_ip(endpoint.address) else "name"
    return CertificateMismatch(
        endpoint.host, "",
        f"the HTTPS certificate at {endpoint.address}:{endpoint.port} has no subject "
        f"alternative name matching the {kind} {endpoint.address!r}")


def _is_ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def _refused(exc: BaseException) -> bool:
    """Whether a connection error was the host refusing the TCP connection (by the socket
    error in its cause chain, not by its text)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            return True
        nested = [a for a in getattr(current, "args", ()) if isinstance(a, BaseException)]
        reason = getattr(current, "reason", None)
        current = (current.__cause__ or current.__context__
                   or (reason if isinstance(reason, BaseException) else None)
                   or (nested[0] if nested else None))
    return False


def _transport_error(endpoint: Endpoint, description: str, exc: Exception,
                     connect_timeout: float = CONNECT_TIMEOUT) -> RemoteError:
    host = endpoint.host
    mismatch = certificate_mismatch(endpoint, exc)
    if mismatch is not None:
        return mismatch
    if isinstance(exc, AuthenticationError):
        return AuthenticationFailed(host, "", "the host rejected the credentials (HTTP 401)")
    if isinstance(exc, requests.exceptions.ConnectTimeout):  # nothing answered the SYN
        return HostUnreachable(host, description, f"no answer to a connection to "
                               f"{endpoint.address}:{endpoint.port} (connect timeout "
                               f"{connect_timeout:g} s)")
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = "connection refused" if _refused(exc) else "connection failed"
        return HostUnreachable(host, description, f"{reason} at {endpoint.address}:{endpoint.port}")
    if isinstance(exc, requests.exceptions.Timeout):
        return HostUnreachable(host, description, "the host did not answer in time")
    if isinstance(exc, WinRMTransportError):
        if exc.code in (502, 503):
            return HostRebooting(host, description, f"HTTP {exc.code} from WinRM")
        return TransientRemoteError(host, description, f"WinRM HTTP {exc.code}")
    return TransientRemoteError(host, description, f"{type(exc).__name__}: {exc}")


# System.Management.Automation.ErrorCategory, by value (pypsrp gives the number)
_CATEGORIES = (
    "NotSpecified", "OpenError", "CloseError", "DeviceError", "DeadlockDetected",
    "InvalidArgument", "InvalidData", "InvalidOperation", "InvalidResult", "InvalidType",
    "MetadataError", "NotImplemented", "NotInstalled", "ObjectNotFound", "OperationStopped",
    "OperationTimeout", "SyntaxError", "ParserError", "PermissionDenied", "ResourceBusy",
    "ResourceExists", "ResourceUnavailable", "ReadError", "WriteError", "FromStdErr",
    "SecurityError", "ProtocolError", "ConnectionError", "AuthenticationError",
    "LimitsExceeded", "QuotaExceeded", "NotEnabled",
)


def _category_name(record: Any) -> str:
    """The ErrorCategory name of a pypsrp ErrorRecord ('' when it has none)."""
    value = getattr(record, "category", None)
    try:
        return _CATEGORIES[int(value)] if value is not None else ""
    except (TypeError, ValueError, IndexError):
        return ""


def _exception_types(record: Any) -> tuple[str, ...]:
    """The .NET type names of a pypsrp ErrorRecord's exception, most derived first."""
    exception = getattr(record, "exception", None)
    names = [str(t) for t in (getattr(exception, "types", None) or [])]
    reason = getattr(record, "reason", None)  # the short type name in the category info
    if not names and reason:
        names.append(str(reason))
    return tuple(n for n in names if n not in ("System.Exception", "System.Object",
                                               "System.SystemException"))


def _acquire(pool: _Pool, endpoint: Endpoint, description: str,
             heartbeat: Callable[[], None] | None, cancelled: Callable[[], bool] | None,
             poll_seconds: int) -> None:
    """Take the host's runspace lock, heartbeating every ``poll_seconds`` while another
    pipeline holds it: a step queued behind a long command on the same host (a golden-disk
    copy) stays alive instead of running past its heartbeat timeout, and a cancellation
    that arrives while it waits ends the wait (nothing was sent)."""
    while not pool.lock.acquire(timeout=poll_seconds):
        if cancelled is not None and cancelled():
            raise TransientRemoteError(endpoint.host, description, "cancelled")
        if heartbeat is not None:
            heartbeat()
