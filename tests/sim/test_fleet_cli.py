"""`hvlab sim` CLI: invalid lab files and the detached lifecycle."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from starter.commands.sim import sim_app
from tests.sim.conftest import SEED

pytestmark = pytest.mark.integration


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HVLAB_HOME", str(tmp_path))
    from hvlab.settings import get_settings

    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_invalid_lab_file_exits_2_without_traceback(home: Path) -> None:
    bad = home / "bad.yaml"
    bad.write_text("lab: x\n")
    result = CliRunner().invoke(sim_app, ["serve", str(bad)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_detached_serve_state_reset_stop(home: Path) -> None:
    runner = CliRunner()
    started = runner.invoke(
        sim_app, ["serve", str(SEED), "--detach", "--speed", "0", "--port", "0", "--fresh"]
    )
    assert started.exit_code == 0, started.output
    try:
        endpoints = json.loads((home / "sim" / "endpoints.json").read_text())["hosts"]
        assert set(endpoints) == {"DC1", "SVR1", "SVR2"}
        state = runner.invoke(sim_app, ["state", "--json"])
        assert state.exit_code == 0
        assert json.loads(state.output)["hosts"]["SVR1"]["domain"] is None
        assert runner.invoke(sim_app, ["reset"]).exit_code == 0
    finally:
        assert runner.invoke(sim_app, ["stop"]).exit_code == 0
    assert not (home / "sim" / "sim.pid").exists()


def test_second_serve_names_the_running_fleet_and_exits_2(home: Path) -> None:
    """With one fleet detached, `sim serve --detach` and `sim serve` exit 2 naming its pid and
    endpoints, start nothing and leave it serving with the same endpoints; after `sim stop`
    a new one starts."""
    runner = CliRunner()
    argv = ["serve", str(SEED), "--speed", "0", "--port", "0"]
    started = runner.invoke(sim_app, [*argv, "--detach", "--fresh"])
    assert started.exit_code == 0, started.output
    try:
        pid = (home / "sim" / "sim.pid").read_text()
        endpoints = (home / "sim" / "endpoints.json").read_text()
        svr1 = json.loads(endpoints)["hosts"]["SVR1"]
        for extra in (["--detach"], ["--detach", "--fresh"], []):
            again = runner.invoke(sim_app, [*argv, *extra])
            assert again.exit_code == 2, again.output
            assert "already runs" in again.output and f"pid {pid}" in again.output
            assert f"SVR1 {svr1['address']}:{svr1['port']}" in again.output
            assert "hvlab sim stop" in again.output
        assert (home / "sim" / "endpoints.json").read_text() == endpoints
        assert (home / "sim" / "sim.pid").read_text() == pid
        assert runner.invoke(sim_app, ["state", "--json"]).exit_code == 0
    finally:
        assert runner.invoke(sim_app, ["stop"]).exit_code == 0
    restarted = runner.invoke(sim_app, [*argv, "--detach"])
    assert restarted.exit_code == 0, restarted.output
    assert runner.invoke(sim_app, ["stop"]).exit_code == 0
