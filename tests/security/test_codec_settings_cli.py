"""HVLAB_CODEC_ENABLED without keys: the CLI exits 2 and the worker 1, each naming the settings,
before anything is dialled; a bad key file names its line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hvlab.codec import new_key_line

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
HVLAB = str(Path(sys.executable).parent / "hvlab")


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HVLAB_")}
    env.update(HVLAB_HOME=str(tmp_path), HVLAB_DEV_PORT="31998", HVLAB_METRICS_ADDRESS="",
               HVLAB_LOG_FORMAT="json", HVLAB_CODEC_ENABLED="true", **extra)
    return env


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HVLAB, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)


def test_cli_and_worker_refuse_an_enabled_codec_without_keys(tmp_path: Path) -> None:
    """`hvlab status` exits 2 and `hvlab worker` exits 1; both name the settings."""
    env = _env(tmp_path)
    status = _run(env, "status")
    assert status.returncode == 2
    assert "HVLAB_CODEC_ENABLED" in status.stderr and "HVLAB_CODEC_KEYS_FILE" in status.stderr
    assert "Traceback" not in status.stderr
    worker = _run(env, "worker")
    assert worker.returncode == 1
    text = worker.stdout + worker.stderr
    assert "HVLAB_CODEC_KEYS_FILE" in text and "Traceback" not in text


def test_a_bad_key_file_line_is_named_and_no_key_is_echoed(tmp_path: Path) -> None:
    """A short key on line 3 of the key file: exit 2, the file and line named, no key shown."""
    good = new_key_line("k1")
    keys = tmp_path / "keys"
    keys.write_text(f"# keys\n{good}\nk2:c2hvcnQ=\n")
    result = _run(_env(tmp_path, HVLAB_CODEC_KEYS_FILE=str(keys)), "status")
    assert result.returncode == 2
    assert f"{keys} line 3: key 'k2' is 5 bytes" in result.stderr
    assert good.split(":")[1] not in result.stdout + result.stderr


def test_dev_and_demo_refuse_it_before_starting_anything(tmp_path: Path) -> None:
    """`hvlab dev --detach` and `hvlab demo` exit 2 at once with the settings named, and start
    nothing (no dev directory, no server waiting out its start-up timeout)."""
    home = tmp_path / "home"
    env = {**_env(tmp_path), "HVLAB_HOME": str(home)}
    for args in (("dev", "--detach"), ("demo", "examples/classroom-lab.yaml")):
        result = _run(env, *args)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "HVLAB_CODEC_KEYS_FILE" in result.stderr and "Traceback" not in result.stderr
        assert not home.exists()
    assert "payload codec unusable" in _run(env, "worker").stderr
