"""Resending spooled events of unknown outcome without duplicating them.

An event handed to Kafka whose acknowledgement never came (the broker went away mid-request)
may be in the topic already. It is spooled marked *unknown* (see ``producers.spool``), and
before it is sent again the sender reads back the tail of the partition it went to and drops
the events whose ``event_id`` is there. Resending under a new producer id would otherwise
write it a second time: the idempotent producer deduplicates only within one producer id.

This module holds the decisions (pure, unit-tested without a broker): which records a check
looks for, where to start reading each partition, and what to do with each spooled record
given what the broker holds; and ``read_back``, the bounded read itself.

The read of a partition starts after the last offset this process saw acknowledged on it
before the first event of unknown outcome was sent; when none is known (after a restart), at
the records written since the events' creation time (UUIDv7 ids carry it) minus a minute, by
``offsets_for_times``; when that is not known either, ``max_records`` back from the end. It
never reads more than ``max_records`` per partition, and stops once every id was found. An
event is dropped only when its id was seen on the broker; anything not seen is sent again, so
the worst a too-short look-back can do is the duplicate this avoids, never a loss.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import orjson
from aiokafka import TopicPartition
from aiokafka.partitioner import murmur2

from producers.spool import Record

__all__ = [
    "LOOKBACK_SLACK_MS",
    "READ_BACK_MAX_RECORDS",
    "Target",
    "Verdict",
    "event_id_of",
    "partition_for",
    "plan",
    "read_back",
    "start_offset",
    "targets",
    "to_check",
    "uuid7_ms",
]

LOOKBACK_SLACK_MS = 60_000
"""Read from this long before the oldest event's creation (clock steps, LogAppendTime)."""

READ_BACK_MAX_RECORDS = 100_000
"""At most this many records are read back per partition."""


class Verdict(NamedTuple):
    """The outcome of one check: the event ids looked for, and those the broker has."""

    checked: frozenset[str]
    found: frozenset[str]


class Target(NamedTuple):
    """One partition to read back, and what to look for in it."""

    topic: str
    partition: int
    ids: frozenset[str]
    keys: frozenset[bytes]
    after: int | None
    """Last offset acknowledged to this process before these events were sent, if known."""
    since_ms: int | None
    """Earliest time (ms) a record of these events can carry, if known."""


def event_id_of(value: bytes) -> str | None:
    """The ``event_id`` of a record's JSON value; None when it has none (cannot be checked)."""
    try:
        event = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(event, dict):
        return None
    event_id = event.get("event_id")
    return event_id if isinstance(event_id, str) and event_id else None


def uuid7_ms(event_id: str) -> int | None:
    """The Unix milliseconds a UUIDv7 was made at; None for anything else."""
    text = event_id.replace("-", "")
    if len(text) != 32:
        return None
    try:
        value = int(text, 16)
    except ValueError:
        return None
    if (value >> 76) & 0xF != 7:
        return None
    return value >> 80


def partition_for(key: bytes, partitions: Sequence[int]) -> int:
    """The partition aiokafka's default partitioner picks for ``key`` (murmur2, like Java's)."""
    ordered = sorted(partitions)
    index: int = (murmur2(key) & 0x7FFFFFFF) % len(ordered)
    return ordered[index]


def to_check(records: Sequence[Record]) -> list[Record]:
    """The leading records of unknown outcome that carry an event id: what a check looks for."""
    out: list[Record] = []
    for record in records:
        if not record.unknown:
            break
        if event_id_of(record.value) is not None:
            out.append(record)
    return out


def plan(records: Sequence[Record], verdict: Verdict | None) -> list[bool]:
    """What to do with the longest prefix of ``records`` that can be acted on now.

    One flag per record of that prefix: True when the broker already has it (drop it, it was
    delivered), False to send it. Records of known outcome (never handed to Kafka) and records
    of unknown outcome without an event id (nothing to look for) are sent. A record of unknown
    outcome that ``verdict`` did not look for ends the prefix: it needs a check first, so an
    empty list means "check the head".
    """
    out: list[bool] = []
    for record in records:
        if not record.unknown:
            out.append(False)
            continue
        event_id = event_id_of(record.value)
        if event_id is None:
            out.append(False)
            continue
        if verdict is None or event_id not in verdict.checked:
            break
        out.append(event_id in verdict.found)
    return out


def targets(
    records: Iterable[Record],
    partitions: Mapping[str, Sequence[int]],
    floors: Mapping[tuple[str, int], int],
) -> list[Target]:
    """The partitions to read back for ``records``, each with the ids and keys it may hold.

    ``partitions`` lists each topic's partitions (a topic missing there is skipped: nothing
    to read, its records are sent again); ``floors`` maps (topic, partition) to the last offset
    known acknowledged before the records were sent.
    """
    grouped: dict[tuple[str, int], tuple[set[str], set[bytes], list[int | None]]] = {}
    for record in records:
        event_id = event_id_of(record.value)
        if event_id is None or not partitions.get(record.topic):
            continue
        partition = partition_for(record.key, partitions[record.topic])
        ids, keys, times = grouped.setdefault((record.topic, partition), (set(), set(), []))
        ids.add(event_id)
        keys.add(record.key)
        times.append(uuid7_ms(event_id))
    out = []
    for (topic, partition), (ids, keys, times) in grouped.items():
        since = None
        if all(t is not None for t in times):
            since = max(0, min(t for t in times if t is not None) - LOOKBACK_SLACK_MS)
        out.append(
            Target(
                topic,
                partition,
                frozenset(ids),
                frozenset(keys),
                floors.get((topic, partition)),
                since,
            )
        )
    return out


def start_offset(
    target: Target,
    beginning: int,
    end: int,
    by_time: int | None,
    max_records: int,
) -> int:
    """Where to start reading ``target``'s partition, whose records are [beginning, end).

    ``by_time`` is the offset ``offsets_for_times`` gave for ``target.since_ms`` (None: no
    record that recent, or not asked). The start never lies more than ``max_records`` before
    ``end``.
    """
    if target.after is not None and target.after < end:
        start = target.after + 1
    elif target.since_ms is not None:
        start = end if by_time is None else by_time
    else:
        start = end - max_records
    return min(end, max(start, beginning, end - max_records))


async def read_back(
    consumer: Any,
    wanted: Sequence[Target],
    max_records: int,
) -> set[str]:
    """The ids of ``wanted`` found in their partitions' tails, read with ``consumer``.

    ``consumer`` is a started ``AIOKafkaConsumer`` without a group; the caller stops it and
    bounds the time this takes. Raises when the broker cannot be read: then nothing is known.
    """
    by_tp = {TopicPartition(t.topic, t.partition): t for t in wanted}
    if not by_tp:
        return set()
    tps = list(by_tp)
    consumer.assign(tps)
    ends = await consumer.end_offsets(tps)
    beginnings = await consumer.beginning_offsets(tps)
    ask = {
        tp: t.since_ms
        for tp, t in by_tp.items()
        if t.since_ms is not None and not (t.after is not None and t.after < ends[tp])
    }
    times = await consumer.offsets_for_times(ask) if ask else {}
    remaining: dict[Any, int] = {}
    for tp, target in by_tp.items():
        at_time = times.get(tp)
        start = start_offset(
            target,
            beginnings[tp],
            ends[tp],
            None if at_time is None else at_time.offset,
            max_records,
        )
        if start < ends[tp]:
            consumer.seek(tp, start)
            remaining[tp] = ends[tp]
        else:
            consumer.pause(tp)
    looked_for = frozenset().union(*(t.ids for t in wanted))
    found: set[str] = set()
    while remaining and not looked_for <= found:
        batch = await consumer.getmany(*remaining, timeout_ms=200, max_records=10_000)
        for tp, messages in batch.items():
            target = by_tp[tp]
            for message in messages:
                if message.key in target.keys:
                    event_id = event_id_of(message.value)
                    if event_id in target.ids:
                        found.add(event_id)
        for tp in list(remaining):
            if await consumer.position(tp) >= remaining[tp]:
                del remaining[tp]
                with contextlib.suppress(Exception):
                    consumer.pause(tp)
    return found
