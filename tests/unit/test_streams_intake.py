"""The batch intake between faust's fetch loop and the worker: batches, backpressure, stopping,
and the acks of the batches' records."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import pytest

from streams.batch_consumer import BatchConsumer, BatchIntake


async def test_take_returns_at_once_when_a_batch_is_full() -> None:
    intake = BatchIntake("events", high_water=100)
    intake.put([1, 2, 3])
    intake.put([4, 5])
    epoch, batch = await asyncio.wait_for(intake.take(most=4, within=60.0), 5.0)
    assert (epoch, batch) == (0, [1, 2, 3, 4])
    assert len(intake) == 1


async def test_take_waits_at_most_within_for_a_batch_to_fill() -> None:
    intake = BatchIntake("events", high_water=100)
    intake.put([1])
    _, batch = await asyncio.wait_for(intake.take(most=10, within=0.05), 5.0)
    assert batch == [1]


async def test_wake_makes_a_waiting_take_return_even_with_nothing() -> None:
    intake = BatchIntake("events", high_water=100)
    taking = asyncio.create_task(intake.take(most=10, within=60.0))
    await asyncio.sleep(0.01)
    assert not taking.done()
    intake.wake()
    assert await asyncio.wait_for(taking, 5.0) == (0, [])
    intake.put([1])  # and while filling: with what it has
    taking = asyncio.create_task(intake.take(most=10, within=60.0))
    await asyncio.sleep(0.01)
    intake.wake()
    assert await asyncio.wait_for(taking, 5.0) == (0, [1])
    intake.put([2])  # a wake is used up by the take it ended
    _, batch = await asyncio.wait_for(intake.take(most=1, within=60.0), 5.0)
    assert batch == [2]


async def test_a_revocation_while_filling_discards_what_was_gathered() -> None:
    intake = BatchIntake("events", high_water=100)
    intake.put([1, 2])
    taking = asyncio.create_task(intake.take(most=10, within=0.5))
    await asyncio.sleep(0)
    intake.revoke()
    intake.put([7])
    epoch, batch = await asyncio.wait_for(taking, 5.0)
    assert (epoch, batch) == (1, [7])


async def test_a_full_intake_holds_the_fetch_loop_until_taken_or_told_to_stop() -> None:
    intake = BatchIntake("events", high_water=2)
    intake.put([1, 2, 3])
    waiting = asyncio.create_task(intake.wait_for_room(lambda: False))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    await intake.take(most=2, within=0.0)
    await asyncio.wait_for(waiting, 5.0)

    intake.put([4, 5, 6])
    stop = False
    held = asyncio.create_task(intake.wait_for_room(lambda: stop))
    await asyncio.sleep(0.01)
    stop = True
    await asyncio.wait_for(held, 5.0)  # noticed within its 0.1 s poll


async def test_a_cancellation_that_arrives_with_records_is_not_lost() -> None:
    # The worker stops its batch loop by cancelling it. With ``asyncio.wait_for`` inside
    # ``take`` (Python 3.11), a cancellation arriving in the same turn as new records was
    # swallowed: ``take`` went on waiting, and a stopping worker never exited.
    intake = BatchIntake("events", high_water=100)
    intake.put([1])
    taking = asyncio.create_task(intake.take(most=10, within=0.5))
    await asyncio.sleep(0)  # now waiting for more records
    intake.put([2])  # wakes it ...
    taking.cancel()  # ... as the cancellation arrives
    with pytest.raises(asyncio.CancelledError):
        await taking


def test_an_offset_acked_twice_in_one_call_is_listed_once() -> None:
    """A batch holding an offset twice acks it twice: faust's commit takes the first run of
    consecutive offsets in its acked list, which a copy would cut short."""
    tp = ("events", 0)
    acked: dict[Any, list[int]] = defaultdict(list)
    index: dict[Any, set[int]] = defaultdict(set)
    stand_in = SimpleNamespace(
        app=SimpleNamespace(topics=SimpleNamespace(acks_enabled_for=lambda _: True), monitor=None),
        intake=SimpleNamespace(topic="events"),
        _committed_offset={tp: 5},
        _acked_index=index,
        _acked=acked,
        _n_acked=0,
        _waiting_for_ack=None,
    )
    assert BatchConsumer.ack_offsets(stand_in, {tp: [5, 6, 7, 6, 7, 8, 4]}) == 4  # type: ignore[arg-type]
    assert sorted(acked[tp]) == [5, 6, 7, 8]
    assert BatchConsumer.ack_offsets(stand_in, {tp: [8, 9]}) == 1  # type: ignore[arg-type]
    assert sorted(acked[tp]) == [5, 6, 7, 8, 9]
