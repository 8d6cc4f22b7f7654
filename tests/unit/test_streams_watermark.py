"""The partition clock: watermark, closing at the boundary, lateness, idle close, restore."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.watermark import NO_TIME, PartitionClock

W = 60_000  # window size
L = 30_000  # lateness
IDLE = 120_000
T0 = 1_795_428_000_000  # 2026-11-23T10:00:00Z, a window start


def clock() -> PartitionClock:
    return PartitionClock(lateness_ms=L, idle_close_ms=IDLE, window_ms=W)


def test_a_fresh_clock_has_no_watermark_and_nothing_is_late() -> None:
    c = clock()
    assert c.watermark == NO_TIME
    assert not c.is_late(0)
    assert not c.idle_close(10**15)


def test_watermark_trails_the_newest_event_by_the_lateness() -> None:
    c = clock()
    c.observe(T0 + 45_000, now_wall_ms=1)
    assert c.watermark == T0 + 15_000
    c.observe(T0 + 10_000, now_wall_ms=2)  # out of order: never moves back
    assert c.max_event_ms == T0 + 45_000
    assert c.watermark == T0 + 15_000


def test_a_window_closes_exactly_when_the_watermark_reaches_its_end() -> None:
    c = clock()
    c.observe(T0 + W + L - 1, now_wall_ms=1)
    assert not c.is_closed(T0 + W)
    assert not c.is_late(T0 + W - 1)  # last millisecond of the window: still counted
    assert not c.is_late(T0)  # a whole window behind, within lateness: counted
    c.observe(T0 + W + L, now_wall_ms=2)
    assert c.watermark == T0 + W
    assert c.is_closed(T0 + W)
    assert c.is_late(T0 + W - 1)
    assert c.is_late(T0)
    assert not c.is_late(T0 + W)  # first millisecond of the next window


def test_events_beyond_the_lateness_are_late() -> None:
    c = clock()
    c.observe(T0 + 10 * W, now_wall_ms=1)
    assert c.is_late(T0 + 9 * W - L - 1)
    assert not c.is_late(T0 + 10 * W - L)


def test_idle_close_closes_every_window_holding_an_observed_event() -> None:
    c = clock()
    c.observe(T0 + 5_000, now_wall_ms=1_000)
    assert not c.idle_close(1_000 + IDLE - 1)
    assert not c.is_late(T0 + 59_999)
    assert c.idle_close(1_000 + IDLE)
    assert c.watermark == T0 + W
    assert c.is_late(T0 + 59_999)
    assert not c.is_late(T0 + W)
    assert not c.idle_close(1_000 + 5 * IDLE)  # nothing more to close
    # Newer events move the watermark on from there, never back.
    c.observe(T0 + W + 1_000, now_wall_ms=1_000 + 5 * IDLE)
    assert c.watermark == T0 + W
    c.observe(T0 + 3 * W, now_wall_ms=1_000 + 5 * IDLE + 1)
    assert c.watermark == T0 + 3 * W - L


def test_activity_postpones_idle_close() -> None:
    c = clock()
    c.observe(T0, now_wall_ms=0)
    c.observe(T0, now_wall_ms=IDLE - 1)  # an old record is activity too
    assert not c.idle_close(IDLE)
    c.touch(2 * IDLE)  # a partition resumed after backpressure is not idle
    assert not c.idle_close(2 * IDLE + IDLE - 1)
    assert c.idle_close(3 * IDLE)


def test_a_restore_keeps_event_time_and_counts_as_activity() -> None:
    c = clock()
    c.observe(T0 + 5_000, now_wall_ms=0)
    data = orjson.loads(orjson.dumps(c.to_dict()))
    restored = PartitionClock.from_dict(
        data, now_wall_ms=10 * IDLE, lateness_ms=L, idle_close_ms=IDLE, window_ms=W
    )
    assert (restored.max_event_ms, restored.watermark) == (c.max_event_ms, c.watermark)
    assert not restored.idle_close(10 * IDLE + IDLE - 1)  # the downtime is not idleness
    assert c.idle_close(10 * IDLE)  # the clock that never stopped would close


def test_a_restore_with_more_lateness_does_not_reopen_windows() -> None:
    c = clock()
    c.observe(T0 + W + L, now_wall_ms=0)
    restored = PartitionClock.from_dict(c.to_dict(), now_wall_ms=0, lateness_ms=2 * L)
    assert restored.watermark == T0 + W
    assert restored.is_late(T0)


@given(st.lists(st.integers(T0, T0 + 100 * W), min_size=1, max_size=50), st.integers(0, 49))
def test_replaying_records_changes_nothing(times: list[int], restart: int) -> None:
    c = clock()
    for wall, ts in enumerate(times):
        c.observe(ts, wall)
    state = c.to_dict()
    for wall, ts in enumerate(times[restart % len(times) :]):
        c.observe(ts, wall)
    assert c.to_dict() == state
    assert c.max_event_ms == max(times)
    assert c.watermark == max(times) - L


def test_bad_configuration_is_rejected() -> None:
    with pytest.raises(ValueError):
        PartitionClock(lateness_ms=-1)
    with pytest.raises(ValueError):
        PartitionClock(idle_close_ms=0)
    with pytest.raises(ValueError):
        PartitionClock(window_ms=0)
