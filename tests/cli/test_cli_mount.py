"""The CLI's command groups are mounted once per process: in-process callers (the tests, a
wrapper that calls ``starter.cli.run`` repeatedly) see the same app on every call."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer.main

from starter import cli

SEED = Path(__file__).resolve().parents[2] / "examples" / "classroom-lab.yaml"


def _shape() -> tuple[int, int, int]:
    """Registered commands, registered groups, and commands of the click group Typer builds."""
    group = typer.main.get_command(cli.app)
    assert isinstance(group, typer.main.TyperGroup)
    return len(cli.app.registered_commands), len(cli.app.registered_groups), len(group.commands)


def test_repeated_runs_do_not_grow_the_app(capsys: pytest.CaptureFixture[str]) -> None:
    """Five more in-process runs leave the app with exactly the commands the first run mounted,
    each name once (every command was appended again per call before)."""
    assert cli.run(["schema"]) == 0
    first = _shape()
    for _ in range(5):
        assert cli.run(["schema"]) == 0
    capsys.readouterr()
    assert _shape() == first
    names = [c.name or (c.callback.__name__ if c.callback else "") for c in
             cli.app.registered_commands]
    assert len(names) == len(set(names)), sorted(names)


def test_every_group_is_mounted_after_one_run(capsys: pytest.CaptureFixture[str]) -> None:
    """The mounted groups answer (the guard does not skip the first mount)."""
    assert cli.run(["schema"]) == 0
    group = typer.main.get_command(cli.app)
    assert isinstance(group, typer.main.TyperGroup)
    assert {"plan", "schema", "up", "migrate", "sim", "doctor", "schedule"} <= set(group.commands)
    capsys.readouterr()
