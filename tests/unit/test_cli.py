"""The ``pooltender`` command: verbs, exit codes, one-line errors (typer's CliRunner)."""

from __future__ import annotations

import io
import json
import socket
import sys
import threading
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, HTTPException, Request, Response
from typer.testing import CliRunner

from pooltender.cli._common import sanitize
from pooltender.cli.app import app
from pooltender.cli.top import render
from pooltender.stats import Snapshot
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
    console.print(render(Snapshot.from_json(doc), None, "test"))
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
    console.print(
        render(Snapshot.from_json(doc(12.0, 1300)), Snapshot.from_json(doc(10.0, 1000)), "test")
    )
    row = next(line for line in console.export_text().splitlines() if "primary" in line)
    assert "150.0" in row  # 300 checkouts in 2 s
    assert "∞" in row  # max null: unbounded


# -- pooltender top shows a service's strings, never its terminal commands -----------

HOSTILE = [
    ("primary\x1b[2J\x1b[H", "primary"),  # clear the screen, cursor home
    ("\x1b[31mred\x1b[0m", "red"),
    ("\x1b]0;pwned\x07title", "title"),  # OSC: window title, BEL-terminated
    ("\x1b]8;;http://evil.example/\x1b\\link\x1b]8;;\x1b\\", "link"),  # OSC 8 hyperlink, ST
    ("\x1bP+q544e\x1b\\after", "after"),  # DCS
    ("\x1b_apc\x1b\\x", "x"),  # APC
    ("a\x1b(0b\x1bc", "ab"),  # designate a charset; reset the terminal
    ("\x9b2Jc1\x9d0;t\x9cok", "c1ok"),  # 8-bit CSI and OSC
    ("bell\x07back\x08space\x7f\x00\x85", "bellbackspace "),
    ("tab\tnew\nline\r", "tab new line "),
    ("GET /x\u202eevil\u202c", "GET /xevil"),  # right-to-left override
    ("\u2066iso\u2069 \u200bzw\u200d\ufeff\u061c", "iso zw"),  # isolates, zero-width, ALM
    ("lone\ud800surrogate", "lonesurrogate"),
    ("\x1b]0;never terminated", ""),
    ("trailing\x1b", "trailing"),
    ("café 数据库 ∞ µs [red]x[/red] <b>", "café 数据库 ∞ µs [red]x[/red] <b>"),
]


@pytest.mark.parametrize(("hostile", "shown"), HOSTILE)
def test_sanitize_leaves_text_and_removes_escapes_and_controls(hostile: str, shown: str) -> None:
    assert sanitize(hostile) == shown


def hostile_doc() -> dict[str, object]:
    evil = "\x1b]0;pwned\x07\x1b[2J\u202e"
    return {
        "generated_at": 0.0,
        "databases": {
            f"primary{evil}": {
                "checked_out": 1, "available": 4, "waiting": 0,
                "max": 5, "checkouts": 1, "timeouts": 0, "rejected": 0,
                "leaks_suspected": 2, "wait_time": {}, "use_time": {},
                "routes": [{"route": f"GET /x{evil}", "checkouts": 3, "hold_total": 0.1}],
                "held": [{"route": f"GET /held{evil}", "age": 0.5, "site": f"a.py:1{evil}",
                          "leak": True}],
            }
        },
    }  # fmt: skip


def assert_terminal_safe(out: str) -> None:
    for char in out:
        if char != "\n":
            assert unicodedata.category(char) not in ("Cc", "Cf", "Cs"), repr(char)


def test_top_renders_no_escape_or_control_from_the_snapshot() -> None:
    from rich.console import Console

    console = Console(file=io.StringIO(), width=200)  # not a terminal: rich adds no escapes
    console.print(render(Snapshot.from_json(hostile_doc()), None, "http://127.0.0.1:8000\x1b[2J"))
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert_terminal_safe(out)
    for shown in ("primary", "GET /x", "LEAK? GET /held", "a.py:1", "127.0.0.1:8000"):
        assert shown in out


@pytest.fixture
def hostile_service() -> Iterator[Callable[[str], str]]:
    """A service whose /debug/pool-stats answers the JSON text a test sets."""
    answer = {"json": ""}
    app = FastAPI()

    @app.get("/debug/pool-stats")
    async def stats() -> Response:
        return Response(answer["json"], media_type="application/json")

    with serve(app) as base:

        def answering(json_text: str) -> str:
            answer["json"] = json_text
            return base

        yield answering


def test_top_shows_a_hostile_service_safely(hostile_service: Callable[[str], str]) -> None:
    # Written as JSON text, so that escapes and a lone surrogate arrive as a server sends them.
    base = hostile_service(json.dumps(hostile_doc()))
    code, out = invoke("top", base, "--once")
    assert code == 0, out
    assert_terminal_safe(out)
    assert "LEAK? GET /held" in out
    base = hostile_service(json.dumps(hostile_doc()).replace("primary", "primary\\ud800"))
    code, out = invoke("top", base, "--once")
    assert code == 0, out
    assert_terminal_safe(out)


@pytest.mark.parametrize(
    "change",
    [
        lambda doc: doc["databases"]["primary"]["wait_time"].update(p50="\x1b[2Jslow"),
        # A figure that is no number (and tries to reach the terminal) is no snapshot.
        lambda doc: doc["databases"]["primary"].update(checked_out="1\x1b]0;pwned\x07"),
        lambda doc: doc.update(generated_at=1e300),
        lambda doc: doc["databases"].update(primary="\x1b[2J"),
        lambda doc: doc["databases"]["primary"].pop("checked_out"),
    ],
)
def test_top_with_a_snapshot_it_cannot_read_is_one_line_and_exit_2(
    hostile_service: Callable[[str], str], change: Callable[[dict[str, Any]], None]
) -> None:
    doc: dict[str, Any] = {
        "generated_at": 0.0,
        "databases": {
            "primary": {
                "checked_out": 1, "available": 4, "waiting": 0, "max": 5, "checkouts": 1,
                "timeouts": 0, "rejected": 0, "leaks_suspected": 0,
                "wait_time": {"p50": 0.001}, "use_time": {}, "routes": [], "held": [],
            }
        },
    }  # fmt: skip
    change(doc)
    code, out = invoke("top", hostile_service(json.dumps(doc)), "--once")
    assert code == 2, out
    assert out.startswith("pooltender: error: "), out
    assert "answered a snapshot pooltender cannot read" in out
    assert out.count("\n") == 1, out
    assert_terminal_safe(out)
