"""Saga rules outside a worker: undos run newest first, a failing undo (even a cancel) is
logged and the rest still run, nothing escapes ``compensate``, ``enabled=False`` keeps the
partial state, and the compensation metric counts each undo that ran."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import pytest
from temporalio import workflow

import workflows.saga
from workflows.saga import Saga

LOG = logging.getLogger("tests.saga")


class Counted:
    """Replaces the saga's metric functions: sagas started and undos counted."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.seen = 0
        self.ran = 0
        monkeypatch.setattr(workflows.saga, "compensations_seen", self._seen)
        monkeypatch.setattr(workflows.saga, "compensation_ran", self._ran)

    def _seen(self) -> None:
        self.seen += 1

    def _ran(self) -> None:
        self.ran += 1


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Counted:
    return Counted(monkeypatch)


def recorder(done: list[str], label: str, error: BaseException | None = None
             ) -> Callable[[], Awaitable[str]]:
    """An undo that notes its label in ``done`` (and then raises ``error``, if any)."""
    async def undo() -> str:
        done.append(label)
        if error is not None:
            raise error
        return label

    return undo


def test_new_saga_publishes_the_metric_once(counted: Counted) -> None:
    """Creating a saga publishes the compensation counter once and runs nothing."""
    saga = Saga("W", log=LOG)
    assert (counted.seen, counted.ran) == (1, 0)
    assert saga.enabled and saga.undos == [] and saga.compensated == [] and saga.failed == []


def test_the_workflow_logger_is_the_default(counted: Counted) -> None:
    """Without a logger the saga logs through the workflow's (replay-aware) logger."""
    assert Saga("W").log is workflow.logger


async def test_undos_run_newest_first(counted: Counted) -> None:
    """Registered undos run in reverse order of registration, each once, and are counted."""
    done: list[str] = []
    saga = Saga("W", log=LOG)
    for label in ("a", "b", "c"):
        saga.add(label, recorder(done, label))
    assert done == []  # registering does not run anything
    await saga.compensate()
    assert done == ["c", "b", "a"]
    assert saga.compensated == ["c", "b", "a"] and saga.failed == [] and saga.undos == []
    assert counted.ran == 3
    await saga.compensate()  # nothing left to undo
    assert done == ["c", "b", "a"] and counted.ran == 3


@pytest.mark.parametrize("error", [RuntimeError("host gone"), asyncio.CancelledError("stop")],
                         ids=["error", "cancel"])
async def test_a_failing_undo_is_logged_and_the_rest_still_run(
    counted: Counted, error: BaseException, caplog: pytest.LogCaptureFixture
) -> None:
    """An undo that raises (an error or a cancel) is listed as failed, logged with the saga,
    the undo and the error, not counted, and the older undos still run; nothing is raised."""
    done: list[str] = []
    saga = Saga("VmDeploy x", log=LOG)
    saga.add("a", recorder(done, "a"))
    saga.add("b", recorder(done, "b", error))
    saga.add("c", recorder(done, "c"))
    with caplog.at_level(logging.INFO, logger=LOG.name):
        await saga.compensate()
    assert done == ["c", "b", "a"]
    assert saga.compensated == ["c", "a"] and saga.failed == ["b"]
    assert counted.ran == 2
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.ERROR, f"VmDeploy x: compensation b failed: {error}")]


async def test_every_undo_failing_still_tries_each(counted: Counted) -> None:
    """When each undo fails, each is still tried, newest first, and all are listed failed."""
    done: list[str] = []
    saga = Saga("W", log=LOG)
    for label in ("a", "b"):
        saga.add(label, recorder(done, label, ValueError(label)))
    await saga.compensate()
    assert done == ["b", "a"] and saga.failed == ["b", "a"] and saga.compensated == []
    assert counted.ran == 0


async def test_disabled_saga_keeps_the_partial_state(
    counted: Counted, caplog: pytest.LogCaptureFixture
) -> None:
    """With enabled=False (--no-compensate) no undo runs, they stay registered, and a
    warning says the partial state is kept."""
    done: list[str] = []
    saga = Saga("HostPrep SVR1", enabled=False, log=LOG)
    saga.add("a", recorder(done, "a"))
    with caplog.at_level(logging.INFO, logger=LOG.name):
        await saga.compensate()
    assert done == [] and len(saga.undos) == 1 and saga.compensated == [] and saga.failed == []
    assert counted.ran == 0
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, "HostPrep SVR1: compensation disabled, leaving partial state")]


async def test_undos_registered_during_compensation_also_run(counted: Counted) -> None:
    """An undo that registers another one (added while compensating) has it run next."""
    done: list[str] = []
    saga = Saga("W", log=LOG)
    saga.add("a", recorder(done, "a"))

    async def adds_one() -> None:
        done.append("b")
        saga.add("late", recorder(done, "late"))

    saga.add("b", adds_one)
    await saga.compensate()
    assert done == ["b", "late", "a"]
