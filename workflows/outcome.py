"""What a cancelled (or failed) run undid and what it kept, as the workflow's memo.

A cancelled workflow closes without a result or a failure message, so the account of its
compensation goes into its memo under :data:`MEMO_KEY`, which ``hvlab cancel`` (and ``hvlab
watch``) read with ``describe()`` once the workflow has closed, without a worker. Recording it
is a workflow command, so callers gate it with ``workflow.patched`` (:func:`record`).
"""

from __future__ import annotations

from pydantic import BaseModel, Field
from temporalio import workflow

MEMO_KEY = "hvlab-compensation"
PATCH = "compensation-memo"


class Compensation(BaseModel):
    """The account of one run's compensation."""

    undone: list[str] = Field(default_factory=list, description="changes this run undid")
    kept: list[str] = Field(default_factory=list, description="changes this run left in place")
    failed: list[str] = Field(default_factory=list, description="undo steps that failed")
    next: str = Field(default="", description="what to do about what was kept")

    def lines(self) -> list[str]:
        """Human-readable lines (the CLI prints them)."""
        out = [f"undone: {item}" for item in self.undone]
        out += [f"kept: {item}" for item in self.kept]
        out += [f"undo failed: {item}" for item in self.failed]
        if not (self.undone or self.kept or self.failed):
            out.append("nothing to undo: the run had changed nothing")
        if self.next:
            out.append(self.next)
        return out


def record(summary: Compensation) -> None:
    """Put ``summary`` into the running workflow's memo (a no-op outside a workflow and when
    replaying a history recorded before the memo existed)."""
    if workflow.in_workflow() and workflow.patched(PATCH):
        workflow.upsert_memo({MEMO_KEY: summary.model_dump()})
