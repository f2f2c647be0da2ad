"""The supported range is stated once and tested: pyproject.toml's lower bounds are the
versions the oldest leg of ``make test`` installs, and the README's table says the same."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def oldest() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints" / "oldest.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[name.lower()] = version
    return pins


def lower_bounds() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements.extend(extra)
    bounds = {}
    for requirement in requirements:
        match = re.match(r"([A-Za-z0-9_.-]+)(?:\[[^]]*\])?>=([0-9.]+)", requirement)
        if match:
            assert bounds.get(match[1].lower(), match[2]) == match[2], requirement
            bounds[match[1].lower()] = match[2]
    return bounds


def test_the_oldest_leg_installs_the_declared_lower_bounds() -> None:
    pins = oldest()
    assert set(pins) == {"sqlalchemy", "fastapi"}
    bounds = lower_bounds()
    for name, version in pins.items():
        assert bounds[name] == version, name


def test_sqlalchemy_is_capped_below_the_next_untested_minor() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (sqlalchemy,) = [r for r in project["dependencies"] if r.startswith("sqlalchemy")]
    assert sqlalchemy.endswith(",<2.2")


def test_the_readme_table_names_the_tested_range() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Supported versions", 1)[1].split("\n## ", 1)[0]
    for name, version in oldest().items():
        label = {"sqlalchemy": "SQLAlchemy", "fastapi": "FastAPI"}[name]
        assert re.search(rf"\| {label} \| {re.escape(version)} \|", section), label
