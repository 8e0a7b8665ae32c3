"""Checkpoint disk chains: the automatic differencing disks (.avhdx) checkpoints create.

Hyper-V keeps a checkpoint's disk state by freezing the VHD(X) the VM was writing to and
continuing in a new differencing disk next to it (``<name>_<GUID>.avhdx``, parent: the frozen
disk). A checkpoint refers to the disks the VM had when it was taken; the VM runs on the newest
.avhdx. Applying a checkpoint discards the VM's current .avhdx and branches a new one from the
checkpoint's disk; deleting a checkpoint merges its differencing disk into the parent; Remove-VM
merges the checkpoints into the VHDs it keeps. A move of the VM's storage (Move-VM
-IncludeStorage, Move-VMStorage) moves every file of the chain and the checkpoints with them,
so the checkpoints refer to the moved files afterwards (docs/simulator-fidelity.md).

Paths are as the VM's host sees them (local or UNC); a local .avhdx's parent is a local path on
the same host, one on a share has a UNC parent.
"""

from __future__ import annotations

from typing import Any

from simulator.world import (
    MB,
    Host,
    SimFile,
    Snapshot,
    Vm,
    World,
    join_path,
    leaf,
    new_guid,
    norm_path,
    parent_path,
)

AUTOMATIC = (".avhdx", ".avhd")


def is_automatic(path: str) -> bool:
    """A differencing disk Hyper-V created for a checkpoint (not one the user made)."""
    return norm_path(path).lower().endswith(AUTOMATIC)


def find_file(world: World, host: Host, path: str) -> tuple[Host, str, SimFile] | None:
    """(server, local path, file) of ``path`` as ``host`` sees it, or None when it is gone."""
    spot = world.locate(host, path)
    if spot is None:
        return None
    file = spot[0].file(spot[1])
    return (spot[0], spot[1], file) if file is not None else None


def snapshot_disks(snap: Snapshot) -> list[dict[str, Any]]:
    disks = snap.config.get("disks", [])
    return [d for d in disks if isinstance(d, dict) and d.get("path")]


def _base_name(path: str) -> str:
    """``win2003-1`` for win2003-1.vhdx and for win2003-1_<GUID>.avhdx."""
    name = leaf(path).rsplit(".", 1)[0]
    if is_automatic(path) and "_" in name:
        name = name.rsplit("_", 1)[0]
    return name


def branch(world: World, host: Host, path: str) -> str:
    """A new automatic differencing disk next to ``path`` with ``path`` as its parent; its
    path as the VM sees it (``path`` unchanged when that disk cannot be found)."""
    found = find_file(world, host, path)
    if found is None:
        return norm_path(path)
    server, local, parent = found
    name = f"{_base_name(path)}_{new_guid().upper()}.avhdx"
    folder_local, folder = parent_path(local), parent_path(norm_path(path))
    if folder_local is None or folder is None:
        return norm_path(path)
    server.put_file(SimFile(
        path=join_path(folder_local, name), size=4 * MB, vhd_type="Differencing",
        virtual_size=parent.virtual_size or parent.size, parent=norm_path(path)))
    return join_path(folder, name)


def broken_link(world: World, host: Host, path: str) -> str | None:
    """The first file of ``path``'s chain (itself, then its automatic parents) that is gone."""
    seen: set[str] = set()
    current: str | None = norm_path(path)
    while current and current.lower() not in seen:
        seen.add(current.lower())
        found = find_file(world, host, current)
        if found is None:
            return current
        if not is_automatic(current):
            return None
        current = found[2].parent
    return None


def vm_chain(world: World, host: Host, vm: Vm) -> list[str]:
    """Every disk file of the VM as its host sees them: its current disks, each checkpoint's
    disks and the automatic differencing disks between, down to each base disk (a base disk's
    own parent, e.g. a golden image, is not the VM's)."""
    starts = [d.path for d in vm.disks]
    starts += [str(d["path"]) for s in vm.snapshots for d in snapshot_disks(s)]
    out: list[str] = []
    seen: set[str] = set()
    for start in starts:
        current: str | None = norm_path(start)
        while current and current.lower() not in seen:
            seen.add(current.lower())
            out.append(current)
            found = find_file(world, host, current) if is_automatic(current) else None
            current = found[2].parent if found else None
    return out


def referenced(vm: Vm) -> set[str]:
    """The disks a checkpoint of the VM refers to (lower-case paths)."""
    return {norm_path(str(d["path"])).lower() for s in vm.snapshots for d in snapshot_disks(s)}


def delete(world: World, host: Host, path: str) -> None:
    found = find_file(world, host, path)
    if found is not None:
        del found[0].files[found[1].lower()]


def repoint(world: World, host: Host, vm: Vm, mapping: dict[str, str]) -> None:
    """Replace disk paths (keys lower-case) in the VM, its checkpoints and the parent links of
    the VM's chain."""

    def new(path: str) -> str:
        return mapping.get(norm_path(path).lower(), path)

    files = [f[2] for f in (find_file(world, host, p) for p in vm_chain(world, host, vm)) if f]
    for disk in vm.disks:
        disk.path = new(disk.path)
    for snap in vm.snapshots:
        for frozen in snapshot_disks(snap):
            frozen["path"] = new(str(frozen["path"]))
    for file in files:
        if file.parent:
            file.parent = new(file.parent)


def merge_removed(world: World, host: Host, vm: Vm, snap: Snapshot) -> None:
    """After ``snap`` left ``vm.snapshots``: each of its disks that nothing else refers to takes
    back its only automatic child (the child merges into it and is deleted)."""
    still = referenced(vm) | {norm_path(d.path).lower() for d in vm.disks}
    chain = vm_chain(world, host, vm)
    for disk in snapshot_disks(snap):
        path = norm_path(str(disk["path"]))
        if path.lower() in still:
            continue
        children = [c for c in chain
                    if is_automatic(c) and _parent_of(world, host, c) == path.lower()]
        if len(children) != 1:
            continue  # branches (a checkpoint applied earlier) keep their disks
        child = children[0]
        delete(world, host, child)
        repoint(world, host, vm, {child.lower(): path})


def _parent_of(world: World, host: Host, path: str) -> str | None:
    found = find_file(world, host, path)
    return norm_path(found[2].parent).lower() if found and found[2].parent else None


def merge_all(world: World, host: Host, vm: Vm) -> None:
    """Remove-VM: the checkpoints merge into the VHDs, which stay; the .avhdx files go."""
    for path in vm_chain(world, host, vm):
        if is_automatic(path):
            delete(world, host, path)


def move_chain(world: World, src: Host, dst: Host, vm: Vm, dest: str) -> None:
    """Move every file of the VM's chain under ``dest`` (a path as ``dst`` sees it) and make
    the VM, its checkpoints and the chain's links refer to the moved files."""
    mapping: dict[str, str] = {}
    moved: list[SimFile] = []
    for path in vm_chain(world, src, vm):
        found = find_file(world, src, path)
        new_path = join_path(dest, leaf(path))
        target = world.locate(dst, new_path)
        if found is None or target is None:
            continue
        server, local, file = found
        del server.files[local.lower()]
        copy = file.model_copy(update={"path": target[1]})
        target[0].put_file(copy)
        moved.append(copy)
        mapping[path.lower()] = new_path
    for file in moved:
        if file.parent:
            file.parent = mapping.get(norm_path(file.parent).lower(), file.parent)
    for disk in vm.disks:
        disk.path = mapping.get(norm_path(disk.path).lower(), disk.path)
    for snap in vm.snapshots:
        for frozen in snapshot_disks(snap):
            frozen["path"] = mapping.get(norm_path(str(frozen["path"])).lower(), frozen["path"])
        for key in ("path", "config_location"):
            if key in snap.config:
                snap.config[key] = dest


def chain_bytes(world: World, host: Host, vm: Vm) -> int:
    total = 0
    for path in vm_chain(world, host, vm):
        found = find_file(world, host, path)
        total += found[2].size if found else 0
    return total
