"""docs/testing.md documents every fixture of the plugin, and async_client as it is."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from pooltender.testing import apps, plugin

DOC = (Path(__file__).parents[2] / "docs" / "testing.md").read_text()


def fixture_names() -> list[str]:
    return [
        name
        for name, value in vars(plugin).items()
        if type(value).__name__ == "FixtureFunctionDefinition"
        or hasattr(value, "_pytestfixturefunction")
    ]


def test_every_fixture_of_the_plugin_is_documented() -> None:
    names = fixture_names()
    assert set(names) >= {"postgres_database", "sqlite_database", "pooltender_metadata"}
    for name in names:
        assert f"`{name}`" in DOC, name


def test_async_client_is_documented_with_its_signature_and_defaults() -> None:
    row = re.search(r"^\| `async_client\((.*?)\)` \|", DOC, re.MULTILINE)
    assert row, "docs/testing.md has no async_client row"
    documented = [part.strip() for part in row.group(1).split(",")]
    actual = []
    for parameter in inspect.signature(apps.async_client).parameters.values():
        if parameter.kind is parameter.KEYWORD_ONLY and "*" not in actual:
            actual.append("*")
        if parameter.kind is parameter.VAR_KEYWORD:
            actual.append(f"**{parameter.name}")
        elif parameter.default is parameter.empty:
            actual.append(parameter.name)
        else:
            actual.append(f"{parameter.name}={parameter.default!r}".replace("'", '"'))
    assert documented == actual


@pytest.mark.parametrize("attribute", ["outer_connection", "lend_timeout"])
def test_the_isolated_database_escape_hatches_are_documented(attribute: str) -> None:
    assert f"`{attribute}" in DOC or f"{attribute}=" in DOC
