"""Hyper-V Replica health after the initial sync (reference §13.2): replication cycles run
lazily when a relationship is read. Cycles fail while the replica's listener rule is off, its
replica server is disabled, the port does not match or a host is down; Health goes Warning
after one missed cycle and Critical after more, and back to Normal once a cycle succeeds.

Instant speed (the ``sim`` fixture) runs every due cycle by the next read: Normal or Critical,
deterministically. :class:`ManualClock` moves simulated time only when the test says so, for
the Warning step."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from simulator.clock import Clock
from simulator.engine import Sim
from simulator.pstypes import prop
from simulator.world import REPLICA_HTTP_RULE
from tests.sim.conftest import run
from tests.sim.test_hyperv_replica import PORT, replicating


class ManualClock(Clock):
    """A non-instant clock (one simulated second per second) whose time moves only with
    :meth:`advance`; waits return at once. Swap it in after the lab is set up."""

    def __init__(self) -> None:
        super().__init__(speed=1.0)
        self.t = time.time()

    def now(self) -> float:
        return self.t

    def sleep(self, sim_seconds: float) -> None:
        return None

    def advance(self, sim_seconds: float) -> None:
        self.t += sim_seconds


def health(sim: Sim, host: str, cmdlet: str = "Get-VMReplication") -> tuple[str, str]:
    [out] = run(sim, host, cmdlet, VMName="Linux01").output
    return prop(out, "ReplicationState").name, prop(out, "ReplicationHealth").name


def both(sim: Sim) -> tuple[tuple[str, str], tuple[str, str]]:
    return health(sim, "SVR2"), health(sim, "SVR1")


def last_replication(sim: Sim, host: str = "SVR2") -> float:
    [out] = run(sim, host, "Measure-VMReplication", VMName="Linux01").output
    return float(prop(out, "LastReplicationTime").timestamp())


def listener(sim: Sim, enabled: bool) -> None:
    verb = "Enable" if enabled else "Disable"
    assert run(sim, "SVR1", f"{verb}-NetFirewallRule", Name=REPLICA_HTTP_RULE).ok


NORMAL = ("Replicating", "Normal")
CRITICAL = ("Replicating", "Critical")


def test_disabled_listener_rule_makes_replication_critical_until_reenabled(sim: Sim) -> None:
    """Instant speed: with SVR1's listener rule off, the next read of either side finds the
    due cycles failed (Critical, on Get- and Measure-VMReplication, LastReplicationTime kept);
    with the rule back on the next cycle succeeds (Normal, LastReplicationTime moves on)."""
    replicating(sim)
    assert both(sim) == (NORMAL, NORMAL)
    seeded = last_replication(sim)
    listener(sim, False)
    assert both(sim) == (CRITICAL, CRITICAL)
    assert health(sim, "SVR2", "Measure-VMReplication") == CRITICAL
    assert last_replication(sim) == seeded
    listener(sim, True)
    assert health(sim, "SVR1") == NORMAL
    assert health(sim, "SVR2", "Measure-VMReplication") == NORMAL
    assert last_replication(sim) > seeded


def test_health_filter_sees_the_current_health(sim: Sim) -> None:
    """-ReplicationHealth filters on the health the due cycles left."""
    replicating(sim)
    assert run(sim, "SVR2", "Get-VMReplication", ReplicationHealth="Critical").output == []
    listener(sim, False)
    found = run(sim, "SVR2", "Get-VMReplication", ReplicationHealth="Critical").output
    assert [prop(o, "VMName") for o in found] == ["Linux01"]
    normal = run(sim, "SVR2", "Measure-VMReplication", ReplicationHealth="Normal")
    assert normal.ok and normal.output == []


def _server_disabled(sim: Sim) -> Callable[[], None]:
    sim.host("SVR1").replica_server.enabled = False
    return lambda: setattr(sim.host("SVR1").replica_server, "enabled", True)


def _port_moved(sim: Sim) -> Callable[[], None]:
    assert run(sim, "SVR1", "Set-VMReplicationServer", KerberosAuthenticationPort=8081).ok
    return lambda: run(sim, "SVR1", "Set-VMReplicationServer", KerberosAuthenticationPort=PORT)


def _any_server_off(sim: Sim) -> Callable[[], None]:
    """Only authorized primaries (none: the simulator keeps no authorization entries)."""
    assert run(sim, "SVR1", "Set-VMReplicationServer", ReplicationAllowedFromAnyServer=False).ok
    return lambda: run(sim, "SVR1", "Set-VMReplicationServer", ReplicationAllowedFromAnyServer=True)


def _replica_down(sim: Sim) -> Callable[[], None]:
    sim.down.add("SVR1")
    return lambda: sim.down.discard("SVR1")


def _replica_rebooting(sim: Sim) -> Callable[[], None]:
    sim.host("SVR1").rebooting = True
    return lambda: setattr(sim.host("SVR1"), "rebooting", False)


@pytest.mark.parametrize("cause", [_server_disabled, _port_moved, _any_server_off, _replica_down,
                                   _replica_rebooting])
def test_every_cause_fails_the_cycles_until_fixed(
    sim: Sim, cause: Callable[[Sim], Callable[[], Any]]
) -> None:
    """Replica server disabled, its Kerberos port moved away from the relationship's, no
    longer accepting any primary (and no authorization entry for this one), the replica host
    down or rebooting: the primary's cycles fail (Critical) until fixed."""
    replicating(sim)
    fix = cause(sim)
    assert health(sim, "SVR2") == CRITICAL
    fix()
    assert health(sim, "SVR2") == NORMAL


def test_warning_after_one_missed_cycle_then_critical(sim: Sim) -> None:
    """Simulated time: nothing changes before a cycle is due; one failed 5-minute cycle is
    Warning, two are Critical; once the listener is back the latest due cycle succeeds and
    LastReplicationTime is that cycle's time."""
    replicating(sim)
    sim.clock = clock = ManualClock()
    seeded = last_replication(sim)
    listener(sim, False)
    clock.advance(299)
    assert both(sim) == (NORMAL, NORMAL)  # no cycle due yet
    clock.advance(2)
    assert both(sim) == (("Replicating", "Warning"), ("Replicating", "Warning"))
    clock.advance(300)
    assert both(sim) == (CRITICAL, CRITICAL)
    assert last_replication(sim) == seeded
    listener(sim, True)
    clock.advance(300)
    assert both(sim) == (NORMAL, NORMAL)
    assert last_replication(sim) == pytest.approx(seeded + 900, abs=1e-3)


def test_cycles_follow_the_relationship_frequency(sim: Sim) -> None:
    """At 30 s a failed cycle shows after 30 s; while the link works the cycles keep
    LastReplicationTime within one cycle of now."""
    replicating(sim)
    assert run(sim, "SVR2", "Set-VMReplication", VMName="Linux01", ReplicationFrequencySec=30).ok
    sim.clock = clock = ManualClock()
    seeded = last_replication(sim)
    clock.advance(95)
    assert health(sim, "SVR2") == NORMAL
    assert last_replication(sim) == pytest.approx(seeded + 90, abs=1e-3)
    listener(sim, False)
    clock.advance(31)
    assert health(sim, "SVR2") == ("Replicating", "Warning")


def test_invalid_frequency_is_refused(sim: Sim) -> None:
    replicating(sim)
    result = run(sim, "SVR2", "Set-VMReplication", VMName="Linux01", ReplicationFrequencySec=60)
    assert "Valid values are 30, 300 and 900" in result.failure


def test_suspended_replication_has_no_cycles(sim: Sim) -> None:
    """A suspended relationship sends nothing, so it cannot miss a cycle; resumed, its cycles
    run again and fail while the listener is off."""
    replicating(sim)
    assert run(sim, "SVR2", "Suspend-VMReplication", VMName="Linux01").ok
    listener(sim, False)
    assert health(sim, "SVR2") == ("Suspended", "Normal")
    assert run(sim, "SVR2", "Resume-VMReplication", VMName="Linux01").ok
    assert health(sim, "SVR2") == CRITICAL


def test_relationship_removed_on_the_replica_fails_the_primary(sim: Sim) -> None:
    """Removed on SVR1 only: nothing takes SVR2's log any more."""
    replicating(sim)
    assert run(sim, "SVR1", "Remove-VMReplication", VMName="Linux01").ok
    assert health(sim, "SVR2") == CRITICAL


def test_replica_side_sees_a_primary_that_is_down(sim: Sim) -> None:
    """Nothing arrives on SVR1 while SVR2 is down: the replica side goes Critical too."""
    replicating(sim)
    sim.down.add("SVR2")
    assert health(sim, "SVR1") == CRITICAL
    sim.down.discard("SVR2")
    assert health(sim, "SVR1") == NORMAL


def test_primary_fails_once_the_replica_has_failed_over(sim: Sim) -> None:
    """Unplanned failover on SVR1 while SVR2 still replicates: the failed-over replica takes
    no more log, so SVR2's cycles fail; SVR1 keeps its own state and health."""
    replicating(sim)
    assert run(sim, "SVR1", "Start-VMFailover", VMName="Linux01", Confirm=False).ok
    assert health(sim, "SVR2") == CRITICAL
    assert health(sim, "SVR1") == ("FailedOverWaitingCompletion", "Warning")


def test_get_vm_shows_the_same_replication_health(sim: Sim) -> None:
    """Get-VM's ReplicationHealth runs the due cycles like Get-VMReplication does (a stale
    Normal there would hide a failing replica from a plain Get-VM)."""
    replicating(sim)
    listener(sim, False)
    [vm] = run(sim, "SVR2", "Get-VM", Name="Linux01").output
    assert prop(vm, "ReplicationHealth").name == "Critical"
    listener(sim, True)
    [vm] = run(sim, "SVR2", "Get-VM", Name="Linux01").output
    assert prop(vm, "ReplicationHealth").name == "Normal"
