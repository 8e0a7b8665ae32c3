"""The CLI behaves like the infrastructure tools teachers know (issue 15, item 5), the parts
that need no server: flags render as flags in ``--help``, ``hvlab down`` asks first, the
schema names its dialect and id, the recap's rows per workflow type, whole-id ``status`` lab
filtering and the schedule list's cron text."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path

import jsonschema
import pytest
from ruamel.yaml import YAML
from temporalio.client import (
    ScheduleCalendarSpec,
    ScheduleIntervalSpec,
    ScheduleRange,
    ScheduleSpec,
)

from starter.cli import app, run
from starter.commands.watch import in_lab, lab_keys
from starter.recap import Outcome, RecapRow, rows_for, step_rows
from starter.schedules import cron_text

SEED = Path(__file__).resolve().parents[2] / "examples" / "classroom-lab.yaml"


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _commands() -> list[list[str]]:
    """Every command and subcommand of the mounted app, as argv prefixes."""
    import typer.main

    run(["--help"])  # mounts the command groups
    group = typer.main.get_command(app)
    found: list[list[str]] = []

    def walk(command: object, path: list[str]) -> None:
        children = getattr(command, "commands", None)
        if not children:
            found.append(path)
            return
        for name, child in children.items():
            walk(child, [*path, name])

    walk(group, [])
    return found


def test_flags_render_as_flags_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    """`hvlab up --help` (and every other command's) shows a flag as a flag: no `<bool>`
    value placeholder; the operations show --no-wait and --json, and --watch (kept for old
    scripts) does not clutter them."""
    commands = _commands()
    assert ["up"] in commands and ["schedule", "reset"] in commands
    for argv in commands:
        code, out, err = cli(capsys, *argv, "--help")
        assert code == 0, (argv, err)
        assert "<bool>" not in out, (argv, out)
    code, out, _ = cli(capsys, "up", "--help")
    assert "--no-wait" in out and "--json" in out and "--sim " in out
    assert "--watch" not in out


def test_down_without_a_terminal_needs_yes(hvlab_home: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """No terminal to ask on and no --yes: exit 2 naming --yes, the lab and its VMs, before
    anything is registered or any server is contacted."""
    code, _, err = cli(capsys, "down", str(SEED), "--sim")
    assert code == 2
    assert "--yes" in err and "classroom" in err and "win2003-1" in err
    assert not (hvlab_home / "labs").exists()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_down_asks_and_a_no_changes_nothing(hvlab_home: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """At a terminal `hvlab down` asks; answering no (the default) exits 1 with nothing
    registered and no server contacted."""
    monkeypatch.setattr("sys.stdin", _Terminal("\n"))
    code, out, err = cli(capsys, "down", str(SEED), "--sim")
    assert code == 1
    assert "Remove lab classroom" in out + err and "nothing removed" in err
    assert not (hvlab_home / "labs").exists()


def test_schema_names_its_dialect_and_id(capsys: pytest.CaptureFixture[str]) -> None:
    """`hvlab schema` carries $schema (JSON Schema 2020-12) and $id, so an editor's YAML
    language server and validators know what it is; the seed still validates."""
    code, out, _ = cli(capsys, "schema")
    assert code == 0
    schema = json.loads(out)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].startswith("urn:hvlab:")
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(YAML(typ="safe").load(SEED.read_text()), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"lab": "x"}, schema)


# --------------------------------------------------------------------------- recap rows


def _progress(*steps: tuple[str, str]) -> dict[str, object]:
    return {"workflow": "X", "steps": [{"name": n, "title": n, "state": s} for n, s in steps]}


def test_build_recap_says_changed_or_unchanged_per_unit() -> None:
    """A build's unit that ran is `changed` only if one of its own steps changed something
    (its result, read from the history); failed and never-started units say so."""
    progress = _progress(("host-prep:SVR1", "done"), ("vm-deploy:a", "done"),
                         ("vm-deploy:b", "failed"), ("checkpoint:baseline", "pending"))
    rows = step_rows(progress, {"host-prep:SVR1": "unchanged", "vm-deploy:a": "changed"})
    assert [(r.subject, r.outcome) for r in rows] == [
        ("host-prep:SVR1", "unchanged"), ("vm-deploy:a", "changed"), ("vm-deploy:b", "failed"),
        ("checkpoint:baseline", "not started")]
    found = Outcome("lab-build", "LabBuildWorkflow", "failed", rows=rows)
    assert found.summary() == "1 changed, 1 unchanged, 1 failed, 1 not started"


def test_move_recap_says_where_the_vm_runs_and_the_downtime() -> None:
    moved = {"vm": "gw", "mode": "shared-nothing", "source": "HVA", "host": "HVB",
             "moved": True, "downtime_seconds": 0.84, "progress": _progress()}
    assert rows_for("LiveMigrationWorkflow", moved, None, {}) == [
        RecapRow("gw", "changed", "runs on HVB (from HVA); downtime 0.8 s")]
    there = {**moved, "moved": False, "downtime_seconds": None}
    assert rows_for("LiveMigrationWorkflow", there, None, {}) == [
        RecapRow("gw", "unchanged", "runs on HVB already")]


def test_failover_recap_says_which_side_is_primary() -> None:
    done = {"vm": "tux", "primary": "HVB", "replica": "HVA", "test": False,
            "state": "Replicating", "progress": _progress()}
    assert rows_for("PlannedFailoverWorkflow", done, None, {}) == [
        RecapRow("tux", "changed", "primary is HVB now, replica HVA (Replicating)")]
    test = {**done, "primary": "HVA", "replica": "HVB", "test": True, "state": None}
    assert rows_for("PlannedFailoverWorkflow", test, None, {})[0].detail == (
        "test failover on HVB; primary stays HVA")


def test_checkpoint_recap_tells_taken_existing_and_retaken() -> None:
    result = {"checkpoint": "baseline", "vms": ["a", "b", "c"], "created": ["a"],
              "replaced": ["c"], "progress": _progress()}
    assert [(r.subject, r.outcome, r.detail.split(" (")[0]) for r in
            rows_for("CheckpointWorkflow", result, None, {})] == [
        ("a", "changed", "checkpoint baseline taken"),
        ("b", "unchanged", "checkpoint baseline exists"),
        ("c", "changed", "checkpoint baseline retaken")]


def test_recap_of_a_failed_run_comes_from_its_progress() -> None:
    """No result (failed): the rows are the progress's steps (the failure's cause is printed
    above the recap, so a failed row carries no detail of its own)."""
    progress = _progress(("locate", "done"), ("preflight", "failed"), ("job", "pending"))
    rows = rows_for("LiveMigrationWorkflow", None, progress, {})
    assert [(r.subject, r.outcome, r.detail) for r in rows] == [
        ("locate", "changed", ""), ("preflight", "failed", ""), ("job", "not started", "")]


# --------------------------------------------------------------------------- status, schedules


def test_lab_filter_keeps_labs_whose_names_only_start_alike_apart() -> None:
    """`--lab classroom` means both modes of the lab file's name; a registered lab
    `classroom-2` keeps its workflows even though its ids start with `classroom-`."""
    keys, known = lab_keys("classroom"), ["classroom", "classroom-2", "sim.classroom"]
    assert keys == ["classroom", "sim.classroom"]
    assert in_lab("classroom-build", keys, known)
    assert in_lab("sim.classroom-migrate-gw", keys, known)
    assert in_lab("classroom-build/vm-deploy:a", keys, known)
    assert not in_lab("classroom-2-build", keys, known)
    assert not in_lab("room-204-build", keys, known)
    assert lab_keys("sim.classroom") == ["sim.classroom"]
    assert not in_lab("classroom-build", lab_keys("sim.classroom"), known)


def test_cron_text_writes_the_servers_calendar_back_as_cron() -> None:
    """The server returns a cron schedule as calendar ranges (cron_expressions empty): the
    list writes it back as the five fields with the zone; intervals as `every`."""
    weekdays_six = ScheduleCalendarSpec(
        second=(ScheduleRange(0),), minute=(ScheduleRange(0),), hour=(ScheduleRange(6),),
        day_of_month=(ScheduleRange(1, 31),), month=(ScheduleRange(1, 12),),
        day_of_week=(ScheduleRange(1, 5),))
    assert cron_text(ScheduleSpec(calendars=[weekdays_six], time_zone_name="Asia/Seoul")) == (
        "0 6 * * 1-5 (Asia/Seoul)")
    quarter = ScheduleCalendarSpec(
        second=(ScheduleRange(0),), minute=(ScheduleRange(0, 59, 15),),
        hour=(ScheduleRange(6), ScheduleRange(18)), day_of_month=(ScheduleRange(1, 31),),
        month=(ScheduleRange(1, 12),), day_of_week=(ScheduleRange(0, 6),))
    assert cron_text(ScheduleSpec(calendars=[quarter])) == "*/15 6,18 * * *"
    assert cron_text(ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(minutes=5))])
                     ) == "every 5m"
    assert cron_text(None) == ""
