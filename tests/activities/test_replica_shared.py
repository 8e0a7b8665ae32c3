"""Replica servers are shared by every relationship on a host (issue 12, item 3), against the
simulated fleet: with Linux01 replicating SVR2 -> SVR1 on port 8080, setting the servers up for
a second VM (win2003-2, SVR1 -> SVR2) takes the port they listen on and leaves Linux01 Normal;
a request for another port (or storage) is refused as Conflict naming both VMs before any
change; the undo steps keep a server and listener rule that a relationship still uses."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from temporalio.exceptions import ApplicationError

from activities.models import (
    HostInput,
    ReplicaFirewallInput,
    ReplicaServerInput,
    ReplicaServersInput,
    ReplicationInput,
    ReplicaWaitInput,
)
from activities.replica import ReplicaActivities
from hvlab.powershell.endpoints import SimEndpoints
from hvlab.powershell.session import SessionPool
from hvlab.spec import LabSpec
from simulator.clock import Clock
from simulator.fleet import Fleet
from simulator.world import REPLICA_HTTP_RULE
from tests.activities.conftest import mutations
from tests.sim.conftest import GB, lab_with_vm, run

PORT = 8080
STORAGE = "C:\\Hyper-V\\Replica"
SECOND = "win2003-2"


@pytest.fixture
def acts(sessions: SessionPool, fleet: Fleet, lab_spec: LabSpec) -> ReplicaActivities:
    return ReplicaActivities(sessions, SimEndpoints(lab_spec, fleet.home))


@pytest.fixture
def linux01(fleet: Fleet, acts: ReplicaActivities, lab_spec: LabSpec) -> Iterator[Fleet]:
    """Linux01 replicates SVR2 -> SVR1 on port 8080 (the seed's entry), Replicating/Normal;
    win2003-2 exists (off) on SVR1."""
    lab_with_vm(fleet.sim)
    disk = f"C:\\Hyper-V\\VHDs\\{SECOND}.vhdx"
    assert run(fleet.sim, "SVR1", "Copy-Item", Path="C:\\Golden\\linux01.vhdx",
               Destination=disk).ok
    assert run(fleet.sim, "SVR1", "New-VM", Name=SECOND, Generation=2, MemoryStartupBytes=GB,
               VHDPath=disk).ok
    for host in ("SVR1", "SVR2"):
        acts.server(ReplicaServerInput(host=host, port=PORT, storage=STORAGE, vm="Linux01"))
        acts.firewall(ReplicaFirewallInput(host=host, port=PORT))
    rep = ReplicationInput.from_spec(lab_spec, "Linux01")
    acts.enable(rep)
    acts.start_initial(rep)
    acts.wait_state(ReplicaWaitInput(host="SVR2", vm="Linux01", interval_seconds=0.01))
    yield fleet
    fleet.sim.clock = Clock(0)


def second(port: int) -> ReplicationInput:
    return ReplicationInput(primary="SVR1", replica="SVR2", vm=SECOND,
                            replica_server="svr2.kosa.vm", primary_server="svr1.kosa.vm",
                            port=port)


def health(fleet: Fleet, host: str, vm: str = "Linux01") -> tuple[str, str, str]:
    found = fleet.sim.host(host).vm(vm)
    assert found is not None and found.replication is not None
    rep = found.replication
    return rep.mode, rep.state, rep.health


def unchanged_for_linux01(fleet: Fleet) -> None:
    """Both servers and listener rules still on 8080; Linux01 Replicating/Normal."""
    for name in ("SVR1", "SVR2"):
        host = fleet.sim.host(name)
        assert host.replica_server.enabled and host.replica_server.kerberos_port == PORT
        rule = fleet.sim.world.firewall_rule(host, REPLICA_HTTP_RULE)
        assert rule is not None and rule.enabled and rule.local_port == str(PORT)
    assert health(fleet, "SVR2") == ("Primary", "Replicating", "Normal")
    assert health(fleet, "SVR1") == ("Replica", "Replicating", "Normal")


def all_mutations(fleet: Fleet) -> tuple[dict[str, int], dict[str, int]]:
    return mutations(fleet, "SVR1"), mutations(fleet, "SVR2")


def test_second_vm_takes_the_servers_as_they_are(linux01: Fleet,
                                                 acts: ReplicaActivities) -> None:
    """No port asked for: replica.shared_settings reads port 8080 and each host's storage
    (read-only); with them the server and rule steps change nothing, win2003-2 replicates on
    8080 and Linux01 stays Replicating/Normal."""
    before = all_mutations(linux01)
    found = acts.shared_settings(ReplicaServersInput(vm=SECOND, hosts=["SVR2", "SVR1"]))
    assert found.observed["port"] == PORT and not found.changed
    assert found.observed["storage"] == {"SVR2": STORAGE, "SVR1": STORAGE}
    assert found.observed["relationships"] == {"SVR2": ["Linux01"], "SVR1": ["Linux01"]}
    assert all_mutations(linux01) == before
    for host in ("SVR2", "SVR1"):
        assert not acts.server(ReplicaServerInput(host=host, port=PORT, storage=STORAGE,
                                                  vm=SECOND)).changed
        assert not acts.firewall(ReplicaFirewallInput(host=host, port=PORT)).changed
    assert all_mutations(linux01) == before
    rep = second(found.observed["port"])
    assert acts.enable(rep).changed
    acts.start_initial(rep)
    done = acts.wait_state(ReplicaWaitInput(host="SVR1", vm=SECOND, interval_seconds=0.01))
    assert (done.observed["state"], done.observed["health"]) == ("Replicating", "Normal")
    assert health(linux01, "SVR1", SECOND) == ("Primary", "Replicating", "Normal")
    unchanged_for_linux01(linux01)


def test_a_port_linux01_uses_is_refused_before_any_change(linux01: Fleet,
                                                          acts: ReplicaActivities) -> None:
    """Port 80 for win2003-2 while both servers listen on 8080 for Linux01: shared_settings
    and replica.server fail as Conflict (not retried) naming win2003-2, Linux01, the host,
    the setting and both values, and send no mutating command; so does another storage."""
    before = all_mutations(linux01)
    with pytest.raises(ApplicationError) as server:
        acts.server(ReplicaServerInput(host="SVR1", port=80, storage=STORAGE, vm=SECOND))
    assert server.value.type == "Conflict" and "Linux01" in server.value.message
    with pytest.raises(ApplicationError) as storage:
        acts.server(ReplicaServerInput(host="SVR2", port=PORT, storage="D:\\Replica",
                                       vm=SECOND))
    assert storage.value.type == "Conflict"
    assert storage.value.details[0]["changes"][0]["setting"] == "storage"
    with pytest.raises(ApplicationError) as caught:
        acts.shared_settings(ReplicaServersInput(vm=SECOND, hosts=["SVR2", "SVR1"], port=80))
    error = caught.value
    assert error.type == "Conflict" and error.non_retryable
    assert SECOND in error.message and "Linux01" in error.message
    [details] = error.details
    assert details["vm"] == SECOND
    assert [(c["host"], c["setting"], c["current"], c["wanted"], c["relationships"])
            for c in details["changes"]] == [
        ("SVR2", "port", PORT, 80, ["Linux01 (Primary)"]),
        ("SVR1", "port", PORT, 80, ["Linux01 (Replica)"])]
    assert all_mutations(linux01) == before
    unchanged_for_linux01(linux01)
    # Linux01's own settings are no conflict with itself
    assert not acts.server(ReplicaServerInput(host="SVR1", port=PORT, storage=STORAGE,
                                              vm="Linux01")).changed


def test_undo_keeps_the_server_and_rule_a_relationship_uses(
    linux01: Fleet, acts: ReplicaActivities, lab_spec: LabSpec
) -> None:
    """replica.disable_server and replica.disable_firewall (a failed second replication's
    undo, or teardown) leave SVR1's server and listener rule on while Linux01 replicates
    through them and say so (``kept``); once Linux01's replication is removed they turn
    them off."""
    before = all_mutations(linux01)
    kept = acts.disable_firewall(ReplicaFirewallInput(host="SVR1"))
    assert not kept.changed and "Linux01" in kept.observed["kept"]
    kept = acts.disable_server(HostInput(host="SVR1"))
    assert not kept.changed and "Linux01" in kept.observed["kept"]
    assert all_mutations(linux01) == before
    unchanged_for_linux01(linux01)
    acts.remove(ReplicationInput.from_spec(lab_spec, "Linux01"))
    assert acts.disable_firewall(ReplicaFirewallInput(host="SVR1")).changed
    assert acts.disable_server(HostInput(host="SVR1")).changed
    host = linux01.sim.host("SVR1")
    rule = linux01.sim.world.firewall_rule(host, REPLICA_HTTP_RULE)
    assert rule is not None and not rule.enabled and not host.replica_server.enabled


def test_listener_rule_with_the_port_among_others_is_left_as_it_is(
    linux01: Fleet, acts: ReplicaActivities
) -> None:
    """The listener rule already open on 80 and 8080: asking for 8080 changes nothing (the
    rule keeps port 80 for whatever uses it)."""
    rule = linux01.sim.world.firewall_rule(linux01.sim.host("SVR2"), REPLICA_HTTP_RULE)
    assert rule is not None
    rule.local_port = "80,8080"
    before = all_mutations(linux01)
    assert not acts.firewall(ReplicaFirewallInput(host="SVR2", port=PORT)).changed
    assert rule.local_port == "80,8080" and all_mutations(linux01) == before
