"""Records sent as whole record batches, one per partition, past the producer's per-record path.

``AIOKafkaProducer.send`` costs each record a partitioner call (murmur2 in Python, and two
lists of the topic's partitions), a future, an accumulator lookup and an ack callback. A
batch's dead letters, closed windows and alerts are all known at once, so they are grouped
by partition here and appended to ``BatchBuilder``s (aiokafka's record-batch builder, in C),
one future per batch. Partitions are chosen by aiokafka's ``DefaultPartitioner``, the one
``send`` uses: a key lands where a plain ``send`` (or a Java client) would put it.
Measured (a stream of only malformed records, all dead-lettered, sink discarded): see
``decisions.md``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from itertools import chain
from typing import Any, NamedTuple

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder

_partitioner = DefaultPartitioner()


class OutRecord(NamedTuple):
    """A record to send: ``timestamp_ms`` None means now; ``partition`` None means the one
    the key hashes to."""

    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None
    headers: list[tuple[str, bytes]]
    partition: int | None = None


# Each batch handed over: the indexes of its records, and its future (the broker's answer:
# the RecordMetadata of its first record, or the error).
Sent = list[tuple[list[int], "asyncio.Future[Any]"]]


async def send_batched(
    producer: AIOKafkaProducer, topic: str, records: Iterable[OutRecord], *, alone: bool = False
) -> list[tuple[list[int], BaseException]]:
    """Send ``records`` and wait until the broker stored them.

    Returns the batches the broker refused, as the indexes of their records in ``records``
    and the error, so that the caller decides what each error means (a record too large for
    the topic, say); records of every other batch are stored. ``alone``: each record in a
    batch of its own, so that a refusal names that one record.
    """
    sent = await hand_over(producer, topic, records, alone=alone)
    results = await asyncio.gather(*(future for _, future in sent), return_exceptions=True)
    return [
        (members, result)
        for (members, _), result in zip(sent, results, strict=True)
        if isinstance(result, BaseException)
    ]


async def hand_over(
    producer: AIOKafkaProducer, topic: str, records: Iterable[OutRecord], *, alone: bool = False
) -> Sent:
    """Hand ``records`` to the producer in batches; the batches' futures say when they are
    stored.

    Records of one partition keep their order, and so do two calls to one partition when
    the second starts after the first returned. ``records`` is read once, each record
    appended as it comes: a generator that serializes them keeps only the open batches in
    memory (10,000 closed windows at once are megabytes of JSON). Raises what handing a
    batch over raises (the topic unknown after the producer's metadata wait, no room in
    time, the producer closed); the batches handed over before still go out.

    A partition's batch is taken only once its previous one left (one request in flight
    per broker): handing partitions over side by side instead measured the same (latency
    at a fixed 10k and 14k events/s), so they go one after the other.
    """
    pending = iter(records)
    first = next(pending, None)
    if first is None:
        return []
    await producer.client._wait_on_metadata(topic)
    metadata = producer.client.cluster
    all_partitions = sorted(metadata.partitions_for_topic(topic) or ())
    available = list(metadata.available_partitions_for_topic(topic) or ())
    partition_of: dict[bytes | None, int] = {}  # keys repeat (bot ids): hash each once
    open_batches: dict[int, tuple[BatchBuilder, list[int]]] = {}
    sent: Sent = []
    try:
        for index, (key, value, timestamp_ms, headers, chosen) in enumerate(
            chain((first,), pending)
        ):
            partition = chosen if chosen is not None else partition_of.get(key)
            if partition is None:
                partition = partition_of[key] = _partitioner(key, all_partitions, available)
            batch = open_batches.get(partition)
            if batch is not None:
                builder, members = batch
                if not alone and builder.append(
                    timestamp=timestamp_ms, key=key, value=value, headers=headers
                ):
                    members.append(index)
                    continue
                # Full (the producer's max batch size): send it, start the next with this one.
                # Closed: a record sent the usual way never joins it in the producer's queue.
                builder.close()
                future = await producer.send_batch(builder, topic, partition=partition)
                sent.append((members, future))
            builder = producer.create_batch()
            # A builder takes its first record whatever its size.
            builder.append(timestamp=timestamp_ms, key=key, value=value, headers=headers)
            open_batches[partition] = (builder, [index])
        for partition, (builder, members) in open_batches.items():
            builder.close()
            sent.append((members, await producer.send_batch(builder, topic, partition=partition)))
    except BaseException:
        # The caller gets this error, not the batches' answers: retrieve those (aiokafka
        # leaves a batch's error to its sender), so none is logged as never retrieved.
        for _, future in sent:
            future.add_done_callback(retrieve)
        raise
    return sent


def retrieve(future: asyncio.Future[Any]) -> None:
    """Mark ``future``'s error as seen (a done-callback for a future nobody awaits)."""
    if not future.cancelled():
        future.exception()
