"""The alembic recipes of docs/adopting.md, run as written: `alembic upgrade head` on a
database of the test's own, with the service's DATABASE_* settings and no pool started.

The env.py files are the documentation's own code blocks; the migration sleeps past the
service's DATABASE_STATEMENT_TIMEOUT, which a migration must not inherit.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.support.pg import admin_dsn, fresh_database
from tests.support.service import ROOT

DOC = ROOT / "docs" / "adopting.md"
SERVICE = ROOT / "tests" / "apps" / "notes_service"

MIGRATION = """
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table("recipe", sa.Column("id", sa.Integer, primary_key=True))
    op.execute("SELECT pg_sleep(0.2)")  # longer than DATABASE_STATEMENT_TIMEOUT
"""


def recipe(name: str) -> str:
    """The python block that follows ``<!-- recipe: name -->`` in docs/adopting.md."""
    found = re.search(rf"<!-- recipe: {name} -->\n```python\n(.*?)```", DOC.read_text(), re.S)
    assert found is not None, f"no recipe {name!r} in {DOC}"
    return found.group(1)


def project(tmp_path: Path, env_py: str) -> Path:
    (tmp_path / "migrations" / "versions").mkdir(parents=True)
    (tmp_path / "migrations" / "env.py").write_text(env_py)
    (tmp_path / "migrations" / "versions" / "0001_recipe.py").write_text(MIGRATION)
    (tmp_path / "alembic.ini").write_text("[alembic]\nscript_location = %(here)s/migrations\n")
    return tmp_path


@pytest.mark.parametrize(
    ("name", "driver"), [("env-async", "postgresql+asyncpg"), ("env-sync", "postgresql+psycopg")]
)
def test_the_documented_env_py_upgrades_head(
    tmp_path: Path, postgres_url: str, name: str, driver: str
) -> None:
    url = make_url(postgres_url).set(drivername=driver).render_as_string(hide_password=False)
    with fresh_database(url, "recipe") as database_url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DATABASE_")}
        env.update(
            DATABASE_URL=database_url,
            DATABASE_STATEMENT_TIMEOUT="0.05",
            DATABASE_POOL_SIZE="20",
            PYTHONPATH=os.pathsep.join([str(SERVICE), str(ROOT / "src")]),
        )
        done = subprocess.run(
            [sys.executable, "-m", "alembic", "upgrade", "head"],
            cwd=project(tmp_path, recipe(name)),
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        with psycopg.connect(admin_dsn(database_url)) as connection:
            version = connection.execute("SELECT version_num FROM alembic_version").fetchone()
            assert connection.execute("SELECT count(*) FROM recipe").fetchone() == (0,)
            # the migration's connection is gone: nothing pooled, nothing warmed
            others = connection.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone()
    assert version == ("0001",)
    assert others == (0,)
