"""One mode per registration: the same lab file registered for the simulated fleet (``--sim``)
and for real hosts are separate state. A command in one mode changes neither the other mode's
registration, nor what its schedules start, nor what the worker resolves for them."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from temporalio.client import Client, ScheduleActionStartWorkflow
from temporalio.service import RPCError

from hvlab.labs import CURRENT_LAB, LabRegistry
from hvlab.powershell.endpoints import WorkerLab
from hvlab.spec import LabSpec
from simulator.fleet import Fleet
from tests.sim.conftest import SEED
from tests.workflows.conftest import hvlab
from workflows.reset import LabResetInput

SIM_SCHEDULE = "sim.classroom-reset-schedule"
REAL_SCHEDULE = "classroom-reset-schedule"
CRON = "0 6 * * 1-5"


async def _schedule_target(client: Client, schedule_id: str) -> tuple[str, str]:
    """(workflow id, lab id of its input) the schedule starts."""
    action = (await client.get_schedule_handle(schedule_id).describe()).schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    (request,) = await client.data_converter.decode(action.args, [LabResetInput])
    assert isinstance(request, LabResetInput)
    return action.id, request.spec.lab


def _resolved(home: Path, lab: str, *, password: bool = True) -> tuple[str, int, str]:
    """What the worker's lookup gives an activity of ``lab``: SVR1's address and port, and
    the password of its credential (real hosts: not resolved, the test has no secrets)."""
    worker_lab = WorkerLab(home, {})
    token = CURRENT_LAB.set(lab)
    try:
        endpoint = worker_lab.endpoint("SVR1")
        secret = worker_lab(endpoint.credential).password.value if password else ""
        return endpoint.address, endpoint.port, secret
    finally:
        CURRENT_LAB.reset(token)


async def _delete(client: Client, *schedule_ids: str) -> None:
    for schedule_id in schedule_ids:
        with contextlib.suppress(RPCError):
            await client.get_schedule_handle(schedule_id).delete()


async def test_real_command_leaves_the_sim_schedule_and_registration(
    client: Client, fleet: Fleet, cli_env: None,
) -> None:
    """`hvlab schedule reset FILE --sim` targets sim.classroom (simulated endpoints and
    password); then `hvlab schedule reset FILE` and `hvlab schedule health FILE` without --sim
    register the real lab and make their own schedules, and the sim schedule still starts the
    same workflow for sim.classroom, its file is byte for byte the same and the worker still
    resolves it to the fleet."""
    registry = LabRegistry(fleet.home)
    sim_file = registry.path("sim.classroom")
    assert sim_file is not None
    svr1 = fleet.endpoints["SVR1"]
    at_the_fleet = (svr1["address"], svr1["port"], fleet.secret("domain-admin"))
    try:
        assert await hvlab("schedule", "reset", str(SEED), "--cron", CRON, "--sim") == 0
        sim_target = await _schedule_target(client, SIM_SCHEDULE)
        assert sim_target == ("sim.classroom-reset", "sim.classroom")
        assert _resolved(fleet.home, "sim.classroom") == at_the_fleet
        sim_registration = sim_file.read_bytes()

        assert await hvlab("schedule", "reset", str(SEED), "--cron", CRON) == 0
        assert await hvlab("schedule", "health", str(SEED), "--every", "5m") == 0

        assert await _schedule_target(client, SIM_SCHEDULE) == sim_target
        assert sim_file.read_bytes() == sim_registration
        assert _resolved(fleet.home, "sim.classroom") == at_the_fleet
        assert await _schedule_target(client, REAL_SCHEDULE) == ("classroom-reset", "classroom")
        assert _resolved(fleet.home, "classroom", password=False) == ("192.168.1.110", 5985, "")
    finally:
        await _delete(client, SIM_SCHEDULE, REAL_SCHEDULE,
                      "classroom-replication-health-schedule")


async def test_sim_command_leaves_the_real_schedule_and_registration(
    client: Client, fleet: Fleet, seed: LabSpec, cli_env: None,
) -> None:
    """The reverse: `hvlab schedule reset FILE` targets classroom (the lab file's hosts); then
    --sim commands (`schedule reset`, and `down`, which deletes its own mode's schedules
    first) leave the real schedule, its registration and what the worker resolves for it as
    they were."""
    registry = LabRegistry(fleet.home)
    real_file = registry.path("classroom")
    assert real_file is not None
    at_the_hosts = ("192.168.1.110", 5985, "")
    try:
        assert await hvlab("schedule", "reset", str(SEED), "--cron", CRON) == 0
        real_target = await _schedule_target(client, REAL_SCHEDULE)
        assert real_target == ("classroom-reset", "classroom")
        assert _resolved(fleet.home, "classroom", password=False) == at_the_hosts
        real_registration = real_file.read_bytes()

        assert await hvlab("schedule", "reset", str(SEED), "--cron", CRON, "--sim") == 0
        assert await hvlab("down", str(SEED), "--sim", "--yes", "--no-wait") == 0
        with pytest.raises(RPCError):  # down --sim deleted the sim schedule, only that one
            await client.get_schedule_handle(SIM_SCHEDULE).describe()

        assert await _schedule_target(client, REAL_SCHEDULE) == real_target
        assert real_file.read_bytes() == real_registration
        assert _resolved(fleet.home, "classroom", password=False) == at_the_hosts
        registered = registry.load("classroom")
        assert registered is not None and not registered.sim
    finally:
        await client.get_workflow_handle(f"{seed.lab}-down").terminate()
        await _delete(client, SIM_SCHEDULE, REAL_SCHEDULE)
