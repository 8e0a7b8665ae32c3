"""The worker registers the host and VM activities; they reach the lab it is told to serve."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.host import HostActivities
from activities.models import HyperVRoleInput
from activities.registry import build_activities
from hvlab.powershell.endpoints import LAB_FILE_VARIABLE, LAB_SIM_VARIABLE, WorkerLab
from hvlab.powershell.session import SessionPool
from hvlab.settings import Settings
from simulator.fleet import Fleet
from tests.sim.conftest import SEED


def test_worker_registers_host_and_vm_activities(tmp_path: Path) -> None:
    """build_activities lists every host.* and vm.* activity by its Temporal name."""
    names = set()
    for fn in build_activities(Settings(home=tmp_path)):
        definition = activity._Definition.from_callable(fn)
        assert definition is not None
        names.add(definition.name)
    assert {"host.domain_join", "host.hyperv_role", "host.reboot", "host.wait_ready",
            "host.folders", "host.default_paths", "host.switch", "host.remove_switch",
            "vm.disk", "vm.create", "vm.remove", "vm.nic", "vm.start", "vm.stop"} <= names


def test_worker_lab_reaches_the_simulated_fleet(fleet: Fleet) -> None:
    """With the lab file and sim mode in the environment, the worker's sources reach the fleet."""
    lab = WorkerLab(fleet.home, {LAB_FILE_VARIABLE: str(SEED), LAB_SIM_VARIABLE: "1"})
    sessions = SessionPool(lab)
    try:
        result = HostActivities(sessions, lab).hyperv_role(HyperVRoleInput(host="SVR1"))
    finally:
        sessions.close()
    assert result.changed


def test_worker_without_a_lab_fails_permanently(tmp_path: Path) -> None:
    """A worker that serves no lab fails remote steps as CredentialUnavailable, not retried."""
    lab = WorkerLab(tmp_path, {})
    with pytest.raises(ApplicationError) as caught:
        HostActivities(SessionPool(lab), lab).hyperv_role(HyperVRoleInput(host="SVR1"))
    assert caught.value.type == "CredentialUnavailable" and caught.value.non_retryable
    assert LAB_FILE_VARIABLE in caught.value.message
