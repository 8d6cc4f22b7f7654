"""``send_batched`` against the real broker, read back with kcat (a client nobody here wrote)."""

import asyncio
import subprocess
from collections import defaultdict
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import MessageSizeTooLargeError, RecordListTooLargeError
from support import headers_of, read_topic, unique_name

from botwatch.settings import Settings
from streams.produce import OutRecord, send_batched

PARTITIONS = 4
MURMUR2 = ["-X", "topic.partitioner=murmur2_random"]
KEYS = [f"bot-{i}".encode() for i in range(12)]


async def _send(
    bootstrap: str, topic: str, records: list[OutRecord], alone: bool = False, **config: Any
) -> list[tuple[list[int], BaseException]]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", **config)
    await producer.start()
    try:
        return await send_batched(producer, topic, records, alone=alone)
    finally:
        await producer.stop()


async def _admin(bootstrap: str, op: str, topic: str, max_message_bytes: int = 0) -> None:
    """Create ``topic`` (2 partitions, ``max.message.bytes``) or delete it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if op == "create":
            config = {"max.message.bytes": str(max_message_bytes)}
            await admin.create_topics([NewTopic(topic, 2, 1, topic_configs=config)])
        else:
            await admin.delete_topics([topic])
    finally:
        await admin.close()


def _partitions_by_kcat(bootstrap: str, topic: str) -> dict[str, int]:
    """Where librdkafka's murmur2 partitioner (Java's) puts each of ``KEYS``."""
    lines = b"".join(key + b"\t" + key + b"\n" for key in KEYS)
    subprocess.run(
        ["kcat", "-b", bootstrap, "-P", "-t", topic, "-K", "\t", *MURMUR2],
        input=lines,
        check=True,
        timeout=60,
    )
    return {r["key"]: r["partition"] for r in read_topic(bootstrap, topic)}


def test_records_land_where_a_java_client_puts_their_key_in_order_with_headers(
    stack: Settings, make_topic: Any
) -> None:
    topic = make_topic("batched", partitions=PARTITIONS)
    records = [
        OutRecord(KEYS[i % len(KEYS)], b"%d" % i, 1_700_000_000_000 + i, [("n", b"%d" % i)])
        for i in range(600)
    ]
    # A small batch size: each partition's records go out in several batches.
    refused = asyncio.run(_send(stack.kafka_bootstrap, topic, records, max_batch_size=1024))
    assert refused == []

    stored = read_topic(stack.kafka_bootstrap, topic)
    assert len(stored) == len(records)
    expected = _partitions_by_kcat(stack.kafka_bootstrap, make_topic("kcat", PARTITIONS))
    assert len(set(expected.values())) > 1  # the keys do spread
    values_by_key: dict[str, list[int]] = defaultdict(list)
    for r in stored:
        assert r["partition"] == expected[r["key"]], r
        assert r["ts"] == 1_700_000_000_000 + int(r["payload"])
        assert headers_of(r) == {"n": r["payload"]}
        values_by_key[r["key"]].append(int(r["payload"]))
    for key, values in values_by_key.items():
        assert values == sorted(values), f"{key}: out of order"


def test_a_batch_the_topic_refuses_as_too_large_is_named_and_the_rest_is_stored(
    stack: Settings,
) -> None:
    topic = unique_name("botwatch-test.batched-small")
    asyncio.run(_admin(stack.kafka_bootstrap, "create", topic, max_message_bytes=20_000))
    try:
        big = 7
        records = [
            OutRecord(KEYS[i % 3], (b"x" * 50_000) if i == big else b"%d" % i, None, [])
            for i in range(40)
        ]
        # The default batch size (16 KiB): the 50,000-byte record goes out alone.
        refused = asyncio.run(_send(stack.kafka_bootstrap, topic, records))
        assert [members for members, _ in refused] == [[big]]
        assert isinstance(refused[0][1], (MessageSizeTooLargeError, RecordListTooLargeError))
        stored = sorted(int(r["payload"]) for r in read_topic(stack.kafka_bootstrap, topic))
        assert stored == [i for i in range(40) if i != big]
    finally:
        asyncio.run(_admin(stack.kafka_bootstrap, "delete", topic))


def test_alone_sends_each_record_in_a_batch_of_its_own(stack: Settings) -> None:
    """A topic whose limit is below the producer's batch size refuses whole batches of
    small records; sent alone, each fits."""
    topic = unique_name("botwatch-test.batched-alone")
    asyncio.run(_admin(stack.kafka_bootstrap, "create", topic, max_message_bytes=20_000))
    try:
        records = [OutRecord(KEYS[0], b"%04d" % i + b"y" * 996, None, []) for i in range(40)]
        bootstrap = stack.kafka_bootstrap
        refused = asyncio.run(_send(bootstrap, topic, records, max_batch_size=65_536))
        assert [members for members, _ in refused] == [list(range(40))]
        assert read_topic(bootstrap, topic) == []
        again = asyncio.run(_send(bootstrap, topic, records, alone=True, max_batch_size=65_536))
        assert again == []
        stored = [int(r["payload"][:4]) for r in read_topic(bootstrap, topic)]
        assert stored == list(range(40))
    finally:
        asyncio.run(_admin(stack.kafka_bootstrap, "delete", topic))


def test_nothing_to_send_asks_nothing(stack: Settings) -> None:
    async def send_nothing() -> list[tuple[list[int], BaseException]]:
        # Not started: any request would fail.
        producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap)
        return await send_batched(producer, "no-such-topic", [])

    assert asyncio.run(send_nothing()) == []
