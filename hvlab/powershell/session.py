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

from hvlab.powershell.command import CredentialRef, Pipeline, Script, Switch
from hvlab.powershell.credentials import ResolvedCredential
from hvlab.powershell.errors import (
    AuthenticationFailed,
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


@dataclass(frozen=True)
class Endpoint:
    """How to reach one host: address, WinRM transport and which lab credential to use."""

    host: str
    address: str
    port: int
    scheme: Literal["http", "https"] = "https"
    auth: str = "kerberos"
    credential: str = ""
    validate_certificate: bool = True
    insecure: bool = False

    def check_transport(self) -> None:
        """Refuse Basic or plain HTTP to a non-loopback address unless marked insecure."""
        if self.insecure or _is_loopback(self.address):
            return
        if self.scheme == "http" and self.auth not in ("kerberos", "ntlm", "negotiate"):
            raise InsecureTransport(self.host, "", f"{self.auth} over plain HTTP is refused")
        if self.auth == "basic" and self.scheme == "http":
            raise InsecureTransport(self.host, "", "Basic authentication over HTTP is refused")


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
    def __init__(self, runspace: RunspacePool, host: str) -> None:
        self.runspace = runspace
        self.host = host
        self.keys_exchanged = False
        self.lock = threading.Lock()


class SessionPool:
    """The worker's PSRP sessions, keyed by (host, credential)."""

    def __init__(
        self,
        credentials: CredentialLookup,
        param_type: ParamType | None = None,
        *,
        operation_timeout: int = 20,
        connection_timeout: int = 10,
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
        endpoint.check_transport()
        cred = self._credentials(endpoint.credential)
        wsman = WSMan(
            endpoint.address, port=endpoint.port, ssl=endpoint.scheme == "https",
            username=cred.username, password=cred.password.value,
            auth="negotiate" if endpoint.auth == "kerberos" else endpoint.auth,
            cert_validation=endpoint.validate_certificate,
            connection_timeout=self._connection_timeout,
            operation_timeout=self._operation_timeout,
            read_timeout=self._operation_timeout + 10, no_proxy=True,
        )
        runspace = RunspacePool(wsman)
        try:
            runspace.open()
        except AuthenticationError:
            raise AuthenticationFailed(
                endpoint.host, "", f"the host rejected the credentials of {cred.username} "
                f"(lab credential '{endpoint.credential}', HTTP 401)") from None
        self._on_open(endpoint.host, 1)
        log.info("winrm session opened", host=endpoint.host, address=endpoint.address,
                 port=endpoint.port, scheme=endpoint.scheme, auth=endpoint.auth,
                 credential=endpoint.credential)
        return _Pool(runspace, endpoint.host)

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
                with pool.lock:
                    result = self._invoke(pool, endpoint, pipeline, heartbeat, cancelled,
                                          poll_seconds)
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
                error = _transport_error(endpoint, description, exc)
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
            raise classify_message(endpoint.host, pipeline.describe(), message, error_id)
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


def _transport_error(endpoint: Endpoint, description: str, exc: Exception) -> RemoteError:
    host = endpoint.host
    if isinstance(exc, AuthenticationError):
        return AuthenticationFailed(host, "", "the host rejected the credentials (HTTP 401)")
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = "connection refused" if "refused" in str(exc).lower() else "connection failed"
        return HostUnreachable(host, description, f"{reason} at {endpoint.address}:{endpoint.port}")
    if isinstance(exc, requests.exceptions.Timeout):
        return HostUnreachable(host, description, "the host did not answer in time")
    if isinstance(exc, WinRMTransportError):
        if exc.code in (502, 503):
            return HostRebooting(host, description, f"HTTP {exc.code} from WinRM")
        return TransientRemoteError(host, description, f"WinRM HTTP {exc.code}")
    return TransientRemoteError(host, description, f"{type(exc).__name__}: {exc}")
