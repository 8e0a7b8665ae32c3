"""`hvlab demo` brings up the stack and the fleet, proves a round trip, and cleans up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

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


def _check_seed_end_state(state: dict[str, Any], name: Callable[[str], str] = str) -> None:
    """The world after the seed's exercise (issue acceptance): where every VM ended up, under
    the lab's own names (``name`` maps a seed name to the lab's)."""
    hosts = state["hosts"]
    svr1, svr2 = hosts[name("SVR1")], hosts[name("SVR2")]
    share = f"\\\\{name('DC1')}\\smb"
    r1 = svr2["vms"][name("win2003-1")]
    assert r1["state"] == "Running" and all(
        d["path"].startswith("C:\\Hyper-V\\") for d in r1["disks"])
    w3 = svr2["vms"][name("win2003-3")]
    assert w3["state"] == "Running" and w3["path"].startswith(share)
    assert all(d["path"].startswith(share) for d in w3["disks"])
    w2 = svr1["vms"][name("win2003-2")]
    assert all(d["path"].startswith(share) for d in w2["disks"])
    linux = name("Linux01")
    assert svr1["vms"][linux]["state"] == "Running"
    primary, replica = svr1["replication"][linux], svr2["replication"][linux]
    assert (primary["mode"], replica["mode"]) == ("Primary", "Replica")
    assert (primary["state"], primary["health"]) == ("Replicating", "Normal")
    ports = {m["public_port"] for m in svr2["guests"][name("win2003-1")]["nat_mappings"]}
    assert ports == {23, 35000}
    computers = state["ad"]["computers"]
    assert f"Microsoft Virtual System Migration Service/{name('SVR2')}" in computers[
        name("SVR1")]["allowed_to_delegate_to"]
    assert f"Microsoft Virtual System Migration Service/{name('SVR1')}" in computers[
        name("SVR2")]["allowed_to_delegate_to"]
    for host, vm in ((svr2, "win2003-1"), (svr1, "win2003-2"), (svr2, "win2003-3"),
                     (svr1, "Linux01")):
        assert "baseline" in host["vms"][name(vm)]["checkpoints"], vm
    counters = state["counters"]
    assert counters[name("SVR1")]["Move-VM"] == 2  # win2003-1 and win2003-3, once each
    assert counters[name("SVR1")]["Move-VMStorage"] == 1
    assert "Move-VM" not in counters[name("SVR2")]


def _env(home: Path) -> dict[str, str]:
    return {
        **os.environ, "HVLAB_HOME": str(home), "HVLAB_DEV_PORT": "27533",
        "HVLAB_TEMPORAL_ADDRESS": "127.0.0.1:27533", "HVLAB_UI_PORT": "28533",
        "HVLAB_DEV_HTTP_PORT": "27543", "HVLAB_DEV_METRICS_PORT": "27544",
        "HVLAB_METRICS_ADDRESS": "127.0.0.1:29564",
        "PYTHONPATH": str(ROOT),  # this checkout's code, whichever one is installed
    }


def test_demo_runs_and_leaves_nothing_behind(tmp_path: Path) -> None:
    """`hvlab demo --json --keep` runs the seed's exercise: every step ok and the world ends as
    the seed says; `hvlab dev stop` then leaves no process of its HVLAB_HOME.

    The local and the domain Administrator have different passwords, given through
    HVLAB_SECRETS_FILE (read by the fleet and the worker alike): the hosts are reached as their
    local Administrator (bootstrap_credential) until they are joined."""
    home = tmp_path / "demo-home"
    secrets_file = tmp_path / "secrets.json"
    secrets_file.write_text(json.dumps({"HVLAB_LOCAL_ADMIN_PASSWORD": "L0cal-Only-pw",
                                        "HVLAB_DOMAIN_ADMIN_PASSWORD": "D0main-Only-pw"}))
    secrets_file.chmod(0o600)
    env = {**{k: v for k, v in _env(home).items() if not k.endswith("_ADMIN_PASSWORD")},
           "HVLAB_SECRETS_FILE": str(secrets_file)}
    try:
        result = subprocess.run(
            [HVLAB, "demo", "examples/classroom-lab.yaml", "--json", "--keep"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=400,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        summary = json.loads(result.stdout)
        names = [s["name"] for s in summary["steps"]]
        assert names[:3] == ["temporal dev server + worker", "simulated fleet",
                             "doctor round trip"]
        assert names[3:] == ["build plan", "build", "migrate-win2003-1", "migrate-win2003-3",
                             "migrate-win2003-2", "replicate-Linux01", "failover-Linux01",
                             "verify", "checkpoint-baseline", "reset schedule"]
        assert all(s["ok"] for s in summary["steps"]), summary
        generated = json.loads((home / "sim" / "endpoints.json").read_text())["secrets"]
        assert set(generated) == {"env:HVLAB_GUEST_ADMIN_PASSWORD", "env:HVLAB_TELUSER_PASSWORD"}
        _check_seed_end_state(_state(env))
        _check_worker_metrics(env["HVLAB_METRICS_ADDRESS"])
        _check_worker_log(home / "dev" / "worker.log")
    finally:
        subprocess.run([HVLAB, "dev", "stop"], cwd=ROOT, env=env, capture_output=True,
                       timeout=120)
    assert _processes_mentioning(str(home)) == []


def test_demo_runs_the_exercise_of_a_renamed_seed(tmp_path: Path) -> None:
    """Issue 15, acceptance 1: on a copy of the seed with every host, VM and the domain
    renamed, `hvlab demo` passes end to end (the lab file's own exercise, written with its own
    names) and the end state is the seed's under the new names."""
    from tests.workflows.test_lesson_loop import RENAMES

    text = (ROOT / "examples" / "classroom-lab.yaml").read_text()
    for old, new in RENAMES:
        text = text.replace(old, new)
    (tmp_path / "renamed.yaml").write_text(text)
    home = tmp_path / "demo-home"
    env = _env(home)
    try:
        result = subprocess.run(
            [HVLAB, "demo", str(tmp_path / "renamed.yaml"), "--json", "--keep"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=400,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        summary = json.loads(result.stdout)
        assert all(s["ok"] for s in summary["steps"]), summary
        assert "failover-tux-3" in [s["name"] for s in summary["steps"]]
        renames = dict(RENAMES)
        _check_seed_end_state(_state(env), lambda n: renames.get(n, n))
    finally:
        subprocess.run([HVLAB, "dev", "stop"], cwd=ROOT, env=env, capture_output=True,
                       timeout=120)
    assert _processes_mentioning(str(home)) == []


def test_demo_passes_on_a_korean_seed(tmp_path: Path) -> None:
    """Issue 13, acceptance 2: on a copy of the seed whose hosts are all ``locale: ko-KR``
    (Korean messages, warnings and firewall display names, as on a Korean Windows Server),
    `hvlab demo` passes end to end and the world ends as on the English seed; the hosts the
    fleet ran were Korean ones."""
    text = (ROOT / "examples" / "classroom-lab.yaml").read_text()
    korean = text.replace("    role: dc\n", "    role: dc\n    locale: ko-KR\n").replace(
        "    role: hyperv\n", "    role: hyperv\n    locale: ko-KR\n")
    assert korean.count("locale: ko-KR") == 3
    (tmp_path / "korean.yaml").write_text(korean)
    home = tmp_path / "demo-home"
    env = _env(home)
    try:
        result = subprocess.run(
            [HVLAB, "demo", str(tmp_path / "korean.yaml"), "--json", "--keep"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=400,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        summary = json.loads(result.stdout)
        assert all(s["ok"] for s in summary["steps"]), summary
        assert "failover-Linux01" in [s["name"] for s in summary["steps"]]
        state = _state(env)
        _check_seed_end_state(state)
        listener = "Hyper-V 복제본 HTTP 수신기(TCP-In)"  # the Korean DisplayName of the rule
        assert all(state["hosts"][h]["firewall"][listener] for h in ("SVR1", "SVR2"))
    finally:
        subprocess.run([HVLAB, "dev", "stop"], cwd=ROOT, env=env, capture_output=True,
                       timeout=120)
    assert _processes_mentioning(str(home)) == []


def _samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Sample name -> [(labels, value)]; the parser rejects malformed or duplicated text."""
    from prometheus_client.parser import text_string_to_metric_families

    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def _check_worker_metrics(address: str) -> None:
    """Issue 6, acceptance 2: after the demo the worker's one endpoint shows every hvlab_
    metric, with non-zero samples for steps and migrations, next to the SDK's."""
    import urllib.request

    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as response:
        samples = _samples(response.read().decode())
    assert "temporal_workflow_completed_total" in samples or "temporal_workflow_completed" in samples

    def total(name: str, **match: str) -> float:
        return sum(v for labels, v in samples.get(name, [])
                   if all(labels.get(k) == want for k, want in match.items()))

    assert total("hvlab_step_duration_seconds_count", outcome="ok") > 50
    assert total("hvlab_step_duration_seconds_count", step="migration.start_move") >= 3
    assert total("hvlab_migrations_total", mode="shared-nothing", outcome="ok") >= 1
    assert total("hvlab_migrations_total", mode="smb", outcome="ok") >= 1
    assert total("hvlab_migrations_total", mode="storage", outcome="ok") >= 1
    assert total("hvlab_migration_duration_seconds_count") >= 3
    assert "hvlab_migration_downtime_seconds_count" in samples
    assert "hvlab_compensations_total" in samples  # published at 0 by every saga
    [(labels, health)] = samples["hvlab_replication_health"]
    assert labels == {"vm": "Linux01"} and health == 0  # Normal after failover + reverse
    assert total("hvlab_winrm_requests_total", host="SVR1", outcome="ok") > 10
    assert {labels["host"] for labels, _ in samples["hvlab_winrm_sessions_open"]} >= {
        "DC1", "SVR1", "SVR2"}
    assert samples["hvlab_worker_info"][0][1] == 1


def _check_worker_log(path: Path) -> None:
    """The worker logs JSON lines; each step's line carries its workflow, activity and host."""
    steps = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if event.get("event") in ("step finished", "step failed"):
                steps.append(event)
    assert len(steps) > 50
    move = next(e for e in steps if e["activity"] == "migration.start_move")
    assert move["workflow_id"] and move["run_id"] and move["host"] == "SVR1"
    assert move["vm"] in ("win2003-1", "win2003-3") and move["workflow_type"] == (
        "LiveMigrationWorkflow")


def _state(env: dict[str, str]) -> dict[str, Any]:
    result = subprocess.run([HVLAB, "sim", "state", "--json"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


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
