"""``FaustTable.save`` writing a changelog on the real broker, read back with kcat.

The faust table around it is a stand-in (a dict store that records persisted offsets): what
is tested is what reaches the changelog, and in which order.
"""

import asyncio
from typing import Any

from aiokafka import AIOKafkaProducer
from support import create_when_deleted, delete_topics, last_values, read_topic, table_stand_in

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


def test_a_changelog_made_again_gets_the_whole_state_of_a_partition_at_its_next_save(
    stack: Settings, make_topic: Any
) -> None:
    """A changelog deleted and made again holds only what is written from then on; a save
    that lands below the offsets written before writes its partition's local state again,
    forgets the old offsets of the others, and ``write_again`` writes a partition that has
    nothing new to write."""
    topic = make_topic("changelog", partitions=2)

    async def run() -> tuple[dict[int, int], dict[bytes, bytes]]:
        producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap, acks="all")
        await producer.start()
        try:
            inner = table_stand_in(topic, producer)
            table = FaustTable(inner, "events", partitions=2)
            await table.save([(0, "p|0", b"part-0"), (1, "p|1", b"part-1")])
            await table.save([(0, f"b|0|bot-{i}", b"old-%d" % i) for i in range(30)])
            await table.save([(1, f"b|1|bot-{i}", b"one-%d" % i) for i in range(30, 40)])
            await table.save([(0, "b|0|bot-29", None)])  # deleted: not written again
            await delete_topics(stack.kafka_bootstrap, [topic])
            await create_when_deleted(stack.kafka_bootstrap, topic, 2)
            await table.save([(0, "b|0|bot-0", b"new-0")])  # lands at offset 0
            assert _by_key(read_topic(stack.kafka_bootstrap, topic), 1) == {}
            # Past the new log's end: faust's recovery would refuse it (ConsistencyError).
            assert inner.data.persisted[1] == -1
            await table.write_again([1])
            return inner.data.persisted, dict(inner.data)
        finally:
            await producer.stop()

    persisted, store = asyncio.run(run())
    records = read_topic(stack.kafka_bootstrap, topic)
    for partition in (0, 1):
        mine = {k.decode(): v.decode() for k, v in store.items() if k[2:3] == b"%d" % partition}
        assert _by_key(records, partition) == mine
        ends = [r["offset"] for r in records if r["partition"] == partition]
        assert persisted[partition] == max(ends)
    assert _by_key(records, 0)["b|0|bot-0"] == "new-0"
    assert "b|0|bot-29" not in _by_key(records, 0)
    assert len(_by_key(records, 0)) == 30  # the partition entry and 29 bots


def _by_key(records: list[dict[str, Any]], partition: int) -> dict[str, str]:
    return last_values(records, partition)
