"""The paced send loop's schedule: records go out in steps, on time, and all of them."""

from __future__ import annotations

import pytest

from producers.loadgen import _CHUNK, _STEP_S, _TICK_S, paced_step


def simulate(rate: float, total: int, turn_s: float) -> list[tuple[float, int]]:
    """Run the schedule on a clock that advances ``turn_s`` per turn plus every sleep."""
    now, done, sends = 0.0, 0, []
    while done < total:
        count, wait = paced_step(now, done, total, rate)
        if count:
            sends.append((now, count))
            done += count
        now += wait + turn_s
    return sends


@pytest.mark.parametrize("turn_s", [0.0, 0.00007, 0.002])
def test_a_fast_rate_ships_steps_not_a_trickle(turn_s: float) -> None:
    # 15,000 records/s: a loop that turns every 70 us used to ship one or two records a turn.
    sends = simulate(15_000, 15_000, turn_s)
    assert sum(count for _, count in sends) == 15_000
    step = int(15_000 * _STEP_S)
    assert all(count >= step for _, count in sends[:-1])
    assert len(sends) <= 1 / _STEP_S + 1


def test_no_record_leaves_before_it_is_due_nor_a_step_after() -> None:
    rate = 2_000.0
    sent = 0
    for at, count in simulate(rate, 3_000, 0.0001):
        # the newest record of a shipment is due by then, the oldest is at most a step late
        assert (sent + count - 1) / rate <= at + 1e-9
        assert at - sent / rate <= _STEP_S + 0.0002
        sent += count


def test_a_slow_rate_ships_each_record_when_due_and_sleeps_at_most_a_tick() -> None:
    sends = simulate(2.0, 4, 0.0)
    assert [count for _, count in sends] == [1, 1, 1, 1]
    assert [round(at, 3) for at, _ in sends] == [0.0, 0.5, 1.0, 1.5]
    assert paced_step(0.0, 1, 4, 2.0) == (0, _TICK_S)


def test_the_last_records_go_even_when_less_than_a_step() -> None:
    assert paced_step(10.0, 990, 1_000, 15_000) == (10, 0.0)


def test_a_backlog_is_taken_in_chunks() -> None:
    count, wait = paced_step(100.0, 0, 10**9, 15_000)
    assert (count, wait) == (_CHUNK, 0.0)
