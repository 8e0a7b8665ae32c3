"""File-system cmdlets: New-Item, Test-Path, Remove-Item, Get-Item, Get-ChildItem, Copy-Item.

Paths are case-insensitive Windows paths; UNC paths resolve through the world's shares and
go through the second-hop check of :func:`session_locate`. Items found through a UNC path are
shown under that path (``FullName`` ``\\\\DC1\\smb\\x``, as the FileSystem provider reports
it), never under the share's local folder on its server.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from simulator.cmdlets.common import PathDenied, PathMissing, as_list, session_locate
from simulator.core import Call, Registry
from simulator.pstypes import i64, ps_object
from simulator.world import (
    Host,
    SimFile,
    is_unc,
    join_path,
    leaf,
    norm_path,
    parent_path,
    path_key,
)

EXC_IO = "System.IO.IOException"
EXC_DENIED = "System.UnauthorizedAccessException"
EXC_NOT_FOUND = "System.Management.Automation.ItemNotFoundException"


def register(registry: Registry) -> None:
    registry.cmdlet("New-Item")(new_item)
    registry.cmdlet("Test-Path", mutates=False)(test_path)
    registry.cmdlet("Remove-Item")(remove_item)
    registry.cmdlet("Get-Item", "Get-ChildItem", mutates=False)(get_item)
    registry.cmdlet("Copy-Item")(copy_item)
    registry.cmdlet("Rename-Item")(rename_item)


def item_object(path: str, file: SimFile | None) -> Any:
    name = leaf(path)
    if file is None:
        return ps_object(
            ["System.IO.DirectoryInfo", "System.IO.FileSystemInfo"],
            Name=name,
            FullName=path,
            Exists=True,
            Mode="d-----",
            Parent=leaf(parent_path(path) or path),
            PSIsContainer=True,
        )
    return ps_object(
        ["System.IO.FileInfo", "System.IO.FileSystemInfo"],
        Name=name,
        FullName=path,
        Exists=True,
        Mode="-a----",
        Length=i64(file.size),
        DirectoryName=parent_path(path),
        PSIsContainer=False,
    )


def _locate(call: Call, path: str, write: bool = False) -> tuple[Host, str] | None:
    try:
        return session_locate(call, path, write=write)
    except PathDenied:
        call.error(
            f"Access to the path '{path}' is denied.",
            _eid(call, "UnauthorizedAccess"),
            "PermissionDenied",
            path,
            EXC_DENIED,
        )
    except PathMissing:
        call.error(
            f"Could not find a part of the path '{path}'.",
            _eid(call, "IOError"),
            "WriteError",
            path,
            EXC_IO,
        )
    return None


def shown_as(raw: str, local: str) -> Callable[[str], str]:
    """How a path under ``local`` (where ``raw`` resolved to) is shown: under ``raw`` when that
    is a UNC path, so ``Get-ChildItem \\\\DC1\\smb`` lists ``\\\\DC1\\smb\\x``."""
    if not is_unc(raw):
        return norm_path
    base_unc, base_local = norm_path(raw), norm_path(local)
    prefix = path_key(base_local)

    def show(path: str) -> str:
        key = path_key(path)
        if key == prefix:
            return base_unc
        if key.startswith(prefix.rstrip("\\") + "\\"):
            return base_unc.rstrip("\\") + "\\" + norm_path(path)[len(base_local):].lstrip("\\")
        return norm_path(path)

    return show


def _eid(call: Call, what: str) -> str:
    return f"{call.name.replace('-', '')}{what}Error"


def _not_found(call: Call, path: str) -> None:
    call.error(
        f"Cannot find path '{path}' because it does not exist.",
        "PathNotFound",
        "ObjectNotFound",
        path,
        EXC_NOT_FOUND,
    )


def _paths(call: Call) -> list[str]:
    paths = [str(p) for p in as_list(call.get("Path") or call.get("LiteralPath"))]
    name = call.get("Name")
    if name:
        paths = [join_path(p, str(name)) for p in (paths or ["C:\\"])]
    return paths


def new_item(call: Call) -> None:
    kind = str(call.get("ItemType") or "File").lower()
    for raw in _paths(call):
        where = _locate(call, raw, write=True)
        if where is None:
            continue
        host, path = where
        exists = host.folder_exists(path) or host.file(path) is not None
        if exists and not call.switch("Force"):
            call.error(
                f"An item with the specified name {norm_path(raw)} already exists.",
                "DirectoryExist" if kind == "directory" else "NewItemIOError",
                "ResourceExists",
                raw,
                EXC_IO,
            )
            continue
        parent = parent_path(path)
        if parent and not host.folder_exists(parent) and not call.switch("Force"):
            call.error(
                f"Could not find a part of the path '{norm_path(raw)}'.",
                "NewItemIOError",
                "WriteError",
                raw,
                EXC_IO,
            )
            continue
        call.out(_create(host, path, kind, call.get("Value"), shown_as(raw, path)))


def _create(host: Host, path: str, kind: str, value: Any, show: Callable[[str], str]) -> Any:
    if kind in ("directory", "container"):
        host.add_folder(path)
        return item_object(show(path), None)
    file = host.file(path) or SimFile(path=path, size=len(str(value or "")))
    host.put_file(file)
    return item_object(show(file.path), file)


# Registry keys the simulator can answer Test-Path for (no general registry model): the key
# Netlogon creates for a domain join that waits for a restart, removed by the restart.
PENDING_JOIN_KEY = "hklm:\\system\\currentcontrolset\\services\\netlogon\\joindomain"


def _registry_key_exists(host: Host, path: str) -> bool | None:
    """True/False for a registry path the simulator models, None for a file-system path."""
    key = path.replace("/", "\\").rstrip("\\").lower()
    if not key.startswith("hklm:"):
        return None
    if key == PENDING_JOIN_KEY:
        return bool(host.pending_domain)
    return False


def test_path(call: Call) -> None:
    kind = str(call.get("PathType") or "Any").lower()
    for raw in _paths(call):
        registry = _registry_key_exists(call.host, raw)
        if registry is not None:
            call.out(registry and kind != "leaf")
            continue
        try:
            host, path = session_locate(call, raw)
        except (PathDenied, PathMissing):
            call.out(False)
            continue
        is_dir, is_file = host.folder_exists(path), host.file(path) is not None
        found = {"container": is_dir, "leaf": is_file}.get(kind, is_dir or is_file)
        call.out(bool(found))


def remove_item(call: Call) -> None:
    for raw in _paths(call):
        where = _locate(call, raw, write=True)
        if where is None:
            continue
        host, path = where
        if host.file(path) is not None:
            _remove_file(call, host, path, raw)
        elif host.folder_exists(path):
            _remove_folder(call, host, path, raw)
        else:
            _not_found(call, raw)


def _in_use(call: Call, host: Host, path: str) -> bool:
    """A VHDX attached to a running VM (on any host, through a share) is locked."""
    key = path_key(path)
    for h in call.world.hosts.values():
        for vm in h.vms.values():
            if vm.state == "Off":
                continue
            for disk in vm.disks:
                spot = call.world.locate(h, disk.path)
                if spot and spot[0] is host and path_key(spot[1]) == key:
                    return True
    return False


def _remove_file(call: Call, host: Host, path: str, raw: str) -> None:
    if _in_use(call, host, path):
        call.error(
            f"Cannot remove item {norm_path(raw)}: The process cannot access the file "
            f"'{norm_path(raw)}' because it is being used by another process.",
            "RemoveFileSystemItemIOError",
            "WriteError",
            raw,
            EXC_IO,
        )
        return
    del host.files[path_key(path)]


def _remove_folder(call: Call, host: Host, path: str, raw: str) -> None:
    prefix = path_key(path).rstrip("\\") + "\\"
    inside = [k for k in host.files if k.startswith(prefix)]
    subdirs = [k for k in host.folders if k.startswith(prefix)]
    if (inside or subdirs) and not call.switch("Recurse"):
        call.error(
            f"The item at {norm_path(raw)} has children and the Recurse parameter was not "
            "specified.",
            "RemoveItemUnauthorizedAccessError",
            "WriteError",
            raw,
            EXC_IO,
        )
        return
    for key in inside:
        if _in_use(call, host, host.files[key].path):
            _remove_file(call, host, host.files[key].path, host.files[key].path)
            return
    for key in inside:
        del host.files[key]
    for key in [*subdirs, path_key(path)]:
        host.folders.pop(key, None)


def get_item(call: Call) -> None:
    for raw in _paths(call) or ["C:\\"]:
        where = _locate(call, raw)
        if where is None:
            continue
        host, path = where
        show = shown_as(raw, path)
        file = host.file(path)
        if file is None and not host.folder_exists(path):
            _not_found(call, raw)
        elif call.name == "Get-ChildItem" and file is None:
            for child in sorted(host.children(path)):
                call.out(item_object(show(child), host.file(child)))
        else:
            call.out(item_object(show(path), file))


def copy_item(call: Call) -> None:
    destination = str(call.get("Destination") or "")
    for raw in _paths(call):
        src = _locate(call, raw)
        dst = _locate(call, destination, write=True)
        if src is None or dst is None:
            continue
        file = src[0].file(src[1])
        if file is None:
            _not_found(call, raw)
            continue
        target = _target_path(dst[0], dst[1], src[1])
        if target is None:
            call.error(
                f"Could not find a part of the path '{destination}'.",
                "CopyItemIOError",
                "WriteError",
                destination,
                EXC_IO,
            )
            continue
        show = shown_as(destination, dst[1])
        if not _copy(call, file, dst[0], target, show):
            return


def _target_path(host: Host, dst: str, src: str) -> str | None:
    if host.folder_exists(dst):
        return join_path(dst, leaf(src))
    parent = parent_path(dst)
    return dst if parent and host.folder_exists(parent) else None


def _copy(call: Call, file: SimFile, host: Host, target: str, show: Callable[[str], str]) -> bool:
    """Copy ``file`` to ``target`` on ``host`` over the simulated copy time. The destination
    exists from the first block on: while the copy runs, and for ever when it is cut (the
    pipeline stopped, the shell closed by a dropped session or a reboot, the host going down),
    it is a truncated file (``SimFile.truncated``, half the size: Get-VHD and Start-VM refuse
    it). False when the copy was cut."""
    partial = SimFile(path=target, size=0, truncated=True)
    host.put_file(partial)
    boot, clock = host.boot_time, call.sim.clock
    if not clock.instant:
        with call.unlocked():
            clock.sleep(clock.copy_seconds(file.size))
        if call.ctx.stopping() or host.rebooting or host.boot_time != boot \
                or host.name.upper() in call.sim.down or host.file(target) is not partial:
            partial.size = file.size // 2  # [UNCONF] how far a cut copy got
            return False
    copy = file.model_copy(update={"path": target, "truncated": False})
    host.put_file(copy)
    if call.switch("PassThru"):
        call.out(item_object(show(copy.path), copy))
    return True


def rename_item(call: Call) -> None:
    """Rename-Item -Path X -NewName leaf: the item keeps its folder; an existing item of the new
    name is an IOException (no -Force overwrite for files)."""
    new_name = str(call.get("NewName") or "")
    for raw in _paths(call):
        where = _locate(call, raw, write=True)
        if where is None:
            continue
        host, path = where
        file = host.file(path)
        if file is None:
            _not_found(call, raw)
            continue
        folder = parent_path(path) or path
        target = join_path(folder, leaf(new_name))
        if host.file(target) is not None or host.folder_exists(target):
            call.error(
                "Cannot create a file when that file already exists.",
                "RenameItemIOError",
                "WriteError",
                raw,
                EXC_IO,
            )
            continue
        del host.files[path_key(path)]
        host.put_file(file.model_copy(update={"path": target}))
        if call.switch("PassThru"):
            call.out(item_object(shown_as(raw, path)(target), host.file(target)))
