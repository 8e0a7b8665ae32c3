"""Host preparation activities against the simulated fleet, run as plain method calls."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.host import HostActivities
from activities.models import (
    DefaultPathsInput,
    DomainJoinInput,
    FoldersInput,
    HostInput,
    HyperVRoleInput,
    RemoveSwitchInput,
    SwitchInput,
    WaitReadyInput,
)
from hvlab.powershell.endpoints import SimCredentials, SimEndpoints
from hvlab.powershell.session import SessionPool
from hvlab.spec import LabSpec
from simulator.fleet import Fleet
from tests.activities.conftest import mutations
from tests.sim.conftest import run


def install_hyperv(fleet: Fleet, host: str) -> None:
    """The role with its tools, after a reboot (set up in-process, not under test)."""
    assert run(fleet.sim, host, "Install-WindowsFeature", Name="Hyper-V",
               IncludeManagementTools=None).ok
    assert run(fleet.sim, host, "Restart-Computer", Force=None).ok


def test_hyperv_role_installs_once(fleet: Fleet, host_activities: HostActivities) -> None:
    """The role is installed with its tools and asks for a restart; a rerun changes nothing."""
    request = HyperVRoleInput(host="SVR1")
    first = host_activities.hyperv_role(request)
    assert first.changed and first.observed["restart_needed"] is True
    assert first.observed["install_state"] == "InstallPending"
    before = mutations(fleet, "SVR1")
    again = host_activities.hyperv_role(request)
    assert not again.changed and again.observed["restart_needed"] is True
    assert mutations(fleet, "SVR1") == before
    host_activities.reboot(HostInput(host="SVR1"))
    done = host_activities.hyperv_role(request)
    assert not done.changed and done.observed == {"install_state": "Installed",
                                                  "restart_needed": False}
    assert "Hyper-V-PowerShell" in fleet.state()["hosts"]["SVR1"]["features"]


def test_domain_join_without_restart(
    fleet: Fleet, lab_spec: LabSpec, host_activities: HostActivities
) -> None:
    """Add-Computer runs without -Restart; a rerun before the restart sees the pending join
    (Netlogon's JoinDomain key) and sends no second Add-Computer; after the reboot the probe
    sees the domain and a rerun sends nothing."""
    dc = fleet.world.dc()
    for adapter in fleet.world.host("SVR1").adapters.values():  # type: ignore[union-attr]
        adapter.dns = [dc.address]
    request = DomainJoinInput.from_spec(lab_spec, "SVR1")
    first = host_activities.domain_join(request)
    assert first.changed and first.observed["restart_needed"] is True
    assert fleet.state()["hosts"]["SVR1"]["domain"] is None
    pending = host_activities.domain_join(request)
    assert not pending.changed and pending.observed["restart_needed"] is True
    assert pending.observed["pending_join"] is True
    assert mutations(fleet, "SVR1").get("Add-Computer") == 1
    host_activities.reboot(HostInput(host="SVR1"))
    assert fleet.state()["hosts"]["SVR1"]["domain"] == "kosa.vm"
    before = mutations(fleet, "SVR1")
    joined = host_activities.domain_join(request)
    assert not joined.changed and joined.observed["part_of_domain"] is True
    assert mutations(fleet, "SVR1") == before


def test_domain_join_without_dns_fails_permanently(
    lab_spec: LabSpec, host_activities: HostActivities
) -> None:
    """With DNS not pointing at the DC the host's own message comes back, not retried."""
    with pytest.raises(ApplicationError) as caught:
        host_activities.domain_join(DomainJoinInput.from_spec(lab_spec, "SVR2"))
    assert caught.value.non_retryable
    assert "could not be contacted" in caught.value.message


def test_folders_and_default_paths(fleet: Fleet, lab_spec: LabSpec,
                                   host_activities: HostActivities) -> None:
    """Folders are created and the host's default paths set once; reruns send nothing."""
    install_hyperv(fleet, "SVR1")
    host = lab_spec.host("SVR1")
    folders = host_activities.folders(FoldersInput.from_spec(host))
    assert folders.changed and folders.observed["created"] == ["C:\\Hyper-V", "C:\\Hyper-V\\VHDs"]
    assert {"C:\\Hyper-V", "C:\\Hyper-V\\VHDs"} <= set(fleet.state()["hosts"]["SVR1"]["folders"])
    paths = host_activities.default_paths(DefaultPathsInput.from_spec(host))
    assert paths.changed and paths.observed["virtual_hard_disks"] == "C:\\Hyper-V\\VHDs"
    before = mutations(fleet, "SVR1")
    assert not host_activities.folders(FoldersInput.from_spec(host)).changed
    assert not host_activities.default_paths(DefaultPathsInput.from_spec(host)).changed
    assert mutations(fleet, "SVR1") == before


def test_switches_created_once_and_removed(
    fleet: Fleet, lab_spec: LabSpec, host_activities: HostActivities
) -> None:
    """The lab's four switches are created with their types; reruns send nothing; the
    compensation removes one and treats 'already gone' as done."""
    install_hyperv(fleet, "SVR2")
    requests = [SwitchInput.from_spec("SVR2", s) for s in lab_spec.host("SVR2").switches]
    assert all(host_activities.switch(r).changed for r in requests)
    state = fleet.state()["hosts"]["SVR2"]["switches"]
    assert {n: s["type"] for n, s in state.items()} == {
        "External": "External", "Internal": "Internal", "Private": "Private",
        "Internal2": "Internal"}
    before = mutations(fleet, "SVR2")
    again = [host_activities.switch(r) for r in requests]
    assert not any(r.changed for r in again)
    assert again[0].observed["allow_management_os"] is True
    assert mutations(fleet, "SVR2") == before
    removal = RemoveSwitchInput(host="SVR2", name="Private")
    assert host_activities.remove_switch(removal).changed
    assert "Private" not in fleet.state()["hosts"]["SVR2"]["switches"]
    assert not host_activities.remove_switch(removal).changed


def test_switch_of_another_type_is_a_conflict(
    fleet: Fleet, host_activities: HostActivities
) -> None:
    """An existing switch of the same name but another type is reported, not recreated."""
    install_hyperv(fleet, "SVR1")
    host_activities.switch(SwitchInput(host="SVR1", name="Lab", type="Private"))
    with pytest.raises(ApplicationError) as caught:
        host_activities.switch(SwitchInput(host="SVR1", name="Lab", type="Internal"))
    assert caught.value.type == "Conflict" and caught.value.non_retryable


def test_switch_before_hyperv_is_command_not_found(host_activities: HostActivities) -> None:
    """Without the role the Hyper-V cmdlets are missing: CommandNotFound, not retried."""
    with pytest.raises(ApplicationError) as caught:
        host_activities.switch(SwitchInput(host="SVR1", name="Internal", type="Internal"))
    assert caught.value.type == "CommandNotFound" and caught.value.non_retryable


def test_wait_ready_waits_out_a_down_host(fleet: Fleet, host_activities: HostActivities) -> None:
    """While the host refuses connections the activity keeps polling; it returns once the host
    answers again."""
    server = fleet.servers["SVR1"]
    server.go_down()
    timer = threading.Timer(0.3, server.come_up)
    timer.start()
    try:
        result = host_activities.wait_ready(
            WaitReadyInput(host="SVR1", timeout_seconds=10, interval_seconds=0.05))
    finally:
        timer.join()
    assert not result.changed and result.observed["attempts"] > 1


def test_wait_ready_times_out_retryably(fleet: Fleet, host_activities: HostActivities) -> None:
    """A host that never comes back fails with a retryable HostNotReady."""
    fleet.servers["SVR2"].go_down()
    with pytest.raises(ApplicationError) as caught:
        host_activities.wait_ready(
            WaitReadyInput(host="SVR2", timeout_seconds=0.2, interval_seconds=0.05))
    assert caught.value.type == "HostNotReady" and not caught.value.non_retryable
    assert "HostUnreachable" in caught.value.message
    fleet.servers["SVR2"].come_up()


def test_wait_ready_for_vmms_after_role_reboot(
    fleet: Fleet, host_activities: HostActivities
) -> None:
    """After the role and its reboot, waiting for vmms succeeds at the first poll."""
    host_activities.hyperv_role(HyperVRoleInput(host="SVR2"))
    assert host_activities.reboot(HostInput(host="SVR2")).changed
    ready = host_activities.wait_ready(WaitReadyInput(host="SVR2", service="vmms"))
    assert ready.observed["service"] == "Running" and ready.observed["attempts"] == 1


def test_wait_ready_waits_for_a_service_not_registered_yet(
    fleet: Fleet, host_activities: HostActivities
) -> None:
    """A host that answers WinRM before vmms exists is not ready yet (retryable), not a
    permanent NotFound."""
    with pytest.raises(ApplicationError) as caught:
        host_activities.wait_ready(WaitReadyInput(host="SVR2", service="vmms",
                                                  timeout_seconds=0.2, interval_seconds=0.05))
    assert caught.value.type == "HostNotReady" and not caught.value.non_retryable
    assert "vmms not there yet" in caught.value.message


def test_wait_ready_does_not_take_the_old_boot_for_the_new_one(
    fleet: Fleet, host_activities: HostActivities
) -> None:
    """Right after Restart-Computer the host still answers from the boot that is shutting
    down: with ``booted_before`` that answer is not 'ready' (retryably, saying why); once the
    host has booted again it is."""
    from activities.host import operating_system_command

    system = host_activities._remote.query_one("SVR2", operating_system_command()) or {}
    before = str(system["LastBootUpTime"])
    with pytest.raises(ApplicationError) as caught:
        host_activities.wait_ready(WaitReadyInput(host="SVR2", booted_before=before,
                                                  timeout_seconds=0.2, interval_seconds=0.05))
    assert caught.value.type == "HostNotReady" and not caught.value.non_retryable
    assert "restart has not happened yet" in caught.value.message
    rebooted = host_activities.reboot(HostInput(host="SVR2"))
    assert rebooted.observed["last_boot_before"] == before
    ready = host_activities.wait_ready(WaitReadyInput(host="SVR2", booted_before=before))
    assert ready.observed["last_boot"] != before


def test_a_reboot_costs_one_new_shell(lab_spec: LabSpec, tmp_path: Path) -> None:
    """With real reboot timing (the old boot answers for a moment after Restart-Computer, then
    WinRM goes away), reboot + wait_ready open exactly one new shell: the wait does not open a
    shell on the boot that is shutting down (it did in `make bench`: SVR1 5 shells, 2 reboots)."""
    with Fleet(lab_spec, tmp_path, speed=600, fresh=True, port=0, control=False,
               max_receive_wait=2.0) as fleet:
        pool = SessionPool(SimCredentials(lab_spec, fleet.home))
        try:
            activities = HostActivities(pool, SimEndpoints(lab_spec, fleet.home))
            server = fleet.servers["SVR2"]
            rebooted = activities.reboot(HostInput(host="SVR2"))
            assert server.request_counts.get("Create", 0) <= 2  # the old boot's, maybe the new
            before = rebooted.observed["last_boot_before"]
            ready = activities.wait_ready(WaitReadyInput(
                host="SVR2", booted_before=before, timeout_seconds=30, interval_seconds=0.3))
            assert ready.observed["last_boot"] != before
            assert server.request_counts.get("Create", 0) == 2  # 1 + 1 per reboot
        finally:
            pool.close()


def test_logons_refused_after_a_reboot_are_retried(lab_spec: LabSpec, tmp_path: Path) -> None:
    """After a reboot the host answers HTTP 401 while its services start (the fleet's
    logon_settle, 600 simulated seconds here): the session pool retries the logon within its
    post-reboot window, so reboot + wait_ready succeed instead of failing as a rejected
    credential."""
    from simulator.clock import Durations

    with Fleet(lab_spec, tmp_path, speed=600, fresh=True, port=0, control=False,
               max_receive_wait=2.0) as fleet:
        fleet.sim.clock.d = Durations(logon_settle=600.0)  # one real second of 401s
        pool = SessionPool(SimCredentials(lab_spec, fleet.home), logon_retry=0.05)
        try:
            activities = HostActivities(pool, SimEndpoints(lab_spec, fleet.home))
            rebooted = activities.reboot(HostInput(host="SVR2"))
            before = rebooted.observed["last_boot_before"]
            ready = activities.wait_ready(WaitReadyInput(
                host="SVR2", booted_before=before, timeout_seconds=30, interval_seconds=0.1))
            assert ready.observed["last_boot"] != before
            assert fleet.servers["SVR2"].logons_refused_starting > 0
        finally:
            pool.close()


def test_instant_reboot_costs_one_new_shell_and_no_wait(
    fleet: Fleet, host_activities: HostActivities
) -> None:
    """At speed 0 the reboot happens inside Restart-Computer: host.reboot finds the new boot
    through a new shell (the old one died with the old boot) and wait_ready uses that shell at
    its first probe."""
    server = fleet.servers["SVR2"]
    rebooted = host_activities.reboot(HostInput(host="SVR2"))
    assert server.request_counts.get("Create", 0) == 2
    ready = host_activities.wait_ready(WaitReadyInput(
        host="SVR2", booted_before=rebooted.observed["last_boot_before"]))
    assert ready.observed["attempts"] == 1
    assert server.request_counts.get("Create", 0) == 2


@pytest.mark.parametrize("tagged", [False, True], ids=["older-worker", "this-worker"])
def test_retried_reboot_does_not_restart_the_host_again(
    fleet: Fleet, host_activities: HostActivities, tagged: bool
) -> None:
    """An attempt whose predecessor heartbeated 'restart sent' (the worker died after sending
    it; the details as a worker before typed details, or this one, wrote them) only waits for
    the old boot to go: no second Restart-Computer."""
    first = host_activities.reboot(HostInput(host="SVR2"))
    assert mutations(fleet, "SVR2")["Restart-Computer"] == 1
    again = _retried({"restart_requested": True,
                      "last_boot_before": first.observed["last_boot_before"],
                      **({"beat": "host.reboot"} if tagged else {})}).run(
        host_activities.reboot, HostInput(host="SVR2"))
    assert again.observed["last_boot_before"] == first.observed["last_boot_before"]
    assert mutations(fleet, "SVR2")["Restart-Computer"] == 1


def _retried(heartbeat: dict[str, object]) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=2, heartbeat_details=[heartbeat])
    return env


def test_retried_reboot_whose_predecessor_died_sending_finds_the_restart_done(
    fleet: Fleet, host_activities: HostActivities
) -> None:
    """The predecessor heartbeated only 'about to restart' (the worker died around the call,
    before its second heartbeat left) but the restart went through: no second restart."""
    first = host_activities.reboot(HostInput(host="SVR2"))
    before = first.observed["last_boot_before"]
    again = _retried({"restart_pending": True, "last_boot_before": before}).run(
        host_activities.reboot, HostInput(host="SVR2"))
    assert again.observed == {"restart_requested": True, "last_boot_before": before}
    assert mutations(fleet, "SVR2")["Restart-Computer"] == 1


def test_retried_reboot_whose_predecessor_died_before_sending_restarts_after_the_grace(
    fleet: Fleet, host_activities: HostActivities, monkeypatch: pytest.MonkeyPatch
) -> None:
    """'About to restart' but the host still runs that boot after RESTART_GRACE: the restart
    was never sent, so this attempt sends it (once) and waits for the old boot to go."""
    import activities.host as host_module
    from activities.host import operating_system_command

    monkeypatch.setattr(host_module, "RESTART_GRACE", 0.3)
    system = host_activities._remote.query_one("SVR2", operating_system_command()) or {}
    before = str(system["LastBootUpTime"])
    again = _retried({"restart_pending": True, "last_boot_before": before}).run(
        host_activities.reboot, HostInput(host="SVR2"))
    assert again.observed["last_boot_before"] == before
    assert mutations(fleet, "SVR2")["Restart-Computer"] == 1
    after = host_activities._remote.query_one("SVR2", operating_system_command()) or {}
    assert str(after["LastBootUpTime"]) != before
