"""Activities under Temporal's ActivityEnvironment: heartbeats, cancellation, error mapping."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.testing import ActivityEnvironment

from activities.base import application_errors, to_application_error
from activities.host import HostActivities, RebootBeat
from activities.models import HostInput, HyperVRoleInput, WaitReadyInput
from hvlab.powershell.errors import HostUnreachable, InsufficientMemory
from simulator.fleet import Fleet


def test_wait_ready_heartbeats_and_stops_on_cancel(
    fleet: Fleet, host_activities: HostActivities
) -> None:
    """Polling a down host heartbeats each attempt; a cancel ends it with CancelledError."""
    env = ActivityEnvironment()
    beats: list[Any] = []

    def on_heartbeat(*details: Any) -> None:
        beats.append(details)
        if len(beats) == 2:
            env.cancel()

    env.on_heartbeat = on_heartbeat
    fleet.servers["SVR1"].go_down()
    try:
        with pytest.raises(CancelledError):
            env.run(host_activities.wait_ready,
                    WaitReadyInput(host="SVR1", timeout_seconds=30, interval_seconds=0.05))
    finally:
        fleet.servers["SVR1"].come_up()
    assert beats[0][0]["attempts"] == 1 and "HostUnreachable" in beats[0][0]["last"]


def test_activity_in_environment_returns_result(
    fleet: Fleet, host_activities: HostActivities
) -> None:
    """Inside an activity context a step runs the same as a plain call."""
    env = ActivityEnvironment()
    result = env.run(host_activities.hyperv_role, HyperVRoleInput(host="SVR2"))
    assert result.changed and result.observed["restart_needed"] is True
    assert env.run(host_activities.reboot, HostInput(host="SVR2")).changed


def test_remote_errors_map_to_application_errors() -> None:
    """Transient kinds stay retryable; permanent ones are non-retryable; type and message kept."""
    transient = to_application_error(HostUnreachable("SVR1", "Get-VM", "connection refused"))
    assert transient.type == "HostUnreachable" and not transient.non_retryable
    with pytest.raises(ApplicationError) as caught, application_errors():
        raise InsufficientMemory("SVR1", "Start-VM -Name x", "Unable to allocate 20480 MB")
    assert caught.value.type == "InsufficientMemory" and caught.value.non_retryable
    assert "Unable to allocate 20480 MB" in caught.value.message
    assert caught.value.details[0]["host"] == "SVR1"


def _recording(env: ActivityEnvironment) -> list[tuple[Any, ...]]:
    beats: list[tuple[Any, ...]] = []
    env.on_heartbeat = lambda *details: beats.append(details)
    return beats


def test_liveness_beats_keep_the_details_a_retry_reads() -> None:
    """A bare 'still running' beat repeats this execution's last details, or before any its
    predecessor's: a plain activity.heartbeat() would replace them with nothing."""
    import dataclasses

    from activities.base import WaitBeat, heartbeat, liveness

    done = WaitBeat(attempts=1, last="done").details()

    def step() -> None:
        liveness()
        heartbeat(WaitBeat(attempts=1, last="done"))
        liveness()

    retried = ActivityEnvironment()
    retried.info = dataclasses.replace(retried.info, attempt=2,
                                       heartbeat_details=[{"done": 0}])  # fmt: skip
    beats = _recording(retried)
    retried.run(step)
    assert beats == [({"done": 0},), (done,), (done,)]  # the predecessor's, whatever its shape
    fresh = ActivityEnvironment()
    beats = _recording(fresh)
    fresh.run(step)
    assert beats == [(), (done,), (done,)]


def test_reboot_heartbeats_before_it_restarts_and_nothing_before_that(
    fleet: Fleet, host_activities: HostActivities
) -> None:
    """host.reboot's first heartbeat is its 'about to restart' one: the SDK sends a first
    heartbeat at once and holds later ones, so a bare beat from a quick probe before it would
    let a worker killed right after the restart leave its retry without the details (`make
    chaos` saw a third Restart-Computer that way)."""
    env = ActivityEnvironment()
    beats = _recording(env)
    result = env.run(host_activities.reboot, HostInput(host="SVR2"))
    before = result.observed["last_boot_before"]
    assert beats[0] == (RebootBeat(restart_pending=True, last_boot_before=before).details(),)
    assert beats[1] == (RebootBeat(restart_requested=True, last_boot_before=before).details(),)
