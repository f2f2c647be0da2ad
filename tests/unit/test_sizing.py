from __future__ import annotations

from typing import Any

import pytest

from pooltender.sizing import budget, core_ceiling, observe, recommend, usable_slots
from pooltender.stats import Snapshot


def test_the_textbook_case_recommends_six() -> None:
    rec = recommend(500, 0.010)
    assert rec.pool_size == 6  # 500 x 0.01 x 1.2 = 6, not 7 from float rounding
    assert rec.max_overflow == 3
    assert rec.max_waiting == 9
    assert rec.pool_timeout == 1.0
    assert "ceil(500 req/s x 0.01 s x 1.2) = ceil(6) = 6" in rec.formula
    assert rec.ceiling is None
    assert rec.pgbouncer is False


def test_load_spreads_over_processes() -> None:
    rec = recommend(1000, 0.05, workers=4, instances=2)
    # 1000 x 0.05 = 50 busy connections over 8 processes: 6.25 each, x 1.2 = 7.5 -> 8
    assert rec.concurrency == pytest.approx(6.25)
    assert rec.pool_size == 8
    assert "/ 8 processes" in rec.formula


def test_budget_and_slots() -> None:
    assert usable_slots(100, 3) == 97
    assert usable_slots(100, 3, 2) == 95
    assert usable_slots(2, 3) == 0
    assert budget(50, 1, 5, 10) == 750
    assert budget(2, 1, 5, -1) == 10  # unbounded overflow counts as none here
    assert core_ceiling(4) == 9


def test_ceiling_from_slots_caps_the_pool_and_calls_for_pgbouncer() -> None:
    rec = recommend(2000, 0.05, workers=10, instances=2, max_connections=100)
    # 97 usable / 20 processes = 4 per process; the load needs ceil(5 x 1.2) = 6
    assert rec.ceiling == 4
    assert rec.pool_size == 4
    assert rec.max_overflow == 0
    assert rec.pgbouncer is True
    assert "capped at the ceiling: 4" in rec.formula
    assert rec.budget is not None
    assert rec.usable is not None
    assert rec.budget <= rec.usable


def test_core_rule_of_thumb_is_the_lower_ceiling() -> None:
    rec = recommend(100, 0.1, max_connections=500, db_cores=2)
    assert rec.ceiling == 5  # 2 x 2 + 1 spindle
    assert rec.ceiling_reason is not None
    assert "cores 2" in rec.ceiling_reason
    assert rec.pool_size == 5
    assert rec.pgbouncer is True


def test_overflow_fits_under_the_ceiling() -> None:
    rec = recommend(100, 0.05, max_connections=10, reserved=0)
    assert rec.pool_size == 6
    assert rec.max_overflow == 3
    assert rec.pool_size + rec.max_overflow <= 10


def test_zero_load_still_gets_one_connection() -> None:
    assert recommend(0, 0).pool_size == 1


@pytest.mark.parametrize(("rps", "hold", "workers"), [(-1, 0.1, 1), (1, -0.1, 1), (1, 0.1, 0)])
def test_rejects_nonsense(rps: float, hold: float, workers: int) -> None:
    with pytest.raises(ValueError, match="must"):
        recommend(rps, hold, workers=workers)


def _doc(at: float, checkouts: int, routes: list[dict[str, Any]], p50: float) -> Snapshot:
    """A snapshot as ``size --from`` reads it: from a service's JSON document."""
    document = {
        "generated_at": at,
        "databases": {
            "primary": {
                "pool_size": 5,
                "max": 15,
                "checkouts": checkouts,
                "checked_out": 0,
                "available": 5,
                "waiting": 0,
                "timeouts": 0,
                "rejected": 0,
                "use_time": {"p50": p50},
                "routes": routes,
            }
        },
    }
    return Snapshot.from_json(document)


def test_observe_uses_the_mean_hold_of_the_routes() -> None:
    before = _doc(100.0, 1000, [{"route": "a", "checkouts": 900, "hold_total": 9.0}], 0.5)
    after = _doc(
        105.0,
        3500,
        [
            {"route": "a", "checkouts": 2900, "hold_total": 29.0},
            {"route": "b", "checkouts": 500, "hold_total": 15.0},
        ],
        0.5,
    )
    obs = observe(before, after)["primary"]
    assert obs.rps == pytest.approx(500.0)  # 2500 checkouts / 5 s
    # (20 s + 15 s) of holding over (2000 + 500) checkouts
    assert obs.hold_seconds == pytest.approx(35.0 / 2500)
    assert obs.hold_source == "mean hold time of the routes"
    assert obs.max == 15


def test_observe_falls_back_to_use_time_p50() -> None:
    obs = observe(_doc(0.0, 10, [], 0.02), _doc(2.0, 30, [], 0.02))["primary"]
    assert obs.rps == pytest.approx(10.0)
    assert obs.hold_seconds == pytest.approx(0.02)
    assert obs.hold_source == "use_time p50"


def test_observe_needs_time_to_pass() -> None:
    with pytest.raises(ValueError, match="newer"):
        observe(_doc(5.0, 1, [], 0.0), _doc(5.0, 2, [], 0.0))


def test_many_processes_get_a_pgbouncer_note() -> None:
    assert recommend(100, 0.01, workers=4, instances=2, max_connections=1000).notes
    assert not recommend(100, 0.01, workers=7, max_connections=1000).notes
