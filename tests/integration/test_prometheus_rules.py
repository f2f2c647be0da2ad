"""The alerting rules of contrib/prometheus: promtool accepts them and they pass their unit
tests (``pooltender-alerts.test.yml``), and those tests notice an alert that never fires.

What the rules say on the series of a real pooltender service:
``test_grafana_dashboard.py::test_the_alerts_see_the_stressed_instance_and_spare_the_healthy_one``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.service import ROOT

CONTRIB = ROOT / "contrib" / "prometheus"
RULES = CONTRIB / "pooltender-alerts.yml"
TESTS = CONTRIB / "pooltender-alerts.test.yml"


def promtool(*args: str, cwd: Path = CONTRIB) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is not installed: run `bash scripts/prometheus.sh` (make services)")
    return subprocess.run(
        [binary, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def alert_names(rules: dict[str, Any]) -> list[str]:
    return [rule["alert"] for g in rules["groups"] for rule in g["rules"] if "alert" in rule]


def test_promtool_accepts_the_rules() -> None:
    result = promtool("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout, result.stdout


def test_the_rules_pass_their_unit_tests() -> None:
    result = promtool("test", "rules", TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout, result.stdout


@pytest.mark.parametrize("alert", alert_names(yaml.safe_load(RULES.read_text())))
def test_the_unit_tests_fail_when_an_alert_never_fires(alert: str, tmp_path: Path) -> None:
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == alert:
                rule["expr"] = "vector(1) > 2"  # never a result
    (tmp_path / RULES.name).write_text(yaml.safe_dump(rules, sort_keys=False))
    shutil.copy(TESTS, tmp_path / TESTS.name)
    result = promtool("test", "rules", TESTS.name, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert f"alertname: {alert}," in output, output
