"""The core alone: a virtual environment with ``pip install pooltender`` and no extra
runs ``Databases`` on SQLite, imports no web, metrics or CLI library, and every extra's
part says in one line which extra it needs."""

from __future__ import annotations

import subprocess
import textwrap
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import asyncio, sys
    from pooltender import Databases

    async def main():
        dbs = Databases.from_env({"DATABASE_URL": sys.argv[1]}, env_file=None)
        await dbs.start()
        async with dbs.primary.session() as session:
            await session.connection()
        print("checkouts", dbs.primary.stats().checkouts)
        await dbs.stop()

    asyncio.run(main())
    import pooltender.testing  # the test kit needs the core (and pytest for its plugin)
    web = ("fastapi", "starlette", "prometheus_client", "typer", "rich", "httpx", "uvicorn")
    print("imported", sorted(m for m in web if m in sys.modules))
    for part in ("pooltender.fastapi", "pooltender.metrics", "pooltender.otel"):
        try:
            __import__(part)
        except ModuleNotFoundError as exc:
            print(part, "->", exc)
""")


def test_the_core_installs_and_runs_alone(tmp_path: Path) -> None:
    env_dir = tmp_path / "core"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "-q", str(ROOT)], check=True, capture_output=True
    )
    listed = subprocess.run(
        [python, "-m", "pip", "list", "--format=freeze"], check=True, capture_output=True, text=True
    ).stdout.lower()
    for extra_only in ("fastapi", "prometheus-client", "typer", "rich", "httpx", "uvicorn"):
        assert f"{extra_only}==" not in listed, extra_only
    url = f"sqlite+aiosqlite:///{tmp_path / 'core.db'}"
    done = subprocess.run(
        [python, "-c", SCRIPT, url], check=True, capture_output=True, text=True, cwd=tmp_path
    )
    lines = done.stdout.splitlines()
    [checkouts] = [line for line in lines if line.startswith("checkouts ")]
    assert int(checkouts.split()[1]) >= 1  # the session's, beside start()'s own
    assert "imported []" in lines
    assert (
        "pooltender.fastapi -> this part of pooltender needs fastapi, which is not installed:"
        " pip install 'pooltender[fastapi]'" in lines
    )
    assert any(line.startswith("pooltender.metrics -> ") and "[metrics]" in line for line in lines)
    assert any(line.startswith("pooltender.otel -> ") and "[otel]" in line for line in lines)
    command = subprocess.run(
        [env_dir / "bin" / "pooltender", "demo"], capture_output=True, text=True, timeout=60
    )
    assert command.returncode == 2
    assert command.stderr.strip().endswith("pip install 'pooltender[cli]'")
    assert command.stderr.count("\n") == 1
