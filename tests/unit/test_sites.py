"""Which frames are the user's: the checkout site filter."""

from __future__ import annotations

import asyncio
import os
import sysconfig
from pathlib import Path

import pytest
import sqlalchemy

import pooltender
from pooltender.monitor import sites

PACKAGE = Path(pooltender.__file__).parent


def test_libraries_and_pooltender_itself_are_library_frames() -> None:
    assert sites.is_library(asyncio.__file__)
    assert sites.is_library(sqlalchemy.__file__)
    assert sites.is_library(str(PACKAGE / "database.py"))
    assert sites.is_library(str(PACKAGE / "fastapi" / "dependencies.py"))
    assert sites.is_library("<string>")


def test_the_demo_and_installed_applications_are_user_code() -> None:
    import pooltender_demo  # an ordinary user of pooltender, outside its package

    assert not sites.is_library(pooltender_demo.__file__ or "")
    assert not sites.is_library(__file__)
    installed = os.path.join(sysconfig.get_paths()["purelib"], "shop", "routes.py")
    assert not sites.is_library(installed)


def test_site_packages_inside_the_stdlib_directory_is_not_stdlib(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The layout of python:3.x Docker images and pyenv without a virtual environment:
    # /usr/local/lib/python3.12/ holds the stdlib and site-packages/ beneath it.
    stdlib = tmp_path / "lib" / "python3"
    monkeypatch.setattr(sites, "_STDLIB_DIR", f"{stdlib}{os.sep}")
    monkeypatch.setattr(sites, "_SITE_DIRS", (f"{stdlib / 'site-packages'}{os.sep}",))
    monkeypatch.setattr(sites, "_verdicts", {})
    assert sites.is_library(str(stdlib / "json" / "decoder.py"))
    assert not sites.is_library(str(stdlib / "site-packages" / "shop" / "routes.py"))
