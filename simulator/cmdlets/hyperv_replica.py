"""Hyper-V Replica: replica server settings, enabling, initial replication, planned failover,
reverse replication, test failover, suspend/resume/resynchronize and removal (reference §13).

Replication cycles are evaluated lazily: whenever a relationship is read or acted on
(Get-/Measure-VMReplication and every other cmdlet here), the cycles due since its last
successful replication run. A cycle fails while the primary cannot reach the replica server
with the relationship's port and authentication (:func:`connection_problem`: replica server
disabled, listener firewall rule off, port/auth mismatch) or while either host is down
(rebooting, a ``down`` fault, its management address cut off). Failing cycles degrade Health
to Warning, then Critical (§13.2); the first cycle that succeeds again brings it back to
Normal and advances LastReplicationTime. See :func:`refresh` for what that means at instant
speed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from psrpcore.types import PSDateTime

from simulator import localization
from simulator.cmdlets import host_jobs
from simulator.cmdlets.hyperv_common import hv_cmdlet, target_vms
from simulator.cmdlets.replica_link import (
    connection_problem,
    link_problem,
    partner,
    refresh,
    replicated_now,
)
from simulator.core import Call, Registry
from simulator.pstypes import (
    HV,
    RecoveryAuthenticationType,
    ReplicationAuthenticationType,
    VMReplicationHealthState,
    VMReplicationMode,
    VMReplicationRelationshipType,
    VMReplicationState,
    guid,
    member,
    ps_object,
)
from simulator.world import (
    Host,
    Job,
    Replication,
    SimFile,
    Vm,
    World,
    join_path,
    leaf,
    new_guid,
    norm_path,
)

CONNECT = ("Hyper-V failed to enable replication for virtual machine '{vm}': The connection with "
           "the Replica server '{replica}' on port {port} could not be established. Verify that "
           "the Replica server is configured to receive replication with {auth} authentication "
           "on that port and that its firewall allows it. (0x00002EFD)")  # [UNCONF] # fmt: skip
OK_TEXT = (
    "The connection to the specified Replica server with the specified parameters was successful."
)
BAD_STATE = "The operation cannot be performed while the object is in its current state."
NOT_ENABLED = "Replication is not enabled for virtual machine '{vm}'."  # [UNCONF]
FREQUENCIES = (30, 300, 900)
RESYNC_JOB = 107  # Msvm_ConcreteJob.JobType "Resynchronizing" [DOC Msvm_ConcreteJob]
RESYNC_STATES = ("WaitingForStartResynchronize", "Resynchronizing", "ResynchronizeSuspended")


def register(registry: Registry) -> None:
    hv_cmdlet(registry, "Get-VMReplicationServer")(get_server)
    hv_cmdlet(registry, "Set-VMReplicationServer")(set_server)
    hv_cmdlet(registry, "Test-VMReplicationConnection")(test_connection)
    hv_cmdlet(registry, "Enable-VMReplication")(enable_replication)
    hv_cmdlet(registry, "Start-VMInitialReplication")(start_initial)
    hv_cmdlet(registry, "Get-VMReplication")(get_replication)
    hv_cmdlet(registry, "Measure-VMReplication")(measure_replication)
    hv_cmdlet(registry, "Set-VMReplication")(set_replication)
    hv_cmdlet(registry, "Remove-VMReplication")(remove_replication)
    hv_cmdlet(registry, "Suspend-VMReplication", "Resume-VMReplication")(suspend_resume)
    hv_cmdlet(registry, "Stop-VMReplication")(stop_replication)
    hv_cmdlet(registry, "Start-VMFailover")(start_failover)
    hv_cmdlet(registry, "Stop-VMFailover")(stop_failover)
    hv_cmdlet(registry, "Complete-VMFailover")(complete_failover)


def fqdn(host: Host) -> str:
    return f"{host.name}.{host.domain}".lower() if host.domain else host.name


# ---------------------------------------------------------------- replica server


def server_object(host: Host) -> Any:
    s = host.replica_server
    return ps_object(
        [HV + "VMReplicationServer"],
        ComputerName=host.name,
        ReplicationEnabled=s.enabled,
        AllowedAuthenticationType=member(RecoveryAuthenticationType, s.auth),
        KerberosAuthenticationPort=s.kerberos_port,
        CertificateAuthenticationPort=s.certificate_port,
        ReplicationAllowedFromAnyServer=s.allow_any_server,
        DefaultStorageLocation=s.default_storage or None,
        MonitoringInterval=s.monitoring_interval,
    )


def get_server(call: Call) -> None:
    call.out(server_object(call.host))


def set_server(call: Call) -> None:
    s = call.host.replica_server
    fields = {
        "ReplicationEnabled": "enabled",
        "AllowedAuthenticationType": "auth",
        "KerberosAuthenticationPort": "kerberos_port",
        "CertificateAuthenticationPort": "certificate_port",
        "ReplicationAllowedFromAnyServer": "allow_any_server",
        "DefaultStorageLocation": "default_storage",
    }
    updated = s.model_copy()
    for param, attr in fields.items():
        if call.has(param):
            setattr(updated, attr, call.get(param))
    if updated.enabled and updated.allow_any_server and not updated.default_storage:
        call.fail(
            "The DefaultStorageLocation parameter is required when "
            "ReplicationAllowedFromAnyServer is true.",
            "InvalidParameter",
            "InvalidArgument",
        )  # [UNCONF] wording
    if call.has("DefaultStorageLocation"):
        _require_storage(call, str(updated.default_storage))
    call.host.replica_server = updated
    if call.switch("Passthru"):
        call.out(server_object(call.host))


def _require_storage(call: Call, path: str) -> None:
    """The storage location must be an existing folder on the replica host: the cmdlet only
    passes the path on to the host's authorization entry ("*") and creates nothing; like
    Set-VMHost's default paths, a missing folder fails with ERROR_PATH_NOT_FOUND and changes
    nothing (docs/simulator-fidelity.md). A share is the replica host's business (not
    modelled)."""
    if path.startswith("\\\\") or call.host.folder_exists(norm_path(path)):
        return
    call.fail(f"Failed to modify service settings. The system cannot find the path "
              f"specified. (0x80070003) '{path}'", "ObjectNotFound", "ObjectNotFound",
              target=path)  # [UNCONF] wording


def _params(call: Call) -> tuple[str, int, str]:
    return (
        str(call.get("ReplicaServerName") or ""),
        int(call.get("ReplicaServerPort") or 80),
        str(call.get("AuthenticationType") or "Kerberos"),
    )


def test_connection(call: Call) -> None:
    name, port, auth = _params(call)
    if connection_problem(call.world, call.host, call.world.host(name), port, auth):
        call.error(
            CONNECT.format(vm="", replica=name, port=port, auth=auth).replace(
                "to enable replication for virtual machine '': ", "to connect: "
            ),
            "ConnectionFailed",
            "ConnectionError",
        )
        return
    call.out(localization.localize(call.host.locale, OK_TEXT))


# ---------------------------------------------------------------- enable / initial replication


def _frequency(call: Call, frequency: int) -> int:
    """-ReplicationFrequencySec: 30, 300 or 900 (terminating otherwise)."""
    if frequency not in FREQUENCIES:
        call.fail(
            f"The replication frequency {frequency} is not valid. Valid values are 30, "
            "300 and 900 seconds.",
            "InvalidParameter",
            "InvalidArgument",
        )
    return frequency


def enable_replication(call: Call) -> None:
    name, port, auth = _params(call)
    frequency = _frequency(call, int(call.get("ReplicationFrequencySec") or 300))
    replica = call.world.host(name)
    for vm in target_vms(call):
        if vm.replication is not None:
            call.error(
                f"Replication is already enabled for virtual machine '{vm.name}'.",
                "InvalidOperation",
                "InvalidOperation",
                vm.name,
            )
            continue
        if connection_problem(call.world, call.host, replica, port, auth) or replica is None:
            call.error(
                CONNECT.format(vm=vm.name, replica=name, port=port, auth=auth),
                "ConnectionFailed",
                "ConnectionError",
                vm.name,
            )
            continue
        if replica.vms.get(vm.id) or replica.vm(vm.name):
            call.error(
                f"Hyper-V failed to enable replication for virtual machine '{vm.name}': "
                f"a virtual machine with the same name or identifier already exists on "
                f"'{replica.name}'.",
                "InvalidOperation",
                "ResourceExists",
            )
            continue
        _pair(call.host, replica, vm, port, auth, frequency)
        if call.switch("Passthru"):
            call.out(replication_object(call.host, vm))


def _pair(primary: Host, replica: Host, vm: Vm, port: int, auth: str, frequency: int) -> None:
    common = dict(
        frequency=frequency, primary=fqdn(primary), replica=fqdn(replica), port=port, auth=auth
    )
    vm.replication = Replication(mode="Primary", state="ReadyForInitialReplication", **common)
    folder = join_path(replica.replica_server.default_storage or "C:\\Hyper-V\\Replica", vm.name)
    copy = vm.model_copy(deep=True)
    copy.state, copy.ready_at, copy.snapshots = "Off", None, []
    copy.path = copy.config_location = folder
    for nic in copy.nics:
        nic.switch = None  # replica NICs are not connected
    for disk in copy.disks:
        disk.path = join_path(folder, leaf(disk.path))
    copy.replication = Replication(mode="Replica", state="WaitingForInitialReplication", **common)
    replica.add_folder(folder)
    replica.vms[copy.id] = copy


def start_initial(call: Call) -> None:
    for vm in _replicated(call):
        rep = vm.replication
        assert rep is not None
        pair = partner(call.world, vm)
        if rep.mode != "Primary" or rep.state != "ReadyForInitialReplication" or pair is None:
            call.error(BAD_STATE, "InvalidState", "InvalidOperation", vm.name)
            continue
        if link_problem(call.sim, call.host, pair[0], rep.port, rep.auth):
            _connect_error(call, vm, rep)
            continue
        rep.state = "InitialReplicationInProgress"
        size = _disk_size(call.world, call.host, vm)
        job = call.world.new_job(
            host=call.host.name,
            kind="replication",
            cim_class="Msvm_ConcreteJob",
            job_type=116,
            vm_id=vm.id,
            vm_name=vm.name,
            peer=pair[0].name,
            command="Start-VMInitialReplication",
        )
        call.sim.run_job(job, size / call.sim.clock.d.replication_rate, *_seed_callbacks(call, vm))
        if call.switch("AsJob"):
            call.out(host_jobs.job_object(job))
            continue
        call.wait_job(job)
        if job.state != 7:
            call.error(job.error_description, "OperationFailed", "InvalidOperation", vm.name)


def _seed_callbacks(call: Call, vm: Vm) -> tuple[Callable[[Job], None], Callable[[Job], None]]:
    src = call.host

    def complete(job: Job) -> None:
        _seeded(call, src, vm)

    def abort(job: Job) -> None:
        _seed_failed(vm)

    return complete, abort


def _disk_size(world: World, host: Host, vm: Vm) -> int:
    total = 0
    for disk in vm.disks:
        spot = world.locate(host, disk.path)
        file = spot[0].file(spot[1]) if spot else None
        total += file.size if file else 0
    return total


def _seeded(call: Call, src: Host, vm: Vm) -> None:
    pair = partner(call.world, vm)
    if pair is None or vm.replication is None:
        return
    replica_host, replica_vm = pair
    for disk, copy in zip(vm.disks, replica_vm.disks, strict=False):
        spot = call.world.locate(src, disk.path)
        file = spot[0].file(spot[1]) if spot else None
        replica_host.put_file(
            file.model_copy(update={"path": copy.path}) if file else SimFile(path=copy.path, size=0)
        )
    now = call.sim.clock.now()
    for rep in (vm.replication, replica_vm.replication):
        assert rep is not None
        rep.state, rep.health, rep.last_replication = "Replicating", "Normal", now


def _seed_failed(vm: Vm) -> None:
    if vm.replication is not None:
        vm.replication.state, vm.replication.health = "Error", "Critical"


def _connect_error(call: Call, vm: Vm, rep: Replication) -> None:
    """The replica server cannot be reached with the relationship's settings."""
    call.error(
        CONNECT.format(vm=vm.name, replica=rep.replica, port=rep.port, auth=rep.auth),
        "ConnectionFailed",
        "ConnectionError",
        vm.name,
    )


# ---------------------------------------------------------------- Get/Set/Remove


def replication_object(host: Host, vm: Vm) -> Any:
    rep = vm.replication
    assert rep is not None
    state = member(VMReplicationState, rep.state)
    health = member(VMReplicationHealthState, rep.health)
    mode = member(VMReplicationMode, rep.mode)
    return ps_object(
        [HV + "VMReplication", HV + "VirtualizationObject"],
        VMName=vm.name,
        VMId=guid(vm.id),
        Id=new_guid(),
        State=state,
        ReplicationState=state,
        Health=health,
        ReplicationHealth=health,
        Mode=mode,
        ReplicationMode=mode,
        FrequencySec=rep.frequency,
        ReplicationFrequencySec=rep.frequency,
        PrimaryServer=rep.primary,
        PrimaryServerName=rep.primary,
        ReplicaServer=rep.replica,
        ReplicaServerName=rep.replica,
        ReplicaPort=rep.port,
        ReplicaServerPort=rep.port,
        AuthType=member(ReplicationAuthenticationType, rep.auth),
        AuthenticationType=member(ReplicationAuthenticationType, rep.auth),
        Relationship=member(VMReplicationRelationshipType, rep.relationship),
        ReplicationRelationshipType=member(VMReplicationRelationshipType, rep.relationship),
        ComputerName=host.name,
        TestVirtualMachineName=rep.test_vm,
        LastReplicationTime=_when(rep.last_replication),
    )


def _when(stamp: float | None) -> PSDateTime | None:
    return None if stamp is None else PSDateTime.fromtimestamp(stamp, dt.UTC)


def health_object(host: Host, vm: Vm) -> Any:
    """What Measure-VMReplication emits (Microsoft.HyperV.PowerShell.VMReplicationHealth)."""
    rep = vm.replication
    assert rep is not None
    return ps_object(
        [HV + "VMReplicationHealth"],
        VMName=vm.name,
        VMId=guid(vm.id),
        ReplicationState=member(VMReplicationState, rep.state),
        ReplicationHealth=member(VMReplicationHealthState, rep.health),
        ReplicationMode=member(VMReplicationMode, rep.mode),
        ReplicationRelationshipType=member(VMReplicationRelationshipType, rep.relationship),
        LastReplicationTime=_when(rep.last_replication),
        PrimaryServerName=rep.primary,
        ReplicaServerName=rep.replica,
        CurrentReplicaServerName=rep.replica,
        ComputerName=host.name,
    )


def _replicated(call: Call) -> list[Vm]:
    """The target VMs that have a relationship, its due cycles run (:func:`refresh`)."""
    out = []
    for vm in target_vms(call):
        if vm.replication is None:
            call.error(NOT_ENABLED.format(vm=vm.name), "ObjectNotFound", "ObjectNotFound", vm.name)
        else:
            refresh(call.sim, call.host, vm)
            out.append(vm)
    return out


FILTERS = {
    "ReplicationMode": lambda rep: rep.mode,
    "ReplicationState": lambda rep: rep.state,
    "ReplicationHealth": lambda rep: rep.health,
    "PrimaryServerName": lambda rep: rep.primary,
    "ReplicaServerName": lambda rep: rep.replica,
}


def _selected(call: Call) -> list[Vm]:
    """Get-/Measure-VMReplication: the VMs asked for (all replicated ones by default), up to
    date, that match the -ReplicationMode/-State/-Health/-PrimaryServerName/-ReplicaServerName
    filters."""
    if call.has("VMName") or call.has("VM") or call.input:
        vms = _replicated(call)
    else:
        vms = [vm for vm in call.host.vms.values() if vm.replication is not None]
        for vm in vms:
            refresh(call.sim, call.host, vm)
    wanted = {p: str(call.get(p)).lower() for p in FILTERS if call.get(p) is not None}
    return [
        vm
        for vm in vms
        if vm.replication is not None
        and all(str(FILTERS[p](vm.replication)).lower() == v for p, v in wanted.items())
    ]


def get_replication(call: Call) -> None:
    for vm in _selected(call):
        call.out(replication_object(call.host, vm))


def measure_replication(call: Call) -> None:
    for vm in _selected(call):
        call.out(health_object(call.host, vm))


def set_replication(call: Call) -> None:
    for vm in _replicated(call):
        rep = vm.replication
        assert rep is not None
        if call.switch("Reverse"):
            _reverse(call, vm, rep)
        elif call.switch("AsReplica"):
            vm.replication = rep.model_copy(
                update={"mode": "Replica", "state": "WaitingForInitialReplication"}
            )
        if call.has("ReplicationFrequencySec"):
            rep.frequency = _frequency(call, int(call.get("ReplicationFrequencySec")))
        if call.switch("Passthru") and vm.replication:
            call.out(replication_object(call.host, vm))


def _reverse(call: Call, vm: Vm, rep: Replication) -> None:
    """On the failed-over replica: it becomes the primary, the old primary its replica."""
    if rep.mode != "Replica" or rep.state not in ("FailedOverWaitingCompletion", "FailedOver"):
        call.fail(BAD_STATE, "InvalidState", "InvalidOperation", target=vm.name)
    old = call.world.host(str(call.get("ReplicaServerName") or rep.primary))
    port = int(call.get("ReplicaServerPort") or rep.port)
    auth = str(call.get("AuthenticationType") or rep.auth)
    if old is None or connection_problem(call.world, call.host, old, port, auth):
        call.fail(
            CONNECT.format(vm=vm.name, replica=rep.primary, port=port, auth=auth),
            "ConnectionFailed",
            "ConnectionError",
        )
    old_vm = old.vms.get(vm.id)
    prepared = (
        old_vm is not None
        and old_vm.replication is not None
        and (old_vm.replication.state == "PreparedForFailover")
    )
    if old_vm is not None and old_vm.state != "Off":
        call.fail(BAD_STATE, "InvalidState", "InvalidOperation", target=vm.name)
    common = dict(
        frequency=rep.frequency, primary=fqdn(call.host), replica=fqdn(old), port=port, auth=auth
    )
    vm.replication = Replication(
        mode="Primary", state="Replicating" if prepared else "ReadyForInitialReplication", **common
    )
    if old_vm is not None:
        old_vm.replication = Replication(
            mode="Replica",
            state="Replicating" if prepared else "WaitingForInitialReplication",
            **common,
        )
        for nic in old_vm.nics:
            nic.switch = nic.switch  # the old primary keeps its connections
    if prepared:
        replicated_now(call.sim, vm)


def remove_replication(call: Call) -> None:
    for vm in _replicated(call):
        vm.replication = None


def suspend_resume(call: Call) -> None:
    for vm in _replicated(call):
        rep = vm.replication
        assert rep is not None
        if call.name == "Suspend-VMReplication":
            _suspend(call, vm, rep)
        elif rep.state == "Suspended":
            rep.state, rep.health = "Replicating", "Normal"
        elif rep.state == "ResynchronizeSuspended" or (
            rep.state == "WaitingForStartResynchronize" and call.switch("Resynchronize")
        ):
            _resynchronize(call, vm, rep)
        else:  # WaitingForStartResynchronize needs -Resynchronize (reference §13.2)
            call.error(BAD_STATE, "InvalidState", "InvalidOperation", vm.name)
            continue
        if call.switch("Passthru") and not call.switch("AsJob"):
            call.out(replication_object(call.host, vm))


def _suspend(call: Call, vm: Vm, rep: Replication) -> None:
    if rep.state == "Replicating":
        rep.state = "Suspended"
    elif rep.state == "Resynchronizing":
        _cancel_resync(call, vm)
        rep.state = "ResynchronizeSuspended"
    else:
        call.error(BAD_STATE, "InvalidState", "InvalidOperation", vm.name)


# ---------------------------------------------------------------- resynchronization


def _resynchronize(call: Call, vm: Vm, rep: Replication) -> None:
    """Resume-VMReplication -Resynchronize on the primary: a job compares the disks of both
    sides and sends the differing blocks; then the relationship is Replicating/Normal."""
    pair = partner(call.world, vm)
    if rep.mode != "Primary" or pair is None:
        call.error(BAD_STATE, "InvalidState", "InvalidOperation", vm.name)
        return
    if link_problem(call.sim, call.host, pair[0], rep.port, rep.auth):
        _connect_error(call, vm, rep)
        return
    rep.state = "Resynchronizing"
    job = call.world.new_job(
        host=call.host.name,
        kind="replication",
        cim_class="Msvm_ConcreteJob",
        job_type=RESYNC_JOB,
        vm_id=vm.id,
        vm_name=vm.name,
        peer=pair[0].name,
        command="Resume-VMReplication",
    )
    size = _disk_size(call.world, call.host, vm)  # both disks are read: [UNCONF] duration
    sim = call.sim

    def complete(job: Job) -> None:
        if vm.replication is None or vm.replication.state != "Resynchronizing":
            return  # cancelled or suspended meanwhile
        vm.replication.state = "Replicating"
        other = partner(sim.world, vm)
        if (
            other is not None
            and other[1].replication is not None
            and (other[1].replication.state in RESYNC_STATES)
        ):
            other[1].replication.state = "Replicating"
        replicated_now(sim, vm)

    def abort(job: Job) -> None:
        if vm.replication is not None and vm.replication.state == "Resynchronizing":
            vm.replication.state = "WaitingForStartResynchronize"
            if job.state == 10:  # failed, not cancelled
                vm.replication.health = "Critical"

    sim.run_job(job, size / sim.clock.d.replication_rate, complete, abort)
    if call.switch("AsJob"):
        call.out(host_jobs.job_object(job))
        return
    call.wait_job(job)
    if job.state == 10:
        call.error(job.error_description, "OperationFailed", "InvalidOperation", vm.name)


def _cancel_resync(call: Call, vm: Vm) -> None:
    for job in call.world.jobs.values():
        if job.vm_id == vm.id and job.job_type == RESYNC_JOB and not job.done:
            job.cancel_requested = True


def stop_replication(call: Call) -> None:
    """Stop-VMReplication cancels an ongoing resynchronization (reference §13.2); the
    relationship waits for a resynchronization again ([UNCONF] state afterwards)."""
    for vm in _replicated(call):
        rep = vm.replication
        assert rep is not None
        if rep.state != "Resynchronizing":
            call.error(BAD_STATE, "InvalidState", "InvalidOperation", vm.name)
            continue
        _cancel_resync(call, vm)
        rep.state = "WaitingForStartResynchronize"
        if call.switch("Passthru"):
            call.out(replication_object(call.host, vm))


# ---------------------------------------------------------------- failover


def start_failover(call: Call) -> None:
    for vm in _replicated(call):
        rep = vm.replication
        assert rep is not None
        if call.switch("Prepare"):
            _prepare(call, vm, rep)
        elif call.switch("AsTest"):
            _test_failover(call, vm, rep)
        elif rep.mode == "Replica" and rep.state in ("Replicating", "Suspended"):
            rep.state, rep.health = "FailedOverWaitingCompletion", "Warning"
        else:
            call.error(BAD_STATE, "InvalidState", "InvalidOperation", vm.name)


def _prepare(call: Call, vm: Vm, rep: Replication) -> None:
    if rep.mode != "Primary" or rep.state != "Replicating":
        call.error(BAD_STATE, "InvalidState", "InvalidOperation", vm.name)
        return
    if vm.state != "Off":
        call.error(
            f"Cannot prepare the planned failover of virtual machine '{vm.name}' because "
            "it is not turned off. Shut down the virtual machine and try again.",
            "InvalidState",
            "InvalidOperation",
            vm.name,
        )  # [UNCONF] wording
        return
    pair = partner(call.world, vm)
    if pair is None or link_problem(call.sim, call.host, pair[0], rep.port, rep.auth):
        _connect_error(call, vm, rep)  # the pending changes cannot be sent
        return
    rep.state = "PreparedForFailover"
    replicated_now(call.sim, vm)


def _test_failover(call: Call, vm: Vm, rep: Replication) -> None:
    if rep.mode != "Replica" or rep.test_vm:
        call.error(BAD_STATE, "InvalidState", "InvalidOperation", vm.name)
        return
    test = vm.model_copy(deep=True, update={"id": new_guid(), "name": f"{vm.name} - Test"})
    test.replication, test.state = None, "Off"
    for nic in test.nics:
        nic.switch = None
    call.host.vms[test.id] = test
    rep.test_vm = test.name


def stop_failover(call: Call) -> None:
    for vm in _replicated(call):
        rep = vm.replication
        assert rep is not None
        if rep.test_vm:
            for test in call.host.vms_named(rep.test_vm):
                del call.host.vms[test.id]
            rep.test_vm = None
        elif rep.state == "PreparedForFailover":
            rep.state = "Replicating"
        elif rep.state == "FailedOverWaitingCompletion":
            vm.state, vm.ready_at = "Off", None
            rep.state, rep.health = "Replicating", "Normal"
        else:
            call.error(BAD_STATE, "InvalidState", "InvalidOperation", vm.name)


def complete_failover(call: Call) -> None:
    for vm in _replicated(call):
        rep = vm.replication
        assert rep is not None
        if rep.state != "FailedOverWaitingCompletion":
            call.error(BAD_STATE, "InvalidState", "InvalidOperation", vm.name)
            continue
        rep.state = "FailedOver"
