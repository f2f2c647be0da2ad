"""Every setting with a wrong type or range is refused by an error naming its variable."""

from __future__ import annotations

import pytest

from pooltender import ConfigurationError, DatabaseSettings, load_database_settings

URL = "sqlite+aiosqlite:///app.db"

# For each option: values of the wrong type, and values out of range.
BAD = {
    "URL": ["", "not a url", "nosuchdb+nodriver://x/y"],
    "POOL_SIZE": ["five", "1.5", "-1"],
    "MAX_OVERFLOW": ["ten", "-2"],
    "POOL_TIMEOUT": ["soon", "0", "-1"],
    "POOL_RECYCLE": ["hourly", "-2"],
    "POOL_PRE_PING": ["maybe", "2"],
    "PRE_PING_WINDOW": ["brief", "-0.5"],
    "OVERFLOW_IDLE_TIMEOUT": ["a while", "-1"],
    "MAX_WAITING": ["many", "-2"],
    "LEAK_THRESHOLD": ["long", "0"],
    "STATEMENT_TIMEOUT": ["fast", "0", "-3"],
    "PGBOUNCER": ["sometimes"],
    "CONNECT_TIMEOUT": ["x", "0"],
    "CONNECT_RETRIES": ["thrice", "-1"],
    "WARMUP": ["all", "-1"],
    "RETRY_AFTER": ["later", "0"],
    "SYNC": ["perhaps"],
    "START_MODE": ["lazy", "1"],
    "READ_ONLY": ["yes please"],
}


def test_every_option_has_bad_values() -> None:
    assert set(BAD) == set(DatabaseSettings.OPTIONS)


@pytest.mark.parametrize("prefix", ["DATABASE_", "DATABASE_ANALYTICS_"])
@pytest.mark.parametrize(
    ("suffix", "value"), [(suffix, value) for suffix, values in BAD.items() for value in values]
)
def test_bad_value_names_the_variable(prefix: str, suffix: str, value: str) -> None:
    environ = {f"{prefix}URL": URL, f"{prefix}{suffix}": value}
    with pytest.raises(ConfigurationError) as caught:
        load_database_settings(environ, env_file=None)
    assert caught.value.variable == f"{prefix}{suffix}"
    assert str(caught.value).startswith(f"{prefix}{suffix}: ")
