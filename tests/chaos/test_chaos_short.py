"""The short `make chaos`: one seeded run of the seed scenario with 3 worker SIGKILLs and a dev
server restart, its world and mutating counters equal to an undisturbed run's (run 0, alongside).

`bench/chaos.py --burst` places the first kill at a random point of the scenario's progress and
the next two 1.5-4 s after each new worker polls, so their stalls (the 60 s timeout that notices
a killed worker) overlap: about 100 s in all. `make chaos` runs 20 spread-out runs.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.chaos import bench_chaos

pytestmark = pytest.mark.soak

ROOT = Path(__file__).resolve().parents[2]
BASE_PORT = 23650  # 23650-23669 (+300 if one is taken), clear of `make chaos` (23300-23339)


def test_scenario_survives_worker_kills_and_a_server_restart(tmp_path: Path) -> None:
    reference = tmp_path / "reference.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "chaos.py"), "--runs", "1", "--seed", "7",
         "--kills", "3", "--burst", "--base-port", str(BASE_PORT), "--out", str(tmp_path),
         "--reference", str(reference), "--write-reference"],
        cwd=ROOT, capture_output=True, text=True, timeout=420)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    report = json.loads((tmp_path / "chaos-latest.json").read_text())
    assert report["ok"]
    run = next(r for r in report["runs"] if r["run"] == 1)
    assert len(run["kills"]) == 3 and run["server_restart"] is not None
    assert run["diffs"] == [] and run["counter_diffs"] == [] and run["key_fact_problems"] == []
    assert run["leftover_pids"] == [] and run["open_workflows"] == []
    assert all(phase["ok"] for phase in run["phases"])
    _the_checks_can_fail(bench_chaos.load(), reference)


def _the_checks_can_fail(chaos: ModuleType, path: Path) -> None:
    """What a non-idempotent retry would leave behind is caught: a second Move-VM, an extra
    VM copy, a second delegation entry."""
    ref = chaos.Reference.load(path)
    assert ref.counts["SVR1"]["Move-VM"] == 2 and ref.counts["SVR1"]["Move-VMStorage"] == 1
    counts = copy.deepcopy(ref.counts)
    counts["SVR1"]["Move-VM"] += 1
    assert chaos.counter_diffs(ref.counts, counts) == [
        "SVR1 Move-VM: duplicated, 3 (undisturbed run: 2)"]
    world = copy.deepcopy(ref.projection)
    world["hosts"]["SVR2"]["vms"]["win2003-1 (2)"] = world["hosts"]["SVR2"]["vms"]["win2003-1"]
    world["ad"]["computers"]["SVR1"]["allowed_to_delegate_to"].append("cifs/DC1")
    found = chaos.diff(ref.projection, world)
    assert any(line.startswith("hosts.SVR2.vms.win2003-1 (2): extra") for line in found)
    assert any(line.startswith("ad.computers.SVR1.allowed_to_delegate_to") for line in found)
