"""The simulated WinRM/PSRP listener driven by the real, unmodified pypsrp 0.9.1 client."""

from __future__ import annotations

import os
import threading
import time
import types
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from psrpcore import PowerShell as CorePowerShell
from psrpcore._crypto import PSRemotingCrypto
from psrpcore.types import PSEnumBase, PSNoteProperty, PSObject, PSType, deserialize
from pypsrp.complex_objects import (
    ApartmentState,
    HostInfo,
    Pipeline,
    PSCredential,
    PSInvocationState,
    RemoteStreamOptions,
)
from pypsrp.exceptions import AuthenticationError, WinRMTransportError, WSManFaultError
from pypsrp.messages import CreatePipeline, MessageType
from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.serializer import Serializer
from pypsrp.wsman import WSMan

from simulator.protocol import (
    CommandCall,
    Invocation,
    PipelineContext,
    TerminatingError,
    credential_parts,
)
from simulator.winrm import FaultEffect, FaultHooks, FaultRule, WinRMServer
from simulator.winrm.fastpipe import parse_create_pipeline
from simulator.winrm.records import plain
from simulator.winrm.soap import INTERNAL_ERROR, OPERATION_TIMEDOUT, SHELL_NOT_FOUND

USERS = {"Administrator": "Pa:ss w0rd!", "svc": "S3cret"}
PASSWORD = USERS["Administrator"]
WAIT = 10.0  # upper bound for Event waits; never a synchronisation sleep


@PSType(["Sim.Test.VMState", "System.Enum", "System.ValueType", "System.Object"], rehydrate=False)
class VMState(PSEnumBase):
    """An enum the way Hyper-V's VMState is serialized."""

    Running = 2
    Off = 3


@PSType(
    ["Sim.Test.VirtualMachine", "Sim.Test.VirtualMachineBase", "System.Object"],
    adapted_properties=[
        PSNoteProperty("Name"),
        PSNoteProperty("State"),
        PSNoteProperty("MemoryStartup"),
    ],
    skip_inheritance=True,
    rehydrate=False,
)
class VirtualMachine(PSObject):
    """A typed .NET-like object (adapted properties, real type names)."""


class TestHandler:
    """Tiny command set: echo, typed output, errors, slow and stoppable commands."""

    __test__ = False

    def __init__(self) -> None:
        self.calls: list[Invocation] = []
        self.started = threading.Event()
        self.gate = threading.Event()
        self.stopped = threading.Event()
        self.called = threading.Event()
        self.seen: dict[str, Any] = {}

    def invoke(self, invocation: Invocation, ctx: PipelineContext) -> None:
        self.calls.append(invocation)
        self.called.set()
        for statement in invocation.statements:
            for cmd in statement:
                method = getattr(self, "cmd_" + cmd.text.replace("-", "_"), None)
                if method is None:
                    raise TerminatingError(
                        f"The term '{cmd.text}' is not recognized as the name of a cmdlet.",
                        "CommandNotFoundException",
                        "ObjectNotFound",
                        "System.Management.Automation.CommandNotFoundException",
                        cmd.text,
                    )
                method(cmd, invocation, ctx)

    def cmd_Get_Echo(self, cmd: CommandCall, inv: Invocation, ctx: PipelineContext) -> None:
        for param in cmd.parameters:
            ctx.output(param.value)
        for item in inv.input:
            ctx.output(item)

    def cmd_Get_Typed(self, cmd: CommandCall, inv: Invocation, ctx: PipelineContext) -> None:
        ctx.output(VirtualMachine(Name="vm1", State=VMState.Off, MemoryStartup=4 * 1024**3))
        ctx.output({"Key": "Value"})

    def cmd_Write_Soft(self, cmd: CommandCall, inv: Invocation, ctx: PipelineContext) -> None:
        ctx.error(
            'Unable to find a VM with name "nope".',
            "InvalidParameter,GetVM",
            "ObjectNotFound",
            "nope",
        )
        ctx.warning("careful")
        ctx.progress("Working", 50, "half way")
        ctx.output("after")

    def cmd_Invoke_Fail(self, cmd: CommandCall, inv: Invocation, ctx: PipelineContext) -> None:
        raise TerminatingError(
            "A virtual machine named 'vm1' already exists.",
            "ObjectAlreadyExists,NewVM",
            "ResourceExists",
            "Microsoft.HyperV.PowerShell.VirtualizationException",
            "vm1",
        )

    def cmd_Invoke_Crash(self, cmd: CommandCall, inv: Invocation, ctx: PipelineContext) -> None:
        raise ValueError("kaboom")

    def cmd_Wait_Gate(self, cmd: CommandCall, inv: Invocation, ctx: PipelineContext) -> None:
        self.started.set()
        self.gate.wait(WAIT)
        ctx.output("done")

    def cmd_Wait_Stop(self, cmd: CommandCall, inv: Invocation, ctx: PipelineContext) -> None:
        self.started.set()
        self.seen["sleep_completed"] = ctx.sleep(WAIT)
        self.seen["stopping"] = ctx.stopping()
        self.stopped.set()

    def cmd_Set_Cred(self, cmd: CommandCall, inv: Invocation, ctx: PipelineContext) -> None:
        self.seen["credential"] = credential_parts(cmd.named()["Credential"])
        ctx.output("ok")

    def cmd_Get_Big(self, cmd: CommandCall, inv: Invocation, ctx: PipelineContext) -> None:
        ctx.output("x" * int(cmd.named()["Size"]))


def make_server(address: str, **kwargs: Any) -> tuple[WinRMServer, TestHandler]:
    handler = TestHandler()
    kwargs.setdefault("max_receive_wait", 0.3)
    server = WinRMServer(address, 0, "HV01", handler, USERS, **kwargs)
    server.start()
    return server, handler


def client(server: WinRMServer, **kwargs: Any) -> WSMan:
    """A pypsrp connection; NTLM with message encryption unless overridden."""
    options: dict[str, Any] = {
        "port": server.port,
        "ssl": False,
        "auth": "ntlm",
        "username": "LAB\\administrator",
        "password": PASSWORD,
        "no_proxy": True,
        "connection_timeout": 5,
        "read_timeout": 10,
    }
    options.update(kwargs)
    return WSMan(server.address, **options)


def run(pool: RunspacePool, name: str, **params: Any) -> PowerShell:
    ps = PowerShell(pool)
    ps.add_cmdlet(name)
    for key, value in params.items():
        ps.add_parameter(key, value)
    ps.invoke()
    return ps


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[WinRMServer, TestHandler]]:
    server, handler = make_server("127.0.0.2")
    yield server, handler
    server.stop()


@pytest.fixture
def server(served: tuple[WinRMServer, TestHandler]) -> WinRMServer:
    return served[0]


@pytest.fixture
def handler(served: tuple[WinRMServer, TestHandler]) -> TestHandler:
    served[1].calls.clear()
    return served[1]


@pytest.fixture
def pool(server: WinRMServer) -> Iterator[RunspacePool]:
    with RunspacePool(client(server)) as rp:
        yield rp


def test_ntlm_with_encryption_round_trip(server: WinRMServer, handler: TestHandler) -> None:
    connections = server.connections_accepted
    with RunspacePool(client(server)) as pool:
        ps = PowerShell(pool)
        ps.add_cmdlet("Get-Echo").add_parameter("Name", "vm1").add_parameter("Force")
        ps.add_parameter("Count", 3)
        assert ps.invoke() == ["vm1", None, 3]
        assert not ps.had_errors
        for i in range(3):
            assert run(pool, "Get-Echo", I=i).output == [i]
    assert server.connections_accepted == connections + 1  # HTTP/1.1 keep-alive, one NTLM
    call = handler.calls[-4]
    assert call.host == "HV01"
    assert call.username == "Administrator"  # "LAB\administrator" matched case-insensitively
    assert call.statements[0][0].named() == {"Name": "vm1", "Force": None, "Count": 3}
    # NTLM without encryption is refused when Basic/unencrypted is not allowed.
    strict, _ = make_server("127.0.0.3", allow_basic=False)
    try:
        with pytest.raises(AuthenticationError):
            RunspacePool(client(strict, encryption="never")).open()
        with RunspacePool(client(strict, auth="negotiate", username="svc", password="S3cret")) as p:
            assert run(p, "Get-Echo", Name="spnego").output == ["spnego"]
    finally:
        strict.stop()


def test_basic_on_loopback(server: WinRMServer, handler: TestHandler) -> None:
    wsman = client(server, auth="basic", encryption="never", username="SVC", password="S3cret")
    with RunspacePool(wsman) as pool:
        assert run(pool, "Get-Echo", Name="basic").output == ["basic"]
    assert handler.calls[-1].username == "svc"
    no_basic, _ = make_server("127.0.0.4", allow_basic=False)
    try:
        with pytest.raises(AuthenticationError):
            RunspacePool(client(no_basic, auth="basic", encryption="never")).open()
    finally:
        no_basic.stop()
    assert not WinRMServer("0.0.0.0", 0, "HV01", TestHandler(), USERS).basic_allowed


@pytest.mark.parametrize(
    ("auth", "username", "password"),
    [("ntlm", "LAB\\Administrator", "wrong"), ("ntlm", "nobody", PASSWORD), ("basic", "svc", "x")],
)
def test_wrong_credentials_are_401(
    server: WinRMServer, auth: str, username: str, password: str
) -> None:
    extra = {"encryption": "never"} if auth == "basic" else {}
    wsman = client(server, auth=auth, username=username, password=password, **extra)
    with pytest.raises(AuthenticationError):
        RunspacePool(wsman).open()


def test_multiple_statements_and_pipeline_input(pool: RunspacePool, handler: TestHandler) -> None:
    ps = PowerShell(pool)
    ps.add_cmdlet("Get-Echo").add_parameter("A", "one").add_statement()
    ps.add_cmdlet("Get-Echo").add_argument("positional")
    assert ps.invoke(input=["in1", "in2"]) == ["one", "in1", "in2", "positional", "in1", "in2"]
    call = handler.calls[-1]
    assert len(call.statements) == 2
    assert call.statements[1][0].parameters[0].name is None
    assert call.input == ("in1", "in2")


def test_non_terminating_error_warning_progress(pool: RunspacePool) -> None:
    ps = run(pool, "Write-Soft")
    assert ps.output == ["after"]
    assert ps.had_errors is False  # pypsrp 0.9 only sets it for a Failed pipeline
    [err] = ps.streams.error
    assert str(err) == 'Unable to find a VM with name "nope".'
    assert err.fq_error == "InvalidParameter,GetVM"
    assert err.category == 13  # ObjectNotFound
    assert err.target_name == "nope"
    assert err.message == "ObjectNotFound: (nope:String) [Write-Soft], RuntimeException"
    assert [w.message for w in ps.streams.warning] == ["careful"]
    [progress] = ps.streams.progress
    assert (progress.activity, progress.percent_complete, progress.description) == (
        "Working",
        50,
        "half way",
    )


def test_terminating_error_fails_pipeline(pool: RunspacePool) -> None:
    ps = run(pool, "Invoke-Fail")
    assert ps.state == PSInvocationState.FAILED
    assert ps.had_errors is True
    [err] = ps.streams.error
    assert str(err) == "A virtual machine named 'vm1' already exists."
    assert err.fq_error == "ObjectAlreadyExists,NewVM"
    assert err.category == 20  # ResourceExists
    assert err.reason == "VirtualizationException"
    assert err.message == "ResourceExists: (vm1:String) [Invoke-Fail], VirtualizationException"
    assert err.exception.adapted_properties["Message"] == str(err)
    assert err.exception.types[0] == "Microsoft.HyperV.PowerShell.VirtualizationException"
    unknown = run(pool, "Get-Nothing")
    assert unknown.had_errors and unknown.streams.error[0].fq_error == "CommandNotFoundException"
    crash = run(pool, "Invoke-Crash")
    assert crash.had_errors and str(crash.streams.error[0]) == "kaboom"
    # pypsrp sends every int as <I32>; one that overflows cannot be deserialized.
    overflow = run(pool, "Get-Echo", Memory=4 * 1024**3)
    assert overflow.had_errors and "2147483647" in str(overflow.streams.error[0])


def test_typed_objects_enums_and_hashtables(pool: RunspacePool) -> None:
    vm, table = run(pool, "Get-Typed").output
    assert vm.types[:2] == ["Sim.Test.VirtualMachine", "Sim.Test.VirtualMachineBase"]
    assert vm.adapted_properties["Name"] == "vm1"
    assert vm.adapted_properties["MemoryStartup"] == 4 * 1024**3  # sent as <I64>
    state = vm.adapted_properties["State"]
    assert str(state) == "Off"
    assert state.types[0] == "Sim.Test.VMState"
    assert state.property_sets == [3]
    assert table == {"Key": "Value"}


def test_long_poll_times_out_and_poll_invoke_swallows_it(
    server: WinRMServer, pool: RunspacePool, handler: TestHandler
) -> None:
    handler.started.clear()
    handler.gate.clear()
    before = server.fault_counts.get(OPERATION_TIMEDOUT, 0)
    ps = PowerShell(pool)
    ps.add_cmdlet("Wait-Gate")
    ps.begin_invoke()
    assert handler.started.wait(WAIT)
    ps.poll_invoke()  # server caps the wait at max_receive_wait (0.3 s)
    assert server.fault_counts[OPERATION_TIMEDOUT] == before + 1
    assert ps.state == PSInvocationState.RUNNING and ps.output == []
    handler.gate.set()
    assert ps.end_invoke() == ["done"]
    assert ps.state == PSInvocationState.COMPLETED
    ps.close()  # Signal Terminate: the server forgets the command
    with pytest.raises(WSManFaultError) as info:
        pool.shell.receive("stdout", command_id=str(ps.id).upper())
    assert info.value.code == SHELL_NOT_FOUND


def test_receive_honours_client_operation_timeout_and_delete_wakes_it() -> None:
    server, handler = make_server("127.0.0.8", max_receive_wait=20.0)
    try:
        pool = RunspacePool(client(server))
        pool.open()
        ps = PowerShell(pool)
        ps.add_cmdlet("Wait-Gate")
        ps.begin_invoke()
        assert handler.started.wait(WAIT)
        t0 = time.monotonic()
        ps.poll_invoke(timeout=1)  # OperationTimeout PT1S: fault after 1 s, swallowed
        assert 0.9 < time.monotonic() - t0 < 5
        assert server.fault_counts == {OPERATION_TIMEDOUT: 1}
        receiving = threading.Event()
        server.faults.callback = lambda info: receiving.set() if info.action == "Receive" else None
        with ThreadPoolExecutor(max_workers=1) as executor:
            blocked = executor.submit(ps.poll_invoke)  # would wait 20 s for output
            assert receiving.wait(WAIT)
            t0 = time.monotonic()
            client(server).delete(pool.shell.resource_uri, selector_set=pool.shell._selector_set)
            with pytest.raises(WSManFaultError) as info:
                blocked.result(timeout=WAIT)
        assert info.value.code == SHELL_NOT_FOUND
        assert time.monotonic() - t0 < 5
        handler.gate.set()
    finally:
        server.stop()


def test_pool_level_runspace_messages(pool: RunspacePool) -> None:
    pool.max_runspaces = 4  # SetMaxRunspaces -> RunspaceAvailability(True)
    assert pool.max_runspaces == 4
    assert pool.get_available_runspaces() == 4  # GetAvailableRunspaces
    pool.min_runspaces = 2
    assert pool.min_runspaces == 2


def test_stop_signals_the_handler_and_reports_stopped(
    pool: RunspacePool, handler: TestHandler
) -> None:
    handler.started.clear()
    handler.stopped.clear()
    ps = PowerShell(pool)
    ps.add_cmdlet("Wait-Stop")
    ps.begin_invoke()
    assert handler.started.wait(WAIT)
    ps.stop()
    assert handler.stopped.wait(WAIT)
    assert handler.seen["stopping"] is True
    assert handler.seen["sleep_completed"] is False
    # pypsrp does not read the final state after stop(); read it with its own WinRS layer.
    _, _, streams = pool.shell.receive("stdout", command_id=str(ps.id).upper(), timeout=5)
    states = [
        m.data.state
        for m in pool._fragmenter.defragment(streams["stdout"])
        if m.message_type == MessageType.PIPELINE_STATE
    ]
    assert states == [PSInvocationState.STOPPED]
    assert run(pool, "Get-Echo", After="stop").output == ["stop"]


def test_pscredential_password_decrypts_server_side(
    pool: RunspacePool, handler: TestHandler
) -> None:
    pool.exchange_keys()
    cred = PSCredential(username="LAB\\svc", password="S3cret pässword")
    assert run(pool, "Set-Cred", Credential=cred).output == ["ok"]
    assert handler.seen["credential"] == ("LAB\\svc", "S3cret pässword")


def test_fragmentation_with_small_envelopes(server: WinRMServer, handler: TestHandler) -> None:
    before = server.request_counts
    wsman = client(server, max_envelope_size=8192)
    with RunspacePool(wsman) as pool:
        big_in = "".join(chr(65 + i % 26) for i in range(30000))
        assert run(pool, "Get-Echo", Data=big_in).output == [big_in]
        assert run(pool, "Get-Big", Size=40000).output == ["x" * 40000]
    after = server.request_counts
    assert after["Send"] - before.get("Send", 0) >= 3  # CreatePipeline split over Sends
    assert after["Receive"] - before.get("Receive", 0) >= 10  # output split over Receives
    assert 0 < server.largest_receive_envelope <= 8192


def test_sixteen_pools_in_parallel(server: WinRMServer) -> None:
    def work(i: int) -> list[Any]:
        with RunspacePool(client(server)) as pool:
            return [run(pool, "Get-Echo", Index=i, Round=r).output for r in range(3)]

    with ThreadPoolExecutor(max_workers=16) as executor:
        results = list(executor.map(work, range(16)))
    assert results == [[[i, r] for r in range(3)] for i in range(16)]


def test_unknown_shell_is_a_wsman_fault(server: WinRMServer) -> None:
    pool = RunspacePool(client(server))
    pool.open()
    pool.shell.close()  # Delete
    with pytest.raises(WSManFaultError) as info:
        pool.shell.opened = True
        pool.shell.receive("stdout")
    assert info.value.code == SHELL_NOT_FOUND
    assert not pool.is_alive()


def test_go_down_refuses_connections_and_come_up_serves_again() -> None:
    server, _ = make_server("127.0.0.5")
    try:
        old = RunspacePool(client(server))
        old.open()
        assert old.is_alive() and server.open_shells() == 1
        server.go_down()
        assert not old.is_alive()
        with pytest.raises(requests.exceptions.ConnectionError, match="refused"):
            RunspacePool(client(server)).open()
        server.come_up()
        assert server.open_shells() == 0  # shells were discarded as after a reboot
        with RunspacePool(client(server)) as pool:
            assert run(pool, "Get-Echo", Back="up").output == ["up"]
    finally:
        server.stop()


def test_drop_connection_fault_before_and_after_processing() -> None:
    faults = FaultHooks()
    server, handler = make_server("127.0.0.6", faults=faults)
    try:
        before = faults.add(
            FaultRule(FaultEffect.DROP, action="Command", command="Get-Echo", nth=2)
        )
        pool = RunspacePool(client(server))  # not closed: its NTLM session dies with the drop
        pool.open()
        assert run(pool, "Get-Echo", N=1).output == [1]
        with pytest.raises(requests.exceptions.ConnectionError):
            run(pool, "Get-Echo", N=2)
        assert before.fired == 1
        assert [c.statements[0][0].named() for c in handler.calls] == [{"N": 1}]  # 2 never ran

        faults.clear()
        after = faults.add(FaultRule(FaultEffect.DROP, command="Get-Echo", after_processing=True))
        pool = RunspacePool(client(server))
        pool.open()
        handler.called.clear()
        with pytest.raises(requests.exceptions.ConnectionError):
            run(pool, "Get-Echo", N=3)
        assert after.fired == 1
        assert handler.called.wait(WAIT)  # the command ran although its answer was lost
        assert handler.calls[-1].statements[0][0].named() == {"N": 3}
    finally:
        server.stop()


def test_http_500_and_delay_faults() -> None:
    faults = FaultHooks()
    server, _ = make_server("127.0.0.7", faults=faults)
    try:
        with RunspacePool(client(server)) as pool:
            faults.add(FaultRule(FaultEffect.HTTP_500, action="Command"))
            with pytest.raises(WSManFaultError) as info:
                run(pool, "Get-Echo", N=1)
            assert info.value.code == INTERNAL_ERROR
            faults.add(FaultRule(FaultEffect.DELAY, action="Receive", delay=0.4))
            t0 = time.monotonic()
            assert run(pool, "Get-Echo", N=2).output == [2]
            assert time.monotonic() - t0 >= 0.4
            faults.callback = lambda info: (
                FaultRule(FaultEffect.HTTP_500, fault_code=None)
                if "Get-Boom" in info.commands
                else None
            )
            with pytest.raises(WinRMTransportError) as transport:
                run(pool, "Get-Boom")
            assert transport.value.code == 500
            assert run(pool, "Get-Echo", N=3).output == [3]
    finally:
        server.stop()


def _create_pipeline_xml(build: Any, key: bytes, no_input: bool = True) -> bytes:
    """The CLIXML pypsrp sends as CREATE_PIPELINE for the commands ``build`` adds."""
    ps = PowerShell(types.SimpleNamespace(protocol_version="2.3"))  # type: ignore[arg-type]
    build(ps)
    pipeline = Pipeline(is_nested=False, cmds=ps.commands, history=None, redirect_err_to_out=False)
    message = CreatePipeline(
        no_input,
        ApartmentState(value=ApartmentState.UNKNOWN),
        RemoteStreamOptions(value=RemoteStreamOptions.ADD_INVOCATION_INFO),
        False,
        HostInfo(host=None),
        pipeline,
        False,
    )
    serializer = Serializer()
    serializer.cipher = Cipher(algorithms.AES(key), modes.CBC(b"\x00" * 16))
    return ET.tostring(serializer.serialize(message), encoding="utf-8")


def _describe(pipeline: Any) -> list[Any]:
    def value(v: Any) -> Any:
        return credential_parts(v) if hasattr(v, "UserName") else plain(v)

    return [pipeline.no_input] + [
        (
            str(c.command_text),
            c.is_script,
            c.use_local_scope,
            c.end_of_statement,
            [(None if n is None else str(n), value(v)) for n, v in c.parameters],
        )
        for c in pipeline.commands
    ]


@pytest.mark.parametrize(
    "build",
    [
        lambda ps: ps.add_cmdlet("Get-VM"),
        lambda ps: ps.add_cmdlet("Get-VM").add_parameter("Name", "vm1").add_parameter("Force"),
        lambda ps: ps.add_cmdlet("Get-VM").add_argument("vm1").add_cmdlet("Stop-VM", True),
        lambda ps: ps.add_script("param($a) $a").add_argument(5).add_statement().add_cmdlet("X"),
        lambda ps: ps.add_script("param(\n\t$a\r\n)\n'_x000A_ 😀'").add_parameter("a\nb", "x\ny"),
        lambda ps: ps.add_cmdlet("New-VM").add_parameters(
            {"Tags": ["a", "b"], "Opts": {"k": 1, "n": None}, "Big": 2**20, "Ratio": 0.5}
        ),
        lambda ps: ps.add_cmdlet("Set-Cred").add_parameter(
            "Credential", PSCredential(username="LAB\\svc", password="pw")
        ),
    ],
)
def test_fast_create_pipeline_decoding_matches_psrpcore(build: Any) -> None:
    key = os.urandom(32)
    cipher = PSRemotingCrypto()
    cipher.register_key(key)
    data = _create_pipeline_xml(build, key)
    reference = CorePowerShell.FromPSObjectForRemoting(deserialize(ET.fromstring(data), cipher))
    assert _describe(parse_create_pipeline(data, cipher)) == _describe(reference)
