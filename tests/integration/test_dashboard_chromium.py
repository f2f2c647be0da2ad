"""The dashboard in a real headless Chromium (Debian's chromium + chromium-driver).

Served by the contract-shaped fixture app (tests/support/fake_stats.py). Fails, never
skips, when Chromium is missing: install it with scripts/install-chromium.sh.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from tests.support.fake_stats import HTML_ROUTE, create_fake_app
from tests.support.servers import serve

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,1400",
]


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    for path in (CHROMIUM, CHROMEDRIVER):
        assert os.access(path, os.X_OK), f"{path} missing: run scripts/install-chromium.sh"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(condition: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def points(driver: webdriver.Chrome, name: str) -> int:
    value = driver.execute_script(
        "var s = [...document.querySelectorAll('section.db')]"
        ".find(e => e.dataset.database === arguments[0]); return s ? s.dataset.points : null;",
        name,
    )
    return int(value or 0)


def chart_pixels(driver: webdriver.Chrome, name: str) -> str:
    return str(
        driver.execute_script(
            "return [...document.querySelectorAll('section.db')]"
            ".find(e => e.dataset.database === arguments[0])"
            ".querySelector('canvas').toDataURL();",
            name,
        )
    )


def held_rows(driver: webdriver.Chrome, name: str) -> list[tuple[str, str]]:
    rows = driver.execute_script(
        "return [...[...document.querySelectorAll('section.db')]"
        ".find(e => e.dataset.database === arguments[0])"
        ".querySelectorAll('table.held tbody tr')].map(r => [r.className, r.textContent]);",
        name,
    )
    return [(c, t) for c, t in rows]


def test_dashboard_moves_under_load(browser: webdriver.Chrome) -> None:
    app = create_fake_app()
    with serve(app) as base:
        html = httpx.get(f"{base}/debug/pool").text
        assert "http://" not in html
        assert "https://" not in html
        assert "//" not in html.replace("<!doctype html>", "")

        browser.get(f"{base}/debug/pool")
        wait_for(lambda: points(browser, "primary") >= 2, "the first snapshots")
        assert browser.find_element(By.TAG_NAME, "h2").text in ("primary", "analytics")
        idle_chart = chart_pixels(browser, "primary")
        assert [t for _, t in held_rows(browser, "primary")] == ["none"]

        stop = threading.Event()

        def load() -> None:
            with httpx.Client(base_url=base, timeout=10) as client:
                while not stop.is_set():
                    client.get("/work", params={"ms": 400})

        workers = [threading.Thread(target=load) for _ in range(4)]
        leak = threading.Thread(
            target=lambda: httpx.get(f"{base}/leak", params={"ms": 4000}, timeout=10)
        )
        for thread in [*workers, leak]:
            thread.start()
        try:
            wait_for(
                lambda: any(HTML_ROUTE in t for _, t in held_rows(browser, "primary")),
                "held connections of the loaded route",
            )
            wait_for(
                lambda: any(c == "leak" for c, _ in held_rows(browser, "analytics")),
                "the long checkout highlighted as a suspected leak",
            )
            start = points(browser, "primary")
            wait_for(lambda: points(browser, "primary") >= start + 2, "more points under load")
            assert chart_pixels(browser, "primary") != idle_chart
            routes = browser.execute_script(
                "return [...document.querySelectorAll('table.routes tbody tr td:first-child')]"
                ".map(td => td.textContent);"
            )
            assert HTML_ROUTE in routes
            # The route's <b> arrived as text: no element was made from snapshot data.
            assert browser.find_elements(By.CSS_SELECTOR, "table b") == []
            ARTIFACTS.mkdir(exist_ok=True)
            assert browser.save_screenshot(str(ARTIFACTS / "dashboard.png"))
        finally:
            stop.set()
            for thread in [*workers, leak]:
                thread.join(15)

    problems = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert problems == []


def test_dashboard_reports_an_unreadable_snapshot(browser: webdriver.Chrome) -> None:
    from fastapi import FastAPI

    from pooltender.dashboard import dashboard_router

    app = FastAPI()
    app.include_router(dashboard_router(), prefix="/debug")  # no /debug/pool-stats: 404
    with serve(app) as base:
        browser.get(f"{base}/debug/pool")
        status = browser.find_element(By.ID, "status")
        wait_for(lambda: "404" in status.text, "the error in the status line")
        assert "error" in (status.get_attribute("class") or "")
