"""Typed heartbeat details (:class:`activities.base.Beat`): what a retried step reads back.

A worker heartbeats a beat as its fields plus a ``beat`` tag; workers before the tag sent the
same fields without it, and their details outlive an upgrade (a running activity's last
heartbeat is kept by the server), so the reader takes both shapes. Pure: no fleet."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

import activities.registry  # noqa: F401  (imports every module that defines a beat)
from activities.base import Beat, WaitBeat, heartbeat, last_heartbeat, liveness
from activities.checkpoint import RestoredBeat
from activities.host import RebootBeat
from activities.migration import JobBeat, ReadinessBeat
from activities.models import MigrationHostSettings
from activities.vm import CreatingBeat

JOB = "D5ACF1DD-F858-4A74-A903-DA7614F07463"
SETTINGS = MigrationHostSettings(performance="SMB", max_vm_migrations=3)

# What the workers before typed details heartbeated (activities/*.py at a8020c6), and the
# model each is read as now.
OLD_SHAPES: list[tuple[dict[str, Any], Beat]] = [
    ({"job_id": JOB, "percent": 40}, JobBeat(job_id=JOB, percent=40)),
    ({"restart_pending": True, "last_boot_before": "20260101000000.000000+000"},
     RebootBeat(restart_pending=True, last_boot_before="20260101000000.000000+000")),
    ({"restart_requested": True, "last_boot_before": "x"},
     RebootBeat(restart_requested=True, last_boot_before="x")),
    ({"restored": "baseline", "vm": "Linux01"}, RestoredBeat(restored="baseline", vm="Linux01")),
    ({"creating": "Linux01"}, CreatingBeat(creating="Linux01")),
    ({"previous": SETTINGS.model_dump(exclude={"lab"}), "added_networks": ["10.9.0.0/16"]},
     ReadinessBeat(previous=SETTINGS, added_networks=["10.9.0.0/16"])),
]


def _beat_kinds() -> list[type[Beat]]:
    found, todo = [], list(Beat.__subclasses__())
    while todo:
        kind = todo.pop()
        found.append(kind)
        todo.extend(kind.__subclasses__())
    return [k for k in found if k.__module__.startswith("activities.")]


def _env(*details: Any) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=2, heartbeat_details=list(details))
    return env


@pytest.mark.parametrize(("old", "model"), OLD_SHAPES, ids=lambda v: type(v).__name__)
def test_an_older_workers_details_are_read_as_the_model(old: dict[str, Any],
                                                        model: Beat) -> None:
    """Untagged details of a worker from before the tag: the same model, as a retry reads
    them from the activity's Info."""
    assert type(model).read(old) == model
    assert _env(old).run(last_heartbeat, type(model)) == model


@pytest.mark.parametrize(("old", "model"), OLD_SHAPES, ids=lambda v: type(v).__name__)
def test_new_details_are_the_old_fields_and_the_tag(old: dict[str, Any], model: Beat) -> None:
    """The wire shape is the old one plus ``beat``: a worker rolled back still reads it, and
    it reads back as the same model."""
    details = model.details()
    assert {k: v for k, v in details.items() if k != "beat"} == \
        {**{k: False for k in ("restart_pending", "restart_requested")
            if isinstance(model, RebootBeat)}, **old}
    assert details["beat"] == model.KIND
    assert _env(details).run(last_heartbeat, type(model)) == model


def test_no_details_other_kinds_and_garbage_read_as_none() -> None:
    """No predecessor, outside an activity, another kind's details (tagged), details that do
    not fit the model, and details that are not an object: None, never an error."""
    assert _env().run(last_heartbeat, JobBeat) is None
    assert last_heartbeat(JobBeat) is None  # outside an activity
    assert _env(RebootBeat(last_boot_before="x").details()).run(last_heartbeat, JobBeat) is None
    assert JobBeat.read({"job_id": JOB}) is None  # no percent
    assert JobBeat.read({"job_id": JOB, "percent": "most"}) is None
    assert JobBeat.read({}) is None and ReadinessBeat.read({}) is None
    assert JobBeat.read("poll") is None and JobBeat.read(None) is None
    assert CreatingBeat.read({"creating": "Linux01", "beat": "vm.creating"}) == \
        CreatingBeat(creating="Linux01")


def test_every_beat_kind_round_trips_under_its_own_tag() -> None:
    """Each kind has a tag of its own, and what it heartbeats reads back as itself and as no
    other kind with required fields."""
    kinds = _beat_kinds()
    assert len(kinds) >= 10
    tags = [k.KIND for k in kinds]
    assert len(tags) == len(set(tags)), tags
    for model in [m for _, m in OLD_SHAPES] + [WaitBeat(attempts=2, last="refused")]:
        assert type(model).read(model.details()) == model
        for other in kinds:
            if other is not type(model):
                assert other.read(model.details()) is None, (type(model), other)


def test_liveness_repeats_the_kept_model_and_a_new_execution_starts_without() -> None:
    """heartbeat(beat) sends and keeps the tagged details; liveness repeats them. Another
    execution in the same thread (its own Info) does not see them."""
    beats: list[tuple[Any, ...]] = []
    env = _env()
    env.on_heartbeat = lambda *details: beats.append(details)
    beat = JobBeat(job_id=JOB, percent=5)

    def step() -> None:
        heartbeat(beat)
        liveness()

    env.run(step)
    assert beats == [(beat.details(),)] * 2
    other = ActivityEnvironment()
    seen: list[tuple[Any, ...]] = []
    other.on_heartbeat = lambda *details: seen.append(details)
    other.run(liveness)
    assert seen == [()]
