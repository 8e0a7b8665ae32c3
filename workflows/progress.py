"""Progress every hvlab workflow exposes: a ``progress`` query and the Web UI's current details.

A :class:`Tracker` knows the workflow's planned steps up front, marks each one running, done,
skipped or failed with workflow time, and keeps the UI's "current details" in step with it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Literal, TypeVar

from pydantic import BaseModel, Field
from temporalio import workflow

T = TypeVar("T")
StepState = Literal["pending", "running", "done", "unchanged", "skipped", "failed"]


class StepProgress(BaseModel):
    name: str
    title: str
    state: StepState = "pending"
    started: datetime | None = None
    finished: datetime | None = None
    detail: str = ""

    @property
    def seconds(self) -> float | None:
        if self.started is None or self.finished is None:
            return None
        return (self.finished - self.started).total_seconds()


class Progress(BaseModel):
    """What the ``progress`` query returns."""

    workflow: str
    target: str = ""
    phase: str = "starting"
    percent: int = 0
    steps: list[StepProgress] = Field(default_factory=list)
    children: dict[str, Progress] = Field(default_factory=dict)
    error: str = ""

    @property
    def current(self) -> StepProgress | None:
        return next((s for s in self.steps if s.state == "running"), None)


class Tracker:
    """Owns a workflow's :class:`Progress` and runs steps through it."""

    def __init__(self, workflow_name: str, target: str = "") -> None:
        self.progress = Progress(workflow=workflow_name, target=target)

    def plan(self, *steps: tuple[str, str]) -> None:
        """Declare the steps (name, title) this run will go through, in order."""
        self.progress.steps = [StepProgress(name=n, title=t) for n, t in steps]

    def _step(self, name: str, title: str) -> StepProgress:
        for step in self.progress.steps:
            if step.name == name:
                return step
        step = StepProgress(name=name, title=title)
        self.progress.steps.append(step)
        return step

    def _refresh(self) -> None:
        steps = self.progress.steps
        finished = sum(s.state in ("done", "unchanged", "skipped") for s in steps)
        self.progress.percent = int(100 * finished / len(steps)) if steps else 100
        current = self.progress.current
        text = f"{self.progress.workflow} {self.progress.target}: {self.progress.percent}%"
        if current is not None:
            text += f" — {current.title}"
        workflow.set_current_details(text)

    async def run(self, name: str | Sequence[str], title: str,
                  work: Callable[[], Awaitable[T]],
                  changed: Callable[[T], bool] | None = None) -> T:
        """Run one step, recording its state and times; failures are recorded and re-raised.

        ``name`` may list several planned steps that one activity carries out together (e.g.
        every ``kcd:*`` entry of a host in one directory.delegation call): they share the
        state and times."""
        names = [name] if isinstance(name, str) else list(name)
        steps = [self._step(n, title) for n in names]
        now = workflow.now()
        for step in steps:
            step.state, step.started = "running", now
        self.progress.phase = title
        self._refresh()
        try:
            result = await work()
        except BaseException as exc:
            for step in steps:
                step.state, step.finished, step.detail = "failed", workflow.now(), str(exc)
            self.progress.error = f"{title}: {exc}"
            self._refresh()
            raise
        state: StepState = "done" if changed is None or changed(result) else "unchanged"
        for step in steps:
            step.state, step.finished = state, workflow.now()
        self._refresh()
        return result

    def skip(self, name: str, title: str, reason: str) -> None:
        step = self._step(name, title)
        step.state, step.detail = "skipped", reason
        self._refresh()

    def finish(self, phase: str = "done") -> None:
        self.progress.phase = phase
        self._refresh()
