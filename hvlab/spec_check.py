"""Cross-reference checks of a structurally valid lab: every problem, each with its path."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from hvlab.spec import (
    MIGRATION_SERVICE,
    SIM_PREFIX,
    STEP_KINDS,
    TRUSTED_TEMPLATES,
    AddressSource,
    Exercise,
    ExerciseStep,
    HostRole,
    LabSpec,
    MigrateStep,
    NatKind,
    Nic,
    OsFamily,
    SwitchType,
    Vm,
)

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    loc: Loc
    message: str


def check_lab(spec: LabSpec) -> list[Problem]:
    """All cross-reference problems of the lab, in file order."""
    checks = (
        _lab_id,
        _duplicates,
        _domain,
        _credentials_used,
        _hosts,
        _vms,
        _addresses,
        _nat,
        _shares,
        _delegation,
        _replication,
        _checkpoints,
        _exercises,
    )
    return [problem for check in checks for problem in check(spec)]


def _dupes(items: Iterable[tuple[Loc, str]], what: str) -> Iterator[Problem]:
    seen: dict[str, Loc] = {}
    for loc, name in items:
        key = name.lower()
        if key in seen:
            where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in seen[key])
            yield Problem(loc, f"duplicate {what} {name!r} (first defined at {where.lstrip('.')})")
        else:
            seen[key] = loc


def _lab_id(spec: LabSpec) -> Iterator[Problem]:
    if spec.lab.startswith(SIM_PREFIX):
        yield Problem(("lab",), f"{spec.lab!r}: the prefix {SIM_PREFIX!r} is reserved for the "
                      "simulated fleet's registration (`--sim` adds it); name the lab without it")


# what a duplicate is called per top-level section; a section not named here whose entries have
# a ``name`` (a new unit kind's, say) is checked the same way, called by its field name
_NAMED_SECTIONS = {"hosts": "host", "vms": "VM", "golden_images": "golden image", "nat": "NAT",
                   "checkpoints": "checkpoint"}
_OWN_RULES = {"shares", "exercises"}  # names unique per host / checked with the exercises


def _named_entries(spec: LabSpec) -> Iterator[tuple[str, list[Any]]]:
    """(field, entries) of every top-level list of entries that have a ``name``."""
    for field in type(spec).model_fields:
        entries = getattr(spec, field)
        if (isinstance(entries, list) and entries and field not in _OWN_RULES
                and all(isinstance(e, BaseModel) and "name" in type(e).model_fields
                        for e in entries)):
            yield field, entries


def _duplicates(spec: LabSpec) -> Iterator[Problem]:
    for field, entries in _named_entries(spec):
        what = _NAMED_SECTIONS.get(field, field.replace("_", " ").removesuffix("s"))
        yield from _dupes((((field, i, "name"), e.name) for i, e in enumerate(entries)), what)
    yield from _dupes(
        ((("shares", i, "name"), f"{s.host}\\{s.name}") for i, s in enumerate(spec.shares)),
        "share",
    )
    for hi, host in enumerate(spec.hosts):
        yield from _dupes(
            ((("hosts", hi, "switches", si, "name"), s.name) for si, s in enumerate(host.switches)),
            f"switch on {host.name}",
        )
    for vi, vm in enumerate(spec.vms):
        yield from _dupes(
            ((("vms", vi, "nics", ni, "name"), n.name) for ni, n in enumerate(vm.nics)),
            f"NIC on {vm.name}",
        )


def _host_names(spec: LabSpec) -> dict[str, HostRole]:
    return {h.name.lower(): h.role for h in spec.hosts}


def _unknown(loc: Loc, kind: str, name: str, known: Iterable[str]) -> Problem:
    options = ", ".join(sorted(known)) or "none defined"
    return Problem(loc, f"unknown {kind} {name!r} (known: {options})")


def _credential_ref(spec: LabSpec, loc: Loc, name: str | None) -> Iterator[Problem]:
    if name is not None and name not in spec.credentials:
        yield _unknown(loc, "credential", name, spec.credentials)


def _domain(spec: LabSpec) -> Iterator[Problem]:
    roles = _host_names(spec)
    dc = spec.domain.dc.lower()
    if dc not in roles:
        yield _unknown(("domain", "dc"), "host", spec.domain.dc, (h.name for h in spec.hosts))
    elif roles[dc] is not HostRole.dc:
        yield Problem(("domain", "dc"), f"host {spec.domain.dc!r} must have role dc")
    yield from _credential_ref(spec, ("domain", "admin_credential"), spec.domain.admin_credential)


def _credentials_used(spec: LabSpec) -> Iterator[Problem]:
    for i, host in enumerate(spec.hosts):
        yield from _credential_ref(spec, ("hosts", i, "connection", "credential"),
                                   host.connection.credential)
        yield from _bootstrap(spec, i)
    for i, vm in enumerate(spec.vms):
        yield from _credential_ref(spec, ("vms", i, "guest", "credential"), vm.guest.credential)
        if vm.guest.telnet:
            for u, user in enumerate(vm.guest.telnet.users):
                yield from _credential_ref(
                    spec, ("vms", i, "guest", "telnet", "users", u, "credential"), user.credential
                )


def _bootstrap(spec: LabSpec, index: int) -> Iterator[Problem]:
    """A bootstrap credential names a local account of a host that is not a DC."""
    host, loc = spec.hosts[index], ("hosts", index, "bootstrap_credential")
    name = host.bootstrap_credential
    if name is None:
        return
    if name not in spec.credentials:
        yield _unknown(loc, "credential", name, spec.credentials)
        return
    if host.role is HostRole.dc:
        yield Problem(loc, "a domain controller has no local accounts: remove "
                      "bootstrap_credential (it is reached with connection.credential)")
        return
    username = spec.credentials[name].username
    domain = username.rpartition("\\")[0] if "\\" in username else username.partition("@")[2]
    if domain.lower() in (spec.domain.netbios.lower(), spec.domain.fqdn.lower()):
        yield Problem(loc, f"credential {name!r} is the domain account '{username}'; the "
                      "bootstrap credential is the host's local Administrator (user name "
                      "'Administrator' or '.\\Administrator'), which works before the join")


def _hosts(spec: LabSpec) -> Iterator[Problem]:
    for i, host in enumerate(spec.hosts):
        if host.role is HostRole.dc and (host.switches or host.migration):
            yield Problem(("hosts", i, "role"), "a dc host has no Hyper-V switches or migration")
        for s, switch in enumerate(host.switches):
            loc: Loc = ("hosts", i, "switches", s)
            if switch.type is SwitchType.External and not switch.adapter:
                yield Problem((*loc, "adapter"), "an External switch needs the physical adapter")
            if switch.type is not SwitchType.External and switch.adapter:
                yield Problem((*loc, "adapter"), f"a {switch.type} switch takes no adapter")
            for other in host.switches[:s]:
                if switch.subnet and other.subnet and switch.subnet.overlaps(other.subnet):
                    yield Problem((*loc, "subnet"), f"{switch.subnet} overlaps {other.subnet} "
                                  f"of switch {other.name!r} on {host.name}")


def _vms(spec: LabSpec) -> Iterator[Problem]:
    hosts = {h.name.lower(): h for h in spec.hosts}
    goldens = {g.name: g for g in spec.golden_images}
    for i, vm in enumerate(spec.vms):
        host = hosts.get(vm.host.lower())
        if host is None:
            yield _unknown(("vms", i, "host"), "host", vm.host, (h.name for h in spec.hosts))
        elif host.role is not HostRole.hyperv:
            yield Problem(("vms", i, "host"), f"{vm.host} is not a Hyper-V host (role dc)")
        golden = goldens.get(vm.disk.golden)
        if golden is None:
            yield _unknown(("vms", i, "disk", "golden"), "golden image", vm.disk.golden, goldens)
        elif golden.generation != vm.generation:
            yield Problem(
                ("vms", i, "generation"),
                f"generation {vm.generation} does not match golden image {golden.name!r} "
                f"(generation {golden.generation})",
            )
        yield from _unc_paths(spec, ("vms", i, "path"), vm.path)
        yield from _unc_paths(spec, ("vms", i, "disk", "path"), vm.disk.path)
        if host is not None:
            switches = {s.name.lower() for s in host.switches}
            for n, nic in enumerate(vm.nics):
                if nic.switch.lower() not in switches:
                    yield Problem(
                        ("vms", i, "nics", n, "switch"),
                        f"switch {nic.switch!r} is not defined on {host.name} "
                        f"(defined: {', '.join(s.name for s in host.switches) or 'none'})",
                    )
        if vm.guest.telnet and vm.guest.os is OsFamily.linux:
            yield Problem(("vms", i, "guest", "telnet"), "the Telnet server role needs Windows")
        yield from _address_source(vm, i)
        yield from _firmware(vm, i)


def _address_source(vm: Vm, i: int) -> Iterator[Problem]:
    source = vm.guest.addresses_from
    where = ("vms", i, "guest", "address_source")
    if vm.guest.os is OsFamily.linux and source is AddressSource.static:
        yield Problem(where, "hvlab cannot set a Linux guest's addresses (PowerShell Direct "
                      "does not reach Linux guests): use `golden` (the golden image configures "
                      "them) or `dhcp`; hvlab then verifies each NIC's ipv4")
    elif vm.guest.os is not OsFamily.linux and source is not AddressSource.static:
        yield Problem(where, f"hvlab configures the addresses of {vm.guest.os} guests: "
                      "remove address_source (golden and dhcp are for Linux guests)")


def _firmware(vm: Vm, i: int) -> Iterator[Problem]:
    if vm.generation == 1:
        for name in ("secure_boot", "secure_boot_template"):
            if getattr(vm, name) is not None:
                yield Problem(("vms", i, name), "generation 1 VMs have BIOS firmware: Secure "
                              "Boot settings apply to generation 2 only; remove this field")
        return
    firmware = vm.firmware
    assert firmware is not None
    on, template = firmware
    family = "linux" if vm.guest.os is OsFamily.linux else "windows"
    if on and template not in TRUSTED_TEMPLATES[family]:
        trusted = " or ".join(sorted(t.value for t in TRUSTED_TEMPLATES[family]))
        yield Problem(("vms", i, "secure_boot_template"),
                      f"a {vm.guest.os} guest does not boot with Secure Boot template "
                      f"{template}: Hyper-V halts it in firmware; use {trusted}, or "
                      "secure_boot: false")


def _unc_paths(spec: LabSpec, loc: Loc, path: str | None) -> Iterator[Problem]:
    if not path or not path.startswith("\\\\"):
        return
    parts = path[2:].split("\\")
    if len(parts) < 2 or not parts[1]:
        yield Problem(loc, f"{path!r} is not a \\\\HOST\\share path")
        return
    known = {(s.host.lower(), s.name.lower()) for s in spec.shares}
    if (parts[0].lower(), parts[1].lower()) not in known:
        yield Problem(loc, f"share \\\\{parts[0]}\\{parts[1]} is not defined under shares")


def _nic_subnet(spec: LabSpec, vm: Vm, nic: Nic) -> ipaddress.IPv4Network | None:
    try:
        host = spec.host(vm.host)
    except KeyError:
        return None
    for switch in host.switches:
        if switch.name.lower() == nic.switch.lower():
            return switch.subnet
    return None


def _addresses(spec: LabSpec) -> Iterator[Problem]:
    seen: dict[ipaddress.IPv4Address, str] = {}
    for host in spec.hosts:
        try:
            seen[ipaddress.IPv4Address(host.connection.address)] = host.name
        except ValueError:
            continue  # a DNS name
    for i, vm in enumerate(spec.vms):
        for n, nic in enumerate(vm.nics):
            yield from _nic_addresses(spec, vm, nic, ("vms", i, "nics", n), seen)


def _nic_addresses(
    spec: LabSpec, vm: Vm, nic: Nic, loc: Loc, seen: dict[ipaddress.IPv4Address, str]
) -> Iterator[Problem]:
    if nic.ipv4 is None:
        return
    address = nic.ipv4.ip
    if address in seen:
        yield Problem((*loc, "ipv4"), f"{address} is already used by {seen[address]}")
    seen[address] = f"{vm.name}/{nic.name}"
    subnet = _nic_subnet(spec, vm, nic)
    if subnet is not None and address not in subnet:
        yield Problem(
            (*loc, "ipv4"), f"{address} is outside subnet {subnet} of switch {nic.switch!r}"
        )
    if nic.gateway is not None and nic.gateway not in nic.ipv4.network:
        yield Problem(
            (*loc, "gateway"), f"gateway {nic.gateway} is outside {nic.ipv4.network}"
        )
    if nic.ipv4.ip in (nic.ipv4.network.network_address, nic.ipv4.network.broadcast_address):
        yield Problem((*loc, "ipv4"), f"{nic.ipv4} is a network or broadcast address")


def _nat(spec: LabSpec) -> Iterator[Problem]:
    vms = {v.name.lower(): v for v in spec.vms}
    for i, nat in enumerate(spec.nat):
        loc: Loc = ("nat", i)
        if nat.kind is NatKind.rras_in_guest:
            yield from _nat_rras(spec, nat.vm, nat.external, nat.internal, loc, vms)
        else:
            yield from _nat_host(spec, nat.host, nat.internal_prefix, loc)
        for f, forward in enumerate(nat.forwards):
            floc: Loc = (*loc, "forwards", f)
            if (forward.to_vm is None) == (forward.to_ip is None):
                yield Problem(floc, "give exactly one of to_vm or to_ip")
            elif forward.to_vm is not None and forward.to_vm.lower() not in vms:
                yield _unknown((*floc, "to_vm"), "VM", forward.to_vm, (v.name for v in spec.vms))
        yield from _dupes(
            (((*loc, "forwards", f, "external_port"), f"{fw.protocol}/{fw.external_port}")
             for f, fw in enumerate(nat.forwards)),
            "port forward",
        )


def _nat_rras(
    spec: LabSpec, vm_name: str | None, external: str, internal: list[str], loc: Loc,
    vms: dict[str, Vm],
) -> Iterator[Problem]:
    if vm_name is None:
        yield Problem((*loc, "vm"), "rras-in-guest needs the router VM")
        return
    vm = vms.get(vm_name.lower())
    if vm is None:
        yield _unknown((*loc, "vm"), "VM", vm_name, (v.name for v in spec.vms))
        return
    nics = {n.name.lower() for n in vm.nics}
    if external.lower() not in nics:
        yield Problem((*loc, "external"), f"{vm.name} has no NIC named {external!r}")
    for k, name in enumerate(internal):
        if name.lower() not in nics:
            yield Problem((*loc, "internal", k), f"{vm.name} has no NIC named {name!r}")


def _nat_host(
    spec: LabSpec, host: str | None, prefix: ipaddress.IPv4Network | None, loc: Loc
) -> Iterator[Problem]:
    if host is None:
        yield Problem((*loc, "host"), "host-netnat needs the Hyper-V host")
    elif host.lower() not in _host_names(spec):
        yield _unknown((*loc, "host"), "host", host, (h.name for h in spec.hosts))
    if prefix is None:
        yield Problem((*loc, "internal_prefix"), "host-netnat needs the internal prefix")


def _shares(spec: LabSpec) -> Iterator[Problem]:
    hosts = _host_names(spec)
    for i, share in enumerate(spec.shares):
        if share.host.lower() not in hosts:
            yield _unknown(("shares", i, "host"), "host", share.host, (h.name for h in spec.hosts))
        for g, grant in enumerate(share.grants):
            account = grant.account
            if account.endswith("$") and "\\" in account:
                computer = account.split("\\", 1)[1][:-1]
                if computer.lower() not in hosts:
                    yield Problem(
                        ("shares", i, "grants", g, "account"),
                        f"computer account {account!r} is not a host of this lab",
                    )


def _delegation(spec: LabSpec) -> Iterator[Problem]:
    hosts = _host_names(spec)
    names = [h.name for h in spec.hosts]
    for i, entry in enumerate(spec.delegation):
        if entry.host.lower() not in hosts:
            yield _unknown(("delegation", i, "host"), "host", entry.host, names)
        for t, target in enumerate(entry.to):
            loc: Loc = ("delegation", i, "to", t)
            if target.target.lower() not in hosts:
                yield _unknown((*loc, "target"), "host", target.target, names)
            for s, service in enumerate(target.services):
                if service not in ("cifs", MIGRATION_SERVICE, "HOST", "http"):
                    yield Problem(
                        (*loc, "services", s),
                        f"unknown service {service!r}; use cifs or {MIGRATION_SERVICE!r}",
                    )


def _replication(spec: LabSpec) -> Iterator[Problem]:
    roles = _host_names(spec)
    vms = {v.name.lower(): v for v in spec.vms}
    for i, rep in enumerate(spec.replication):
        loc: Loc = ("replication", i)
        for field in ("primary", "replica"):
            name = getattr(rep, field)
            if name.lower() not in roles:
                yield _unknown((*loc, field), "host", name, (h.name for h in spec.hosts))
            elif roles[name.lower()] is not HostRole.hyperv:
                yield Problem((*loc, field), f"{name} is not a Hyper-V host")
        if rep.primary.lower() == rep.replica.lower():
            yield Problem((*loc, "replica"), "the replica must be another host than the primary")
        vm = vms.get(rep.vm.lower())
        if vm is None:
            yield _unknown((*loc, "vm"), "VM", rep.vm, (v.name for v in spec.vms))
        elif vm.host.lower() != rep.primary.lower():
            yield Problem((*loc, "primary"), f"{vm.name} lives on {vm.host}, not {rep.primary}")
        yield from _shared_replica_server(spec, i)


def _shared_replica_server(spec: LabSpec, i: int) -> Iterator[Problem]:
    """Both hosts of a relationship run a replica server (the primary's for reverse
    replication), one per host for every relationship there: an entry sharing a host with an
    earlier entry must ask for the same port, authentication and storage."""
    rep = spec.replication[i]
    hosts = {rep.primary.lower(), rep.replica.lower()}
    for k, other in enumerate(spec.replication[:i]):
        shared = sorted(h for h in (other.primary, other.replica) if h.lower() in hosts)
        if not shared:
            continue
        for field in ("port", "auth", "storage"):
            mine, theirs = getattr(rep, field), getattr(other, field)
            if str(mine).rstrip("\\").lower() != str(theirs).rstrip("\\").lower():
                mine = getattr(mine, "value", mine)
                theirs = getattr(theirs, "value", theirs)
                where = f"{shared[0]} runs" if len(shared) == 1 else \
                    f"{' and '.join(shared)} each run"
                yield Problem(("replication", i, field),
                              f"{where} one replica server for {rep.vm} and {other.vm} "
                              f"(replication[{k}], {field} {theirs}): use {field} {theirs} "
                              f"here too, not {mine}")


def _checkpoints(spec: LabSpec) -> Iterator[Problem]:
    vms = {v.name.lower() for v in spec.vms}
    for i, checkpoint in enumerate(spec.checkpoints):
        if checkpoint.vms == "all":
            continue
        for k, name in enumerate(checkpoint.vms):
            if name.lower() not in vms:
                yield _unknown(("checkpoints", i, "vms", k), "VM", name, (v.name for v in spec.vms))
    if spec.reset and spec.reset.checkpoint not in {c.name for c in spec.checkpoints}:
        yield _unknown(("reset", "checkpoint"), "checkpoint", spec.reset.checkpoint,
                       (c.name for c in spec.checkpoints))


def _exercises(spec: LabSpec) -> Iterator[Problem]:
    yield from _dupes(((("exercises", i, "name"), e.name) for i, e in enumerate(spec.exercises)),
                      "exercise")
    for i, exercise in enumerate(spec.exercises):
        yield from _exercise(spec, exercise, ("exercises", i))


def _exercise(spec: LabSpec, exercise: Exercise, loc: Loc) -> Iterator[Problem]:
    named: list[tuple[Loc, str]] = []
    for s, step in enumerate(exercise.steps):
        sloc: Loc = (*loc, "steps", s)
        kinds = step.kinds
        if len(kinds) != 1:
            found = ", ".join(kinds) or "none"
            yield Problem(sloc, f"a step is exactly one of {', '.join(STEP_KINDS)} "
                          f"(found: {found})")
            continue
        named.append(((*sloc, "name") if step.name else sloc, step.key))
        yield from _step(spec, step, (*sloc, step.kind))
    for problem in _dupes(named, f"step in exercise {exercise.name!r}"):
        yield Problem(problem.loc, problem.message + "; give one of them a `name:`")


def _hyperv(spec: LabSpec, loc: Loc, name: str) -> Iterator[Problem]:
    roles = _host_names(spec)
    if name.lower() not in roles:
        yield _unknown(loc, "host", name, (h.name for h in spec.hyperv_hosts))
    elif roles[name.lower()] is not HostRole.hyperv:
        yield Problem(loc, f"{name} is not a Hyper-V host")


def _step_vm(spec: LabSpec, name: str) -> Vm | None:
    try:
        return spec.vm(name)
    except KeyError:
        return None


def _step(spec: LabSpec, step: ExerciseStep, loc: Loc) -> Iterator[Problem]:
    settings = step.settings
    vm_name: str | None = getattr(settings, "vm", None)
    vm = _step_vm(spec, vm_name) if vm_name is not None else None
    if vm_name is not None and vm is None:
        yield _unknown((*loc, "vm"), "VM", vm_name, (v.name for v in spec.vms))
        return
    kind = step.kind
    if kind == "migrate":
        yield from _migrate_step(spec, settings, vm, loc)
    elif kind == "replicate":
        assert vm is not None
        entry = spec.replication_of(vm.name)
        if settings.to is None and entry is None:
            yield Problem((*loc, "to"), f"{vm.name} has no replication entry: name the "
                          "replica host")
        elif settings.to is not None:
            yield from _hyperv(spec, (*loc, "to"), settings.to)
            primary = entry.primary if entry else vm.host
            if settings.to.lower() == primary.lower():
                yield Problem((*loc, "to"), f"{settings.to} is the primary of {vm.name}")
    elif kind in ("failover", "failback"):
        assert vm is not None
        entry = spec.replication_of(vm.name)
        if entry is None:
            yield Problem((*loc, "vm"), f"{vm.name} has no replication entry to fail over")
        elif kind == "failover" and settings.to is not None and settings.to.lower() not in (
                entry.primary.lower(), entry.replica.lower()):
            yield Problem((*loc, "to"), f"{settings.to} is neither the primary "
                          f"({entry.primary}) nor the replica ({entry.replica}) of {vm.name}")
        if kind == "failover" and settings.test and settings.to is not None:
            yield Problem((*loc, "to"), "a test failover runs on the replica it has now; "
                          "remove `to`")
    elif kind == "checkpoint":
        names = [c.name for c in spec.checkpoints]
        if settings.name not in names:
            yield _unknown((*loc, "name"), "checkpoint", settings.name, names)
    elif kind == "reset":
        names = [c.name for c in spec.checkpoints]
        if settings.checkpoint and settings.checkpoint not in names:
            yield _unknown((*loc, "checkpoint"), "checkpoint", settings.checkpoint, names)
        elif not settings.checkpoint and spec.reset is None and len(names) != 1:
            yield Problem((*loc, "checkpoint"), "name the checkpoint to restore (the lab "
                          f"file has {len(names)} checkpoints and no reset.checkpoint)")
    elif kind == "verify" and not any(n.forwards for n in spec.nat):
        yield Problem(loc, "the lab has no NAT port forwards to verify")


def _migrate_step(spec: LabSpec, settings: MigrateStep, vm: Vm | None, loc: Loc
                  ) -> Iterator[Problem]:
    assert vm is not None
    if settings.mode == "storage":
        if not settings.storage_path:
            yield Problem((*loc, "storage_path"), "mode storage needs the destination folder")
        if settings.to is not None:
            yield from _hyperv(spec, (*loc, "to"), settings.to)
        if settings.storage_path:
            yield from _unc_paths(spec, (*loc, "storage_path"), settings.storage_path)
        return
    if settings.to is None:
        yield Problem((*loc, "to"), f"mode {settings.mode} needs the destination host")
    else:
        yield from _hyperv(spec, (*loc, "to"), settings.to)
    if settings.mode == "smb" and not (vm.path or "").startswith("\\\\"):
        yield Problem((*loc, "mode"), f"an SMB live migration moves only the running state: "
                      f"{vm.name}'s files must be on a share (its `path`); use "
                      "shared-nothing")
