"""Rewrite the settings table of a Markdown file from pooltender's settings declarations.

    python scripts/settings-table.py README.md
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from pooltender.settings import settings_table

START = "<!-- settings table: generated from src/pooltender/settings.py by `make docs` -->"
END = "<!-- end of settings table -->"


def main(path: str) -> None:
    file = Path(path)
    text = file.read_text()
    pattern = re.compile(re.escape(START) + r"\n.*?" + re.escape(END), re.S)
    if not pattern.search(text):
        sys.exit(f"{path}: no settings table markers")
    file.write_text(pattern.sub(lambda _: f"{START}\n{settings_table()}\n{END}", text))


if __name__ == "__main__":
    main(sys.argv[1])
