"""Window assignment, the window record of DESIGN.md, and coarse windows as merges."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import LEVELS, STATUSES
from schemas.rank import nearest_rank
from streams.windows import (
    WINDOW_MS,
    WindowStats,
    merge_windows,
    rfc3339,
    stats_id,
    window_start,
)

T0 = int(datetime(2026, 11, 23, 10, 0, tzinfo=UTC).timestamp() * 1000)

EVENT = st.fixed_dictionaries(
    {"level": st.sampled_from(LEVELS)},
    optional={
        "status": st.sampled_from(STATUSES),
        # Below MIN_INDEXABLE (1e-9 ms) a duration counts as 0 in the sketch, by design.
        "duration_ms": st.one_of(st.integers(0, 10**6), st.floats(1e-6, 1e7)),
    },
)


def event(level: str = "info", **fields: Any) -> dict[str, Any]:
    return {"level": level, **fields}


def stats_of(events: list[dict[str, Any]]) -> WindowStats:
    stats = WindowStats()
    for e in events:
        stats.add(e)
    return stats


def exact(values: list[float], q: float) -> float:
    return sorted(values)[nearest_rank(q, len(values))]


@pytest.mark.parametrize(
    ("ts", "start"),
    [
        (T0, T0),
        (T0 + 1, T0),
        (T0 + WINDOW_MS - 1, T0),
        (T0 + WINDOW_MS, T0 + WINDOW_MS),
        (0, 0),
        (WINDOW_MS - 1, 0),
    ],
)
def test_windows_include_their_start_and_exclude_their_end(ts: int, start: int) -> None:
    assert window_start(ts, WINDOW_MS) == start


@given(st.integers(0, 2**50), st.sampled_from([1000, 60_000, 300_000, 3_600_000]))
def test_every_time_falls_in_exactly_one_aligned_window(ts: int, size: int) -> None:
    start = window_start(ts, size)
    assert start % size == 0
    assert start <= ts < start + size


def test_rfc3339() -> None:
    assert rfc3339(T0) == "2026-11-23T10:00:00Z"
    assert rfc3339(T0 + 61_000) == "2026-11-23T10:01:01Z"
    assert rfc3339(T0 + 5) == "2026-11-23T10:00:00.005Z"
    assert rfc3339(0) == "1970-01-01T00:00:00Z"


def design_example_events() -> list[dict[str, Any]]:
    """Counts of DESIGN.md's example record: 120 events, 3 errors, 40 + 2 finished jobs."""
    events = [event("error"), event("error"), event("critical", status="failure")]
    events += [event("warning", status="retry") for _ in range(5)]
    events += [event("warning"), event("warning", status="failure")]
    events += [event("info", status="success", duration_ms=100 + i) for i in range(40)]
    events += [event("info", status="started", duration_ms=5000) for _ in range(2)]
    events += [event("info") for _ in range(68)]
    return events


def test_record_has_exactly_the_design_fields_and_values() -> None:
    record = stats_of(design_example_events()).to_record("invoice-bot", T0, 60)
    durations = record.pop("duration_ms")
    assert record == {
        "bot_id": "invoice-bot",
        "window_start": "2026-11-23T10:00:00Z",
        "window_end": "2026-11-23T10:01:00Z",
        "window_size_s": 60,
        "count": 120,
        "errors": 3,
        "successes": 40,
        "failures": 2,
        "retries": 5,
        "error_rate": 0.025,
        "failure_rate": 2 / 42,
        "levels": {"debug": 0, "info": 110, "warning": 7, "error": 2, "critical": 1},
        "late_events_excluded": 0,
        "schema_version": 1,
    }
    assert list(durations) == ["count", "sum", "min", "max", "mean", "p50", "p95", "p99"]
    values = [100.0 + i for i in range(40)] + [5000.0, 5000.0]
    assert durations["count"] == 42
    assert durations["sum"] == sum(values)
    assert (durations["min"], durations["max"]) == (100.0, 5000.0)
    assert durations["mean"] == sum(values) / 42
    for key, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        assert abs(durations[key] - exact(values, q)) <= 0.01 * exact(values, q)
    # Key order follows DESIGN.md, and the record is plain JSON.
    full = stats_of(design_example_events()).to_record("invoice-bot", T0, 60)
    assert list(full)[:4] == ["bot_id", "window_start", "window_end", "window_size_s"]
    assert list(full)[-3:] == ["duration_ms", "late_events_excluded", "schema_version"]
    assert orjson.loads(orjson.dumps(full)) == full


def test_rates_without_finished_jobs_or_events_are_zero() -> None:
    record = stats_of([event("error"), event("info", status="started")]).to_record("b", T0, 60)
    assert record["error_rate"] == 0.5
    assert record["failure_rate"] == 0.0
    only_failures = stats_of([event("info", status="failure")]).to_record("b", T0, 60)
    assert only_failures["failure_rate"] == 1.0
    empty = WindowStats().to_record("b", T0, 60)
    assert (empty["count"], empty["error_rate"], empty["failure_rate"]) == (0, 0.0, 0.0)


def test_a_window_without_durations_reports_nulls_not_zeros() -> None:
    record = stats_of([event("info"), event("warning", status="retry")]).to_record("b", T0, 60)
    assert record["duration_ms"] == {
        "count": 0,
        "sum": 0.0,
        "min": None,
        "max": None,
        "mean": None,
        "p50": None,
        "p95": None,
        "p99": None,
    }


def test_zero_durations_are_measurements() -> None:
    record = stats_of([event(duration_ms=0), event(duration_ms=0.0)]).to_record("b", T0, 60)
    assert record["duration_ms"]["count"] == 2
    assert record["duration_ms"]["min"] == 0.0
    assert record["duration_ms"]["p99"] == 0.0


def test_percentiles_never_leave_the_observed_range() -> None:
    record = stats_of([event(duration_ms=1000.0)]).to_record("b", T0, 60)
    durations = record["duration_ms"]
    assert durations["p50"] == durations["p99"] == durations["min"] == 1000.0


def test_an_unknown_level_or_a_bad_duration_counts_nothing() -> None:
    stats = stats_of([event("info")])
    before = stats.to_dict()
    with pytest.raises(ValueError, match="unknown level"):
        stats.add(event("fatal", status="failure"))
    assert stats.to_dict() == before
    with pytest.raises(ValueError):
        stats.add_duration(-1.0)
    assert stats.to_dict() == before


@settings(max_examples=150)
@given(st.lists(EVENT, max_size=60))
def test_stats_survive_a_json_round_trip(events: list[dict[str, Any]]) -> None:
    stats = stats_of(events)
    stats.late_events_excluded = 3
    restored = WindowStats.from_dict(orjson.loads(orjson.dumps(stats.to_dict())))
    assert restored == stats
    assert restored.to_record("b", T0, 60) == stats.to_record("b", T0, 60)


@settings(max_examples=150)
@given(st.lists(st.tuples(st.integers(0, 5 * WINDOW_MS - 1), EVENT), min_size=1, max_size=120))
def test_merging_minutes_equals_computing_five_minutes_directly(
    timed: list[tuple[int, dict[str, Any]]],
) -> None:
    minutes: dict[int, WindowStats] = {}
    for offset, e in timed:
        minutes.setdefault(window_start(T0 + offset, WINDOW_MS), WindowStats()).add(e)
    for i, stats in enumerate(minutes.values()):
        stats.late_events_excluded = i
    before = {start: stats.to_dict() for start, stats in minutes.items()}

    merged = merge_windows(minutes, 300)

    assert list(merged) == [T0]
    assert {start: stats.to_dict() for start, stats in minutes.items()} == before
    direct = stats_of([e for _, e in timed])
    direct.late_events_excluded = sum(range(len(minutes)))
    got, want = merged[T0].to_record("b", T0, 300), direct.to_record("b", T0, 300)
    got_d, want_d = got.pop("duration_ms"), want.pop("duration_ms")
    assert got == want  # every count and rate exactly
    assert got["window_end"] == "2026-11-23T10:05:00Z"
    assert got_d["count"] == want_d["count"]
    if want_d["count"] == 0:
        assert got_d == want_d
        return
    assert (got_d["min"], got_d["max"]) == (want_d["min"], want_d["max"])
    assert got_d["sum"] == pytest.approx(want_d["sum"], rel=1e-9)
    durations = [float(e["duration_ms"]) for _, e in timed if "duration_ms" in e]
    for key, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        truth = exact(durations, q)
        assert got_d[key] == want_d[key]  # merged sketches hold the same buckets
        assert abs(got_d[key] - truth) <= 0.01 * truth


def test_merge_windows_groups_by_coarse_window_and_accepts_stored_state() -> None:
    minutes = [
        (T0 + i * WINDOW_MS, stats_of([event("error" if i % 2 else "info", duration_ms=i)]))
        for i in range(12)
    ]
    stored = [(start, stats.to_dict()) for start, stats in minutes]
    five = merge_windows(stored, 300)
    assert list(five) == [T0, T0 + 300_000, T0 + 600_000]
    assert [s.count for s in five.values()] == [5, 5, 2]
    assert [s.errors for s in five.values()] == [2, 3, 1]
    hour = merge_windows(minutes, 3600)
    assert list(hour) == [T0]
    record = hour[T0].to_record("b", T0, 3600)
    assert (record["count"], record["errors"], record["window_end"]) == (
        12,
        6,
        "2026-11-23T11:00:00Z",
    )
    assert record["duration_ms"]["max"] == 11.0
    assert merge_windows([], 300) == {}


def test_merge_windows_rejects_sizes_and_starts_that_do_not_align() -> None:
    with pytest.raises(ValueError, match="not a multiple"):
        merge_windows({T0: WindowStats()}, 90)
    with pytest.raises(ValueError, match="not a multiple"):
        merge_windows({T0: WindowStats()}, 0)
    with pytest.raises(ValueError, match="not aligned"):
        merge_windows({T0 + 1: WindowStats()}, 300)


def test_stats_id_names_bot_window_and_size() -> None:
    assert stats_id("invoice-bot", T0, 60) == "invoice-bot|2026-11-23T10:00:00Z|60"
    assert stats_id("invoice-bot", T0, 300) != stats_id("invoice-bot", T0, 60)
    assert stats_id("a:1", T0, 60) != stats_id("a", T0, 60)
    record = stats_of([event()]).to_record("ns:bot.1", T0, 60)
    rebuilt = f"{record['bot_id']}|{record['window_start']}|{record['window_size_s']}"
    assert stats_id("ns:bot.1", T0, 60) == rebuilt
