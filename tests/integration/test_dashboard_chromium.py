"""The dashboard in a real headless Chromium (Debian's chromium + chromium-driver).

The service is built like the README's smallest example (``app = FastAPI();
install(app)`` and routes taking ``Session``) on the local PostgreSQL, served by
uvicorn; the load is real requests holding real connections. Fails, never skips,
when Chromium or PostgreSQL is missing: install Chromium with
scripts/install-chromium.sh.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest
from fastapi import FastAPI
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from sqlalchemy import text

from pooltender.fastapi import Session, install
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
# A route template carrying HTML: the page must show it as text, never as markup.
HTML_PATH = "/work/<b>{item}</b>"
HTML_ROUTE = f"GET {HTML_PATH}"
LEAK_THRESHOLD = 1.0


def create_service() -> FastAPI:
    """The README's smallest service, plus two routes that hold their session a while."""
    app = FastAPI()
    install(app)

    @app.get(HTML_PATH)
    async def work(item: str, session: Session, ms: float = 400) -> dict[str, int]:
        value = await session.scalar(text("SELECT 1"))
        await asyncio.sleep(ms / 1000)
        return {"value": int(value or 0)}

    @app.get("/report")
    async def report(session: Session, ms: float = 4000) -> dict[str, int]:
        value = await session.scalar(text("SELECT 2"))
        await asyncio.sleep(ms / 1000)
        return {"value": int(value or 0)}

    return app


@pytest.fixture
def service(monkeypatch: pytest.MonkeyPatch, postgres_url: str) -> Iterator[str]:
    """The service on the local PostgreSQL; yields its base URL."""
    for name in [n for n in os.environ if n.startswith(("DATABASE_", "POOLTENDER_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("DATABASE_URL", postgres_url)
    monkeypatch.setenv("DATABASE_LEAK_THRESHOLD", str(LEAK_THRESHOLD))
    monkeypatch.chdir(Path(__file__).parent)  # no stray .env from the working directory
    with serve(create_service()) as base:
        yield base


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


def counter_tiles(driver: webdriver.Chrome, name: str) -> dict[str, str]:
    tiles = driver.execute_script(
        "return [...[...document.querySelectorAll('section.db')]"
        ".find(e => e.dataset.database === arguments[0])"
        ".querySelectorAll('.tile[data-counter]')]"
        ".map(t => [t.dataset.counter, t.querySelector('.value').textContent]);",
        name,
    )
    return dict(tiles)


def held_rows(driver: webdriver.Chrome, name: str) -> list[tuple[str, str]]:
    rows = driver.execute_script(
        "return [...[...document.querySelectorAll('section.db')]"
        ".find(e => e.dataset.database === arguments[0])"
        ".querySelectorAll('table.held tbody tr')].map(r => [r.className, r.textContent]);",
        name,
    )
    return [(c, t) for c, t in rows]


def test_page_references_no_outside_asset(service: str) -> None:
    answer = httpx.get(f"{service}/debug/pool")  # the README's default path
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    html = answer.text
    links = re.findall(r"""\b(?:src|href)\s*=\s*["']?([^"'\s>]+)""", html, re.IGNORECASE)
    assert links, "the page links its script and style sheets"
    outside = [link for link in links if re.match(r"(?i)^(?:[a-z][a-z0-9+.-]*:)?//", link)]
    assert outside == []
    page = f"{service}/debug/pool"
    for link in links:  # the rest are the service's own (or inline data: URLs)
        if not link.startswith("data:"):
            assert httpx.get(urljoin(page, link)).status_code == 200, link


def test_dashboard_moves_under_load(service: str, browser: webdriver.Chrome) -> None:
    browser.get(f"{service}/debug/pool")
    wait_for(lambda: points(browser, "primary") >= 2, "the first snapshots")
    assert browser.find_element(By.TAG_NAME, "h2").text == "primary"
    idle_chart = chart_pixels(browser, "primary")
    assert [t for _, t in held_rows(browser, "primary")] == ["none"]

    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=service, timeout=10) as client:
            while not stop.is_set():
                assert client.get("/work/<b>1</b>", params={"ms": 400}).status_code == 200

    workers = [threading.Thread(target=load) for _ in range(3)]
    report = threading.Thread(
        target=lambda: httpx.get(f"{service}/report", params={"ms": 4000}, timeout=10)
    )
    for thread in [*workers, report]:
        thread.start()
    try:
        wait_for(
            lambda: any(HTML_ROUTE in t for _, t in held_rows(browser, "primary")),
            "held connections of the loaded route",
        )
        wait_for(
            lambda: any(
                c == "leak" and "GET /report" in t for c, t in held_rows(browser, "primary")
            ),
            "the long checkout highlighted as a suspected leak",
        )
        # Every counter the snapshot declares has its tile (a new counter needs no page
        # change), and the leak counted above shows on its tile.
        declared = httpx.get(f"{service}/debug/pool-stats").json()["counters"]
        wait_for(
            lambda: int(counter_tiles(browser, "primary").get("leaks_suspected", 0)) >= 1,
            "the suspected leak on its counter tile",
        )
        assert set(counter_tiles(browser, "primary")) == set(declared)
        leak_rows = [t for c, t in held_rows(browser, "primary") if c == "leak"]
        assert all("GET /report" in t for t in leak_rows), leak_rows
        assert any("test_dashboard_chromium.py" in t for t in leak_rows), leak_rows
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
        for thread in [*workers, report]:
            thread.join(15)

    wait_for(
        lambda: [t for _, t in held_rows(browser, "primary")] == ["none"],
        "the held table empty again once the load stopped",
    )
    origin = service.rstrip("/")
    loaded = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name);"
    )
    assert loaded and all(name.startswith(origin + "/") for name in loaded), loaded
    problems = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert problems == []


def test_dashboard_reports_an_unreadable_snapshot(browser: webdriver.Chrome) -> None:
    from pooltender.dashboard import dashboard_router

    app = FastAPI()
    app.include_router(dashboard_router(), prefix="/debug")  # no /debug/pool-stats: 404
    with serve(app) as base:
        browser.get(f"{base}/debug/pool")
        status = browser.find_element(By.ID, "status")
        wait_for(lambda: "404" in status.text, "the error in the status line")
        assert "error" in (status.get_attribute("class") or "")
