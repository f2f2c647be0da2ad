"""The fleet files in contrib/ (alerting rules, their tests, the Grafana dashboard), read
as files: every alert is tested both ways, every query names only metrics pooltender
exports, the dashboard has the variables and data source Grafana needs. Run by promtool
and against a real Prometheus: tests/integration/test_prometheus_rules.py and
test_grafana_dashboard.py."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pooltender.metrics import METRICS

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "contrib" / "prometheus" / "pooltender-alerts.yml"
RULE_TESTS = ROOT / "contrib" / "prometheus" / "pooltender-alerts.test.yml"
DASHBOARD = ROOT / "contrib" / "grafana" / "pooltender.json"

# The server's max_connections: written against in contrib, exported by a later pooltender.
NEW_GAUGE = "pooltender_server_connections_max"
FLEET_ALERTS = {"PooltenderFleetBudgetExceeded", "PooltenderFleetBudgetNearlyExhausted"}
SUFFIXES = {"gauge": ("",), "counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
EXPORTED = {
    name + suffix for name, (kind, _, _) in METRICS.items() for suffix in SUFFIXES[kind]
} | {NEW_GAUGE}
# A metric name (not part of a recording rule's level:metric:operation name).
METRIC_NAME = re.compile(r"(?<![\w:])((?:db_client_connection|pooltender)_\w+)(?![\w:])")
RECORDED_NAME = re.compile(r"(?<![\w:])(\w+:\w+:\w+)(?![\w:])")


def rules() -> list[dict[str, Any]]:
    return [rule for g in yaml.safe_load(RULES.read_text())["groups"] for rule in g["rules"]]


def alerts() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "alert" in rule]


def dashboard() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return document


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))


def dashboard_queries() -> list[str]:
    document = dashboard()
    queries = [t["expr"] for p in panels(document["panels"]) for t in p.get("targets", [])]
    queries += [v["definition"] for v in document["templating"]["list"] if v["type"] == "query"]
    return queries


# -- the rules and their tests ---------------------------------------------------------------


def test_every_alert_has_a_case_where_it_fires_and_one_where_it_does_not() -> None:
    cases = [
        case
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    ]
    names = [a["alert"] for a in alerts()]
    assert len(names) == len(set(names)) >= 9
    fires = {c["alertname"] for c in cases if c.get("exp_alerts")}
    quiet = {c["alertname"] for c in cases if not c.get("exp_alerts")}
    assert set(names) - fires == set(), "alerts without a case where they fire"
    assert set(names) - quiet == set(), "alerts without a case where they do not fire"
    assert (fires | quiet) - set(names) == set(), "cases of alerts that do not exist"


@pytest.mark.parametrize("alert", alerts(), ids=lambda a: a["alert"])
def test_each_alert_has_a_duration_a_severity_and_says_where(alert: dict[str, Any]) -> None:
    assert re.fullmatch(r"\d+[smh]", alert.get("for", "")), "a `for:` duration"
    assert alert["labels"]["severity"] in {"critical", "warning", "info"}
    annotations = alert["annotations"]
    assert set(annotations) >= {"summary", "description"}
    where = ["server"] if alert["alert"] in FLEET_ALERTS else ["pool_name", "instance"]
    for key in ("summary", "description"):
        for label in where:
            assert f"$labels.{label}" in annotations[key], f"{key} names {label}"


def test_the_rules_use_only_exported_metrics_and_recorded_series_they_define() -> None:
    exprs = [rule["expr"] for rule in rules()]
    used = {name for expr in exprs for name in METRIC_NAME.findall(expr)}
    assert used - EXPORTED == set()
    assert {"db_client_connection_max", NEW_GAUGE} <= used
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    referenced = {name for expr in exprs for name in RECORDED_NAME.findall(expr)}
    assert referenced - recorded == set()


# -- the dashboard ---------------------------------------------------------------------------


def test_the_dashboard_queries_use_only_exported_metrics() -> None:
    queries = dashboard_queries()
    used = {name for query in queries for name in METRIC_NAME.findall(query)}
    assert used - EXPORTED == set()
    assert not [q for q in queries if RECORDED_NAME.search(q)], "the dashboard needs no rules"
    # The panels the issue asks for, by the metrics they draw.
    assert {
        "db_client_connection_count",
        "db_client_connection_max",
        "db_client_connection_pending_requests",
        "db_client_connection_wait_time_seconds_bucket",
        "db_client_connection_use_time_seconds_bucket",
        "db_client_connection_timeouts_total",
        "pooltender_rejected_total",
        "pooltender_leaks_suspected_total",
        "pooltender_connections_leaking",
        "pooltender_event_loop_blocked_total",
        "pooltender_held_after_response_total",
        NEW_GAUGE,
    } <= used


def test_the_dashboard_has_a_prometheus_data_source_variable_and_the_label_variables() -> None:
    document = dashboard()
    variables = {v["name"]: v for v in document["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("job", "instance", "pool_name"):
        variable = variables[name]
        assert variable["type"] == "query"
        assert variable["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert variable["query"]["query"] == variable["definition"]
        assert variable["definition"].startswith("label_values(")
        assert variable["definition"].endswith(f", {name})")
    assert document["schemaVersion"] >= 39
    assert document["uid"]
    assert document["id"] is None


def test_every_panel_reads_the_chosen_data_source_and_filters_by_the_variables() -> None:
    document = dashboard()
    ids = [p["id"] for p in panels(document["panels"])]
    assert len(ids) == len(set(ids))
    drawn = [p for p in panels(document["panels"]) if p["type"] != "row"]
    assert len(drawn) >= 12
    for panel in drawn:
        title = panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, title
        assert panel["description"], title
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), title
        unfiltered = "not filtered by the variables" in panel["description"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"], title
            assert target["legendFormat"], f"{title} {target['refId']}: a legend"
            filters = [f'{label}=~"${label}"' for label in ("job", "instance", "pool_name")]
            if not unfiltered:
                assert all(f in target["expr"] for f in filters), f"{title} {target['refId']}"
        if any(NEW_GAUGE in t["expr"] for t in panel["targets"]):
            assert NEW_GAUGE in panel["description"], f"{title}: says its data may be missing"


# -- the package data ------------------------------------------------------------------------


def test_the_wheel_ships_the_rules_and_the_dashboard_under_pooltender_contrib() -> None:
    """The wheel's ``force-include`` maps each contrib file to the same path under
    ``pooltender/`` (``importlib.resources.files("pooltender") / "contrib/..."`` in an
    installed wheel); hatchling refuses to build when a mapped file is missing."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    mapping = project["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    shipped = {RULES.relative_to(ROOT).as_posix(), DASHBOARD.relative_to(ROOT).as_posix()}
    assert set(mapping) == shipped
    for source, destination in mapping.items():
        assert (ROOT / source).is_file(), source
        assert destination == f"pooltender/{source}"
