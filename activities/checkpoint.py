"""Checkpoint activities (reference §14): create a named checkpoint, restore it (the VM turned
off first and left off; starting it is vm.start), remove it.

Create and remove probe Get-VMSnapshot and act only when needed. A restore is a deliberate
reset and always applies the checkpoint; a retry of the same activity after the restore went
through (its heartbeat says so) reports it without applying it a second time. The
``*_command`` functions build the exact commands the activities emit (the catalogue test
binds every one of them).
"""

from __future__ import annotations

from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.base import (
    SILENT,
    Beat,
    Remote,
    application_errors,
    cancelled,
    heartbeat,
    last_heartbeat,
    verify_failed,
)
from activities.models import CheckpointInput, StepResult
from activities.vm import get_vm_command, stop_vm_command
from hvlab.powershell.command import Command, Switch
from hvlab.powershell.endpoints import EndpointSource
from hvlab.powershell.errors import CommandNotFound, RemoteError
from hvlab.powershell.session import SessionPool

NO_CONFIRM = Switch(False)
RUNNING_STATES = ("Running", "Paused", "Starting", "Stopping", "Saving", "Resuming")


# -- commands ------------------------------------------------------------------------------


def get_checkpoint_command(vm: str, name: str) -> Command:
    return Command.of("Get-VMSnapshot", VMName=vm, Name=name, ErrorAction=SILENT)


def create_checkpoint_command(vm: str, name: str) -> Command:
    return Command.of("Checkpoint-VM", Name=vm, SnapshotName=name)


def restore_checkpoint_command(vm: str, name: str) -> Command:
    return Command.of("Restore-VMSnapshot", VMName=vm, Name=name, Confirm=NO_CONFIRM)


def remove_checkpoint_command(vm: str, name: str) -> Command:
    return Command.of("Remove-VMSnapshot", VMName=vm, Name=name, Confirm=NO_CONFIRM)


# -- helpers -------------------------------------------------------------------------------


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _checkpoint_view(snap: dict[str, Any]) -> dict[str, Any]:
    return {"name": snap.get("Name"), "vm": snap.get("VMName"),
            "type": _text(snap.get("SnapshotType")), "created": _text(snap.get("CreationTime")),
            "parent": snap.get("ParentSnapshotName")}


class RestoredBeat(Beat):
    """checkpoint.restore: the checkpoint is applied (a retry does not apply it again)."""

    KIND = "checkpoint.restored"
    restored: str
    vm: str


def _restored_before(request: CheckpointInput) -> RestoredBeat | None:
    """What an earlier attempt of this activity heartbeated when it had restored this
    checkpoint (None when it had not)."""
    beat = last_heartbeat(RestoredBeat)
    return beat if beat is not None and (beat.restored, beat.vm) == (request.name, request.vm) \
        else None


class CheckpointActivities:
    """Checkpoint steps on lab hosts reached through ``sessions`` and ``endpoints``."""

    def __init__(self, sessions: SessionPool, endpoints: EndpointSource) -> None:
        self._remote = Remote(sessions, endpoints)

    def _get(self, request: CheckpointInput) -> dict[str, Any] | None:
        return self._remote.query_one(request.host,
                                      get_checkpoint_command(request.vm, request.name))

    def _require(self, request: CheckpointInput) -> dict[str, Any]:
        found = self._get(request)
        if found is None:
            raise ApplicationError(f"{request.host}: {request.vm} has no checkpoint "
                                   f"'{request.name}'", type="NotFound", non_retryable=True)
        return found

    def _vm_state(self, request: CheckpointInput) -> str:
        vm = self._remote.query_one(request.host, get_vm_command(request.vm))
        if vm is None:
            raise ApplicationError(f"{request.host}: VM {request.vm} does not exist",
                                   type="NotFound", non_retryable=True)
        return _text(vm.get("State"))

    @activity.defn(name="checkpoint.find")
    def find(self, request: CheckpointInput) -> StepResult:
        """Read-only: whether this host has the VM with that checkpoint (VMs move between
        hosts, so a reset first looks for where each checkpoint is)."""
        with application_errors():
            try:
                snap = self._get(request)
            except CommandNotFound:  # no Hyper-V on this host: no VM, no checkpoint here
                snap = None
            observed = {"exists": snap is not None, "host": request.host}
            return StepResult(changed=False, observed=observed)

    @activity.defn(name="checkpoint.create")
    def create(self, request: CheckpointInput) -> StepResult:
        """Checkpoint-VM -SnapshotName unless a checkpoint of that name exists."""
        with application_errors():
            found = self._get(request)
            if found is not None:
                return StepResult(changed=False, observed=_checkpoint_view(found))
            self._vm_state(request)
            self._remote.run(request.host, create_checkpoint_command(request.vm, request.name))
            after = self._get(request)
            if after is None:
                raise verify_failed(request.host, f"checkpoint '{request.name}' is missing", None)
            return StepResult(changed=True, observed=_checkpoint_view(after))

    @activity.defn(name="checkpoint.restore")
    def restore(self, request: CheckpointInput) -> StepResult:
        """Turn the VM off (Stop-VM -TurnOff -Force) and apply the checkpoint; the VM stays
        off (Saved for a standard checkpoint of a running VM) until vm.start."""
        with application_errors():
            return self._restore(request)

    def _restore(self, request: CheckpointInput) -> StepResult:
        restored = _restored_before(request)
        if restored is not None:  # keep the marker for a further retry
            heartbeat(restored)
        checkpoint = _checkpoint_view(self._require(request))
        before = self._vm_state(request)
        if restored is not None and before not in RUNNING_STATES:  # applied by an earlier attempt
            return StepResult(changed=True, observed={**checkpoint, "state": before,
                                                      "resumed": True})
        if before in RUNNING_STATES:
            self._remote.run(request.host, stop_vm_command(request.vm, turn_off=True))
        try:
            self._remote.run(request.host, restore_checkpoint_command(request.vm, request.name))
        except RemoteError as error:
            if cancelled():
                raise  # application_errors turns it into the cancellation
            raise self._not_restored(request, error, before) from None
        heartbeat(RestoredBeat(restored=request.name, vm=request.vm))
        after = self._vm_state(request)
        if after in RUNNING_STATES:
            raise verify_failed(request.host, f"{request.vm} runs after the restore", after)
        return StepResult(changed=True, observed={**checkpoint, "state": after, "was": before})

    def _not_restored(self, request: CheckpointInput, error: RemoteError,
                      before: str) -> ApplicationError:
        """The host refused the apply: the failure says what state the VM is left in (turned
        off for the restore, not restored), with the host's error kind as its type."""
        try:
            now = self._vm_state(request)
        except (RemoteError, ApplicationError):
            now = "unknown"
        return ApplicationError(
            f"{error} [{request.vm} on {request.host} is {now}: it was {before}, the checkpoint "
            f"'{request.name}' was not applied]",
            {"host": request.host, "vm": request.vm, "state": now, "was": before,
             "command": error.command, "message": error.host_message},
            type=error.type_name, non_retryable=not error.retryable)

    @activity.defn(name="checkpoint.remove")
    def remove(self, request: CheckpointInput) -> StepResult:
        """Remove-VMSnapshot (its changes merge into the child); absent is success."""
        with application_errors():
            if self._get(request) is None:
                return StepResult(changed=False, observed={"absent": True})
            self._remote.run(request.host, remove_checkpoint_command(request.vm, request.name))
            if self._get(request) is not None:
                raise verify_failed(request.host, f"checkpoint '{request.name}' remains", True)
            return StepResult(changed=True, observed={"absent": True})

    def all(self) -> list[Any]:
        """The bound activity methods, for worker registration."""
        return [self.find, self.create, self.restore, self.remove]
