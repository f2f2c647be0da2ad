"""The README's settings table is the one the settings' declarations render."""

from __future__ import annotations

from pathlib import Path

from pooltender.settings import DatabaseSettings, PooltenderSettings, settings_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_shows_the_table_the_declarations_render() -> None:
    text = README.read_text()
    start = text.index("<!-- settings table: generated")
    end = text.index("<!-- end of settings table -->")
    shown = text[start:end].split("\n", 1)[1].strip()
    assert shown == settings_table(), "run `make docs` to regenerate the README's table"


def test_every_option_has_a_row_with_its_meaning() -> None:
    table = settings_table()
    for model in (DatabaseSettings, PooltenderSettings):
        for field, info in model.options().items():
            variable = f"{model.PREFIX}{field.upper()}"
            if field == "read_only":
                variable = "DATABASE_<NAME>_READ_ONLY"
            assert f"| `{variable}` |" in table
            assert info.description
