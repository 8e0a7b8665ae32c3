"""The replication link between the two sides of a Hyper-V Replica relationship and the
replication cycles it carries (reference §13.2), shared by the Replica cmdlets and Get-VM's
replication health (:mod:`simulator.cmdlets.hyperv_replica`, :mod:`hyperv_common`).

Replication cycles are evaluated lazily: whenever a relationship is read or acted on, the
cycles due since its last successful replication run (:func:`refresh`).
"""

from __future__ import annotations

import math

from simulator.core import SimState
from simulator.world import Host, Replication, Vm, World

# Health after this many replication cycles in a row failed. The reference gives only the
# meanings (Warning: lagging / missed cycles; Critical: stalled or failing), not thresholds.
MISSED_WARNING = 1  # [UNCONF]
MISSED_CRITICAL = 2  # [UNCONF]


def connection_problem(
    world: World, primary: Host, replica: Host | None, port: int, auth: str
) -> bool:
    """True when ``primary`` cannot replicate to ``replica`` with these settings. A replica
    server that does not accept replication from any server accepts only the primaries of
    its authorization entries (New-VMReplicationAuthorizationEntry), which the simulator does
    not keep: none."""
    if replica is None or replica is primary or not replica.has_feature("Hyper-V"):
        return True
    s = replica.replica_server
    auth_ok = auth == "Kerberos" and s.auth in ("Kerberos", "CertificateAndKerberos")
    auth_ok = auth_ok and bool(primary.domain and replica.domain)
    port_ok = port == s.kerberos_port
    return not (s.enabled and s.allow_any_server and auth_ok and port_ok
                and firewall_open(replica, port))


def firewall_open(host: Host, port: int) -> bool:
    return any(
        r.enabled
        and r.direction == "Inbound"
        and r.action == "Allow"
        and r.protocol.upper() in ("TCP", "ANY")
        and (r.local_port == "Any" or str(port) in [p.strip() for p in r.local_port.split(",")])
        for r in host.firewall.values()
    )


def offline(sim: SimState, host: Host) -> bool:
    """``host`` is off the network: rebooting, taken down by a ``down`` fault, or its
    management address is gone."""
    key = host.name.upper()
    return host.rebooting or key in sim.down or key in sim.cut_off


def link_problem(
    sim: SimState, primary: Host | None, replica: Host | None, port: int, auth: str
) -> bool:
    """True when replication from ``primary`` to ``replica`` cannot get through right now:
    :func:`connection_problem`, or either host is :func:`offline`."""
    if primary is None or replica is None:
        return True
    if offline(sim, primary) or offline(sim, replica):
        return True
    return connection_problem(sim.world, primary, replica, port, auth)


def partner(world: World, vm: Vm) -> tuple[Host, Vm] | None:
    """The other side of ``vm``'s replication relationship."""
    rep = vm.replication
    if rep is None:
        return None
    peer = world.host(rep.replica if rep.mode == "Primary" else rep.primary)
    other = peer.vms.get(vm.id) if peer else None
    return (peer, other) if peer and other and other.replication else None


# ---------------------------------------------------------------- replication cycles


def due_cycles(sim: SimState, last: float, frequency: int, now: float) -> float:
    """Replication cycles due since ``last`` (a real timestamp). At instant speed every
    simulated duration is over by the next command, so all of them are (infinitely many)."""
    if sim.clock.instant:
        return math.inf
    return float(max(0.0, (now - last) * sim.clock.speed) // frequency)


def refresh(sim: SimState, host: Host, vm: Vm) -> None:
    """Run the replication cycles due for ``vm``'s relationship since its last successful one
    (both sides together while both are Replicating).

    Only a Replicating primary sends: every ``frequency`` seconds of simulated time it sends
    its log to the replica side, which takes it while it is Replicating too (not after a
    failover, nor once its relationship is removed). While the log is not taken or
    :func:`link_problem` holds, the cycles fail and Health (of the sides still Replicating) is
    Warning after ``MISSED_WARNING`` of them, Critical after ``MISSED_CRITICAL``; once the
    link is back the latest due cycle succeeds, LastReplicationTime moves to it and Health is
    Normal. The link is judged as it is when the relationship is read (a cause fixed between
    two reads counts as fixed for the cycles due since the last success). At instant speed
    (clock speed 0) every due cycle has run by the next read, so a relationship is Normal
    while the link works and Critical while it does not: deterministic, never Warning.
    """
    rep = vm.replication
    if rep is None or rep.state != "Replicating":
        return
    pair = partner(sim.world, vm)
    other = pair[1].replication if pair else None
    sender: Replication | None
    receiver: Replication | None
    if rep.mode == "Primary":
        sender, receiver = rep, other
    else:
        sender = other if other is not None and other.mode == "Primary" else None
        receiver = rep
    if sender is not None and sender.state != "Replicating":
        return  # prepared for failover, suspended, resynchronizing ...: nothing is sent
    accepting = (
        receiver is not None and receiver.mode == "Replica" and receiver.state == "Replicating"
    )
    reps = [r for r in (sender, receiver) if r is not None and (r is sender or accepting)]
    now = sim.clock.now()
    stamps = [r.last_replication for r in reps if r.last_replication is not None]
    if not stamps:  # replicating since before cycles were kept: count from now
        for r in reps:
            r.last_replication = now
        return
    last = max(stamps)
    frequency = (sender or rep).frequency
    due = due_cycles(sim, last, frequency, now)
    if due < 1:
        return
    if pair is None or sender is None or not accepting:
        # the other side lost the relationship or failed over: nothing sends or takes the log
        failing = True
    else:
        primary, replica = (host, pair[0]) if sender is rep else (pair[0], host)
        failing = link_problem(sim, primary, replica, sender.port, sender.auth)
    if failing:
        for r in reps:
            if due >= MISSED_CRITICAL:
                r.health = "Critical"
            elif due >= MISSED_WARNING:
                r.health = "Warning"
        return
    success = now if math.isinf(due) else last + sim.clock.real(due * frequency)
    for r in reps:
        r.last_replication, r.health = success, "Normal"


def replicated_now(sim: SimState, vm: Vm) -> None:
    """A replication that just went through (prepare, reverse, resynchronization): both sides
    Normal as of now."""
    now = sim.clock.now()
    pair = partner(sim.world, vm)
    for rep in (vm.replication, pair[1].replication if pair else None):
        if rep is not None:
            rep.last_replication, rep.health = now, "Normal"
