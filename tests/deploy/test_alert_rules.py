"""The alert rules (``deploy/prometheus/alerts.yml``) evaluated by Prometheus's own rule engine:
``promtool check rules`` and ``promtool test rules`` over ``deploy/prometheus/alerts.test.yml``,
whose cases make every alert fire once and stay quiet at least once (checked here without
promtool). promtool comes with Debian's ``prometheus`` package (``make install`` installs it
where it can); without it the promtool test is skipped, saying so.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
ALERTS = PROMETHEUS / "alerts.yml"
ALERT_TESTS = PROMETHEUS / "alerts.test.yml"
PROMTOOL = shutil.which("promtool")


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_every_alert_has_a_case_where_it_fires_and_one_where_it_does_not() -> None:
    alerts = {rule["alert"] for group in load(ALERTS)["groups"] for rule in group["rules"]}
    suite = load(ALERT_TESTS)
    assert suite["rule_files"] == [ALERTS.name]
    cases = [case for test in suite["tests"] for case in test.get("alert_rule_test", [])]
    fires = {case["alertname"] for case in cases if case["exp_alerts"]}
    quiet = {case["alertname"] for case in cases if not case["exp_alerts"]}
    assert alerts - fires == set(), "alerts without a firing case"
    assert alerts - quiet == set(), "alerts without a case where they stay quiet"
    assert (fires | quiet) - alerts == set(), "cases for alerts that do not exist"


@pytest.mark.integration
@pytest.mark.skipif(PROMTOOL is None, reason=(
    "promtool is not installed (Debian/Ubuntu: apt-get install prometheus; `make install` "
    "installs it where apt-get and root or sudo are available)"))
def test_promtool_checks_the_rules_and_passes_their_unit_tests() -> None:
    assert PROMTOOL is not None
    for args in (["check", "rules", str(ALERTS)], ["test", "rules", str(ALERT_TESTS)]):
        done = subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=120,
                              check=False)
        assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}{done.stderr}"
