"""Exercises of a lab file as plain data: ids and the title of each step (pure).

An exercise (``exercises:`` in the lab file, :class:`hvlab.spec.Exercise`) is a class's sequence
of steps on one lab. ``hvlab plan FILE --exercise NAME`` prints :func:`step_title` of each step,
and :class:`workflows.exercise.ExerciseWorkflow` shows the same titles in its progress.
"""

from __future__ import annotations

from hvlab.spec import Exercise, ExerciseStep, LabSpec


def exercise_id(lab: str, exercise: str) -> str:
    """The workflow id of a run of an exercise (one run at a time per lab and exercise)."""
    return f"{lab}-exercise-{exercise}"


def step_workflow_id(parent: str, step: ExerciseStep) -> str:
    """The id of the child workflow that carries out ``step`` of the run ``parent``."""
    return f"{parent}/{step.key}"


def failover_target(spec: LabSpec, step: ExerciseStep) -> str:
    """The host a failover or failback step leaves the VM running on."""
    settings = step.settings
    entry = spec.replication_of(settings.vm)
    assert entry is not None  # spec_check: a failover step names a replicated VM
    if step.kind == "failback":
        return entry.primary
    return str(settings.to or entry.replica)


def step_title(spec: LabSpec, step: ExerciseStep) -> str:
    """One line saying what the step does, with the lab's own names."""
    s = step.settings
    kind = step.kind
    if kind == "build":
        return f"build {', '.join(s.only)} units" if s.only else "build the lab"
    if kind == "migrate":
        if s.mode == "storage":
            return f"storage migration of {s.vm} -> {s.storage_path}"
        return f"{s.mode} live migration of {s.vm} -> {s.to}"
    if kind == "replicate":
        entry = spec.replication_of(s.vm)
        to = s.to or (entry.replica if entry else "?")
        return f"replicate {s.vm} -> {to}"
    if kind == "failover":
        if s.test:
            return f"test failover of {s.vm} on its replica"
        gate = " (after approval)" if s.approval else ""
        reverse = " + reverse" if s.reverse else ""
        return f"planned failover of {s.vm} to {failover_target(spec, step)}{reverse}{gate}"
    if kind == "failback":
        return f"fail {s.vm} back to {failover_target(spec, step)}"
    if kind == "checkpoint":
        return f"{'retake' if s.replace else 'take'} checkpoint {s.name}"
    if kind == "reset":
        name = s.checkpoint or (spec.reset.checkpoint if spec.reset else "")
        return f"reset the lab to {name or 'its checkpoint'}"
    if kind == "verify":
        return "verify connectivity (NAT port forwards)"
    if kind == "approval":
        return f"wait for approval{': ' + s.message if s.message else ''}"
    if kind == "converge":
        return "converge the lab back to the lab file"
    if kind == "down":
        return "tear the lab down"
    return kind


def describe(spec: LabSpec, exercise: Exercise) -> list[tuple[str, str, str]]:
    """(step name, kind, title) of every step, in order."""
    return [(step.key, step.kind, step_title(spec, step)) for step in exercise.steps]
