"""The public surface: what a user imports, on one screen; and a core without a web stack."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pooltender
import pooltender.fastapi
import pooltender.metrics
import pooltender.testing

SURFACE = {
    "pooltender": [
        "CompatibilityError", "ConfigurationError", "Database", "DatabaseSettings",
        "DatabaseState", "DatabaseUnavailable", "DatabaseUnreachable", "Databases",
        "DriverNotInstalled", "FailoverDetected", "LifecycleError", "PoolOverloaded",
        "PoolStats", "PoolTimeout",
        "PooltenderError", "PooltenderSettings", "ReadOnlyError", "Snapshot", "StartupError",
        "StatementTimeout", "__version__", "build_engine", "dispose_after_fork",
        "load_database_settings", "load_pooltender_settings", "migration_engine", "readiness",
        "redact_url",
    ],
    "pooltender.fastapi": [
        "Connection", "ReadConnection", "Session", "SessionMaker", "SyncSession",
        "connection_for", "dashboard_router", "databases", "finish_when_abandoned", "install",
        "read_connection_for",
        "session_for", "sessionmaker_for", "sync_session_for",
    ],
    "pooltender.metrics": ["METRICS", "PoolCollector"],
    "pooltender.testing": [
        "CheckoutTracker", "Held", "IsolatedDatabase", "PoolUsage", "async_client",
        "checkout_site", "override_databases", "pool_usage", "tracker_for",
    ],
}  # fmt: skip


def test_each_public_module_exports_exactly_its_names_sorted() -> None:
    modules = {m.__name__: m for m in (pooltender, pooltender.fastapi, pooltender.metrics,
                                       pooltender.testing)}  # fmt: skip
    for name, expected in SURFACE.items():
        module = modules[name]
        assert module.__all__ == sorted(module.__all__), name
        assert module.__all__ == expected, name
        for member in module.__all__:
            assert getattr(module, member) is not None, f"{name}.{member}"


WEB = ("fastapi", "starlette", "prometheus_client", "typer", "rich", "httpx", "uvicorn")


def _imported_by(statement: str) -> list[str]:
    code = textwrap.dedent(f"""
        import sys
        {statement}
        print(",".join(sorted({{m.split(".")[0] for m in sys.modules}})))
    """)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return out.stdout.strip().split(",")


def test_the_core_imports_no_web_metrics_or_cli_library() -> None:
    loaded = _imported_by(
        "import pooltender; from pooltender import Databases, Database, DatabaseSettings;"
        " import pooltender.testing.plugin"
    )
    assert [m for m in WEB if m in loaded] == []


def test_a_missing_extra_is_one_line_naming_it() -> None:
    code = textwrap.dedent("""
        import importlib.util
        find_spec = importlib.util.find_spec
        # As in an environment where FastAPI is not installed:
        importlib.util.find_spec = lambda name, *a: None if name == "fastapi" else find_spec(name)
        try:
            import pooltender.fastapi
        except ModuleNotFoundError as exc:
            print(exc)
    """)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == (
        "this part of pooltender needs fastapi, which is not installed: "
        "pip install 'pooltender[fastapi]'"
    )


def test_the_command_without_its_extra_says_which_to_install() -> None:
    code = textwrap.dedent("""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "typer":
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
                return None
        sys.meta_path.insert(0, Block())
        from pooltender.cli import main
        main()
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "pooltender: error: the command needs typer, which is not installed: "
        "pip install 'pooltender[cli]'"
    )
