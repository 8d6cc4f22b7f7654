"""Silences on a compacted Kafka topic: written by ``botwatch alerts``, read by every worker.

The topic is the silences' changelog: key = silence id, value = the silence as JSON, and an
empty value (a tombstone) for one ended early by ``alerts unsilence``. Every worker reads it
whole from the beginning and follows it (no consumer group: each needs all of it), so a
silence reaches all workers within a poll, and a restarted worker starts with the same set.
Expired silences need no record: ``until`` ends them by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from schemas.background import Background
from streams.alerts import Silence, Silences

log = logging.getLogger("botwatch.silences")

POLL_MS = 500
RETRY_S = 5.0


def encode(silence: Silence) -> tuple[bytes, bytes]:
    return silence.id.encode(), orjson.dumps(silence.to_dict())


def apply(silences: Silences, key: bytes | None, value: bytes | None) -> None:
    """Apply one topic record; a record that is not a silence is skipped with a warning."""
    if key is None:
        return
    if not value:
        silences.remove(key.decode(errors="replace"))
        return
    try:
        silences.restore(Silence.from_dict(orjson.loads(value)))
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("skipping a malformed record on the silences topic (key %r): %s", key, exc)


async def publish(
    bootstrap: str, topic: str, records: Iterable[tuple[bytes, bytes | None]]
) -> None:
    """Write silence records (``None`` value: ended) and wait for the broker's acks."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        sent = [await producer.send(topic, value=value, key=key) for key, value in records]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def _follow(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """Start ``consumer`` on every partition of ``topic`` from the beginning.

    The topic is looked up first: a consumer subscribed to a missing topic only logs, per
    metadata refresh, that it cannot find it.
    """
    await consumer.start()
    if topic not in await consumer.topics():
        raise LookupError(
            f"the silences topic {topic!r} does not exist: run `botwatch setup` (or start a "
            "worker, which creates it)"
        )
    consumer.subscribe([topic])  # without a group: all partitions, no offsets committed
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10.0
    while not consumer.assignment():
        if loop.time() > deadline:
            raise TimeoutError(f"no partition of the silences topic {topic!r} was assigned")
        await asyncio.sleep(0.05)
    return sorted(consumer.assignment())


def _consumer(bootstrap: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )


async def read_all(bootstrap: str, topic: str, timeout_s: float = 10.0) -> Silences:
    """Every silence recorded on the topic (expired ones included), read to its end."""
    consumer = _consumer(bootstrap)
    silences = Silences()
    try:
        tps = await _follow(consumer, topic)
        ends = await consumer.end_offsets(tps)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            if loop.time() > deadline:
                raise TimeoutError(f"reading the silences topic {topic!r} took over {timeout_s}s")
            batches = await consumer.getmany(timeout_ms=POLL_MS)
            for records in batches.values():
                for record in records:
                    apply(silences, record.key, record.value)
    finally:
        await consumer.stop()
    return silences


class SilenceFeed:
    """Follows the silences topic into ``silences`` until stopped."""

    def __init__(self, bootstrap: str, topic: str, silences: Silences) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.silences = silences
        self._loop = Background(self._run, "silence-feed")
        self.failing: str | None = None

    async def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def _run(self) -> None:
        while True:
            consumer = _consumer(self.bootstrap)
            try:
                await _follow(consumer, self.topic)
                if self.failing is not None:
                    log.warning("reading the silences topic %s again", self.topic)
                    self.failing = None
                while True:
                    batches = await consumer.getmany(timeout_ms=POLL_MS)
                    for records in batches.values():
                        for record in records:
                            apply(self.silences, record.key, record.value)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.failing is None:
                    log.warning(
                        "cannot read the silences topic %s (%s); silences set meanwhile are "
                        "applied once it can be read again (retrying every %.0f s)",
                        self.topic,
                        exc,
                        RETRY_S,
                    )
                self.failing = str(exc)
                await asyncio.sleep(RETRY_S)
            finally:
                with contextlib.suppress(Exception):
                    await consumer.stop()
