"""The lab after a lesson: a class uses the lab, then the next lesson builds and resets it again.

Issue 12's loop on the simulated fleet, through the ``hvlab`` CLI as a teacher types it:
build -> the three migrations -> replicate -> failover -> ``up`` -> ``reset`` -> failback ->
``up`` -> ``reset`` -> ``down``. Every command exits 0, and after each one the fleet holds
exactly one running copy of each VM (a replica copy is not one), on the host the lab's
history says.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from hvlab.spec import LabSpec
from hvlab.specfile import dump_lab, load_lab
from simulator.fleet import Fleet
from tests.sim.conftest import SEED, run
from tests.workflows.conftest import hvlab, lab_worker, mutating_counts

pytestmark = [pytest.mark.integration]

RENAMES = [("win2003-1", "gw-1"), ("win2003-2", "tel-7"), ("win2003-3", "rdp-9"),
           ("Linux01", "tux-3"), ("SVR1", "HVA"), ("SVR2", "HVB"), ("DC1", "ADS"),
           ("kosa.vm", "school.test"), ("KOSA", "SCHOOL"), ("classroom", "room-204")]


def renamed(path: Path, tmp: Path) -> LabSpec:
    """The seed with every host, VM and the domain renamed: nothing may depend on its names."""
    text = path.read_text()
    for old, new in RENAMES:
        text = text.replace(old, new)
    (tmp / "renamed.yaml").write_text(text)
    return load_lab(tmp / "renamed.yaml")


@pytest.fixture(params=["seed", "renamed"])
def seed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> LabSpec:
    """The lab of the lesson (the fleet fixture builds its fleet from it)."""
    if request.param == "seed":
        return load_lab(SEED)
    return renamed(SEED, tmp_path_factory.mktemp("renamed"))


def copies(fleet: Fleet) -> dict[str, list[tuple[str, str]]]:
    """Per VM name: (host, replication mode) of every copy on the Hyper-V hosts."""
    found: dict[str, list[tuple[str, str]]] = {}
    for host, state in fleet.state()["hosts"].items():
        for name in state.get("vms") or {}:
            mode = ((state.get("replication") or {}).get(name) or {}).get("mode") or ""
            found.setdefault(name, []).append((host, mode))
    return found


def running_copies(fleet: Fleet) -> dict[str, list[str]]:
    """Per VM name, the hosts holding a copy that is not a replica."""
    return {name: sorted(h for h, mode in cs if mode not in ("Replica", "TestReplica"))
            for name, cs in copies(fleet).items()}


def expect(fleet: Fleet, where: dict[str, str], step: str) -> None:
    """Exactly one running copy of each VM, on the expected host."""
    found = running_copies(fleet)
    assert {n: hs for n, hs in found.items() if len(hs) != 1} == {}, f"after {step}: {found}"
    assert {n: hs[0] for n, hs in found.items()} == where, f"after {step}"


def primary_of(fleet: Fleet, vm: str) -> str:
    return next(h for h, mode in copies(fleet)[vm] if mode == "Primary")


async def test_lesson_loop(client: Client, task_queue: str, fleet: Fleet, seed: LabSpec,
                           cli_env: None, tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "lab.yaml").write_text(dump_lab(seed))
    lab = str(tmp_path / "lab.yaml")
    where = {v.name: v.host for v in seed.vms}
    router = seed.nat[0]
    gateway = str(router.vm)
    telnet, rdp = (str(f.to_vm) for f in router.forwards)
    two = seed.hyperv_hosts[1].name
    share = f"\\\\{seed.domain.dc}\\smb\\{telnet}"

    async def ok(*args: str) -> None:
        assert await hvlab(*args, "--sim") == 0, args

    async with lab_worker(client, task_queue, fleet):
        await ok("up", lab, "--watch")
        expect(fleet, where, "the build")
        replicated = seed.replication[0]
        assert primary_of(fleet, replicated.vm) == replicated.primary

        await ok("migrate", lab, gateway, "--to", two, "--watch")
        await ok("migrate", lab, rdp, "--to", two, "--mode", "smb", "--watch")
        await ok("migrate", lab, telnet, "--mode", "storage", "--storage-path", share,
                 "--watch")
        where.update({gateway: two, rdp: two})
        expect(fleet, where, "the migrations")
        # the checkpoint is found where each VM runs now (it moved with it)
        await ok("checkpoint", lab, seed.checkpoints[0].name, "--watch")

        await ok("replicate", lab, replicated.vm, "--watch")
        # a second relationship (no lab-file entry) shares the replica servers' settings
        await ok("replicate", lab, telnet, "--to", two, "--watch")
        assert _replication(fleet, replicated.replica, replicated.vm)["port"] == \
            replicated.port
        assert _replication(fleet, replicated.primary, replicated.vm)["health"] == "Normal"
        await ok("failover", lab, replicated.vm, "--watch")
        where[replicated.vm] = replicated.replica
        expect(fleet, where, "the failover")
        assert primary_of(fleet, replicated.vm) == replicated.replica
        capsys.readouterr()
        await ok("plan", lab, "--json")  # --sim: what the simulated fleet holds now
        plan = json.loads(capsys.readouterr().out)
        actions = {d["what"]: d["action"] for d in plan["differences"]}
        assert actions[f"VM {gateway}"] == "moved"
        assert actions[f"VM {replicated.vm}"] == "reversed"
        assert actions[f"replication {replicated.vm}"] == "reversed"
        assert actions[f"VM {telnet}"] == "unchanged"
        # the failed-over VM's checkpoint stayed with its old primary: up takes it again
        baseline = seed.checkpoints[0].name
        assert actions[f"checkpoint {baseline} of {replicated.vm}"] == "create"
        assert plan["summary"].startswith("Plan: 1 to create, 4 moved or failed over")

        await ok("up", lab, "--watch")
        expect(fleet, where, "up after the failover")
        assert primary_of(fleet, replicated.vm) == replicated.replica
        await ok("reset", lab, "--watch")
        expect(fleet, where, "reset after the failover")
        assert all(_state(fleet, n, h) == "Running" for n, h in where.items())

        # failback: `hvlab failback`, or the same `hvlab failover` again (from where it runs now)
        back = "failback" if seed.lab == "classroom" else "failover"
        await ok(back, lab, replicated.vm, "--watch")
        where[replicated.vm] = replicated.primary
        expect(fleet, where, "the failback")
        assert primary_of(fleet, replicated.vm) == replicated.primary

        # a failback of a VM that runs on its lab-file primary already fails and moves nothing
        assert await hvlab("failback", lab, replicated.vm, "--sim", "--watch") == 1
        expect(fleet, where, "a needless failback")
        assert primary_of(fleet, replicated.vm) == replicated.primary

        await ok("up", lab, "--watch")
        expect(fleet, where, "up after the failback")
        await ok("reset", lab, "--watch")
        expect(fleet, where, "reset after the failback")
        assert all(_state(fleet, n, h) == "Running" for n, h in where.items())

        # before the next class: everything back where the lab file says, explicitly
        await ok("failover", lab, replicated.vm, "--watch")
        await ok("converge", lab, "--watch")
        where = {v.name: v.host for v in seed.vms}
        expect(fleet, where, "converge")
        assert primary_of(fleet, replicated.vm) == replicated.primary
        capsys.readouterr()
        await ok("plan", lab, "--json")
        assert json.loads(capsys.readouterr().out)["summary"].startswith(
            "Plan: 0 to create, 0 moved or failed over (left as they are), 0 duplicated")

        await ok("down", lab, "--yes")
        assert copies(fleet) == {}


def _state(fleet: Fleet, vm: str, host: str) -> Any:
    return fleet.state()["hosts"][host]["vms"][vm]["state"]


@pytest.mark.parametrize("seed", ["seed"], indirect=True)
async def test_up_refuses_a_vm_that_runs_on_two_hosts(
        client: Client, task_queue: str, fleet: Fleet, seed: LabSpec, cli_env: None,
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A second running copy (made by hand, never by hvlab) stops ``up`` before any change,
    naming the VM and both hosts: hvlab does not pick which copy is the lab's."""
    (tmp_path / "lab.yaml").write_text(dump_lab(seed))
    lab = str(tmp_path / "lab.yaml")
    telnet = seed.vms[1]
    other = next(h.name for h in seed.hyperv_hosts if h.name != telnet.host)
    async with lab_worker(client, task_queue, fleet):
        assert await hvlab("up", lab, "--sim", "--watch") == 0
        assert run(fleet.sim, other, "New-VM", Name=telnet.name, MemoryStartupBytes=512 * 2**20,
                   NoVHD=None).ok
        before = mutating_counts(fleet)
        capsys.readouterr()
        assert await hvlab("up", lab, "--sim", "--watch") == 1
    assert mutating_counts(fleet) == before
    said = capsys.readouterr()
    assert f"{telnet.name} on " in said.out + said.err
    assert telnet.host in said.out + said.err and other in said.out + said.err


def _replication(fleet: Fleet, host: str, vm: str) -> Any:
    return fleet.state()["hosts"][host]["replication"][vm]
