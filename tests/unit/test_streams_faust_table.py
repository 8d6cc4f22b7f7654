"""``FaustTable.save``'s order of hand-overs, with a stand-in producer whose hand-over of a
batch can be held (a real one holds a partition's batch until its previous one left)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from support import table_stand_in

from streams.app import FaustTable


class _Builder:
    def __init__(self, room: int) -> None:
        self.records: list[tuple[bytes | None, bytes | None]] = []
        self.room = room
        self.closed = False

    def append(self, *, timestamp: Any, key: bytes | None, value: Any, headers: Any) -> Any:
        if self.closed or len(self.records) >= self.room:
            return None
        self.records.append((key, value))
        return object()

    def close(self) -> None:
        self.closed = True


class _Producer:
    """Two records a batch; the ``hold``-th batch handed over waits 50 ms before it is
    queued, as a real producer's does while the partition's previous batch is in flight."""

    def __init__(self, hold: int, slow: int | None = None) -> None:
        self.log: dict[int, list[tuple[bytes | None, bytes | None]]] = {0: [], 1: []}
        self.calls = 0
        self.hold = hold
        self.slow = slow  # a partition whose broker answers 50 ms late
        cluster = SimpleNamespace(
            partitions_for_topic=lambda topic: {0, 1},
            available_partitions_for_topic=lambda topic: {0, 1},
        )

        async def wait_on_metadata(topic: str) -> None:
            return None

        self.client = SimpleNamespace(cluster=cluster, _wait_on_metadata=wait_on_metadata)

    def create_batch(self) -> _Builder:
        return _Builder(room=2)

    async def send_batch(self, builder: _Builder, topic: str, *, partition: int) -> Any:
        self.calls += 1
        if self.calls == self.hold:
            await asyncio.sleep(0.05)
        base = len(self.log[partition])
        self.log[partition] += builder.records
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        answer = SimpleNamespace(topic_partition=SimpleNamespace(partition=partition), offset=base)
        if partition == self.slow:
            loop.call_later(0.05, done.set_result, answer)
        else:
            done.set_result(answer)
        return done


def test_a_save_started_while_another_hands_over_goes_after_it_on_every_partition() -> None:
    producer = _Producer(hold=2)  # the first save's second batch waits
    inner = table_stand_in("changelog", producer)
    table = FaustTable(inner, "events")

    async def run() -> None:
        first = asyncio.ensure_future(
            table.save([(0, "a", b"1"), (0, "b", b"1"), (0, "k", b"old")])
        )
        await asyncio.sleep(0.01)  # its first batch is queued, its second is held
        await asyncio.gather(first, table.save([(0, "k", b"new")]))

    asyncio.run(run())
    assert producer.log[0] == [(b"a", b"1"), (b"b", b"1"), (b"k", b"old"), (b"k", b"new")]
    assert inner.data[b"k"] == b"new"
    assert inner.data.persisted == {0: 3}


def _remade_table(owned: set[int] | None) -> tuple[_Producer, Any, FaustTable]:
    producer = _Producer(hold=0)
    inner = table_stand_in("changelog", producer)
    table = FaustTable(inner, "events", partitions=3, owned=(lambda: owned) if owned else None)
    return producer, inner, table


def test_a_save_landing_below_offsets_written_before_writes_the_owned_partitions_again() -> None:
    producer, inner, table = _remade_table(owned={0, 1})

    async def run() -> None:
        await table.save([(0, "p|0", b"p0"), (0, "b|0|x", b"x1"), (0, "b|0|y", b"y1")])
        await table.save([(1, "p|1", b"p1"), (1, "b|1|z", b"z1")])
        await table.save([(0, "b|0|x", b"x2")])
        producer.log = {0: [], 1: []}  # the changelog deleted and made again
        await table.save([(0, "b|0|y", b"y2")])  # offset 0, below the 3 written before

    asyncio.run(run())
    assert dict(producer.log[0][1:]) == {b"p|0": b"p0", b"b|0|x": b"x2", b"b|0|y": b"y2"}
    assert dict(producer.log[1]) == {b"p|1": b"p1", b"b|1|z": b"z1"}  # owned: written too
    assert inner.data.persisted == {0: 3, 1: 1}


def test_without_the_owned_partitions_only_the_remade_ones_are_written_again() -> None:
    producer, inner, table = _remade_table(owned=None)

    async def run() -> None:
        await table.save([(0, "p|0", b"p0"), (1, "p|1", b"p1"), (1, "b|1|z", b"z1")])
        producer.log = {0: [], 1: []}
        await table.save([(0, "p|0", b"p0b")])

    asyncio.run(run())
    assert producer.log[0] == [(b"p|0", b"p0b"), (b"p|0", b"p0b")]
    assert producer.log[1] == []
    # Partition 1's offset is of the old log, past the new one's end: faust's recovery would
    # refuse the store (ConsistencyError), so it reads the new log from its start instead.
    assert inner.data.persisted == {0: 1, 1: -1}


def test_a_lost_changelog_forgets_every_offset_but_those_of_partitions_kept() -> None:
    _, inner, table = _remade_table(owned=None)
    inner.data.persisted.update({0: 40, 1: 7})
    table.changelog_lost(keep=[1])
    assert inner.data.persisted == {0: -1, 1: 7}  # partition 2 never had one
    table.changelog_lost()
    assert inner.data.persisted == {0: -1, 1: -1}


def test_a_later_save_answered_first_is_not_taken_for_a_log_made_again() -> None:
    producer = _Producer(hold=0, slow=1)
    inner = table_stand_in("changelog", producer)
    table = FaustTable(inner, "events", partitions=2, owned=lambda: {0, 1})

    async def run() -> None:
        spanning = asyncio.ensure_future(table.save([(0, "b|0|a", b"1"), (1, "b|1|b", b"1")]))
        await asyncio.sleep(0)
        await table.save([(0, "b|0|a", b"2")])  # answered while partition 1 keeps the first
        await spanning

    asyncio.run(run())
    assert table.pending == set()
    assert producer.log == {0: [(b"b|0|a", b"1"), (b"b|0|a", b"2")], 1: [(b"b|1|b", b"1")]}
    assert inner.data.persisted == {0: 1, 1: 0}  # not moved back by the earlier save


def test_a_lost_changelog_leaves_the_owned_partitions_pending_until_written_again() -> None:
    producer, inner, table = _remade_table(owned={1})

    async def run() -> None:
        await table.save([(1, "p|1", b"p1")])
        table.changelog_lost()
        assert table.pending == {1}
        producer.log = {0: [], 1: []}
        await table.write_again(sorted(table.pending))

    asyncio.run(run())
    assert table.pending == set()
    assert producer.log[1] == [(b"p|1", b"p1")]
    assert inner.data.persisted == {1: 0}


def test_a_log_shorter_than_the_store_applied_is_written_again_for_those_partitions() -> None:
    producer, inner, table = _remade_table(owned={0, 1})

    async def run() -> list[list[int]]:
        await table.save([(0, "p|0", b"p0"), (0, "b|0|x", b"x1"), (1, "p|1", b"p1")])
        in_step = await table.mend_shorter_log({0: 2, 1: 1})
        # Made again elsewhere, and written to since on partition 1 only (its offset 3 is
        # past what this store applied from the old log).
        producer.log = {0: [], 1: [(b"b|1|other", b"o")] * 3}
        mended = await table.mend_shorter_log({0: 0, 1: 3})
        return [in_step, mended]

    assert asyncio.run(run()) == [[], [0]]
    assert dict(producer.log[0]) == {b"p|0": b"p0", b"b|0|x": b"x1"}
    assert len(producer.log[1]) == 3  # left alone
    assert table.pending == set()
    assert inner.data.persisted == {0: 1, 1: 0}


def test_a_changelog_lost_during_a_rebalance_leaves_every_forgotten_partition_pending() -> None:
    """The deletion starts a rebalance: the worker owned nothing at that moment, nothing was
    pending, and its partitions, owned again a moment later, were never written again."""
    owned: set[int] = set()
    producer, _, table = _remade_table(owned=None)
    table._owned = lambda: owned

    async def run() -> None:
        await table.save([(0, "p|0", b"p0"), (1, "p|1", b"p1")])
        table.changelog_lost()
        assert table.pending == {0, 1}
        owned.add(0)  # the rebalance ends
        producer.log = {0: [], 1: []}
        await table.write_again(sorted(table.pending & owned))

    asyncio.run(run())
    assert table.pending == {1}  # until it is owned here again
    assert producer.log[0] == [(b"p|0", b"p0")]
