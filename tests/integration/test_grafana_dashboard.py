"""The Grafana dashboard and the alerting rules against a real Prometheus.

A Prometheus server (scrape and rule evaluation every second, the rules of
``contrib/prometheus/pooltender-alerts.yml`` loaded) scrapes two instances of the demo
service under light load: one with the demo's pools, one with a pool of one connection,
a 1 s pool timeout and a 1 s leak threshold, so that it times out and leaks. The test
resolves the dashboard's variables the way Grafana does (``label_values`` through
Prometheus, a multi-value as an escaped regex), substitutes them into every panel's
queries and runs each one: a per-instance query (its legend names ``{{instance}}``)
must give a value for both instances, a fleet query a value at all. On the same series
the alerts on a pool's load are raised (pending: their ``for:`` lasts minutes) for the
stressed instance, and none for the healthy one.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from pooltender.cli._traffic import start_traffic
from tests.conftest import POSTGRES_URL
from tests.support.prometheus import Prometheus, PrometheusError
from tests.support.service import ROOT, Service

DASHBOARD = ROOT / "contrib" / "grafana" / "pooltender.json"
RULES = ROOT / "contrib" / "prometheus" / "pooltender-alerts.yml"
DEMO_APP = "tests.apps.demo:app"
JOB = "pooltender-demo"
NEW_GAUGE = "pooltender_server_connections_max"
BUILTINS = {"__rate_interval": "15s"}  # Grafana's: at least 4 scrape intervals
DATA_TIMEOUT = 30.0


@dataclass(frozen=True)
class Target:
    panel: str
    ref: str
    expr: str
    legend: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.panel, self.ref)

    @property
    def per_instance(self) -> bool:
        return "{{instance}}" in self.legend.replace(" ", "")


def dashboard() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return document


def panel_targets(document: dict[str, Any]) -> list[Target]:
    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))  # a collapsed row holds its own

    return [
        Target(panel["title"], target["refId"], target["expr"], target.get("legendFormat", ""))
        for panel in panels(document["panels"])
        for target in panel.get("targets", [])
    ]


def grafana_regex(values: list[str]) -> str:
    """A multi-value variable as Grafana writes it into a Prometheus query."""

    def escape(value: str) -> str:  # Grafana's prometheusSpecialRegexEscape
        value = value.replace("\\", "\\\\\\\\")
        return re.sub(r"[$^*{}\[\]'+?.()|]", lambda m: "\\\\" + m.group(0), value)

    return "(" + "|".join(escape(v) for v in values) + ")"


def substitute(expr: str, variables: dict[str, str]) -> str:
    """Grafana's interpolation: ``$name`` and ``${name}`` of a known variable; anything
    else (``$1`` of a ``label_replace``) stays."""
    known = {**BUILTINS, **variables}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return known.get(name, match.group(0))

    result = re.sub(r"\$\{(\w+)\}|\$(\w+)", replace, expr)
    leftover = re.findall(r"\$\{?[A-Za-z_]\w*", result)
    assert not leftover, f"unknown variables {leftover} in {expr}"
    return result


def resolve_variables(document: dict[str, Any], prometheus: Prometheus) -> dict[str, list[str]]:
    """Each query variable's values, in the dashboard's order, as Grafana gets them."""
    values: dict[str, list[str]] = {}
    for variable in document["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]["query"] if isinstance(variable["query"], dict) else ""
        match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query)
        assert match, f"variable {variable['name']}: not a label_values() query: {query!r}"
        selector = substitute(match.group(1), {k: grafana_regex(v) for k, v in values.items()})
        found = prometheus.api(f"label/{match.group(2)}/values", **{"match[]": selector})
        assert found, f"variable {variable['name']}: no values for {selector}"
        values[variable["name"]] = sorted(found)
    return values


# -- the fleet -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fleet:
    prometheus: Prometheus
    healthy: str  # the instance labels Prometheus gives them
    stressed: str


def _bursts(base_url: str, stop: threading.Event) -> threading.Thread:
    """Four 2 s reports at once, over and over: with one connection, one holds it past the
    leak threshold, one waits and times out, the rest are refused at once."""

    def loop() -> None:
        with (
            httpx.Client(base_url=base_url, timeout=10) as client,
            ThreadPoolExecutor(4) as pool,
        ):

            def get(_: int) -> None:
                with contextlib.suppress(httpx.HTTPError):
                    client.get("/reports/slow", params={"seconds": 2})

            while not stop.is_set():
                list(pool.map(get, range(4)))
                stop.wait(0.5)

    thread = threading.Thread(target=loop, name="bursts", daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    base = tmp_path_factory.mktemp("fleet")
    # One instance with the demo's pools; one with a single connection, a 1 s pool
    # timeout and a 1 s leak threshold, under bursts it cannot serve.
    # The healthy instance runs on PostgreSQL: its pools export the server's connection
    # limit, which the fleet budget panel draws (SQLite has no limit to export).
    healthy_env = {"POOLTENDER_DEMO_DIR": str(base / "a"), "DATABASE_URL": POSTGRES_URL}
    stressed_env = {
        "POOLTENDER_DEMO_DIR": str(base / "b"),
        "DATABASE_POOL_SIZE": "1",
        "DATABASE_MAX_OVERFLOW": "0",
        "DATABASE_POOL_TIMEOUT": "1",
        "DATABASE_LEAK_THRESHOLD": "1",
    }
    healthy = Service(healthy_env, app=DEMO_APP, wait=False)  # both start, then both are
    stressed = Service(stressed_env, app=DEMO_APP, wait=False)  # waited for
    stop = threading.Event()
    threads: list[threading.Thread] = []
    with contextlib.ExitStack() as stack:
        for service in (healthy, stressed):
            stack.enter_context(service)
        for service in (healthy, stressed):
            service.wait_live()

        def stop_load() -> None:
            stop.set()
            for thread in threads:
                thread.join(15)

        stack.callback(stop_load)
        for service in (healthy, stressed):
            threads += start_traffic(service.url, stop)
        threads.append(_bursts(stressed.url, stop))
        instances = {s: f"127.0.0.1:{s.port}" for s in (healthy, stressed)}
        prometheus = stack.enter_context(
            Prometheus(
                base / "prometheus", targets={JOB: list(instances.values())}, rule_files=[RULES]
            )
        )
        yield Fleet(prometheus, instances[healthy], instances[stressed])


def wait_for(check: Any, what: str, fleet: Fleet, timeout: float = DATA_TIMEOUT) -> None:
    """Call ``check()`` (it returns a list of problems) until it returns none."""
    deadline = time.monotonic() + timeout
    while True:
        problems: list[str] = check()
        if not problems:
            return
        if time.monotonic() > deadline:
            pytest.fail(
                f"{what}, after {timeout:g}s:\n  "
                + "\n  ".join(problems)
                + f"\nprometheus log:\n{fleet.prometheus.output()[-3000:]}"
            )
        time.sleep(1)


def has_value(series: dict[str, Any]) -> bool:
    return math.isfinite(float(series["value"][1]))


# -- the tests -------------------------------------------------------------------------------


def test_the_budget_panel_draws_the_servers_limit() -> None:
    targets = [t for t in panel_targets(dashboard()) if NEW_GAUGE in t.expr]
    assert {t.panel for t in targets} == {"Fleet budget vs server max_connections"}


def test_every_panel_query_returns_series_for_both_instances(fleet: Fleet) -> None:
    document = dashboard()
    prometheus = fleet.prometheus
    instances = {fleet.healthy, fleet.stressed}
    targets = panel_targets(document)
    assert len(targets) >= 10

    def variables_ready() -> list[str]:
        try:
            values = resolve_variables(document, prometheus)
        except AssertionError as error:
            return [str(error)]
        if set(values.get("instance", [])) != instances:
            return [f"instance values {values.get('instance')}, not {sorted(instances)}"]
        return []

    wait_for(variables_ready, "the dashboard's variables did not resolve", fleet)
    values = resolve_variables(document, prometheus)
    assert JOB in values["job"]
    assert values["pool_name"] == ["analytics", "primary"]
    variables = {name: grafana_regex(v) for name, v in values.items()}
    queries = {t.key: substitute(t.expr, variables) for t in targets}

    def problems() -> list[str]:
        found = []
        for target in targets:
            where = f"{target.panel!r} {target.ref}: {queries[target.key]}"
            try:
                series = prometheus.query(queries[target.key])
            except PrometheusError as error:  # bad PromQL: no point waiting
                pytest.fail(f"{where}: {error}")
            valued = [s for s in series if has_value(s)]
            labelled = {s["metric"].get("instance") for s in series}
            if target.per_instance:
                missing = instances - {s["metric"].get("instance") for s in valued}
                if missing:
                    found.append(f"{where}: no value for {sorted(missing)} (got {series})")
            elif not valued:
                found.append(f"{where}: no value (got {series})")
            elif labelled != {None}:  # a fleet line that is per instance: a wrong legend
                pytest.fail(f"{where}: series per instance, but the legend does not say which")
        return found

    wait_for(problems, "panel queries without data", fleet)


def test_the_alerts_see_the_stressed_instance_and_spare_the_healthy_one(fleet: Fleet) -> None:
    prometheus = fleet.prometheus
    # Every alert on the load of a pool (the demo has no blocking call and no streaming
    # route: the event-loop and held-after-response alerts cannot be raised here).
    load_alerts = {
        "PooltenderPoolSaturated",
        "PooltenderWaitTimeHigh",
        "PooltenderCheckoutTimeouts",
        "PooltenderRequestsRefused",
        "PooltenderConnectionLeakSuspected",
    }
    expected = {(name, fleet.stressed, "primary") for name in load_alerts}

    def alerts() -> set[tuple[str, str, str]]:
        return {
            (
                a["labels"]["alertname"],
                a["labels"].get("instance", ""),
                a["labels"].get("pool_name", ""),
            )
            for a in prometheus.api("alerts")["alerts"]  # pending or firing
        }

    def rules_evaluated() -> list[str]:
        rules = [r for g in prometheus.api("rules")["groups"] for r in g["rules"]]
        if len(rules) < 10:
            return [f"only {len(rules)} rules loaded"]
        return [
            f"{r['name']}: {r['health']} {r.get('lastError', '')}"
            for r in rules
            if r["health"] != "ok"
        ]

    wait_for(rules_evaluated, "the rules did not evaluate cleanly", fleet)
    wait_for(
        lambda: [f"not raised: {a}" for a in sorted(expected - alerts())],
        "the stressed instance did not raise every load alert",
        fleet,
    )
    raised = alerts()
    assert not {a for a in raised if a[1] == fleet.healthy and a[0] in load_alerts}, raised
    assert not {a for a in raised if a[2] == "analytics" and a[0] in load_alerts}, raised
