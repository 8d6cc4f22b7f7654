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

    def __init__(self, hold: int) -> None:
        self.log: dict[int, list[tuple[bytes | None, bytes | None]]] = {0: [], 1: []}
        self.calls = 0
        self.hold = hold
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
        done = asyncio.get_running_loop().create_future()
        done.set_result(
            SimpleNamespace(topic_partition=SimpleNamespace(partition=partition), offset=base)
        )
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
