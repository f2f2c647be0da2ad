"""The ``pooltender`` command: verbs, exit codes, one-line errors (typer's CliRunner)."""

from __future__ import annotations

import json
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import HTTPException, Request
from typer.testing import CliRunner

from pooltender.cli import app
from pooltender.cli.top import render
from tests.support.fake_stats import HTML_ROUTE, create_fake_app
from tests.support.servers import serve

WIDE = {"COLUMNS": "200"}


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={**WIDE, **(env or {})})
    return result.exit_code, result.output


@pytest.fixture
def service() -> Iterator[str]:
    with serve(create_fake_app()) as base:
        yield base


@pytest.fixture
def loaded(service: str) -> Iterator[str]:
    """The fixture service under a steady load of 20 ms requests."""
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=service, timeout=10) as client:
            while not stop.is_set():
                client.get("/work", params={"ms": 20})

    threads = [threading.Thread(target=load) for _ in range(3)]
    for thread in threads:
        thread.start()
    yield service
    stop.set()
    for thread in threads:
        thread.join(10)


def test_help_lists_the_five_verbs() -> None:
    code, out = invoke("--help")
    assert code == 0
    for verb in ("demo", "check", "size", "top", "bench"):
        assert f" {verb} " in out


def test_size_recommends_six_for_500_rps_of_10_ms() -> None:
    code, out = invoke("size", "--rps", "500", "--query-ms", "10")
    assert code == 0, out
    assert "DATABASE_POOL_SIZE    │     6" in out
    assert "500 req/s x 0.01 s = 5 connections busy on average" in out
    assert "pool_size = ceil(500 req/s x 0.01 s x 1.2) = ceil(6) = 6" in out
    assert "ceiling: unknown" in out


def test_size_with_a_server_shows_the_ceiling_and_pgbouncer() -> None:
    code, out = invoke(
        "size", "--rps", "5000", "--query-ms", "20", "--workers", "8", "--instances", "4",
        "--max-connections", "100",
    )  # fmt: skip
    assert code == 0, out
    assert "ceiling: 3 connections per process = usable slots 97" in out
    assert "PgBouncer: yes, in transaction mode" in out


@pytest.mark.parametrize(
    "args",
    [
        ["size", "--bogus"],
        ["size", "--rps"],
        ["size", "--rps", "lots", "--query-ms", "1"],
        ["size"],
        ["size", "--rps", "1", "--query-ms", "1", "--from", "http://127.0.0.1:1"],
        ["size", "--from", "http://127.0.0.1:1", "--interval", "0.5"],
        ["nope"],
        ["top"],
        ["top", "ftp://example.org"],
        ["top", "http://127.0.0.1:1"],
        ["bench", "http://10.1.2.3:8000"],
        ["bench", "http://127.0.0.1:1", "--compare", "nullpool"],
        ["bench", "--compare", "fastest"],
        ["bench", "--path", "users"],
        ["demo", "--port", "0", "--traffic"],
        ["check", "--workers", "0"],
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str]) -> None:
    code, out = invoke(*args)
    assert code == 2, out
    assert out.startswith("pooltender: error: "), out
    assert out.count("\n") == 1, out
    assert "Traceback" not in out


def test_check_without_configuration_is_bad_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    code, out = invoke("check")
    assert code == 2
    assert "no database configured: set DATABASE_URL" in out


def test_check_sqlite_has_times_and_no_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out = invoke(
        "check", "--samples", "2", "--json",
        env={"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"},
    )  # fmt: skip
    assert code == 0, out
    primary = json.loads(out)["databases"]["primary"]
    assert primary["reachable"] is True
    assert primary["budget"] is None
    assert primary["samples"] == 2
    assert primary["connect_query_median"] > 0


def test_top_once_prints_one_frame(loaded: str) -> None:
    leak = threading.Thread(target=lambda: httpx.get(f"{loaded}/leak?ms=1500", timeout=10))
    leak.start()
    try:
        code, out = "", ""
        for _ in range(30):  # until the leak is reported (older than 1 s)
            code, out = invoke("top", loaded, "--once")
            if "LEAK? GET /leak" in out:
                break
            threading.Event().wait(0.1)
    finally:
        leak.join(10)
    assert code == 0, out
    assert f"pooltender top · {loaded}/debug/pool-stats" in out
    assert "primary" in out
    assert "analytics" in out
    assert HTML_ROUTE in out
    assert "LEAK? GET /leak" in out


def test_top_shows_markup_in_names_as_typed() -> None:
    from rich.console import Console

    doc = {
        "generated_at": 0.0,
        "databases": {
            "primary": {
                "checked_out": 1, "available": 4, "waiting": 0, "max": 5, "checkouts": 1,
                "timeouts": 0, "rejected": 0, "leaks_suspected": 0,
                "wait_time": {}, "use_time": {},
                "routes": [{"route": "[red]GET /x[/red]", "checkouts": 1, "hold_total": 0.1}],
                "held": [{"route": "[bold]held", "age": 0.5, "site": "a.py:1", "leak": False}],
            }
        },
    }  # fmt: skip
    console = Console(width=200, record=True)
    console.print(render(doc, None, "test"))
    text = console.export_text()
    assert "[red]GET /x[/red]" in text
    assert "[bold]held" in text


def test_top_sends_the_token() -> None:
    def guard(request: Request) -> None:
        if request.headers.get("authorization") != "Bearer s3cret":
            raise HTTPException(403, "forbidden")

    with serve(create_fake_app(guard)) as base:
        code, out = invoke("top", base, "--once")
        assert code == 2
        assert "answered 403: pass --token or set POOLTENDER_DEBUG_TOKEN" in out
        assert invoke("top", base, "--once", "--token", "s3cret")[0] == 0
        assert invoke("top", base, "--once", env={"POOLTENDER_DEBUG_TOKEN": "s3cret"})[0] == 0
        # Surrounding whitespace (a token read from a file) is not part of it, as on the server.
        assert invoke("top", base, "--once", "--token", " s3cret\n")[0] == 0


@pytest.mark.parametrize(
    ("token_args", "env", "message"),
    [
        (["--token", ""], {}, "--token: is empty"),
        (["--token", "  "], {}, "--token: is empty"),
        (["--token", "tökén"], {}, "--token: must be printable ASCII"),
        (["--token", "bad\x1b[2J"], {}, "--token: must be printable ASCII"),
        ([], {"POOLTENDER_DEBUG_TOKEN": " "}, "POOLTENDER_DEBUG_TOKEN: is empty"),
        ([], {"POOLTENDER_DEBUG_TOKEN": "tökén"}, "POOLTENDER_DEBUG_TOKEN: must be printable"),
    ],
)
@pytest.mark.parametrize("verb", [["top", "--once"], ["size", "--interval", "0.5", "--from"]])
def test_a_token_that_cannot_work_is_one_line_and_exit_2(
    verb: list[str], token_args: list[str], env: dict[str, str], message: str, closed_port: int
) -> None:
    """httpx sends header values as ASCII only: a non-ASCII token was a traceback."""
    code, out = invoke(*verb, f"http://127.0.0.1:{closed_port}", *token_args, env=env)
    assert code == 2, out
    assert out.startswith(f"pooltender: error: {message}"), out
    assert out.count("\n") == 1, out
    assert "Traceback" not in out
    assert "tökén" not in out


def test_size_from_a_live_service(loaded: str) -> None:
    code, out = invoke("size", "--from", loaded, "--interval", "1")
    assert code == 0, out
    assert "req/s per process, hold" in out
    assert "(mean hold time of the routes)" in out
    assert "DATABASE_POOL_SIZE" in out


def test_bench_a_url_writes_the_reports(service: str, tmp_path: Path) -> None:
    code, out = invoke(
        "bench", service, "--path", "/work?ms=1", "--requests", "40", "--concurrency", "4",
        "--out", str(tmp_path),
    )  # fmt: skip
    assert code == 0, out
    report = json.loads((tmp_path / "bench.json").read_text())
    (run,) = report["runs"]
    assert run["requests"] == 40
    assert run["statuses"] == {"200": 40}
    assert run["latency"]["p50"] <= run["latency"]["p99"] <= run["latency"]["max"]
    assert "| service | 40 |" in (tmp_path / "bench.md").read_text()
    assert (tmp_path / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_counts_errors_by_status(service: str, tmp_path: Path) -> None:
    code, out = invoke(
        "bench", service, "--path", "/missing", "--requests", "10", "--out", str(tmp_path)
    )
    assert code == 0, out
    assert json.loads((tmp_path / "bench.json").read_text())["runs"][0]["statuses"] == {"404": 10}


def test_bench_counts_transport_errors(closed_port: int, tmp_path: Path) -> None:
    code, out = invoke(
        "bench", f"http://127.0.0.1:{closed_port}", "--requests", "5", "--out", str(tmp_path)
    )
    assert code == 0, out
    run = json.loads((tmp_path / "bench.json").read_text())["runs"][0]
    assert run["statuses"] == {"ConnectError": 5}
    assert run["latency"]["p50"] is None


def test_bench_without_matplotlib_writes_json_and_markdown(
    service: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, out = invoke("bench", service, "--path", "/work?ms=0", "--requests", "5",
                       "--out", str(tmp_path))  # fmt: skip
    assert code == 0, out
    assert "install pooltender[bench] for the chart" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.json", "bench.md"]


def test_top_computes_checkouts_per_second_between_frames() -> None:
    from rich.console import Console

    def doc(at: float, checkouts: int) -> dict[str, object]:
        return {
            "generated_at": at,
            "databases": {
                "primary": {
                    "checked_out": 0, "available": 5, "waiting": 0, "max": None,
                    "checkouts": checkouts, "timeouts": 0, "rejected": 0,
                    "leaks_suspected": 0, "routes": [], "held": [],
                }
            },
        }  # fmt: skip

    console = Console(width=200, record=True)
    console.print(render(doc(12.0, 1300), doc(10.0, 1000), "test"))
    row = next(line for line in console.export_text().splitlines() if "primary" in line)
    assert "150.0" in row  # 300 checkouts in 2 s
    assert "∞" in row  # max null: unbounded
