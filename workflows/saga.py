"""A small saga: register each undo before its step, run them in reverse on failure.

Compensations run on failure *and* on cancellation (``BaseException``), keep going when one of
them fails, and the original error is re-raised afterwards. With ``enabled=False``
(``--no-compensate``) nothing is undone, to keep partial state for debugging. Either way the
run's memo then says what was undone and what was kept (:mod:`workflows.outcome`), including
what the workflow marked as kept with :meth:`Saga.commit` (a step that cannot be undone).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from temporalio import workflow

from workflows.metrics import compensation_ran, compensations_seen
from workflows.outcome import Compensation, record

Undo = Callable[[], Awaitable[object]]


@dataclass
class Saga:
    """Undo actions of one workflow run, newest last."""

    name: str
    enabled: bool = True
    undos: list[tuple[str, Undo]] = field(default_factory=list)
    compensated: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    #: what the run did and deliberately does not undo (see :meth:`commit`)
    kept: list[str] = field(default_factory=list)
    #: where the undo outcomes are logged (the workflow's logger; a plain one in unit tests)
    log: logging.LoggerAdapter[Any] | logging.Logger = field(
        default=workflow.logger, repr=False, compare=False)

    def __post_init__(self) -> None:
        compensations_seen()

    def add(self, label: str, undo: Undo) -> None:
        """Register the undo of the step about to run (before running it)."""
        self.undos.append((label, undo))

    def commit(self, kept: str) -> None:
        """The steps so far cannot (or should not) be undone: drop their undos and note
        ``kept`` as what a later compensation leaves in place."""
        self.undos.clear()
        self.kept.append(kept)

    async def compensate(self) -> None:
        """Run every registered undo in reverse; a failing undo is logged and skipped. The
        outcome goes into the workflow's memo."""
        if not self.enabled:
            self.log.warning("%s: compensation disabled, leaving partial state", self.name)
            record(Compensation(kept=[*self.kept, *(f"{label} (not run)" for label, _ in
                                                   reversed(self.undos))],
                                next="compensation was off (--no-compensate)"))
            return
        while self.undos:
            label, undo = self.undos.pop()
            try:
                await undo()
                self.compensated.append(label)
                compensation_ran()
            except BaseException as exc:  # keep undoing the rest, report at the end
                self.failed.append(label)
                self.log.error("%s: compensation %s failed: %s", self.name, label, exc)
        record(Compensation(undone=list(self.compensated), kept=list(self.kept),
                            failed=list(self.failed)))
