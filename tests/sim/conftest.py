"""Fixtures for simulator tests.

- ``lab_spec``: the seed lab (examples/classroom-lab.yaml).
- ``sim``: an in-process :class:`simulator.engine.Sim` of the seed lab at instant speed (no
  network); ``run(sim, host, "Cmdlet", **params)`` executes one command and returns a
  :class:`Result` (output, errors, warnings, terminating error).
- ``fleet``: a started :class:`simulator.fleet.Fleet` of the seed lab at instant speed on
  ephemeral ports under a temp HVLAB_HOME; ``ps(fleet, "SVR1")`` opens a real pypsrp
  RunspacePool to a host and returns a :class:`PS` helper.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from hvlab.spec import LabSpec
from hvlab.specfile import load_lab
from simulator.clock import Clock
from simulator.engine import Sim
from simulator.fleet import Fleet
from simulator.protocol import CommandCall, Invocation, Parameter, TerminatingError
from simulator.world_build import world_from_spec

SEED = Path(__file__).resolve().parents[2] / "examples" / "classroom-lab.yaml"
LOCALES = ("en-US", "ko-KR")


def speak(sim: Sim, locale: str) -> None:
    """Every host of ``sim`` answers in ``locale`` from now on (messages, warnings, job
    errors; built-in display names are set when the world is built: ``locale:`` in the lab)."""
    with sim.lock:
        for host in sim.world.hosts.values():
            host.locale = locale
GB = 1024**3
MB = 1024**2


@pytest.fixture(scope="session")
def lab_spec() -> LabSpec:
    return load_lab(SEED)


@dataclass
class Result:
    output: list[Any] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    error_ids: list[str] = field(default_factory=list)
    exception_types: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    terminating: TerminatingError | None = None

    @property
    def failure(self) -> str:
        """The terminating error message, else the first error, else ''."""
        if self.terminating is not None:
            return self.terminating.message
        return self.errors[0] if self.errors else ""

    @property
    def ok(self) -> bool:
        return self.terminating is None and not self.errors


class Ctx:
    """A PipelineContext collecting everything (no network)."""

    def __init__(self, result: Result) -> None:
        self.result = result

    def output(self, obj: Any) -> None:
        self.result.output.append(obj)

    def error(
        self,
        message: str,
        error_id: str = "",
        category: str = "",
        target: str | None = None,
        *,
        exception_type: str = "",
    ) -> None:
        self.result.errors.append(message)
        self.result.error_ids.append(error_id)
        self.result.exception_types.append(exception_type)

    def warning(self, message: str) -> None:
        self.result.warnings.append(message)

    def progress(self, activity: str, percent: int, status: str = "") -> None:
        return

    def stopping(self) -> bool:
        return False

    def sleep(self, seconds: float) -> bool:
        return True


def call(name: str, **params: Any) -> CommandCall:
    return CommandCall(name, False, tuple(Parameter(k, v) for k, v in params.items()))


def run_pipeline(
    sim: Sim, host: str, *commands: CommandCall, inputs: tuple[Any, ...] = ()
) -> Result:
    result = Result()
    try:
        sim.handler(host).invoke(Invocation(host, (tuple(commands),), inputs), Ctx(result))
    except TerminatingError as exc:
        result.terminating = exc
    return result


def run(sim: Sim, host: str, name: str, **params: Any) -> Result:
    """Run one command on ``host``; switches are given as None (as pypsrp sends them)."""
    return run_pipeline(sim, host, call(name, **params))


@pytest.fixture
def sim(lab_spec: LabSpec) -> Sim:
    sim = Sim(world_from_spec(lab_spec), Clock(0))
    sim.accounts.add_domain("Administrator", DOMAIN_ADMIN_PASSWORD)
    return sim


def hyperv_ready(sim: Sim, *hosts: str) -> None:
    """Install Hyper-V with tools and reboot, create folders/paths and the four switches."""
    for host in hosts:
        assert run(
            sim, host, "Install-WindowsFeature", Name="Hyper-V", IncludeManagementTools=None
        ).ok
        assert run(sim, host, "Restart-Computer", Force=None).ok
        assert run(
            sim, host, "New-Item", ItemType="Directory", Path=["C:\\Hyper-V", "C:\\Hyper-V\\VHDs"]
        ).ok
        assert run(
            sim,
            host,
            "Set-VMHost",
            VirtualMachinePath="C:\\Hyper-V",
            VirtualHardDiskPath="C:\\Hyper-V\\VHDs",
        ).ok
        assert run(
            sim,
            host,
            "New-VMSwitch",
            Name="External",
            NetAdapterName="Ethernet0",
            AllowManagementOS=True,
        ).ok
        for name, kind in (
            ("Internal", "Internal"),
            ("Private", "Private"),
            ("Internal2", "Internal"),
        ):
            assert run(sim, host, "New-VMSwitch", Name=name, SwitchType=kind).ok


def join_domain(sim: Sim, *hosts: str) -> None:
    """Point DNS at the DC, join the domain and reboot."""
    dc = sim.world.dc()
    for name in hosts:
        host = sim.host(name)
        for adapter in host.adapters.values():
            adapter.dns = [dc.address]
        assert run(
            sim, name, "Add-Computer", DomainName="kosa.vm", Credential=domain_admin(sim),
            Force=None
        ).ok
        assert run(sim, name, "Restart-Computer", Force=None).ok


DOMAIN_ADMIN_PASSWORD = "secret"  # of the bare ``sim`` fixture's domain Administrator


def domain_admin(sim: Sim | None = None) -> Any:
    """KOSA\\Administrator's PSCredential: with the password ``sim``'s accounts hold for it
    (a fleet's own), else the bare ``sim`` fixture's."""
    from psrpcore.types import PSCredential, PSSecureString

    account = sim.accounts.domain.get("administrator") if sim is not None else None
    password = account.password if account is not None else DOMAIN_ADMIN_PASSWORD
    return PSCredential(UserName="KOSA\\Administrator", Password=PSSecureString(password))


@pytest.fixture
def fleet(lab_spec: LabSpec, tmp_path: Path) -> Iterator[Fleet]:
    with Fleet(
        lab_spec, tmp_path, speed=0, fresh=True, port=0, control=False, max_receive_wait=2.0
    ) as running:
        yield running


class PS:
    """A real pypsrp RunspacePool to one simulated host."""

    def __init__(self, endpoint: dict[str, Any]) -> None:
        from pypsrp.powershell import RunspacePool
        from pypsrp.wsman import WSMan

        self.wsman = WSMan(
            endpoint["address"],
            port=endpoint["port"],
            username=endpoint["username"],
            password=endpoint["password"],
            ssl=False,
            auth="ntlm",
            cert_validation=False,
            connection_timeout=5,
            read_timeout=30,
        )
        self.pool = RunspacePool(self.wsman)
        self.pool.open()

    def run(self, name: str, **params: Any) -> Any:
        from pypsrp.powershell import PowerShell

        ps = PowerShell(self.pool)
        ps.add_cmdlet(name)
        for key, value in params.items():
            ps.add_parameter(key, value)
        output = ps.invoke()
        ps.errors = [str(e) for e in ps.streams.error]  # type: ignore[attr-defined]
        ps.output_objects = output  # type: ignore[attr-defined]
        return ps

    def close(self) -> None:
        self.pool.close()


def props(obj: Any) -> dict[str, Any]:
    """adapted + extended properties of an object pypsrp returned."""
    return {**getattr(obj, "adapted_properties", {}), **getattr(obj, "extended_properties", {})}


class StepClock(Clock):
    """A non-instant clock whose waits block until the test releases them (no real sleeps)."""

    def __init__(self) -> None:
        super().__init__(speed=1.0)
        import threading

        self.gate = threading.Semaphore(0)
        self.waiting = threading.Semaphore(0)
        self.held = False

    def sleep(self, sim_seconds: float) -> None:
        self.waiting.release()
        self.gate.acquire()

    def step(self, n: int = 1, settle: bool = True) -> None:
        """Release ``n`` sleeps one after the other; with ``settle`` wait until the worker
        sleeps again, so everything it does between sleeps has happened."""
        for _ in range(n):
            if not self.held:
                assert self.waiting.acquire(timeout=10)
            self.held = False
            self.gate.release()
        if settle:
            assert self.waiting.acquire(timeout=10)
            self.held = True


def lab_with_vm(sim: Sim, vm: str = "Linux01", host: str = "SVR2") -> None:
    """Both hosts ready, domain-joined, migration on with Kerberos, the seed's KCD, and a
    running VM from the golden disk on ``host``."""
    join_domain(sim, "SVR1", "SVR2")
    hyperv_ready(sim, "SVR1", "SVR2")
    for name in ("SVR1", "SVR2"):
        assert run(sim, name, "Enable-VMMigration").ok
        assert run(sim, name, "Set-VMHost", VirtualMachineMigrationAuthenticationType="Kerberos").ok
    delegate(sim, "SVR1", "SVR2")
    delegate(sim, "SVR2", "SVR1")
    disk = f"C:\\Hyper-V\\VHDs\\{vm}.vhdx"
    assert run(sim, host, "Copy-Item", Path="C:\\Golden\\linux01.vhdx", Destination=disk).ok
    assert run(
        sim,
        host,
        "New-VM",
        Name=vm,
        Generation=2,
        MemoryStartupBytes=GB,
        VHDPath=disk,
        SwitchName="External",
    ).ok
    # a Linux guest boots under Secure Boot only with the UEFI CA template
    assert run(sim, host, "Set-VMFirmware", VMName=vm,
               SecureBootTemplate="MicrosoftUEFICertificateAuthority").ok
    assert run(sim, host, "Start-VM", Name=vm).ok


def delegate(sim: Sim, src: str, dst: str, transition: bool = True) -> None:
    """The seed's KCD: src may delegate to dst (migration + cifs) and to DC1 (cifs)."""
    comp = sim.world.ad.computer(src)
    assert comp is not None
    fqdn = sim.world.ad.fqdn
    for spn in ("Microsoft Virtual System Migration Service", "cifs"):
        comp.allowed_to_delegate_to += [f"{spn}/{dst}", f"{spn}/{dst}.{fqdn}"]
    comp.allowed_to_delegate_to += ["cifs/DC1", f"cifs/DC1.{fqdn}"]
    comp.trusted_to_auth_for_delegation = transition
