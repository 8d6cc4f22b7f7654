"""The view `botwatch top` shows: window records folded per bot, pure."""

from __future__ import annotations

from typing import Any

import orjson

from streams.statsview import StatsView


def window(bot: str, start: str, count: int, errors: int = 0, **extra: Any) -> bytes:
    record = {
        "bot_id": bot,
        "window_start": f"2026-11-23T10:{start}:00Z",
        "window_end": "",
        "window_size_s": 60,
        "count": count,
        "errors": errors,
        "successes": 4,
        "failures": 1,
        "retries": 0,
        "error_rate": errors / count,
        "failure_rate": 0.2,
        "duration_ms": {"count": 0, "p50": None, "p95": None, "p99": None},
        "late_events_excluded": 0,
        "schema_version": 1,
    }
    return orjson.dumps({**record, **extra})


def test_each_bot_shows_its_newest_window_and_totals_of_all_it_had() -> None:
    view = StatsView()
    for value in (window("a", "01", 10, 1), window("a", "03", 20, 10), window("a", "02", 30)):
        view.add(value)
    (row,) = view.rows()
    assert row.last["window_start"] == "2026-11-23T10:03:00Z"
    assert (row.windows, row.events, row.errors) == (3, 60, 11)
    assert row.failure_rate == 3 / 15


def test_a_window_published_again_replaces_itself() -> None:
    view = StatsView()
    view.add(window("a", "01", 10, 1))
    view.add(window("a", "01", 10, 1))
    assert view.rows()[0].events == 10


def test_bots_are_ordered_by_their_newest_window_and_limited() -> None:
    view = StatsView()
    view.add(window("quiet", "01", 100, 50))  # was bad, now fine
    view.add(window("quiet", "02", 100, 0))
    view.add(window("noisy", "02", 10, 5))
    view.add(window("busy", "02", 1000, 10, duration_ms={"p95": 900.0}))
    view.add(window("calm", "02", 10, 1, duration_ms={"p95": 30}))
    names = lambda rows: [r.bot_id for r in rows]  # noqa: E731
    assert names(view.rows()) == ["noisy", "calm", "busy", "quiet"]
    assert names(view.rows("events")) == ["busy", "quiet", "calm", "noisy"]
    assert names(view.rows("p95")) == ["busy", "calm", "noisy", "quiet"]
    assert names(view.rows("bot", limit=2)) == ["busy", "calm"]
    assert names(view.rows("failure-rate")) == ["busy", "calm", "noisy", "quiet"]  # ties: name


def test_values_that_are_not_window_records_are_counted_and_left_out() -> None:
    view = StatsView()
    for value in (b"not json", b"[1]", None, orjson.dumps({"bot_id": "a", "count": "3"})):
        view.add(value)
    view.add(window("a", "01", 10))
    assert (view.records, view.skipped, len(view)) == (5, 4, 1)
    assert view.rows()[0].last_duration("p95") is None


def test_a_live_view_forgets_windows_published_before_its_span() -> None:
    view = StatsView()
    view.add(window("a", "01", 10, 1), published_ms=1_000)
    view.add(window("a", "02", 20, 2), published_ms=2_000)
    view.add(window("gone", "01", 5), published_ms=1_000)
    view.add(window("a", "01", 10, 1), published_ms=3_000)  # published again: kept, newer
    view.forget_before(2_500)
    (row,) = view.rows()
    assert (row.bot_id, row.windows, row.events) == ("a", 1, 10)
    assert row.last["window_start"] == "2026-11-23T10:01:00Z"
    view.forget_before(10_000)
    assert len(view) == 0
