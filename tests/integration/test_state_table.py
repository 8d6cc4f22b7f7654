"""``FaustTable.save`` writing a changelog on the real broker, read back with kcat.

The faust table around it is a stand-in (a dict store that records persisted offsets): what
is tested is what reaches the changelog, and in which order.
"""

import asyncio
from typing import Any

from aiokafka import AIOKafkaProducer
from support import read_topic, table_stand_in

from botwatch.settings import Settings
from streams.app import FaustTable


def test_a_save_cancelled_on_the_way_still_reaches_the_changelog_before_the_next(
    stack: Settings, make_topic: Any
) -> None:
    """A timer's save cancelled at shutdown had stored its entries locally; the changelog
    must hold them too, and a later save of the same key must land after them."""
    topic = make_topic("changelog", partitions=2)

    async def run() -> dict[int, int]:
        producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap, acks="all")
        await producer.start()
        try:
            inner = table_stand_in(topic, producer)
            table = FaustTable(inner, "events")
            # Many batches (16 KiB each) per partition, and the keys the second save writes
            # again come last: the hand-over waits for room between batches.
            first = [(i % 2, f"k{i}", b"first-%d " % i + b"x" * 100) for i in range(2, 2_000)]
            first += [(0, "k0", b"first-0"), (1, "k1", b"first-1")]
            cancelled = asyncio.ensure_future(table.save(first))
            await asyncio.sleep(0)  # it stored its entries and waits for the hand-over
            cancelled.cancel()
            await table.save([(0, "k0", b"second-0"), (1, "k1", None)])
            assert cancelled.cancelled()
            assert inner.data[b"k0"] == b"second-0" and b"k1" not in inner.data
            return inner.data.persisted
        finally:
            await producer.stop()

    persisted = asyncio.run(run())
    records = read_topic(stack.kafka_bootstrap, topic)
    assert len(records) == 2_002
    last: dict[str, Any] = {}
    for r in sorted(records, key=lambda r: (r["partition"], r["offset"])):
        last[r["key"]] = r["payload"]
        assert r["partition"] == int(r["key"][1:]) % 2
    assert last["k0"] == "second-0"
    assert last["k1"] is None  # the tombstone came after the first value
    assert last["k2"].startswith("first-2 ")
    ends = {p: max(r["offset"] for r in records if r["partition"] == p) for p in (0, 1)}
    assert persisted == ends
