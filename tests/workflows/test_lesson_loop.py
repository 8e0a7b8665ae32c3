"""The lab after a lesson: a class uses the lab, then the next lesson builds and resets it again.

Issue 12's loop on the simulated fleet, through the ``hvlab`` CLI as a teacher types it:
build -> the three migrations -> replicate -> failover -> ``up`` -> ``reset`` -> failback ->
``up`` -> ``reset`` -> ``down``. Every command exits 0, and after each one the fleet holds
exactly one running copy of each VM (a replica copy is not one), on the host the lab's
history says.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from hvlab.spec import LabSpec
from simulator.fleet import Fleet
from tests.workflows.conftest import hvlab, lab_worker

pytestmark = [pytest.mark.integration]


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
                           cli_env: None, tmp_path: Path) -> None:
    lab = str(Path(__file__).resolve().parents[2] / "examples" / "classroom-lab.yaml")
    where = {v.name: v.host for v in seed.vms}

    async def ok(*args: str) -> None:
        assert await hvlab(*args, "--sim") == 0, args

    async with lab_worker(client, task_queue, fleet):
        await ok("up", lab, "--watch")
        expect(fleet, where, "the build")
        replicated = seed.replication[0]
        assert primary_of(fleet, replicated.vm) == replicated.primary

        await ok("migrate", lab, "win2003-1", "--to", "SVR2", "--watch")
        await ok("migrate", lab, "win2003-3", "--to", "SVR2", "--mode", "smb", "--watch")
        await ok("migrate", lab, "win2003-2", "--mode", "storage", "--storage-path",
                 "\\\\DC1\\smb\\win2003-2", "--watch")
        where.update({"win2003-1": "SVR2", "win2003-3": "SVR2"})
        expect(fleet, where, "the migrations")

        await ok("replicate", lab, replicated.vm, "--watch")
        await ok("failover", lab, replicated.vm, "--watch")
        where[replicated.vm] = replicated.replica
        expect(fleet, where, "the failover")
        assert primary_of(fleet, replicated.vm) == replicated.replica

        await ok("up", lab, "--watch")
        expect(fleet, where, "up after the failover")
        assert primary_of(fleet, replicated.vm) == replicated.replica
        await ok("reset", lab, "--watch")
        expect(fleet, where, "reset after the failover")
        assert all(_state(fleet, n, h) == "Running" for n, h in where.items())

        await ok("failback", lab, replicated.vm, "--watch")
        where[replicated.vm] = replicated.primary
        expect(fleet, where, "the failback")
        assert primary_of(fleet, replicated.vm) == replicated.primary

        await ok("up", lab, "--watch")
        expect(fleet, where, "up after the failback")
        await ok("reset", lab, "--watch")
        expect(fleet, where, "reset after the failback")
        assert all(_state(fleet, n, h) == "Running" for n, h in where.items())

        await ok("down", lab, "--watch")
        assert copies(fleet) == {}


def _state(fleet: Fleet, vm: str, host: str) -> Any:
    return fleet.state()["hosts"][host]["vms"][vm]["state"]
