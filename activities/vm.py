"""VM deployment activities: disk from the golden image, New-VM, NICs, start, stop, and the
compensation that removes a VM with its disk.

Each activity probes, compares, acts only when the host differs, verifies, and returns
``changed`` with the observed state. The ``*_command`` functions build the exact commands the
activities emit (the catalogue test binds every one of them).
"""

from __future__ import annotations

import time
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError, CancelledError

from activities.base import (
    SILENT,
    Beat,
    Remote,
    application_errors,
    cancelled,
    conflict,
    heartbeat,
    last_heartbeat,
    verify_failed,
)
from activities.host import new_folders_command, path_exists_command
from activities.marks import CREATED_BY, DISK, not_created_here, read_marks, with_mark
from activities.models import (
    StepResult,
    VmCreateInput,
    VmDiskInput,
    VmFirmwareInput,
    VmInput,
    VmNicInput,
    VmRemoveInput,
    VmStopInput,
)
from hvlab.powershell.command import SWITCH, Command
from hvlab.powershell.endpoints import EndpointSource
from hvlab.powershell.errors import RemoteError
from hvlab.powershell.session import SessionPool

DEFAULT_NIC = "Network Adapter"


# -- commands ------------------------------------------------------------------------------


PARTIAL_SUFFIX = ".hvlab-partial"


def partial_path(path: str) -> str:
    """Where vm.disk copies the golden image before renaming it to ``path``: a copy cut short
    (dropped session, reboot, cancelled step) leaves a truncated file, never under the final
    name."""
    return path + PARTIAL_SUFFIX


def copy_disk_command(request: VmDiskInput) -> Command:
    return Command.of("Copy-Item", Path=request.golden_path,
                      Destination=partial_path(request.path))


def rename_disk_command(request: VmDiskInput) -> Command:
    return Command.of("Rename-Item", Path=partial_path(request.path),
                      NewName=_leaf(request.path))


def differencing_disk_command(request: VmDiskInput) -> Command:
    return Command.of("New-VHD", Path=request.path, ParentPath=request.golden_path,
                      Differencing=SWITCH)


def get_vhd_command(path: str) -> Command:
    return Command.of("Get-VHD", Path=path)


def get_vm_command(name: str) -> Command:
    return Command.of("Get-VM", Name=name, ErrorAction=SILENT)


def new_vm_command(request: VmCreateInput) -> Command:
    """New-VM on the existing disk; memory goes out as Int64 (the catalogue's type)."""
    return Command.of("New-VM", Name=request.name, Generation=request.generation,
                      MemoryStartupBytes=request.memory_bytes, VHDPath=request.disk_path,
                      Path=request.config_path)


def set_vm_notes_command(name: str, notes: str) -> Command:
    return Command.of("Set-VM", Name=name, Notes=notes)


def set_processor_command(request: VmCreateInput) -> Command:
    return Command.of("Set-VMProcessor", VMName=request.name, Count=request.processors)


def get_nic_command(vm: str, name: str | None = None) -> Command:
    return Command.of("Get-VMNetworkAdapter", VMName=vm, Name=name, ErrorAction=SILENT)


def remove_nic_command(vm: str, name: str) -> Command:
    return Command.of("Remove-VMNetworkAdapter", VMName=vm, Name=name)


def add_nic_command(request: VmNicInput) -> Command:
    return Command.of("Add-VMNetworkAdapter", VMName=request.vm, Name=request.name,
                      SwitchName=request.switch, IsLegacy=request.legacy,
                      StaticMacAddress=request.mac)


def connect_nic_command(request: VmNicInput) -> Command:
    return Command.of("Connect-VMNetworkAdapter", VMName=request.vm, Name=request.name,
                      SwitchName=request.switch)


def get_firmware_command(vm: str) -> Command:
    return Command.of("Get-VMFirmware", VMName=vm)


def set_firmware_command(request: VmFirmwareInput) -> Command:
    return Command.of("Set-VMFirmware", VMName=request.vm,
                      EnableSecureBoot="On" if request.secure_boot else "Off",
                      SecureBootTemplate=request.template)


def start_vm_command(name: str) -> Command:
    return Command.of("Start-VM", Name=name)


def stop_vm_command(name: str, turn_off: bool = False) -> Command:
    return Command.of("Stop-VM", Name=name, TurnOff=SWITCH if turn_off else None, Force=SWITCH)


def remove_vm_command(name: str) -> Command:
    return Command.of("Remove-VM", Name=name, Force=SWITCH)


def attached_disks_command(vm: str) -> Command:
    return Command.of("Get-VMHardDiskDrive", VMName=vm)


def remove_file_command(path: str) -> Command:
    return Command.of("Remove-Item", Path=path, Force=SWITCH)


# -- helpers -------------------------------------------------------------------------------


def _leaf(path: str) -> str:
    return path.rstrip("\\").rsplit("\\", 1)[-1]


def _parent(path: str) -> str:
    return path.rsplit("\\", 1)[0] if "\\" in path.strip("\\") else ""


def _vm_view(vm: dict[str, Any]) -> dict[str, Any]:
    return {"name": vm.get("Name"), "state": str(vm.get("State")),
            "generation": vm.get("Generation"), "memory_startup": vm.get("MemoryStartup"),
            "path": vm.get("Path")}


def _nic_view(nic: dict[str, Any]) -> dict[str, Any]:
    return {"name": nic.get("Name"), "switch": nic.get("SwitchName"),
            "legacy": nic.get("IsLegacy"), "mac": nic.get("MacAddress")}


def _firmware_view(firmware: dict[str, Any]) -> dict[str, Any]:
    return {"secure_boot": str(firmware.get("SecureBoot")),
            "template": str(firmware.get("SecureBootTemplate") or "")}


def _same_firmware(found: dict[str, Any], wanted: dict[str, str]) -> bool:
    """With Secure Boot off the template does not matter."""
    if found["secure_boot"].lower() != wanted["secure_boot"].lower():
        return False
    return wanted["secure_boot"] == "Off" or found["template"].lower() == wanted["template"].lower()


def _disk_view(vhd: dict[str, Any]) -> dict[str, Any]:
    return {"path": vhd.get("Path"), "type": str(vhd.get("VhdType")),
            "parent": vhd.get("ParentPath"), "size": vhd.get("Size")}


class CreatingBeat(Beat):
    """vm.create: the VM this attempt is creating (a retry that finds it unmarked marks it)."""

    KIND = "vm.creating"
    creating: str


def _creating_before(request: VmCreateInput) -> bool:
    """An earlier attempt of this activity heartbeated that it was creating this VM."""
    beat = last_heartbeat(CreatingBeat)
    return beat is not None and beat.creating == request.name


class VmActivities:
    """VM steps on lab hosts reached through ``sessions`` and ``endpoints``."""

    def __init__(self, sessions: SessionPool, endpoints: EndpointSource) -> None:
        self._remote = Remote(sessions, endpoints)

    def _exists(self, host: str, path: str) -> bool:
        return self._remote.query(host, path_exists_command([path])) == [True]

    def _get_vm(self, host: str, name: str) -> dict[str, Any] | None:
        return self._remote.query_one(host, get_vm_command(name))

    # -- disk ----------------------------------------------------------------------------
    @activity.defn(name="vm.disk")
    def disk(self, request: VmDiskInput) -> StepResult:
        """Copy the golden VHDX (or make a differencing child of it) unless the disk exists."""
        with application_errors():
            return self._disk(request)

    def _disk(self, request: VmDiskInput) -> StepResult:
        if self._exists(request.host, request.path):
            return StepResult(changed=False, observed=self._vhd(request))
        parent = _parent(request.path)
        if parent and not self._exists(request.host, parent):
            self._remote.run(request.host, new_folders_command([parent]))
        if request.mode == "copy":
            self._copy(request)
        else:
            self._remote.run(request.host, differencing_disk_command(request))
        if not self._exists(request.host, request.path):
            raise verify_failed(request.host, f"disk {request.path} is missing", None)
        return StepResult(changed=True, observed=self._vhd(request))

    def _copy(self, request: VmDiskInput) -> None:
        """Copy to the temporary name (dropping what a cut attempt left there), then rename:
        the final name exists only for a complete copy."""
        partial = partial_path(request.path)
        if self._exists(request.host, partial):
            self._remote.run(request.host, remove_file_command(partial))
        self._remote.run(request.host, copy_disk_command(request))
        if cancelled():  # the saga may be removing the disk now: never give it a final name
            self._remote.run(request.host, remove_file_command(partial))
            raise CancelledError("vm.disk cancelled after the copy")
        self._remote.run(request.host, rename_disk_command(request))

    def _vhd(self, request: VmDiskInput) -> dict[str, Any]:
        return _disk_view(self._remote.query_one(request.host, get_vhd_command(request.path))
                          or {"Path": request.path})

    # -- create --------------------------------------------------------------------------
    @activity.defn(name="vm.create")
    def create(self, request: VmCreateInput) -> StepResult:
        """New-VM on the prepared disk (memory as Int64); drops New-VM's unconnected NIC."""
        with application_errors():
            return self._create(request)

    def _drift(self, request: VmCreateInput, vm: dict[str, Any]) -> list[str]:
        drift = []
        if vm.get("Generation") != request.generation:
            drift.append(f"generation {vm.get('Generation')} != {request.generation}")
        if vm.get("MemoryStartup") != request.memory_bytes:
            drift.append(f"memory {vm.get('MemoryStartup')} != {request.memory_bytes}")
        return drift

    def _create(self, request: VmCreateInput) -> StepResult:
        vm = self._get_vm(request.host, request.name)
        changed = vm is None
        if vm is None:
            heartbeat(CreatingBeat(creating=request.name))  # a retry marks what this made
            self._remote.run(request.host, new_vm_command(request))
            if request.processors > 1:
                self._remote.run(request.host, set_processor_command(request))
            vm = self._mark(request, self._get_vm(request.host, request.name))
            if vm is None or self._drift(request, vm):
                raise verify_failed(request.host, f"VM {request.name} is not as created", vm)
        elif vm.get("Generation") != request.generation:
            raise conflict(request.host, f"VM {request.name} exists as generation "
                           f"{vm.get('Generation')}, not {request.generation}")
        elif read_marks(vm.get("Notes")).get(CREATED_BY) is None and \
                _creating_before(request):
            vm = self._mark(request, vm)  # an earlier attempt created it and stopped there
        changed = self._drop_default_nic(request) or changed
        return StepResult(changed=changed, observed={**_vm_view(vm or {}),
                                                     "drift": self._drift(request, vm or {})})

    def _mark(self, request: VmCreateInput, vm: dict[str, Any] | None) -> dict[str, Any] | None:
        """Record in the new VM's Notes that this lab created it, and whether the build copied
        its disk (:mod:`activities.marks`)."""
        if vm is None:
            return None
        notes = with_mark(vm.get("Notes"), CREATED_BY, request.lab)
        notes = with_mark(notes, DISK, "adopted" if request.disk_created is False else "hvlab")
        self._remote.run(request.host, set_vm_notes_command(request.name, notes))
        marked = self._get_vm(request.host, request.name)
        if marked is None or read_marks(marked.get("Notes")).get(CREATED_BY) != request.lab:
            raise verify_failed(request.host, f"VM {request.name} notes do not record "
                                f"{CREATED_BY}={request.lab}", marked)
        return marked

    def _drop_default_nic(self, request: VmCreateInput) -> bool:
        if request.keep_default_nic:
            return False
        if self._remote.query_one(request.host, get_nic_command(request.name, DEFAULT_NIC)) \
                is None:
            return False
        self._remote.run(request.host, remove_nic_command(request.name, DEFAULT_NIC))
        return True

    @activity.defn(name="vm.remove")
    def remove(self, request: VmRemoveInput) -> StepResult:
        """Compensation of vm.create and vm.disk, and teardown: turn off, remove the VM, then
        delete its attached disks (Remove-VM keeps them) and ``disk_path``; absent things count
        as done. With ``keep_adopted`` (`hvlab down` without --force) a VM without this lab's
        ``created-by`` mark stays, the disks of a VM made on a disk that was there before
        stay, and so does a disk at ``disk_path`` that no VM of the lab stands next to; the
        result says what stayed and why (``observed["kept"]``)."""
        with application_errors():
            vm = self._get_vm(request.host, request.vm)
            kept: list[str] = []
            if request.keep_adopted and vm is not None:
                why = not_created_here("VM", request.vm, request.host, request.lab,
                                       vm.get("Notes"))
                if why is not None:
                    return StepResult(changed=False, observed={"kept": [why]})
            disks = self._attached(request.host, request.vm)
            paths = list(dict.fromkeys([*disks, *([request.disk_path] if request.disk_path
                                                   else [])]))
            if request.keep_adopted:
                paths, kept = self._owned_disks(request, vm, paths)
            changed = self._remove_vm(request.host, request.vm)
            for path in paths:
                if self._exists(request.host, path):
                    self._remote.run(request.host, remove_file_command(path))
                    changed = True
            left = [p for p in paths if self._exists(request.host, p)]
            if self._get_vm(request.host, request.vm) is not None or left:
                raise verify_failed(request.host, f"VM {request.vm} or its disk remains", left)
            observed: dict[str, Any] = {"absent": True, "disks": paths}
            if kept:
                observed["kept"] = kept
            return StepResult(changed=changed, observed=observed)

    def _owned_disks(self, request: VmRemoveInput, vm: dict[str, Any] | None,
                     paths: list[str]) -> tuple[list[str], list[str]]:
        """(the disks ``hvlab down`` deletes, what it keeps and why)."""
        present = [p for p in paths if self._exists(request.host, p)]
        if vm is not None and read_marks(vm.get("Notes")).get(DISK) != "adopted":
            return paths, []
        if vm is not None:
            why = (f"the disks of VM {request.vm} on {request.host} kept ({', '.join(present)}): "
                   "the VM was made on a disk that was there before")
        else:
            why = (f"disk {', '.join(present)} on {request.host} kept: no VM of the lab stands "
                   "next to it (there before hvlab, or left by a failed build)")
        return [], [f"{why}; `hvlab down FILE --force` removes it"] if present else []

    def _attached(self, host: str, name: str) -> list[str]:
        if self._get_vm(host, name) is None:
            return []
        drives = self._remote.query(host, attached_disks_command(name))
        return [str(d.get("Path")) for d in drives if isinstance(d, dict) and d.get("Path")]

    def _remove_vm(self, host: str, name: str) -> bool:
        vm = self._get_vm(host, name)
        if vm is None:
            return False
        if str(vm.get("State")) != "Off":
            self._remote.run(host, stop_vm_command(name, turn_off=True))
        self._remote.run(host, remove_vm_command(name))
        return True

    # -- NICs ----------------------------------------------------------------------------
    @activity.defn(name="vm.nic")
    def nic(self, request: VmNicInput) -> StepResult:
        """Add the named NIC (legacy, static MAC) or connect it to the right switch."""
        with application_errors():
            return self._nic(request)

    def _get_nic(self, request: VmNicInput) -> dict[str, Any] | None:
        return self._remote.query_one(request.host, get_nic_command(request.vm, request.name))

    def _nic(self, request: VmNicInput) -> StepResult:
        found = self._get_nic(request)
        if found is not None and bool(found.get("IsLegacy")) != request.legacy:
            raise conflict(request.host, f"NIC {request.name} of {request.vm} exists with "
                           f"IsLegacy={found.get('IsLegacy')}; remove it first")
        if found is not None and found.get("SwitchName") == request.switch:
            return StepResult(changed=False, observed=_nic_view(found))
        command = add_nic_command if found is None else connect_nic_command
        self._remote.run(request.host, command(request))
        after = self._get_nic(request)
        if after is None or after.get("SwitchName") != request.switch:
            raise verify_failed(request.host, f"NIC {request.name} is not on {request.switch}",
                                after)
        return StepResult(changed=True, observed=_nic_view(after))

    # -- firmware ------------------------------------------------------------------------
    @activity.defn(name="vm.firmware")
    def firmware(self, request: VmFirmwareInput) -> StepResult:
        """Secure Boot on/off and its template (a Linux guest needs the UEFI CA template).
        Hyper-V changes firmware only while the VM is off: a running VM with other settings
        is a conflict, not something to stop behind the user's back."""
        with application_errors():
            return self._firmware(request)

    def _get_firmware(self, request: VmFirmwareInput) -> dict[str, Any]:
        found = self._remote.query_one(request.host, get_firmware_command(request.vm))
        if found is None:
            raise ApplicationError(f"{request.host}: no firmware settings for VM {request.vm}",
                                   type="NotFound", non_retryable=True)
        return _firmware_view(found)

    def _firmware(self, request: VmFirmwareInput) -> StepResult:
        wanted = {"secure_boot": "On" if request.secure_boot else "Off",
                  "template": request.template}
        found = self._get_firmware(request)
        if _same_firmware(found, wanted):
            return StepResult(changed=False, observed=found)
        state = self._state(VmInput(host=request.host, vm=request.vm))
        if state != "Off":
            raise conflict(request.host, f"VM {request.vm} is {state} with Secure Boot "
                           f"{found['secure_boot']} ({found['template']}), wanted "
                           f"{wanted['secure_boot']} ({wanted['template']}); Hyper-V changes "
                           "firmware only while the VM is off: stop it, then run again")
        self._remote.run(request.host, set_firmware_command(request))
        after = self._get_firmware(request)
        if not _same_firmware(after, wanted):
            raise verify_failed(request.host, f"VM {request.vm} firmware is not {wanted}", after)
        return StepResult(changed=True, observed={**after, "was": found})

    # -- probe ---------------------------------------------------------------------------
    @activity.defn(name="vm.exists")
    def exists(self, request: VmInput) -> StepResult:
        """Read-only: whether the VM exists on the host (and its state); never changes."""
        with application_errors():
            vm = self._get_vm(request.host, request.vm)
            observed = {"exists": vm is not None, "state": str(vm.get("State")) if vm else None}
            return StepResult(changed=False, observed=observed)

    # -- power ---------------------------------------------------------------------------
    @activity.defn(name="vm.start")
    def start(self, request: VmInput) -> StepResult:
        """Start the VM unless it runs."""
        with application_errors():
            return self._power(request, "Running", start_vm_command(request.vm))

    @activity.defn(name="vm.stop")
    def stop(self, request: VmStopInput) -> StepResult:
        """Turn the VM off unless it is off (-TurnOff: legacy guests cannot shut down). With
        ``shutdown_seconds`` the guest is shut down first (Stop-VM -Force, no -TurnOff) and
        turned off only when it is not off within that time or cannot shut down (no
        shutdown integration service); ``shut_down`` says which happened."""
        with application_errors():
            seconds = getattr(request, "shutdown_seconds", None)  # a plain VmInput: None
            if seconds is None:
                return self._power(request, "Off", stop_vm_command(request.vm, turn_off=True))
            return self._shutdown(request, seconds)

    def _shutdown(self, request: VmInput, seconds: int) -> StepResult:
        before = self._state(request)
        if before == "Off":
            return StepResult(changed=False, observed={"state": before})
        reason = None
        try:
            self._remote.run(request.host, stop_vm_command(request.vm),
                             deadline=time.monotonic() + seconds)
        except RemoteError as error:
            if cancelled():
                raise
            reason = f"{error.type_name}: {error.host_message}"
        if self._state(request) == "Off":
            return StepResult(changed=True, observed={"state": "Off", "was": before,
                                                      "shut_down": True})
        turned = self._power(request, "Off", stop_vm_command(request.vm, turn_off=True))
        return StepResult(changed=True, observed={
            **turned.observed, "was": before, "shut_down": False,
            "turned_off_because": reason or f"not off after {seconds} s"})

    def _state(self, request: VmInput) -> str:
        vm = self._get_vm(request.host, request.vm)
        if vm is None:
            raise ApplicationError(f"{request.host}: VM {request.vm} does not exist",
                                   type="NotFound", non_retryable=True)
        return str(vm.get("State"))

    def _power(self, request: VmInput, wanted: str, command: Command) -> StepResult:
        before = self._state(request)
        if before == wanted:
            return StepResult(changed=False, observed={"state": before})
        self._remote.run(request.host, command)
        after = self._state(request)
        if after != wanted:
            raise verify_failed(request.host, f"VM {request.vm} is not {wanted}", after)
        return StepResult(changed=True, observed={"state": after, "was": before})

    def all(self) -> list[Any]:
        """The bound activity methods, for worker registration."""
        return [self.exists, self.disk, self.create, self.remove, self.nic, self.firmware,
                self.start, self.stop]
