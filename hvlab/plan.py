"""The build plan: the lab as a DAG of units (one child workflow each) made of ordered steps.

``hvlab plan`` prints it and LabBuildWorkflow runs it, so both always agree. A unit starts when
every unit it depends on has finished; units on the same host also share the host's
concurrency limit.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field

from hvlab.spec import MIGRATION_SERVICE, LabSpec, NatKind, OsFamily, Vm


class PlanStep(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str = Field(description="stable step id within its unit, e.g. 'domain-join'")
    title: str
    host: str


class PlanUnit(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str = Field(description="kind:target, e.g. 'host-prep:SVR1'")
    kind: str
    target: str
    phase: int
    hosts: list[str]
    depends_on: list[str]
    steps: list[PlanStep]


class BuildPlan(BaseModel):
    model_config = ConfigDict(frozen=True)

    lab: str
    units: list[PlanUnit]

    def unit(self, unit_id: str) -> PlanUnit:
        for unit in self.units:
            if unit.id == unit_id:
                return unit
        raise KeyError(unit_id)

    def order(self) -> list[PlanUnit]:
        """Units in a topological order (stable: phase, then file order)."""
        done: set[str] = set()
        out: list[PlanUnit] = []
        pending = sorted(self.units, key=lambda u: u.phase)
        while pending:
            ready = [u for u in pending if set(u.depends_on) <= done]
            if not ready:
                raise ValueError(f"dependency cycle among {[u.id for u in pending]}")
            out.extend(ready)
            done.update(u.id for u in ready)
            pending = [u for u in pending if u.id not in done]
        return out


def _s(name: str, title: str, host: str) -> PlanStep:
    return PlanStep(name=name, title=title, host=host)


def _host_prep(spec: LabSpec) -> Iterable[PlanUnit]:
    for host in spec.hyperv_hosts:
        h = host.name
        steps = []
        if host.join_domain:
            steps += [
                _s("dns", f"point DNS at {spec.domain.dc}", h),
                _s("domain-join", f"join {spec.domain.fqdn} (no -Restart)", h),
                _s("reboot-join", "reboot and wait until WinRM answers", h),
            ]
        steps += [
            _s("hyperv-role", "install Hyper-V with management tools", h),
            _s("reboot-role", "reboot and wait until vmms answers", h),
        ]
        steps += [_s(f"folder:{f}", f"folder {f}", h) for f in host.folders]
        if host.paths.virtual_machines or host.paths.virtual_hard_disks:
            steps.append(_s("default-paths", "host default VM and VHD paths", h))
        steps += [_s(f"switch:{s.name}", f"{s.type} switch {s.name}", h) for s in host.switches]
        yield PlanUnit(id=f"host-prep:{h}", kind="host-prep", target=h, phase=1, hosts=[h],
                       depends_on=[], steps=steps)


def _joined(spec: LabSpec, names: Iterable[str]) -> list[str]:
    """host-prep units of the Hyper-V hosts among ``names`` (their computer accounts exist)."""
    wanted = {n.lower() for n in names}
    return [f"host-prep:{h.name}" for h in spec.hyperv_hosts if h.name.lower() in wanted]


def _shared_storage(spec: LabSpec) -> Iterable[PlanUnit]:
    for share in spec.shares:
        accounts = [g.account.split("\\")[-1].rstrip("$") for g in share.grants]
        steps = [
            _s("folder", f"folder {share.path}", share.host),
            _s("share", f"SMB share {share.name}", share.host),
            _s("share-acl", "share access for " + ", ".join(g.account for g in share.grants),
               share.host),
            _s("ntfs-acl", "NTFS (OI)(CI) rights for the same accounts", share.host),
        ]
        yield PlanUnit(id=f"shared-storage:{share.host}/{share.name}", kind="shared-storage",
                       target=f"{share.host}/{share.name}", phase=2, hosts=[share.host],
                       depends_on=_joined(spec, accounts), steps=steps)


def _delegation(spec: LabSpec) -> Iterable[PlanUnit]:
    dc = spec.domain.dc
    for entry in spec.delegation:
        steps = []
        for target in entry.to:
            for service in target.services:
                steps.append(_s(f"kcd:{service}/{target.target}",
                                f"{entry.host}$ may delegate {service}/{target.target}", dc))
        if entry.protocol_transition:
            steps.append(_s("protocol-transition", "use any authentication protocol", dc))
        steps.append(_s("purge-tickets", "purge machine tickets (klist -li 0x3e7)", entry.host))
        targets = [entry.host, *(t.target for t in entry.to)]
        yield PlanUnit(id=f"delegation:{entry.host}", kind="delegation", target=entry.host,
                       phase=2, hosts=[dc, entry.host], depends_on=_joined(spec, targets),
                       steps=steps)


def _migration(spec: LabSpec) -> Iterable[PlanUnit]:
    delegated = {d.host.lower() for d in spec.delegation}
    for host in spec.hyperv_hosts:
        if host.migration is None:
            continue
        m, h = host.migration, host.name
        steps = [
            _s("enable", "Enable-VMMigration" if m.enabled else "Disable-VMMigration", h),
            _s("settings", f"{m.authentication} auth, {m.performance}, "
                           f"{m.max_concurrent} live / {m.max_storage} storage at a time", h),
        ]
        steps += [_s(f"network:{n}", f"migration network {n}", h) for n in m.networks]
        deps = [f"host-prep:{h}"]
        if h.lower() in delegated:
            deps.append(f"delegation:{h}")
        yield PlanUnit(id=f"migration-readiness:{h}", kind="migration-readiness", target=h,
                       phase=3, hosts=[h], depends_on=deps, steps=steps)


def _share_units(spec: LabSpec, vm: Vm) -> list[str]:
    paths = [p for p in (vm.path, vm.disk.path) if p and p.startswith("\\\\")]
    units = []
    for share in spec.shares:
        prefix = f"\\\\{share.host}\\{share.name}".lower()
        if any(p.lower().startswith(prefix) for p in paths):
            units.append(f"shared-storage:{share.host}/{share.name}")
    return units


def _vm_steps(spec: LabSpec, vm: Vm) -> list[PlanStep]:
    h, disk = vm.host, spec.vm_disk_path(vm)
    verb = "differencing disk on" if vm.disk.mode == "differencing" else "copy of"
    steps = [
        _s("disk", f"{disk} as {verb} {vm.disk.golden}", h),
        _s("create", f"New-VM generation {vm.generation}, {vm.memory // 1024**2} MB", h),
    ]
    steps += [_s(f"nic:{n.name}", f"NIC {n.name} on {n.switch}" + (" (legacy)" if n.legacy
              else ""), h) for n in vm.nics]
    legacy = vm.guest.os is OsFamily.windows_legacy
    if legacy:
        steps.append(_s("offline-config", "first-boot configuration written into the disk "
                                          "(no PowerShell Direct on this guest)", h))
    if vm.firmware is not None:
        on, template = vm.firmware
        steps.append(_s("firmware", f"Secure Boot {template}" if on else "Secure Boot off", h))
    if vm.start:
        steps.append(_s("start", "start", h))
    source = vm.guest.addresses_from.value
    steps += [_s(f"guest-address:{n.name}", f"wait for {n.ipv4 or 'an address'} on {n.name} "
                 f"({source}: reported by the guest's KVP daemon)", h) for n in vm.verified_nics]
    if vm.start and vm.guest.os is OsFamily.windows:
        steps.append(_s("guest-ready", "wait until PowerShell Direct answers", h))
        steps += [_s(f"guest-ip:{n.name}", f"guest IPv4 {n.ipv4} on {n.name}", h)
                  for n in vm.nics if n.ipv4]
        if vm.guest.telnet:
            users = ", ".join(u.name for u in vm.guest.telnet.users)
            steps.append(_s("telnet", f"Telnet server, users {users} in "
                                      f"{vm.guest.telnet.group}", h))
        if vm.guest.rdp:
            steps.append(_s("rdp", f"RDP on port {vm.guest.rdp.port}", h))
    return steps


def _vm_deploy(spec: LabSpec) -> Iterable[PlanUnit]:
    for vm in spec.vms:
        deps = [f"host-prep:{vm.host}", *_share_units(spec, vm)]
        if _share_units(spec, vm):
            deps += [f"delegation:{d.host}" for d in spec.delegation
                     if d.host.lower() == vm.host.lower()]
        yield PlanUnit(id=f"vm-deploy:{vm.name}", kind="vm-deploy", target=vm.name, phase=3,
                       hosts=[vm.host], depends_on=deps, steps=_vm_steps(spec, vm))


def _nat(spec: LabSpec) -> Iterable[PlanUnit]:
    for nat in spec.nat:
        if nat.kind is NatKind.rras_in_guest and nat.vm:
            host = spec.vm(nat.vm).host
            deps = [f"vm-deploy:{nat.vm}"]
        else:
            host = nat.host or ""
            deps = [f"host-prep:{host}"]
        deps += [f"vm-deploy:{f.to_vm}" for f in nat.forwards if f.to_vm]
        steps = [_s("nat-install", f"{nat.kind} NAT on {nat.vm or host}", host),
                 _s(f"interface:{nat.external}", f"public interface {nat.external}", host)]
        steps += [_s(f"interface:{i}", f"private interface {i}", host) for i in nat.internal]
        steps += [_s(f"forward:{f.protocol}/{f.external_port}",
                     f"{f.protocol.upper()} {f.external_port} -> {f.to_vm or f.to_ip}:"
                     f"{f.internal_port}", host) for f in nat.forwards]
        steps.append(_s("verify", "subnets reach each other; forwarded ports answer", host))
        yield PlanUnit(id=f"nat:{nat.name}", kind="nat", target=nat.name, phase=4, hosts=[host],
                       depends_on=list(dict.fromkeys(deps)), steps=steps)


def _replication(spec: LabSpec) -> Iterable[PlanUnit]:
    for rep in spec.replication:
        p, r = rep.primary, rep.replica
        steps = [
            _s("shared-settings", "replica server settings in use", r),
            _s("replica-server:" + r, f"replica server on {r} ({rep.auth}, port {rep.port})", r),
            _s("replica-server:" + p, f"replica server on {p} (for reverse replication)", p),
            _s("firewall:" + r, "Hyper-V Replica HTTP listener rule", r),
            _s("firewall:" + p, "Hyper-V Replica HTTP listener rule", p),
            _s("enable", f"replicate {rep.vm} to {r} every {rep.frequency} s", p),
            _s("initial", "initial replication", p),
            _s("wait-normal", "wait Replicating / Normal", p),
        ]
        yield PlanUnit(id=f"replication:{rep.vm}", kind="replication", target=rep.vm, phase=4,
                       hosts=[p, r], depends_on=[f"vm-deploy:{rep.vm}", f"host-prep:{r}"],
                       steps=steps)


def _checkpoints(spec: LabSpec, before: list[PlanUnit]) -> Iterable[PlanUnit]:
    for checkpoint in spec.checkpoints:
        names = [v.name for v in spec.vms] if checkpoint.vms == "all" else checkpoint.vms
        steps = [_s(f"checkpoint:{n}", f"checkpoint {checkpoint.name} of {n}",
                    spec.vm(n).host) for n in names]
        hosts = sorted({spec.vm(n).host for n in names})
        yield PlanUnit(id=f"checkpoint:{checkpoint.name}", kind="checkpoint",
                       target=checkpoint.name, phase=5, hosts=hosts,
                       depends_on=[u.id for u in before], steps=steps)


def build_plan(spec: LabSpec) -> BuildPlan:
    """The DAG of the whole lab build."""
    units: list[PlanUnit] = [
        *_host_prep(spec), *_shared_storage(spec), *_delegation(spec), *_migration(spec),
        *_vm_deploy(spec), *_nat(spec), *_replication(spec),
    ]
    units += list(_checkpoints(spec, units))
    return BuildPlan(lab=spec.lab, units=units)


def unit_steps(spec: LabSpec, unit_id: str) -> list[tuple[str, str]]:
    """(name, title) of the unit's steps, as `hvlab plan` prints them: the unit's workflow
    declares these in its progress, so the plan and a running build name the same steps."""
    return [(s.name, s.title) for s in build_plan(spec).unit(unit_id).steps]


def prefixed(steps: list[tuple[str, str]], *prefixes: str) -> list[str]:
    """Names among ``steps`` equal to one of ``prefixes`` or starting with it plus ':'."""
    return [n for n, _ in steps if any(n == p or n.startswith(p + ":") for p in prefixes)]


__all__ = ["MIGRATION_SERVICE", "BuildPlan", "PlanStep", "PlanUnit", "build_plan", "prefixed",
           "unit_steps"]
