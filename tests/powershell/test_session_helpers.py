"""The session module's pure helpers: transport policy, int typing, output conversion, the
mapping of transport exceptions to RemoteErrors (constructed exceptions, no connection)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
import requests
from pypsrp.complex_objects import GenericComplexObject
from pypsrp.exceptions import AuthenticationError, WinRMTransportError

from hvlab.powershell.errors import (
    AuthenticationFailed,
    HostRebooting,
    HostUnreachable,
    InsecureTransport,
    TransientRemoteError,
)
from hvlab.powershell.session import (
    Endpoint,
    RunResult,
    _int_value,
    _not_delivered,
    _script_text,
    _transport_error,
    catalog_param_type,
    to_plain,
)

REMOTE = Endpoint(host="SVR1", address="192.168.1.110", port=5985, scheme="http", auth="ntlm",
                  credential="x")


def ep(address: str = "192.168.1.110", scheme: str = "http", auth: str = "ntlm",
       insecure: bool = False) -> Endpoint:
    return Endpoint(host="SVR1", address=address, port=5985, scheme=scheme,  # type: ignore[arg-type]
                    auth=auth, credential="x", insecure=insecure)


# -- transport policy ---------------------------------------------------------------------------

@pytest.mark.parametrize("auth", ["kerberos", "ntlm", "negotiate"])
def test_encrypting_auth_over_http_to_a_remote_host_is_allowed(auth: str) -> None:
    """Kerberos, NTLM and Negotiate encrypt the messages, so plain HTTP is allowed."""
    ep(auth=auth).check_transport()


@pytest.mark.parametrize("auth", ["basic", "credssp", "certificate"])
def test_other_auth_over_http_to_a_remote_host_names_the_auth(auth: str) -> None:
    """Any other auth over plain HTTP to a remote host is refused, naming the auth and host."""
    with pytest.raises(InsecureTransport) as caught:
        ep(auth=auth).check_transport()
    assert caught.value.host_message == f"{auth} over plain HTTP is refused"
    assert caught.value.host == "SVR1" and caught.value.command == ""
    assert "use HTTPS" in str(caught.value)


@pytest.mark.parametrize("address", ["localhost", "127.0.0.1", "127.0.0.11", "::1"])
def test_loopback_addresses_are_exempt(address: str) -> None:
    """Loopback (the simulator) may use Basic over HTTP."""
    ep(address=address, auth="basic").check_transport()


@pytest.mark.parametrize("address", ["svr1.kosa.vm", "localhost.evil", "10.0.0.1"])
def test_names_and_other_addresses_are_not_loopback(address: str) -> None:
    """A host name other than 'localhost' (or a non-loopback IP) gets the policy applied."""
    with pytest.raises(InsecureTransport):
        ep(address=address, auth="basic").check_transport()


def test_https_allows_basic_and_insecure_marking_allows_credssp() -> None:
    """HTTPS protects Basic; a host marked insecure may use CredSSP over HTTP (never Basic)."""
    ep(scheme="https", auth="basic").check_transport()
    ep(auth="credssp", insecure=True).check_transport()


# -- ints ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("declared", "tag"), [
    ("Int64", "I64"), ("System.Int64", "I64"), ("System.Int64[]", "I64"), ("Int64[]", "I64"),
    ("UInt64", "U64"), ("System.UInt32", "U32"), ("UInt16", "U16"), ("System.Int16", "I16"),
])
def test_declared_int_types_get_their_tag(declared: str, tag: str) -> None:
    """An int for a parameter declared Int64/UInt64/UInt32/UInt16/Int16 (scalar or array, with
    or without 'System.') goes out as that CLIXML element."""
    element = _int_value(declared, 5)
    assert isinstance(element, ET.Element)
    assert element.tag == tag
    assert element.text == "5"


def test_each_int_value_is_a_new_element() -> None:
    """Every send gets its own element (pypsrp consumes it)."""
    assert _int_value("Int64", 1) is not _int_value("Int64", 1)


@pytest.mark.parametrize("declared", [None, "", "Int32", "System.Int32", "String"])
def test_int32_range_stays_a_plain_int(declared: str | None) -> None:
    """An int within Int32 for an undeclared or Int32 parameter is passed as is."""
    for value in (0, 2**31 - 1, -(2**31)):
        assert _int_value(declared, value) == value
        assert type(_int_value(declared, value)) is int


@pytest.mark.parametrize("value", [2**31, -(2**31) - 1, 4 * 1024**3])
def test_ints_beyond_int32_go_out_as_int64(value: int) -> None:
    """An int outside Int32 with no wider declared type is sent as Int64, not overflowed."""
    element = _int_value(None, value)
    assert isinstance(element, ET.Element)
    assert (element.tag, element.text) == ("I64", str(value))
    assert _int_value("Int32", value).tag == "I64"


def test_catalog_declares_parameter_types() -> None:
    """The catalogue gives New-VM -MemoryStartupBytes as Int64; no cmdlet, an unknown cmdlet
    or an unknown parameter give None."""
    assert catalog_param_type("New-VM", "MemoryStartupBytes") == "Int64"
    assert catalog_param_type("New-VM", "Generation") is not None
    assert catalog_param_type("", "MemoryStartupBytes") is None
    assert catalog_param_type("Get-Nothing", "Name") is None
    assert catalog_param_type("New-VM", "NoSuchParameter") is None


def test_script_text_is_the_packaged_file() -> None:
    """A script name reads hvlab/powershell/scripts/<name>.ps1, header first."""
    text = _script_text("host/test-port")
    assert text.startswith("# hvlab-script: host/test-port@1\n")
    assert "Test-NetConnection" in text


# -- output --------------------------------------------------------------------------------------

def obj(adapted: dict | None = None, extended: dict | None = None,
        to_string: str | None = None) -> GenericComplexObject:
    value = GenericComplexObject()
    value.adapted_properties = adapted or {}
    value.extended_properties = extended or {}
    value.to_string = to_string
    return value


def test_objects_become_dicts_of_plain_values() -> None:
    """Adapted and extended properties merge (extended win) into a dict, recursively."""
    state = obj(to_string="Running")
    vm = obj({"Name": "vm1", "State": state, "Size": 1}, {"Size": 2, "Tags": ("a", obj())})
    assert to_plain(vm) == {"Name": "vm1", "State": "Running", "Size": 2, "Tags": ["a", None]}


def test_property_less_objects_become_their_text_or_none() -> None:
    """An enum-like object without properties becomes its string; without one, None."""
    assert to_plain(obj(to_string="Off")) == "Off"
    assert to_plain(obj(to_string="")) == ""
    assert to_plain(obj()) is None


def test_hashtables_and_lists_convert_inside() -> None:
    """Hashtable keys become strings and nested values are converted; scalars pass through."""
    assert to_plain({1: [obj(to_string="x")], "k": {"n": obj({"a": 1})}}) == {
        "1": ["x"], "k": {"n": {"a": 1}}}
    assert to_plain(5) == 5 and to_plain("s") == "s" and to_plain(None) is None


def test_run_result_warnings_default_to_a_new_list() -> None:
    """A RunResult without warnings has its own empty list."""
    a, b = RunResult(output=[]), RunResult(output=[])
    a.warnings.append("w")
    assert b.warnings == []


# -- transport failures -----------------------------------------------------------------------------

@pytest.mark.parametrize(("code", "expected"), [(400, True), (401, True), (500, False),
                                                (502, False), (503, False)])
def test_only_400_and_401_mean_not_delivered(code: int, expected: bool) -> None:
    """HTTP 400/401 show the host could not read the request; other statuses do not."""
    assert _not_delivered(WinRMTransportError("http", code, "")) is expected


def test_other_exceptions_are_not_known_undelivered() -> None:
    """A dropped connection or any other exception may have run the command."""
    assert not _not_delivered(requests.exceptions.ConnectionError("reset"))
    assert not _not_delivered(RuntimeError("401"))


def test_authentication_error_is_not_delivered() -> None:
    """pypsrp raises every HTTP 401 as AuthenticationError: the listener refused the request
    before reading it (a reused pool then reopens, see test_fleet_restart.py)."""
    assert _not_delivered(AuthenticationError("401"))


@pytest.mark.parametrize("code", [502, 503])
def test_gateway_errors_mean_the_host_is_rebooting(code: int) -> None:
    """WinRM answering 502/503 is a host on its way down or up: retryable HostRebooting."""
    error = _transport_error(REMOTE, "Get-VM", WinRMTransportError("http", code, ""))
    assert type(error) is HostRebooting and error.retryable
    assert (error.host, error.command, error.host_message) == (
        "SVR1", "Get-VM", f"HTTP {code} from WinRM")


@pytest.mark.parametrize("code", [400, 500, 504])
def test_other_http_statuses_are_transient(code: int) -> None:
    """Other WinRM HTTP statuses are a retryable TransientRemoteError naming the status."""
    error = _transport_error(REMOTE, "Get-VM", WinRMTransportError("http", code, ""))
    assert type(error) is TransientRemoteError
    assert (error.host, error.command, error.host_message) == (
        "SVR1", "Get-VM", f"WinRM HTTP {code}")


def test_rejected_credentials_are_permanent() -> None:
    """A 401 on a command is AuthenticationFailed without the command, not retried."""
    error = _transport_error(REMOTE, "Get-VM", AuthenticationError("x"))
    assert type(error) is AuthenticationFailed and not error.retryable
    assert (error.host, error.command) == ("SVR1", "")
    assert error.host_message == "the host rejected the credentials (HTTP 401)"


def test_connection_errors_say_refused_or_failed() -> None:
    """Connection errors are HostUnreachable at address:port, 'refused' when the socket error
    in the cause chain is ConnectionRefusedError (not by the error's text)."""
    refused = _transport_error(REMOTE, "Get-VM", requests.exceptions.ConnectionError(
        ConnectionRefusedError(111, "Verbindung verweigert")))
    worded = _transport_error(REMOTE, "Get-VM", requests.exceptions.ConnectionError(
        "[Errno 111] Connection Refused"))
    assert worded.host_message == "connection failed at 192.168.1.110:5985"
    failed = _transport_error(REMOTE, "Get-VM", requests.exceptions.ConnectionError("reset"))
    assert type(refused) is HostUnreachable and type(failed) is HostUnreachable
    assert refused.host_message == "connection refused at 192.168.1.110:5985"
    assert failed.host_message == "connection failed at 192.168.1.110:5985"
    assert (refused.host, refused.command) == ("SVR1", "Get-VM")
    assert (failed.host, failed.command) == ("SVR1", "Get-VM")


def test_read_timeout_is_unreachable() -> None:
    """A host that accepted the connection but did not answer in time is HostUnreachable."""
    error = _transport_error(REMOTE, "Get-VM", requests.exceptions.ReadTimeout("slow"))
    assert type(error) is HostUnreachable and error.retryable
    assert (error.host, error.command, error.host_message) == (
        "SVR1", "Get-VM", "the host did not answer in time")


def test_anything_else_is_transient_with_its_type() -> None:
    """An unexpected exception is a retryable TransientRemoteError naming its type and text."""
    error = _transport_error(REMOTE, "Get-VM", ValueError("boom"))
    assert type(error) is TransientRemoteError
    assert error.host_message == "ValueError: boom"
    assert error.command == "Get-VM" and error.host == "SVR1"
