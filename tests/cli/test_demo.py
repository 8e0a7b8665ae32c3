"""`hvlab demo` brings up the stack and the fleet, proves a round trip, and cleans up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HVLAB = str(Path(sys.executable).parent / "hvlab")


def _processes_mentioning(marker: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            environ = (entry / "environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline or marker in environ:
            found.append(f"{entry.name}: {cmdline}")
    return found


def test_demo_runs_and_leaves_nothing_behind(tmp_path: Path) -> None:
    """`hvlab demo --json` reports every step ok and no process of its HVLAB_HOME remains."""
    home = tmp_path / "demo-home"
    env = {
        **os.environ, "HVLAB_HOME": str(home), "HVLAB_DEV_PORT": "27533",
        "HVLAB_TEMPORAL_ADDRESS": "127.0.0.1:27533", "HVLAB_UI_PORT": "28533",
        "HVLAB_DEV_HTTP_PORT": "27543", "HVLAB_DEV_METRICS_PORT": "27544",
        "HVLAB_METRICS_ADDRESS": "127.0.0.1:29564",
    }
    result = subprocess.run(
        [HVLAB, "demo", "examples/classroom-lab.yaml", "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout)
    names = [s["name"] for s in summary["steps"]]
    assert names[:3] == ["temporal dev server + worker", "simulated fleet", "doctor round trip"]
    assert all(s["ok"] for s in summary["steps"]), summary
    assert (home / "sim" / "endpoints.json").exists()
    assert _processes_mentioning(str(home)) == []


def test_demo_rejects_an_invalid_lab_without_starting_anything(tmp_path: Path) -> None:
    """An invalid lab file exits 2 before any process is started."""
    broken = tmp_path / "lab.yaml"
    broken.write_text((ROOT / "examples" / "classroom-lab.yaml").read_text().replace(
        "memory: 1GB", "memory: 12XB"))
    home = tmp_path / "home"
    env = {**os.environ, "HVLAB_HOME": str(home)}
    result = subprocess.run([HVLAB, "demo", str(broken)], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert "vms[3].memory" in result.stderr and "Traceback" not in result.stderr
    assert not (home / "dev").exists()
