"""Every credential of a URL is masked, in the one function every output uses."""

from __future__ import annotations

import pytest

from pooltender import DatabaseSettings, redact_url
from pooltender.engine import describe_error
from pooltender.secrets import credentials

SECRET = "S3cret-x"


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql+asyncpg://app:{SECRET}@db/app",
        f"postgresql+asyncpg://app@db/app?password={SECRET}",
        f"postgresql+psycopg://app@db/app?sslpassword={SECRET}&sslmode=require",
        f"mysql+aiomysql://app@db/app?passwd={SECRET}",
        f"postgresql+asyncpg://app@db/app?Password={SECRET}",
        f"postgresql+asyncpg://app@db/app?api_token={SECRET}",
    ],
)
def test_every_credential_is_masked(url: str) -> None:
    shown = redact_url(url)
    assert SECRET not in shown
    assert "***" in shown
    settings = DatabaseSettings(url=url)
    assert SECRET not in repr(settings) and SECRET not in str(settings)
    assert SECRET in credentials(settings.url)
    error = ConnectionError(f"could not connect with {url} (password {SECRET})")
    assert SECRET not in describe_error(error, credentials(settings.url))


def test_what_is_not_a_credential_stays() -> None:
    assert redact_url("postgresql+asyncpg://app@db:5433/app?sslmode=require") == (
        "postgresql+asyncpg://app@db:5433/app?sslmode=require"
    )


def test_an_unparseable_url_is_masked_too() -> None:
    shown = redact_url(f"postgresql://app:{SECRET}@db:notaport/app?password={SECRET}")
    assert SECRET not in shown


def test_a_multi_host_url_is_shown_readable_and_still_masked() -> None:
    url = (
        "postgresql+asyncpg://app:S3cr3t@/app?host=db1:5432&host=db2:5432"
        "&password=An0ther&target_session_attrs=read-write"
    )
    shown = "postgresql+asyncpg://app:***@/app?host=db1:5432&host=db2:5432&password=***"
    for text in (redact_url(url), repr(DatabaseSettings(url=url))):
        assert shown in text, text
        assert "%3A" not in text and "S3cr3t" not in text and "An0ther" not in text, text
    # A socket directory, and a value that only looks like an encoding ("%3A" written out).
    socket = redact_url(
        "postgresql+psycopg://app@/app?host=/var/run/postgresql&application_name=a%253Ab"
    )
    assert (
        socket == "postgresql+psycopg://app@/app?application_name=a%253Ab&host=/var/run/postgresql"
    )
