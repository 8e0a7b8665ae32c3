"""The bare chain: a workflow of N sequential no-op activities, run exactly like hvlab's steps
(``workflows.steps.step``: pydantic input/result, the REMOTE_STEP options, the worker's
interceptor and thread-pool executor), so it measures Temporal's dispatch and nothing else.

Also a timer loop (``workflow.sleep`` N times, like a workflow-side polling loop) for the
timer-queue check. Both are registered only by the bench worker (``bench/worker_proc.py``).
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel
from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from activities.models import HostInput, StepResult
    from workflows.steps import step

NOOP = "bench.noop"


class ChainInput(BaseModel):
    steps: int = 20


class TimerLoopInput(BaseModel):
    ticks: int = 10
    seconds: float = 1.0


@activity.defn(name=NOOP)
def noop(request: HostInput) -> StepResult:
    """Does nothing (a sync activity in the worker's thread pool, like every remote step)."""
    return StepResult(changed=False, observed={"host": request.host})


@workflow.defn(name="BenchChainWorkflow")
class BenchChainWorkflow:
    @workflow.run
    async def run(self, request: ChainInput) -> int:
        for index in range(request.steps):
            await step(NOOP, HostInput(lab="bench", host=f"h{index}"))
        return request.steps


@workflow.defn(name="BenchTimerLoopWorkflow")
class BenchTimerLoopWorkflow:
    """``ticks`` timers of ``seconds`` each; returns how late each one fired (ms)."""

    @workflow.run
    async def run(self, request: TimerLoopInput) -> list[float]:
        late: list[float] = []
        for _ in range(request.ticks):
            before = workflow.time()
            await workflow.sleep(timedelta(seconds=request.seconds))
            late.append(round((workflow.time() - before - request.seconds) * 1000, 1))
        return late
