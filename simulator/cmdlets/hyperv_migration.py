"""Live, quick and storage migration: Compare-VM, Move-VM, Move-VMStorage, Msvm_MigrationJob.

Rules enforced (reference §10-§12): migration enabled on both hosts; the destination's incoming
authentication (Kerberos needs KCD with protocol transition on the *source* computer object
for "Microsoft Virtual System Migration Service/<dst>", plus "cifs/<dst>" when storage moves;
CredSSP can never work from a remote session) -> 0x8009030E; same-named switches (33012),
memory and processor compatibility; VM files on SMB need share+NTFS rights for the computer
account that opens them and cifs delegation for the remote session. The source must open TCP
6600 to the destination (vmms listening, 'Hyper-V (MIG-TCP-In)' enabled, a route), on an
address inside the destination's MigrationNetworks when UseAnyNetworkForMigration is off.
Move-VMStorage stays on one host and checks none of the network rules.

Processor compatibility (§12.2) concerns every processor state the VM carries: its running or
saved state and the saved state of each standard checkpoint taken while it ran.

With -AsJob a failed precondition does not fail the call: it returns the PowerShell job, which
is already Failed (Receive-Job gives the reason), and the source lists the Msvm_MigrationJob
with JobState 10, ErrorCode 32768 and the same ErrorDescription. Without -AsJob the reason is
the call's error, as before.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from simulator import reachability
from simulator.cmdlets import host_jobs, hyperv_chain
from simulator.cmdlets.hyperv_common import hv_cmdlet, target_vms, vm_object
from simulator.core import Call, Registry
from simulator.protocol import TerminatingError
from simulator.pstypes import HV, cim_instance, ps_object, u16
from simulator.world import Host, Job, Vm, World, is_unc, join_path, norm_path

NS = "root/virtualization/v2"
DELEGATION = (
    "Virtual machine migration operation failed at migration Source. Failed to "
    "establish a connection with host {dst}: No credentials are available in the "
    "security package 0x8009030E."
)
HARDWARE = (
    "The virtual machine cannot be moved to the destination computer. The hardware on "
    "the destination computer is not compatible with the hardware requirements of this "
    "virtual machine."
)
SWITCH = "Could not find Ethernet switch '{name}'."
NO_MEMORY = (
    "Unable to allocate {mb} MB of RAM: Insufficient system resources exist to complete "
    "the requested service. (0x800705AA)"
)
DENIED = (
    "'{dst}' failed to register the configuration for the virtual machine '{vm}' at "
    "'{path}': General access denied error (0x80070005). (Virtual machine ID {id})"
)
DISABLED = (
    "Virtual machine migration operation for '{vm}' failed at migration {side} '{host}'. "
    "(Virtual machine ID {id})\nVirtual machine migration is not enabled on host "
    "'{host}'."
)  # [UNCONF] wording
UNREACHABLE = (
    "Virtual machine migration operation for '{vm}' failed at migration source "
    "'{src}'. (Virtual machine ID {id})\nFailed to establish a connection with host "
    "'{dst}': The network path was not found. (0x80070035)."
)
# [UNCONF] The reference (§11, §12.2) lists "TCP 6600 blocked" and "migration network not
# matching any destination subnet" as failure modes but gives no wording. Both reuse the
# UNREACHABLE shape with the Winsock reason the source's connect() would get: refused when no
# listener answers (the destination binds its migration listener only to addresses inside its
# MigrationNetworks when UseAnyNetworkForMigration is off, so with none there is nothing to
# connect to), timed out when the packets are dropped (firewall rule 'Hyper-V (MIG-TCP-In)'
# disabled, no route). Never 0x8009030E: that text means missing delegation.
CONNECT_FAILED = (
    "Virtual machine migration operation for '{vm}' failed at migration source "
    "'{src}'. (Virtual machine ID {id})\nFailed to establish a connection with host "
    "'{dst}': {reason}"
)
REFUSED = (
    "No connection could be made because the target machine actively refused it. (0x8007274D)."
)
TIMED_OUT = (
    "A connection attempt failed because the connected party did not properly respond after "
    "a period of time, or established connection failed because connected host has failed "
    "to respond. (0x8007274C)."
)
MIGRATION_PORT = 6600
STORAGE_MISSING = "The virtual hard disk '{path}' is not accessible from host '{dst}'."  # [UNCONF]
# 40010 is a virtual hard disk incompatibility: a VM without a disk never reports it. Local
# configuration files of a compute-only move are their own incompatibility ([UNCONF] wording
# and MessageId: docs/simulator-fidelity.md "Object shapes").
CONFIG_MISSING = ("The virtual machine configuration '{path}' is not accessible from host "
                  "'{dst}'.")  # [UNCONF]
CONFIG_MISSING_ID = 40012  # [UNCONF]
DONE_STATES = (7, 8, 9, 10)


def register(registry: Registry) -> None:
    hv_cmdlet(registry, "Compare-VM")(compare_vm)
    hv_cmdlet(registry, "Move-VM")(move_vm)
    hv_cmdlet(registry, "Move-VMStorage")(move_vmstorage)
    registry.cim_class(NS, "Msvm_MigrationJob", "CIM_ConcreteJob", "Msvm_ConcreteJob")(cim_jobs)
    for cls in ("Msvm_MigrationJob", "Msvm_ConcreteJob"):
        registry.cim_method(NS, cls, "RequestStateChange")(request_state_change)


@dataclass
class Plan:
    """What a move would do and what stands in its way."""

    vm: Vm
    src: Host
    dst: Host | None
    storage: bool
    dest_path: str | None
    fatal: str | None = None
    problems: list[tuple[str, int, Any]] = field(default_factory=list)


# ---------------------------------------------------------------- checks


def plan_move(call: Call, vm: Vm) -> Plan:
    src = call.host
    name = str(call.get("DestinationHost") or "")
    dst = call.world.host(name)
    storage = call.switch("IncludeStorage") or call.has("DestinationStoragePath")
    plan = Plan(vm, src, dst, storage, call.get("DestinationStoragePath"))
    ident = vm.id.upper()
    if dst is None or dst is src or "Hyper-V" not in dst.features:
        plan.fatal = UNREACHABLE.format(vm=vm.name, src=src.name, id=ident, dst=name)
        return plan
    for side, host in (("source", src), ("destination", dst)):
        if not host.vmhost.migration_enabled:
            plan.fatal = DISABLED.format(vm=vm.name, side=side, host=host.name, id=ident)
            return plan
    plan.fatal = _connect_problem(call, vm, src, dst)
    plan.fatal = plan.fatal or _auth_problem(call.world, src, dst, storage)
    if plan.fatal is None:
        plan.problems = incompatibilities(call, plan)
    return plan


def migration_addresses(dst: Host) -> list[str]:
    """The addresses ``dst`` accepts incoming live migrations on (reference §11): with
    UseAnyNetworkForMigration off only its own addresses inside one of its MigrationNetworks
    (by Priority), else all of them."""
    own = reachability.host_addresses(dst)
    if dst.vmhost.use_any_network:
        return [str(a.ip) for a in own]
    out: list[str] = []
    for net in sorted(dst.vmhost.migration_networks, key=lambda n: n.priority):
        subnet = ipaddress.ip_network(net.subnet, strict=False)
        out += [str(a.ip) for a in own if a.ip in subnet and str(a.ip) not in out]
    return out


def _connect_problem(call: Call, vm: Vm, src: Host, dst: Host) -> str | None:
    """The source opens TCP 6600 to one of the destination's migration addresses."""
    now, offline = call.sim.clock.now(), call.sim.offline_hosts()
    addresses = migration_addresses(dst)
    if any(reachability.tcp_open(call.world, now, src, a, MIGRATION_PORT, offline)
           for a in addresses):
        return None
    listening = MIGRATION_PORT in reachability.host_listening_ports(dst)
    reason = TIMED_OUT if addresses and listening else REFUSED
    return CONNECT_FAILED.format(
        vm=vm.name, src=src.name, id=vm.id.upper(), dst=dst.name, reason=reason
    )


def _auth_problem(world: World, src: Host, dst: Host, storage: bool) -> str | None:
    """Incoming authentication on ``dst`` for a move started from a remote session on ``src``."""
    message = DELEGATION.format(dst=dst.name)
    if dst.vmhost.migration_auth != "Kerberos" or not (src.domain and dst.domain):
        return message  # CredSSP needs a local logon on the source; Kerberos needs the domain
    services = ["Microsoft Virtual System Migration Service"] + (["cifs"] if storage else [])
    if not all(world.delegates(src.name, service, dst.name) for service in services):
        return message
    return None


def incompatibilities(call: Call, plan: Plan) -> list[tuple[str, int, Any]]:
    vm, dst = plan.vm, plan.dst
    assert dst is not None
    out: list[tuple[str, int, Any]] = []
    for nic in vm.nics:
        if nic.switch and dst.switch(nic.switch) is None:
            out.append((SWITCH.format(name=nic.switch), 33012, nic.name))
    running = vm.state in ("Running", "Paused")
    if running and dst.memory_free() < vm.memory_startup:
        out.append((NO_MEMORY.format(mb=vm.memory_startup // 1024**2), 23012, "Memory"))
    if plan.src.cpu_family != dst.cpu_family and not all(processor_states(vm)):
        out.append((HARDWARE, 24004, "Processor"))
    if any(other.id == vm.id for other in dst.vms.values()):
        out.append(
            (
                f"A virtual machine with the identifier '{vm.id.upper()}' already exists on "
                f"'{dst.name}'.",
                21018,
                vm.name,
            )
        )
    out += _storage_problems(call, plan)
    return out


def processor_states(vm: Vm) -> list[bool]:
    """Whether processor compatibility mode was on, for each processor state the VM carries:
    the VM's own when it runs, is paused or saved (compatibility mode cannot change then), and
    the saved state of every checkpoint taken while it ran that kept one (a standard
    checkpoint; a production checkpoint has none), each with the mode of its own time. Restoring
    one of those on a host of another CPU family needs the features it was saved with."""
    out = [vm.compatibility_for_migration] if vm.state in ("Running", "Paused", "Saved") else []
    for snap in vm.snapshots:
        config = snap.config
        if not config.get("production") and config.get("state") in ("Running", "Paused"):
            out.append(bool(config.get("compatibility_for_migration", False)))
    return out


def _storage_problems(call: Call, plan: Plan) -> list[tuple[str, int, Any]]:
    vm, dst, world = plan.vm, plan.dst, call.world
    assert dst is not None
    out: list[tuple[str, int, Any]] = []
    paths = [vm.config_location] + [d.path for d in vm.disks]
    if plan.storage and plan.dest_path:
        paths = [str(plan.dest_path)]
    for index, path in enumerate(paths):
        if not is_unc(path):
            if not plan.storage and index == 0:
                out.append((CONFIG_MISSING.format(path=path, dst=dst.name), CONFIG_MISSING_ID,
                            path))
            elif not plan.storage:
                out.append((STORAGE_MISSING.format(path=path, dst=dst.name), 40010, path))
            continue
        server = world.resolve_unc(path)
        ok = server is not None and world.computer_can_write(dst, path)
        ok = ok and world.delegates(plan.src.name, "cifs", server[0].name) if server else False
        if not ok:
            text = DENIED.format(dst=dst.name, vm=vm.name, path=path, id=vm.id.upper())
            out.append((text, 20100, path))
            break
    return out


def _report(call: Call, plan: Plan, operation: str) -> Any:
    errors = [
        ps_object([HV + "VMCompatibilityError"], Message=msg, MessageId=mid, Source=source)
        for msg, mid, source in plan.problems
    ]
    return ps_object(
        [HV + "VMCompatibilityReport"],
        VM=vm_object(call, plan.src, plan.vm),
        OperationType=operation,
        Destination=plan.dst.name if plan.dst else None,
        Path=plan.dest_path,
        SnapshotPath=None,
        VhdDestinationPath=plan.dest_path,
        VhdSourcePath=None,
        Incompatibilities=errors,
    )


def compare_vm(call: Call) -> None:
    for vm in target_vms(call):
        plan = plan_move(call, vm)
        if plan.fatal:
            call.error(plan.fatal, "OperationFailed", "InvalidOperation", vm.name)
            continue
        op = "MoveVirtualMachineAndStorage" if plan.storage else "MoveVirtualMachine"
        call.out(_report(call, plan, op))


# ---------------------------------------------------------------- Move-VM


def move_vm(call: Call) -> None:
    for vm in target_vms(call):
        if vm.migrating:
            call.error(
                "The operation cannot be performed while the object is in its current state.",
                "InvalidState",
                "InvalidOperation",
                vm.name,
            )
            continue
        plan = plan_move(call, vm)
        problem = plan.fatal or _first_problem(plan)
        if problem and call.switch("AsJob"):
            job = call.world.new_job(**_move_job_fields(call, plan))
            call.out(host_jobs.job_object(_failed(call, job, problem)))
        elif problem:
            call.error(problem, "OperationFailed", "InvalidOperation", vm.name)
        else:
            _finish(call, _start_move(call, plan), plan.dst)


def _failed(call: Call, job: Job, problem: str) -> Job:
    """``job`` ends at once in Exception (10) with ``problem`` as its ErrorDescription."""
    job.started = job.finished = call.sim.clock.now()
    job.state, job.error_code = 10, 32768
    job.error_description = call.sim.job_text(job, problem)
    return job


def _first_problem(plan: Plan) -> str | None:
    if not plan.problems:
        return None
    lines = "\n".join(msg for msg, _, _ in plan.problems)
    return (
        f"Virtual machine migration operation for '{plan.vm.name}' failed at migration "
        f"destination '{plan.dst.name if plan.dst else ''}'. (Virtual machine ID "
        f"{plan.vm.id.upper()})\n{lines}"
    )


def _finish(call: Call, job: Job, dst: Host | None) -> None:
    if call.switch("AsJob"):
        call.out(host_jobs.job_object(job))
        return
    call.wait_job(job)
    if job.state != 7:
        call.error(
            job.error_description or "The migration did not complete.",
            "OperationFailed",
            "InvalidOperation",
            job.vm_name,
        )
    elif call.switch("Passthru") and dst is not None:
        moved = dst.vms.get(job.vm_id)
        if moved is not None:
            call.out(vm_object(call, dst, moved))


def _disk_bytes(world: World, host: Host, vm: Vm) -> int:
    return hyperv_chain.chain_bytes(world, host, vm)


def _start_move(call: Call, plan: Plan) -> Job:
    vm, src, dst = plan.vm, plan.src, plan.dst
    assert dst is not None
    clock = call.sim.clock
    running = vm.state in ("Running", "Paused")
    seconds = (vm.memory_startup / clock.d.lm_memory_rate if running else 2.0) + (
        _disk_bytes(call.world, src, vm) / clock.d.lm_disk_rate if plan.storage else 0.0
    )
    job = call.world.new_job(**_move_job_fields(call, plan))
    vm.migrating = True
    dest = _dest_root(call, plan)
    call.sim.run_job(job, seconds, lambda j: _complete_move(call, plan, dest), lambda j: _abort(vm))
    return job


def _move_job_fields(call: Call, plan: Plan) -> dict[str, Any]:
    """The Msvm_MigrationJob of a Move-VM on the source (the destination as named when it is
    no Hyper-V host)."""
    return {
        "host": plan.src.name,
        "kind": "migration",
        "job_type": 306 if plan.storage else 305,
        "migration_type": 32771 if plan.storage else 32768,
        "vm_id": plan.vm.id,
        "vm_name": plan.vm.name,
        "destination": plan.dst.name if plan.dst else str(call.get("DestinationHost") or ""),
        "command": "Move-VM",
    }


def _dest_root(call: Call, plan: Plan) -> str | None:
    if not plan.storage:
        return None
    if plan.dest_path:
        return norm_path(str(plan.dest_path))
    assert plan.dst is not None
    return plan.dst.vmhost.virtual_machine_path


def _abort(vm: Vm) -> None:
    vm.migrating = False


def _complete_move(call: Call, plan: Plan, dest: str | None) -> None:
    vm, src, dst, world = plan.vm, plan.src, plan.dst, call.world
    assert dst is not None
    vm.migrating = False
    if src.vms.get(vm.id) is not vm:
        return
    if dest is not None:
        _move_files(world, src, dst, vm, dest)
    del src.vms[vm.id]
    dst.vms[vm.id] = vm
    if vm.state in ("Running", "Paused"):
        clock = call.sim.clock
        vm.blackout_until = clock.after(clock.d.blackout)


def _move_files(world: World, src: Host, dst: Host, vm: Vm, dest: str) -> None:
    """Move the VM's disks with their checkpoint chain and its configuration under ``dest``
    (a path as seen from ``dst``): the checkpoints go along and refer to the moved files."""
    hyperv_chain.move_chain(world, src, dst, vm, dest)
    new_conf = world.locate(dst, dest)
    if new_conf is not None:
        new_conf[0].add_folder(join_path(new_conf[1], "Virtual Machines"))
    vm.path = vm.config_location = dest


# ---------------------------------------------------------------- Move-VMStorage


def move_vmstorage(call: Call) -> None:
    from simulator.cmdlets.hyperv_vm import check_vmms_access

    for vm in target_vms(call):
        dest = norm_path(str(call.get("DestinationStoragePath") or call.get("VirtualMachinePath")))
        if vm.migrating:
            call.error(
                "The operation cannot be performed while the object is in its current state.",
                "InvalidState",
                "InvalidOperation",
                vm.name,
            )
            continue
        problem = None
        try:
            check_vmms_access(call, vm, dest)
        except TerminatingError as exc:
            if not call.switch("AsJob"):
                raise
            problem = exc.message
        job = call.world.new_job(
            host=call.host.name,
            kind="storage",
            job_type=307,
            migration_type=32769,
            vm_id=vm.id,
            vm_name=vm.name,
            destination=None,
            command="Move-VMStorage",
        )
        if problem is not None:
            call.out(host_jobs.job_object(_failed(call, job, problem)))
            continue
        clock = call.sim.clock
        vm.migrating = True
        seconds = _disk_bytes(call.world, call.host, vm) / clock.d.lm_disk_rate
        call.sim.run_job(job, seconds, *_storage_callbacks(call.world, call.host, vm, dest))
        _finish(call, job, call.host)


def _storage_callbacks(
    world: World, host: Host, vm: Vm, dest: str
) -> tuple[Callable[[Job], None], Callable[[Job], None]]:
    def complete(job: Job) -> None:
        _complete_storage(world, host, vm, dest)

    def abort(job: Job) -> None:
        _abort(vm)

    return complete, abort


def _complete_storage(world: World, host: Host, vm: Vm, dest: str) -> None:
    vm.migrating = False
    _move_files(world, host, host, vm, dest)


# ---------------------------------------------------------------- CIM jobs


def job_kept_seconds(clock: Any) -> float:
    """How long a finished job stays listed: TimeBeforeRemoval, 5 minutes of host time. An
    instant clock still keeps it 5 real seconds, so a probe right after the end sees the job
    and its ErrorDescription, as it would on a host."""
    return JOB_KEPT_INSTANT if clock.instant else clock.real(300.0)


JOB_KEPT_INSTANT = 5.0


def cim_jobs(call: Call) -> list[Any]:
    clock = call.sim.clock
    out = []
    for job in call.world.jobs.values():
        if job.host != call.host.name:
            continue
        if job.finished is not None and clock.now() > job.finished + job_kept_seconds(clock):
            continue  # TimeBeforeRemoval: 5 minutes
        out.append(_job_instance(job))
    return out


def _job_instance(job: Job) -> Any:
    cls = job.cim_class
    chain = [cls, "CIM_ConcreteJob", "CIM_Job", "CIM_LogicalElement", "CIM_ManagedElement"]
    running = job.state not in DONE_STATES
    status = (
        "Job is running"
        if running
        else ("Job completed successfully" if job.state == 7 else job.error_description)
    )
    return cim_instance(
        NS,
        chain,
        InstanceID=job.id.upper(),
        Caption=job.command,
        ElementName=job.command,
        Description=job.command,
        JobState=u16(job.state),
        JobType=u16(job.job_type),
        PercentComplete=u16(job.percent),
        VirtualSystemName=job.vm_id.upper(),
        DestinationHost=job.destination,
        MigrationType=job.migration_type,
        ErrorCode=u16(job.error_code),
        ErrorDescription=job.error_description or None,
        Cancellable=running,
        StatusDescriptions=[status],
        TimeBeforeRemoval="00000000000500.000000:000",
        PSComputerName=None,
    )


def request_state_change(call: Call, instance_id: str, arguments: dict[str, Any]) -> int:
    job = next((j for j in call.world.jobs.values() if j.id.upper() == instance_id.upper()), None)
    if job is None or job.host != call.host.name:
        call.fail(
            "Not found ",
            "HRESULT 0x80041002",
            "ObjectNotFound",
            "Microsoft.Management.Infrastructure.CimException",
        )
    requested = int(arguments.get("RequestedState", 0))
    if job.state in DONE_STATES:
        return 32775  # Invalid state for this operation
    if requested in (4, 5):
        job.cancel_requested = True
        return 0
    return 32770  # Not supported
