"""What a cancelled LabBuildWorkflow undoes: exactly what its run created, newest first.

The units that were running when the cancel came compensate themselves (each child's saga).
The units this run completed are undone afterwards by a child LabTeardownWorkflow limited to
them (``<build id>/compensate``), in the parts each child reports it changed (each kind's
``changed``, in its module):

- ``host-prep``: the switches it created; the DNS setting, domain membership, Hyper-V role,
  folders and default paths stay (undoing the first three needs reboots, and the next build
  needs them again), and the account says so;
- ``vm-deploy``: the VM with its disk, when this run created it (a VM that was there before is
  not touched);
- ``shared-storage``: the share, when this run created it; rights this run granted on a share
  that was there before stay (``hvlab down`` removes the share with them), NTFS rights stay;
- ``delegation``, ``migration-readiness``, host ``nat``: undone as ``hvlab down`` does, when
  any of their steps changed something; RRAS NAT inside a router VM goes with that VM;
- ``checkpoint``: the checkpoints it created; ``replication``: what it turned on.

A unit whose every step found its state in place is not undone at all. With compensation off
nothing is undone and the account lists what the run changed. The account goes into the
build's memo (:mod:`workflows.outcome`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from hvlab.plan import PlanUnit
    from hvlab.spec import LabSpec
    from workflows.kinds import kind
    from workflows.outcome import Compensation
    from workflows.teardown import LabTeardownInput, LabTeardownResult

PATCH = "build-cancel-compensates"
DOWN = "`hvlab down FILE` removes"


class BuildCompensation:
    """Collects what the build's units changed and undoes it when the build is cancelled."""

    def __init__(self, spec: LabSpec) -> None:
        self.spec = spec
        self.completed: list[tuple[PlanUnit, Any]] = []
        self.interrupted: list[str] = []

    def completed_unit(self, unit: PlanUnit, result: Any) -> None:
        self.completed.append((unit, result))

    def interrupted_unit(self, unit: PlanUnit) -> None:
        """A unit that was running when the build was cancelled (it compensated itself)."""
        self.interrupted.append(unit.id)

    def plan(self) -> tuple[dict[str, list[str]], list[str]]:
        """(unit id -> parts to undo, what stays) for the completed units."""
        undo: dict[str, list[str]] = {}
        kept: list[str] = []
        for unit, result in self.completed:
            parts, stays = kind(unit.kind).changed(self.spec, unit, result)
            if parts is not None:
                undo[unit.id] = parts
            kept += stays
        return undo, kept

    async def run(self, enabled: bool) -> Compensation:
        """Undo what the completed units changed (unless ``enabled`` is off); the account."""
        undo, kept = self.plan()
        if not enabled:
            running = [f"{u}: cancelled while running, with what it had done" for u in
                       self.interrupted]
            return Compensation(
                kept=[*(f"{u} ({', '.join(p)})" for u, p in undo.items()), *running, *kept],
                next=f"compensation was off (--no-compensate); {DOWN} what the build made")
        own = [f"{u}: cancelled while running, undid its own changes" for u in self.interrupted]
        if not undo:
            return Compensation(undone=own, kept=kept, next=self._next(kept))
        try:
            result = await workflow.execute_child_workflow(
                "LabTeardownWorkflow", LabTeardownInput(spec=self.spec, units=undo),
                id=f"{workflow.info().workflow_id}/compensate", result_type=LabTeardownResult,
                static_summary=f"undo what the cancelled build of {self.spec.lab} created",
                execution_timeout=timedelta(hours=6))
        except BaseException as exc:  # the account still goes out; the cancel is re-raised
            return Compensation(undone=own, kept=kept, failed=[f"{u}: {exc}" for u in undo],
                                next=f"{DOWN} what is left")
        assert isinstance(result, LabTeardownResult)
        undone = [f"{u}: {change}" for u, changes in result.removed.items() for change in changes]
        return Compensation(undone=[*own, *undone], kept=kept, next=self._next(kept))

    @staticmethod
    def _next(kept: list[str]) -> str:
        return "what is kept stays on purpose" if kept else ""
