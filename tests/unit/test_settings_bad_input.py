"""Every setting with a wrong type or range is refused by an error naming its variable."""

from __future__ import annotations

import pytest

from pooltender import (
    ConfigurationError,
    DatabaseSettings,
    PooltenderSettings,
    load_database_settings,
    load_pooltender_settings,
)

URL = "sqlite+aiosqlite:///app.db"

# For each option: values of the wrong type, and values out of range.
BAD = {
    "URL": ["", "not a url", "nosuchdb+nodriver://x/y"],
    "POOL_SIZE": ["five", "1.5", "-1"],
    "MAX_OVERFLOW": ["ten", "-2"],
    "POOL_TIMEOUT": ["soon", "0", "-1", "nan", "inf"],
    "POOL_RECYCLE": ["hourly", "-2"],
    "POOL_PRE_PING": ["maybe", "2"],
    "PRE_PING_WINDOW": ["brief", "-0.5", "inf"],
    "OVERFLOW_IDLE_TIMEOUT": ["a while", "-1", "nan"],
    "MAX_WAITING": ["many", "-2"],
    "LEAK_THRESHOLD": ["long", "0", "inf"],
    # inf crashed the engine build; 0.0004 s rounds to 0 ms, which turns the server's
    # timeout off; 1e23 s is past what PostgreSQL accepts.
    "STATEMENT_TIMEOUT": ["fast", "0", "-3", "inf", "nan", "0.0004", "1e23"],
    "PGBOUNCER": ["sometimes"],
    "CONNECT_TIMEOUT": ["x", "0", "inf", "1e30"],
    "CONNECT_RETRIES": ["thrice", "-1"],
    "WARMUP": ["all", "-1"],
    "RETRY_AFTER": ["later", "0", "1e9"],
    "SYNC": ["perhaps"],
    "START_MODE": ["lazy", "1"],
    "READ_ONLY": ["yes please"],
    "FAILOVER_DETECTION": ["if needed", "2"],
}


POOLTENDER_BAD = {
    "DATABASES": ["primary,my-db", "9lives"],
    "DEBUG_TOKEN": [],  # any text is a token; its own checks are the access rule's
    "LOOP_BLOCK_THRESHOLD": ["soon", "-1", "inf", "nan"],
    "HEALTH_LOG_INTERVAL": ["often", "-1", "inf"],
    "MONITOR": ["maybe"],
    "METRICS_DIR": [],  # any path; a directory it cannot write is reported when publishing
}


def test_every_option_has_bad_values() -> None:
    assert set(BAD) == {f.upper() for f in DatabaseSettings.options()}
    assert set(POOLTENDER_BAD) == {f.upper() for f in PooltenderSettings.options()}


@pytest.mark.parametrize(
    ("suffix", "value"),
    [(suffix, value) for suffix, values in POOLTENDER_BAD.items() for value in values],
)
def test_a_bad_pooltender_value_names_the_variable_in_one_line(suffix: str, value: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_pooltender_settings({f"POOLTENDER_{suffix}": value}, env_file=None)
    assert caught.value.variable == f"POOLTENDER_{suffix}"
    message = str(caught.value)
    assert message.startswith(f"POOLTENDER_{suffix}: ")
    assert "\n" not in message


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
