"""Per-bot state: outcomes, late counting, closing, and exactly-once in effect across crashes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import LEVELS, STATUSES
from streams.bot_state import (
    MAX_REPLAYED_PER_WINDOW,
    BotState,
    Outcome,
    PartitionState,
    event_digest,
)
from streams.watermark import PartitionClock

W = 60_000
L = 30_000
IDLE = 120_000
T0 = 1_795_428_000_000  # 2026-11-23T10:00:00Z
OFFSET0 = 1_000


def clock() -> PartitionClock:
    return PartitionClock(lateness_ms=L, idle_close_ms=IDLE, window_ms=W)


def ev(level: str = "info", **fields: Any) -> dict[str, Any]:
    return {"level": level, **fields}


def test_apply_counts_an_event_once() -> None:
    c, bot = clock(), BotState("b")
    c.observe(T0, 0)
    assert bot.apply(10, ev(), T0, c) is Outcome.APPLIED
    assert bot.apply(10, ev(), T0, c) is Outcome.DUPLICATE
    assert bot.apply(9, ev(), T0, c) is Outcome.DUPLICATE
    assert bot.apply(11, ev("error"), T0 + 1, c) is Outcome.APPLIED
    assert bot.last_offset == 11
    assert bot.windows[T0].count == 2
    assert bot.windows[T0].errors == 1


def test_two_copies_of_a_replayed_event_count_once_while_its_window_is_open() -> None:
    c, bot = clock(), BotState("b")
    c.observe(T0, 0)
    assert bot.apply(10, ev(event_id="e1"), T0, c) is Outcome.APPLIED  # read, not replayed
    assert bot.apply_replayed(20, ev(event_id="e2"), T0 + 1, c) is Outcome.APPLIED
    assert bot.apply_replayed(30, ev(event_id="e2"), T0 + 1, c) is Outcome.DUPLICATE
    assert bot.apply_replayed(31, ev(event_id="e3"), T0 + W, c) is Outcome.APPLIED
    assert bot.last_offset == 31
    assert bot.apply_replayed(31, ev(event_id="e4"), T0, c) is Outcome.DUPLICATE  # read again
    # Kept through the changelog: a restart between the copies counts the second one too.
    again = BotState.from_dict(orjson.loads(orjson.dumps(bot.to_dict())))
    assert again.apply_replayed(40, ev(event_id="e2"), T0 + 2, c) is Outcome.DUPLICATE
    assert again.apply_replayed(41, ev(event_id="e1"), T0, c) is Outcome.APPLIED
    assert [again.windows[T0].count, again.windows[T0 + W].count] == [3, 1]
    # Forgotten with the window: a copy after the close is late.
    c.observe(T0 + W + L, 0)
    assert [w["count"] for w in again.close_ready(c.watermark)] == [3]
    assert again.to_dict()["replayed"] == {str(T0 + W): [event_digest("e3")]}
    assert again.apply_replayed(42, ev(event_id="e2"), T0, c) is Outcome.LATE
    c.observe(T0 + 2 * W + L, 0)
    again.close_ready(c.watermark)
    assert "replayed" not in again.to_dict()


def test_replayed_events_remembered_per_window_are_bounded() -> None:
    """A replay of a busy bot's whole window made its table entry grow past Kafka's 1 MB."""
    c, bot = clock(), BotState("b")
    c.observe(T0, 0)
    n = MAX_REPLAYED_PER_WINDOW + 100
    for i in range(n):
        bot.apply_replayed(i, ev(event_id=f"{i:0128d}"), T0 + i % W, c)
    assert bot.windows[T0].count == n
    assert len(orjson.dumps(bot.to_dict())) < 100_000
    assert bot.apply_replayed(n, ev(event_id=f"{0:0128d}"), T0, c) is Outcome.DUPLICATE
    # Past the bound, a copy counts again (documented).
    late_copy = ev(event_id=f"{n - 1:0128d}")
    assert bot.apply_replayed(n + 1, late_copy, T0, c) is Outcome.APPLIED


def test_events_within_lateness_count_and_beyond_it_are_late() -> None:
    c, bot = clock(), BotState("b")
    c.observe(T0 + W + L - 1, 0)
    assert bot.apply(1, ev(), T0 + W + L - 1, c) is Outcome.APPLIED
    assert bot.apply(2, ev(), T0, c) is Outcome.APPLIED  # window [T0, T0+W) still open
    c.observe(T0 + W + L, 1)  # watermark reaches T0 + W: that window closes
    assert bot.apply(3, ev(), T0 + W + L, c) is Outcome.APPLIED
    assert bot.apply(4, ev(), T0 + W - 1, c) is Outcome.LATE
    assert bot.apply(4, ev(), T0 + W - 1, c) is Outcome.DUPLICATE  # late ones are not recounted
    assert bot.apply(5, ev(), T0 + W, c) is Outcome.APPLIED  # boundary: the next window
    assert (bot.late_pending, bot.late_total, bot.last_offset) == (1, 1, 5)
    assert bot.windows[T0].count == 1  # the late event was excluded


def test_late_events_are_reported_on_the_next_closed_window() -> None:
    c, bot = clock(), BotState("b")
    c.observe(T0 + 3 * W, 0)
    assert bot.apply(1, ev(), T0 + 2 * W, c) is Outcome.APPLIED
    assert bot.apply(2, ev(), T0 + 3 * W, c) is Outcome.APPLIED
    assert bot.apply(3, ev(), T0, c) is Outcome.LATE
    assert bot.apply(4, ev(), T0 + 1, c) is Outcome.LATE
    assert bot.close_ready(c.watermark) == []  # nothing closed yet: the count waits
    c.observe(T0 + 4 * W + L, 1)
    records = bot.close_ready(c.watermark)
    assert [(r["window_start"], r["count"], r["late_events_excluded"]) for r in records] == [
        ("2026-11-23T10:02:00Z", 1, 2),
        ("2026-11-23T10:03:00Z", 1, 0),
    ]
    assert (bot.late_pending, bot.late_total) == (0, 2)
    assert bot.windows == {}


def test_late_events_of_a_bot_without_open_windows_wait_for_its_next_window() -> None:
    c, bot = clock(), BotState("b")
    c.observe(T0 + 5 * W, 0)
    assert bot.apply(1, ev(), T0, c) is Outcome.LATE
    assert bot.next_close_ms is None
    assert bot.close_ready(c.watermark) == []
    assert bot.apply(2, ev(), T0 + 5 * W, c) is Outcome.APPLIED
    c.observe(T0 + 7 * W, 1)
    [record] = bot.close_ready(c.watermark)
    assert (record["count"], record["late_events_excluded"]) == (1, 1)


def test_close_ready_closes_at_the_window_end_exactly() -> None:
    bot = BotState("b")
    c = clock()
    c.observe(T0, 0)
    bot.apply(1, ev(duration_ms=5), T0, c)
    bot.apply(2, ev(), T0 + W, c)
    assert bot.next_close_ms == T0 + W
    assert bot.close_ready(T0 + W - 1) == []
    [record] = bot.close_ready(T0 + W)
    assert record["bot_id"] == "b"
    assert record["window_size_s"] == 60
    assert record["duration_ms"]["count"] == 1
    assert list(bot.windows) == [T0 + W]
    assert bot.next_close_ms == T0 + 2 * W


def test_a_rejected_event_leaves_no_trace() -> None:
    c, bot = clock(), BotState("b")
    c.observe(T0, 0)
    before = bot.to_dict()
    with pytest.raises(ValueError):
        bot.apply(1, ev("fatal"), T0, c)
    assert bot.to_dict() == before
    assert bot.apply(1, ev(), T0, c) is Outcome.APPLIED


def test_window_size_is_part_of_the_state() -> None:
    c = PartitionClock(lateness_ms=0, window_ms=300_000)
    bot = BotState("b", window_ms=300_000)
    c.observe(T0 + 299_999, 0)
    bot.apply(1, ev(), T0 + 299_999, c)
    restored = BotState.from_dict(orjson.loads(orjson.dumps(bot.to_dict())))
    c.observe(T0 + 300_000, 1)
    [record] = restored.close_ready(c.watermark)
    assert (record["window_size_s"], record["window_end"]) == (300, "2026-11-23T10:05:00Z")
    with pytest.raises(ValueError):
        BotState("b", window_ms=1500)


def test_partition_state_knows_whose_windows_closed() -> None:
    part = PartitionState(clock())
    bots = {name: BotState(name) for name in ("a", "b", "c")}
    part.clock.observe(T0 + 2 * W, 0)
    bots["a"].apply(1, ev(), T0 + W, part.clock)
    bots["b"].apply(2, ev(), T0 + 2 * W, part.clock)
    for name, bot in bots.items():
        part.track(name, bot.next_close_ms)
    assert part.due() == []
    part.clock.observe(T0 + 2 * W + L, 1)
    assert part.due() == ["a"]
    restored = PartitionState.from_dict(
        orjson.loads(orjson.dumps(part.to_dict())), now_wall_ms=5, lateness_ms=L
    )
    assert restored.due() == ["a"]
    assert restored.clock.watermark == part.clock.watermark
    bots["a"].close_ready(part.clock.watermark)
    part.track("a", bots["a"].next_close_ms)
    assert part.due() == []
    assert part.next_close == {"b": T0 + 3 * W}


# --- exactly once in effect: a crash, a restore and a replay change nothing ---------------


@dataclass(frozen=True)
class Rec:
    bot: str
    ts: int
    wall: int
    event: dict[str, Any]


RECORD = st.tuples(
    st.sampled_from(["bot-a", "bot-b", "bot-c", "ns:bot-d"]),
    st.integers(0, 20_000),  # how far the producers' clock moves on
    st.integers(0, 150_000),  # how far behind it this event is (beyond L + W: late)
    st.sampled_from(LEVELS),
    st.sampled_from((None, *STATUSES)),
    st.one_of(st.none(), st.integers(0, 10**6), st.floats(1e-3, 1e6)),
    st.integers(0, 20),  # 0: the partition went quiet before this record (idle close)
)


def build(raw: list[tuple[str, int, int, str, str | None, float | None, int]]) -> list[Rec]:
    records, cursor, wall = [], T0, 0
    for bot, advance, behind, level, status, duration, quiet in raw:
        cursor += advance
        wall += 10 + (IDLE if quiet == 0 else 0)
        event: dict[str, Any] = {"level": level}
        if status is not None:
            event["status"] = status
        if duration is not None:
            event["duration_ms"] = duration
        records.append(Rec(bot, cursor - behind, wall, event))
    return records


def snapshot(part: PartitionState, bots: dict[str, BotState]) -> bytes:
    """What the changelog-backed tables hold: JSON."""
    return orjson.dumps(
        {"part": part.to_dict(), "bots": {name: b.to_dict() for name, b in bots.items()}}
    )


def run(
    records: list[Rec], crashes: dict[int, int]
) -> tuple[dict[str, dict[str, Any]], bytes, list[Outcome], list[Outcome]]:
    """Process ``records`` like the worker; at position k in ``crashes`` the process dies
    after k, restarts from a snapshot taken at k and re-reads from position ``crashes[k]``.

    Returns the emitted records by ``_id``, the final state, the outcome of every first
    reading of a record and the outcomes of re-read records.
    """
    part = PartitionState(clock())
    bots: dict[str, BotState] = {}
    emitted: dict[str, dict[str, Any]] = {}
    first: list[Outcome] = []
    replayed: list[Outcome] = []

    def close_due() -> None:
        for name in part.due():
            for record in bots[name].close_ready(part.clock.watermark):
                key = f"{record['bot_id']}|{record['window_start']}|{record['window_size_s']}"
                assert emitted.get(key, record) == record  # a re-emission is identical
                emitted[key] = record
            part.track(name, bots[name].next_close_ms)

    pos, replay_until, restart_wall = 0, -1, 0
    pending = dict(crashes)
    while pos < len(records):
        rec = records[pos]
        replaying = pos <= replay_until
        # A restarted worker re-reads its backlog at once: no idle time in between.
        wall = restart_wall if replaying else rec.wall
        if not replaying and part.clock.idle_close(wall):
            close_due()
        part.clock.observe(rec.ts, wall)
        bot = bots.setdefault(rec.bot, BotState(rec.bot))
        outcome = bot.apply(OFFSET0 + pos, rec.event, rec.ts, part.clock)
        (replayed if replaying else first).append(outcome)
        part.track(rec.bot, bot.next_close_ms)
        close_due()
        if pos in pending:
            data = orjson.loads(snapshot(part, bots))
            part = PartitionState.from_dict(
                data["part"], now_wall_ms=rec.wall, lateness_ms=L, idle_close_ms=IDLE
            )
            bots = {name: BotState.from_dict(b) for name, b in data["bots"].items()}
            restart_wall, replay_until = rec.wall, pos
            pos = pending.pop(pos)
            continue
        pos += 1
    if records:  # the partition goes quiet: everything closes
        assert part.clock.idle_close(records[-1].wall + IDLE) or not part.next_close
        close_due()
    return emitted, snapshot(part, bots), first, replayed


@settings(max_examples=200, deadline=None)
@given(
    st.lists(RECORD, min_size=1, max_size=120),
    st.lists(st.tuples(st.integers(0, 119), st.integers(0, 40)), max_size=4),
)
def test_a_crash_and_replay_from_an_earlier_offset_changes_nothing(
    raw: list[tuple[str, int, int, str, str | None, float | None, int]],
    crash_points: list[tuple[int, int]],
) -> None:
    records = build(raw)
    crashes = {k % len(records): max(0, k % len(records) - back) for k, back in crash_points}

    emitted, final, outcomes, _ = run(records, {})
    emitted2, final2, outcomes2, replayed = run(records, crashes)

    assert emitted2 == emitted
    assert final2 == final
    assert outcomes2 == outcomes
    assert all(o is Outcome.DUPLICATE for o in replayed)
    assert len(replayed) == sum(k - j + 1 for k, j in crashes.items())

    # Nothing dropped silently: every event is in a window record or counted as late.
    state = orjson.loads(final)["bots"]
    late = sum(b["late_total"] for b in state.values())
    assert sum(r["count"] for r in emitted.values()) + late == len(records)
    assert outcomes.count(Outcome.LATE) == late
    reported = sum(r["late_events_excluded"] for r in emitted.values())
    assert reported + sum(b["late_pending"] for b in state.values()) == late
    assert all(b["windows"] == {} for b in state.values())


def test_the_replay_scenario_covers_late_events_and_idle_closes() -> None:
    """The property above on a fixed stream that has late events, idle closes and a crash."""
    raw = [
        ("bot-a", 1_000, 0, "info", "started", None, 5),
        ("bot-b", 20_000, 0, "error", "failure", 120.0, 5),
        ("bot-a", 20_000, 0, "info", "success", 800.0, 5),
        ("bot-a", 20_000, 0, "warning", "retry", None, 5),
        # After a quiet spell the idle close shuts 10:01-10:02, which this record belongs to.
        ("bot-b", 20_000, 0, "info", None, None, 0),
        ("bot-a", 0, 30_000, "info", None, None, 5),  # 10:00:51, closed long ago
        ("bot-b", 20_000, 150_000, "critical", None, None, 5),  # far behind: late
        ("bot-a", 20_000, 0, "info", "success", 950.0, 5),  # 10:02:01, a new window
    ]
    records = build(raw)
    emitted, final, outcomes, _ = run(records, {})
    assert outcomes == [Outcome.APPLIED] * 4 + [Outcome.LATE] * 3 + [Outcome.APPLIED]
    rows = sorted(
        (r["bot_id"], r["window_start"], r["count"], r["late_events_excluded"])
        for r in emitted.values()
    )
    assert rows == [
        ("bot-a", "2026-11-23T10:00:00Z", 2, 0),
        ("bot-a", "2026-11-23T10:01:00Z", 1, 0),
        ("bot-a", "2026-11-23T10:02:00Z", 1, 1),  # bot-a's late event, reported here
        ("bot-b", "2026-11-23T10:00:00Z", 1, 0),
    ]
    # bot-b sent nothing timely after its two late events: they wait in its totals.
    state = orjson.loads(final)["bots"]["bot-b"]
    assert (state["late_pending"], state["late_total"]) == (2, 2)
    for k in range(len(records)):
        for j in range(k + 1):
            emitted2, final2, outcomes2, replayed = run(records, {k: j})
            assert (emitted2, final2, outcomes2) == (emitted, final, outcomes)
            assert replayed == [Outcome.DUPLICATE] * (k - j + 1)


def test_without_the_offset_check_a_replay_would_count_twice() -> None:
    """The property can fail: a state that forgot its offsets double-counts the replay."""
    c, bot = clock(), BotState("b")
    c.observe(T0, 0)
    bot.apply(1, ev(), T0, c)
    forgetful = BotState.from_dict({**bot.to_dict(), "last_offset": -1})
    assert forgetful.apply(1, ev(), T0, c) is Outcome.APPLIED
    assert forgetful.windows[T0].count == 2
