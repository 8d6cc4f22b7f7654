"""The Faust app: topics, the changelog-backed window table, the agent, timers, web.

Faust is used for what it does well (consumer group membership, partition assignment,
changelog-backed tables with recovery, offset commits after a producer flush); the batch
logic lives in ``streams.processor`` and the window logic in plain classes. Two of faust's
sharp edges are handled here:

- a batch is acked only once it is durable: its writes run in a task of their own (the
  next batch is routed meanwhile, ``BatchProcessor.submit``), a failed one is retried in
  place with every batch after it, and on shutdown the batches in flight are finished (or,
  past the grace period, left un-acked so their offsets are never committed);
- table writes pick their partition from faust's "current event", which a batch does not
  have: ``streams.partition_context`` names the partition explicitly;
- faust's per-message consumer path (a message, an event, a queue and a task per record)
  cost most of the worker's CPU: records of the events topic bypass it in whole fetched
  batches (``streams.batch_consumer``) and are acked in bulk once their batch is durable;
- faust's worker drives a terminal spinner from log records: to feed it, it lowers the root
  logger to DEBUG, and every ``log.debug`` of aiokafka and faust (several per record sent)
  then builds a record nobody prints. ``Worker.run`` keeps the spinner, and so the root
  logger's level, out of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any, Final, NamedTuple, cast

import faust
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordListTooLargeError
from faust.transport.drivers.aiokafka import Producer as AIOKafkaFaustProducer
from faust.types import TP
from prometheus_client import CollectorRegistry

from schemas.log_throttle import flush_throttled, throttle_handlers
from schemas.sink import Sink
from streams.alerting import AlertStage, Receivers
from streams.alerts import Rule, Silences, load_rules
from streams.batch_consumer import BatchConsumer, BatchIntake
from streams.broker_probe import BrokerProbe
from streams.config import StreamsConfig
from streams.deadletters.kafka import KafkaUnavailable, max_message_bytes
from streams.dlq import DEFAULT_MAX_MESSAGE_BYTES, DLQ_MAX_MESSAGE_BYTES, TRUNCATED, fit_record
from streams.metrics import WorkerMetrics
from streams.partition_context import PartitionMarker, in_partition
from streams.processor import BatchProcessor, DeadLetter, Record
from streams.produce import OutRecord, Sent, hand_over, retrieve, send_batched
from streams.silences import SilenceFeed
from streams.state_offsets import FORGOTTEN, end_offsets, forget_past_the_end, past_the_end
from streams.topics import TopicSpec, committed_offsets, ensure_topics
from streams.web import WebServer, build_web_app

log = logging.getLogger("botwatch.worker")

SHUTDOWN_GRACE_S = 30.0
# How often receivers that re-send firing alerts (Alertmanager) get their current values.
ALERT_REFRESH_S = 15.0
# How often a stopping worker repeats the cancellation of its batch loop until it ended.
CANCEL_AGAIN_S = 1.0
RETRY_MAX_S = 30.0
# Batches whose writes are in flight at once: the next one is routed meanwhile, so the worker's
# CPU and OpenSearch's work overlap. Measured end to end (bench_e2e, 100k events): 1 batch
# ~20k/s, 2 ~19k/s, 3 ~25-28k/s, 4 ~24k/s.
PIPELINE_DEPTH = 3


# faust opens one RocksDB per partition with 3 memtables of 64 MB and a 2 GB block cache
# each: with 10,000 bots rewriting their entries, the memtables alone took the worker past
# 300 MB. The state is small (~2 kB per bot) and read back only on recovery. Peak RSS of
# bench_worker's 10,000 bots: 335 MB with faust's memtables, 260 MB with 4 MB, 229 MB with
# 1 MB, at the same rate.
ROCKSDB_OPTIONS: dict[str, int] = {
    "write_buffer_size": 1 << 20,
    "max_write_buffer_number": 2,
    "block_cache_size": 8 << 20,
}


class _InFlight(NamedTuple):
    epoch: int
    records: list[Record]
    task: asyncio.Task[None]


def broker_urls(bootstrap: str) -> str:
    """``a:9092,b:9092`` -> faust's ``kafka://a:9092;kafka://b:9092``."""
    return ";".join(f"kafka://{host.strip()}" for host in bootstrap.split(",") if host.strip())


# faust names a table's changelog topic ``<app id>-<table>-changelog``.
TABLE_NAME: Final = "windows"


def changelog_topic(app_id: str) -> str:
    """The state table's changelog topic of the worker app ``app_id`` (faust names it)."""
    return f"{app_id}-{TABLE_NAME}-changelog"


def topic_specs(config: StreamsConfig) -> list[TopicSpec]:
    """The topics the worker needs; events, dead letters and stats share a partition count.

    The events topic and the state table's changelog (faust creates it) must have exactly
    ``config.partitions``: faust assigns the table's partitions, so an events partition past
    them would never be read.
    """
    n = config.partitions
    changelog = changelog_topic(config.app_id)
    return [
        TopicSpec(config.events_topic, n, {}, exact=True),
        TopicSpec(changelog, n, {"cleanup.policy": "compact"}, exact=True, create=False),
        TopicSpec(config.dlq_topic, n, {"max.message.bytes": str(DLQ_MAX_MESSAGE_BYTES)}),
        TopicSpec(config.stats_topic, n, {}),
        TopicSpec(config.alerts_topic, n, {}),
        TopicSpec(config.silences_topic, 1, {"cleanup.policy": "compact"}),
    ]


def aiokafka_producer(app: faust.App) -> AIOKafkaProducer:
    """The aiokafka producer under faust's (its aiokafka driver; ``producer_threaded`` is off)."""
    return cast(AIOKafkaFaustProducer, app.producer)._ensure_producer()


class FaustTable:
    """``StateTable`` over a faust Table, each access pinned to its source partition.

    Changes reach the changelog as record batches (``streams.produce``), not through
    faust's ``send_changelog``, which costs each entry faust's producer buffer, a message
    object, a send and a callback that writes the changelog offset into RocksDB: a batch
    of 10,000 bots wrote 10,000 such offsets. Here each partition's offset is written once
    per ``save``, after the broker stored its entries, as faust's callback would.

    A changelog deleted and made again under the worker holds only what is written from
    then on: a worker recovering from it (another one after a rebalance, or this one with
    an empty state directory) would lose every bot not written since, and faust's recovery
    refuses a store whose persisted offset lies past the log's end (``ConsistencyError``:
    the worker crashed at the next rebalance). ``changelog_lost`` and ``write_again`` mend
    both; the worker calls them when it sees the topic missing, and a save calls them when
    its records land at or below an offset this table wrote before (a log's offsets only
    grow: the log was made again while the worker's probe looked away).
    """

    def __init__(
        self,
        table: Any,
        source_topic: str,
        partitions: int = 0,
        owned: Callable[[], Iterable[int]] | None = None,
    ) -> None:
        self._table = table
        self._topic = source_topic
        self._partitions = partitions
        self._owned = owned
        # The latest hand-over of changes to the changelog. Each waits for the one before:
        # two saves must reach a partition of the changelog in the order they were called
        # (the later value of a key wins on recovery).
        self._handing_over: asyncio.Future[Sent] | None = None
        # Saves are numbered as called, which is the order they reach each partition.
        self._saves = 0
        # The last changelog offset written to each partition, and by which save.
        self._written: dict[int, tuple[int, int]] = {}
        # Partitions whose local state is to be written to the changelog again (made again);
        # on disk, their persisted offset is -1 until a save to the new log sets it.
        self.pending: set[int] = set()

    def load(self, partition: int, key: str) -> bytes | None:
        with in_partition(PartitionMarker.of(self._topic, partition)):
            value: bytes | None = self._table.get(key.encode())
            return value

    async def save(self, entries: Sequence[tuple[int, str, bytes | None]]) -> None:
        """Store ``entries`` locally, then wait until the changelog holds them. A value of
        None deletes its key: a tombstone, which recovery applies as a delete and compaction
        removes."""
        if not entries:
            return
        self._saves += 1
        number = self._saves
        data = self._table.data
        records: list[OutRecord] = []
        for partition, group in groupby(entries, key=itemgetter(0)):
            with in_partition(PartitionMarker.of(self._topic, partition)):
                for _, key, value in group:
                    raw_key = key.encode()
                    if value is None:
                        data.pop(raw_key, None)
                    else:
                        data[raw_key] = value
                    records.append(OutRecord(raw_key, value, None, [], partition))
        topic = self._table.changelog_topic.get_topic_name()
        producer = aiokafka_producer(self._table.app)
        before = self._handing_over

        async def hand_over_in_turn() -> Sent:
            if before is not None:
                await asyncio.wait({before})
            return await hand_over(producer, topic, records)

        handing = self._handing_over = asyncio.ensure_future(hand_over_in_turn())
        handing.add_done_callback(retrieve)
        # Shielded: a save cancelled on the way (a timer's, at shutdown) still hands over
        # what it stored locally, so the changelog holds what the store holds. faust's
        # send_changelog queued each record at once; a hand-over may wait for room.
        sent = await asyncio.shield(handing)
        # Every answer is awaited (with the batch API aiokafka leaves its errors to the
        # caller), then the first error raised.
        answers = await asyncio.gather(*(future for _, future in sent), return_exceptions=True)
        first: dict[int, int] = {}
        last: dict[int, int] = {}
        for (members, _), stored in zip(sent, answers, strict=True):
            if isinstance(stored, BaseException):
                raise stored
            partition = stored.topic_partition.partition
            first[partition] = min(first.get(partition, stored.offset), stored.offset)
            last[partition] = max(last.get(partition, -1), stored.offset + len(members) - 1)
        written = self._written
        # A save called before this one put its records before these on every partition:
        # landing at or below them means the log was made again.
        remade = [
            p
            for p, offset in first.items()
            if p in written and written[p][1] < number and offset <= written[p][0]
        ]
        if remade:
            log.warning(
                "the state changelog %s was deleted and made again (partition(s) %s start "
                "below offsets this worker wrote before)",
                topic,
                ", ".join(map(str, remade)),
            )
            self.changelog_lost(keep=last)
            self.pending.update(remade)
        for partition, offset in last.items():
            if partition not in written or written[partition][1] < number:
                data.set_persisted_offset(TP(topic, partition), offset)
                written[partition] = (offset, number)
        if remade:
            owned = set(self._owned()) if self._owned is not None else set()
            await self.write_again(sorted(self.pending & (owned | set(remade))))

    def changelog_lost(self, keep: Iterable[int] = ()) -> None:
        """The changelog was deleted: forget its offsets, and write the owned partitions
        to it again (``pending``, ``write_again``).

        faust's recovery then reads the log made again from its start, over the local store,
        instead of refusing a persisted offset past its end (``ConsistencyError``).
        ``keep``: partitions already written to the new log.
        """
        kept = set(keep)
        # Every partition whose store held entries of the old log, owned now or not: the
        # deletion starts a rebalance, and a partition this worker owned a moment ago (or
        # gets back) is written again once it owns it.
        self.pending.update(self._forget([p for p in range(self._partitions) if p not in kept]))
        self._written.clear()  # offsets of the old log
        if self._owned is not None:
            self.pending.update(self._owned())

    async def mend_shorter_log(self, ends: Mapping[int, int]) -> list[int]:
        """Write the local state of the partitions of ``ends`` (their changelog's end offsets)
        again where the log ends at or before the offset the store applied from it.

        That log was made again, and no save of this worker has landed on it since to find
        out (``save``): another worker made the topic before this one's probe saw it
        missing, and the partition has had nothing to write. Another worker taking the
        partition over would recover its bots from the short log, and faust's recovery here
        would refuse the store. The caller keeps batches and rebalances out meanwhile.
        Returns the partitions written again.
        """
        stale = self.shorter_logs(ends)
        if not stale:
            return []
        topic = self._table.changelog_topic.get_topic_name()
        log.warning(
            "the state changelog %s was made again: partition(s) %s end before the offsets "
            "this worker's store holds",
            topic,
            ", ".join(map(str, stale)),
        )
        self._forget(stale)
        for partition in stale:
            self._written.pop(partition, None)
        self.pending.update(stale)
        await self.write_again(stale)
        return stale

    def shorter_logs(self, ends: Mapping[int, int]) -> list[int]:
        """The partitions of ``ends`` whose changelog ends at or before the offset the local
        store applied from it (``mend_shorter_log``)."""
        data = self._table.data
        topic = self._table.changelog_topic.get_topic_name()
        return past_the_end({p: data.persisted_offset(TP(topic, p)) for p in ends}, ends)

    def _forget(self, partitions: Iterable[int]) -> list[int]:
        """Set the persisted offset of ``partitions`` to -1: faust's recovery then reads
        their log from its start, over the local store. Returns those set now."""
        data = self._table.data
        topic = self._table.changelog_topic.get_topic_name()
        # RocksDB: the databases on disk, not a new one for each partition never held here.
        path = getattr(data, "partition_path", None)
        forgotten: list[int] = []
        for partition in partitions:
            if path is not None and not path(partition).exists():
                continue
            tp = TP(topic, partition)
            offset = data.persisted_offset(tp)
            if offset is not None and offset > FORGOTTEN:
                data.set_persisted_offset(tp, FORGOTTEN)
                forgotten.append(partition)
        return forgotten

    async def write_again(self, partitions: Sequence[int]) -> None:
        """Write every local entry of ``partitions`` to their changelog made again.

        Saves called before this one reach the changelog first and are older than the
        local store now; those called after it are newer: the changelog ends as the store.
        The caller keeps batches and rebalances out meanwhile (``BatchProcessor.exclusive``,
        or a batch's own save).
        """
        if not partitions:
            return
        entries: list[tuple[int, str, bytes | None]] = []
        for partition in partitions:
            mine = [str(partition).encode()]
            # Keys name their partition (``kind|partition|...``): a store may hold others.
            entries += (
                (partition, key.decode(), value)
                for key, value in self._local_items(partition)
                if key.split(b"|", 2)[1:2] == mine
            )
        log.warning(
            "writing the %d local entries of partition(s) %s to the state changelog again",
            len(entries),
            ", ".join(map(str, partitions)),
        )
        await self.save(entries)
        self.pending.difference_update(partitions)

    def _local_items(self, partition: int) -> list[tuple[bytes, bytes]]:
        """Every entry the local store holds for ``partition``.

        faust's RocksDB store iterates only the partitions its assignor counts as active
        changelog partitions, and a rebalance while the changelog was missing counts none:
        its database of the partition is read directly.
        """
        store = self._table.data
        db_for_partition = getattr(store, "_db_for_partition", None)
        if db_for_partition is not None:
            return list(store._visible_items(db_for_partition(partition)))
        with in_partition(PartitionMarker.of(self._topic, partition)):
            return list(store.items())

    def scan(self, partition: int, prefix: str) -> list[tuple[str, bytes]]:
        """Entries whose key starts with ``prefix`` (keys name their partition)."""
        raw = prefix.encode()
        with in_partition(PartitionMarker.of(self._topic, partition)):
            return [
                (key.decode(), value)
                for key, value in list(self._table.data.items())
                if key.startswith(raw)
            ]


# What a broker answers for a record (or batch) over the topic's max.message.bytes.
_TOO_LARGE: Final = (MessageSizeTooLargeError, RecordListTooLargeError)


# How long the periodic changelog check waits for the log's end offsets.
_END_OFFSETS_TIMEOUT_S: Final = 10.0


# How long the dead-letter topic's limit, once asked, is taken as known.
LIMIT_KEPT_S: Final = 60.0


class DeadLetterTooLargeError(RuntimeError):
    """The dead-letter topic refuses even a letter cut to the broker's default limit."""


def _letter_record(letter: DeadLetter, limit: int) -> OutRecord:
    value, headers = fit_record(letter.key, letter.value, letter.headers, limit)
    return OutRecord(letter.key, value, letter.timestamp_ms, headers)


class KafkaOutputs:
    """``Outputs`` through faust's producer; each call waits for the broker's acks."""

    def __init__(self, app: faust.App, config: StreamsConfig) -> None:
        self._app = app
        self._config = config
        # The dead-letter topic's limit as last asked, and when (``_topic_limit``).
        self._limit: tuple[int, float] | None = None

    async def dead_letters(self, letters: list[DeadLetter]) -> None:
        """Send and wait for the acks; a letter too large for the topic is cut to fit.

        Letters are cut to the size the worker creates the topic with; a topic created
        before with a smaller limit refuses one, which is then sent cut to that topic's
        ``max.message.bytes`` as the broker says it (or, when it cannot be asked, the
        broker's default limit): a refused letter would otherwise fail its batch forever.
        """
        refused = await self._send_letters(letters, DLQ_MAX_MESSAGE_BYTES)
        if refused:
            topic = self._config.dlq_topic
            limit = await self._topic_limit()
            log.warning(
                "the dead-letter topic %s refused %d record(s) as too large; sending them "
                "again one by one, each cut to %d bytes if larger (header %s says so). Raise "
                "the topic's max.message.bytes to %d to keep such records whole.",
                topic,
                len(refused),
                limit,
                TRUNCATED,
                DLQ_MAX_MESSAGE_BYTES,
            )
            still = await self._send_letters(refused, limit, alone=True)
            if still:
                raise DeadLetterTooLargeError(
                    f"the dead-letter topic {topic} refused {len(still)} record(s) even cut to "
                    f"{limit} bytes: raise its max.message.bytes to {DLQ_MAX_MESSAGE_BYTES}"
                )

    async def _topic_limit(self) -> int:
        """The dead-letter topic's ``max.message.bytes``, or the broker's default when the
        broker cannot say; asked again after a minute (an operator raises it, as told),
        not for every batch with a large letter."""
        known = self._limit
        if known is not None and time.monotonic() - known[1] < LIMIT_KEPT_S:
            return known[0]
        topic = self._config.dlq_topic
        try:
            found = await max_message_bytes(self._config.kafka_bootstrap, [topic])
        except (KafkaError, KafkaUnavailable, OSError) as exc:
            log.warning("could not ask Kafka for %s's max.message.bytes (%s)", topic, exc)
            return DEFAULT_MAX_MESSAGE_BYTES
        limit = min(found.get(topic, DEFAULT_MAX_MESSAGE_BYTES), DLQ_MAX_MESSAGE_BYTES)
        self._limit = (limit, time.monotonic())
        return limit

    async def _send_letters(
        self, letters: list[DeadLetter], limit: int, *, alone: bool = False
    ) -> list[DeadLetter]:
        """Send ``letters`` cut to ``limit`` bytes each; returns those refused as too large.

        Refused as too large means in a batch the broker refused: a batch holds one record
        over the producer's batch size, so that is the letter; or the topic's limit is below
        the batch size (a topic made elsewhere), and the batch's letters are sent again,
        each alone (``alone``), the next time.
        """
        refused: list[DeadLetter] = []
        records = (_letter_record(letter, limit) for letter in letters)
        for members, error in await self._send(self._config.dlq_topic, records, alone=alone):
            if not isinstance(error, _TOO_LARGE):
                raise error
            refused += (letters[index] for index in members)
        return refused

    async def _send(
        self, topic: str, records: Iterable[OutRecord], *, alone: bool = False
    ) -> list[tuple[list[int], BaseException]]:
        return await send_batched(aiokafka_producer(self._app), topic, records, alone=alone)

    async def stats(self, windows: list[dict[str, Any]]) -> None:
        keyed = [(window["bot_id"].encode(), window) for window in windows]
        await self._send_json(self._config.stats_topic, keyed)

    async def alerts(self, records: list[dict[str, Any]]) -> None:
        # Keyed by rule + bot (the fingerprint), as DESIGN.md's topic table says.
        keyed = [(record["fingerprint"].encode(), record) for record in records]
        await self._send_json(self._config.alerts_topic, keyed)

    async def _send_json(self, topic: str, keyed: list[tuple[bytes, dict[str, Any]]]) -> None:
        dumps = orjson.dumps
        records = (OutRecord(key, dumps(value), None, []) for key, value in keyed)
        for _, error in await self._send(topic, records):
            raise error


# A batch writes its table entries, dead letters and windows as a burst of sends. With no
# linger the producer ships whatever is queued each time the loop turns, a request of a few
# records each: with 10,000 bots (a state entry per bot per batch) that was a third of the
# worker's CPU. Measured (bench_worker, 10,000 bots): 6.2k -> 9.1k events/s; the 50-bot run
# is unchanged. The linger adds at most 1 ms to each batch's writes.
PRODUCER_LINGER_S = 0.001
PRODUCER_MAX_BATCH_BYTES = 256 * 1024

# The state table's changelog made again holds only the entries written from then on.
_CHANGELOG_REMADE: Final = "; writing the state of this worker's partitions to it again"

# How often the consumer asks for the metadata of its topics. At Kafka's 5 minutes an events
# topic deleted and made again was read again only up to 5 minutes later (the group
# rebalances when the metadata shows the topic back); a metadata request every 10 s costs
# nothing next to the fetches.
CONSUMER_METADATA_MAX_AGE_MS = 10_000

# Young-generation collections every this many container allocations (CPython: 700).
GC_YOUNG_THRESHOLD = 100_000


def tune_gc() -> None:
    """Make the cyclic collector rare: it cost a fifth of the worker's CPU per event.

    Per record the worker allocates some twenty dicts, tuples and lists, all freed by
    reference counting (none is in a cycle). At CPython's default a young collection ran
    every ~35 records, and the full ones walked every object loaded at start-up: measured
    4.5 s of CPU for 300,000 records before, 3.6 s after (``bench/bench_worker.py``).
    ``gc.freeze`` moves the objects of start-up (modules, the faust app) out of every
    later collection; cycles are still collected, only later.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def _error_text(error: BaseException | str | None) -> str:
    """A batch task's failure as words (None and "cancelled": it was cancelled)."""
    if error is None:
        return "cancelled"
    return error if isinstance(error, str) else f"{type(error).__name__}: {error}"


def _failing_reason(records: int, error: BaseException | str | None) -> str:
    return (
        f"a batch of {records} records fails and is retried, nothing after it is processed: "
        f"{_error_text(error)}"
    )


def uncommitted(highwater: int, committed: int | None) -> int:
    """Records between a partition's committed offset (the next to read) and its end.

    Nothing committed yet means everything the partition holds.
    """
    return max(highwater - (committed or 0), 0)


def to_records(fetched: list[Any]) -> list[Record]:
    """aiokafka ``ConsumerRecord``s as the processor's ``Record``s.

    One comprehension building plain tuples: a function call and the named tuple's
    ``__new__`` per record are a measurable share of the worker's time.
    """
    new = tuple.__new__
    return [
        new(
            Record,
            (
                r.topic,
                r.partition,
                r.offset,
                r.timestamp or 0,
                r.key,
                r.value,
                _header_list(r.headers) if r.headers else [],
            ),
        )
        for r in fetched
    ]


def _header_list(headers: Any) -> list[tuple[str, bytes]]:
    """A header with a null value (Kafka allows one) keeps an empty value, as aiokafka
    writes a null one anyway, rather than the text ``None``."""
    return [
        (k, v if isinstance(v, bytes) else b"" if v is None else str(v).encode())
        for k, v in headers
    ]


class _App(faust.App):
    """A faust app whose consumer hands the events topic over in batches."""

    intake: BatchIntake | None = None
    #: Called first when the app stops, before faust stops its consumer (and commits).
    before_stop: Callable[[], Awaitable[None]] | None = None

    async def on_stop(self) -> None:
        if self.before_stop is not None:
            await self.before_stop()
        await super().on_stop()

    def _new_consumer(self) -> Any:
        if self.intake is None:
            return super()._new_consumer()
        return BatchConsumer(
            self.transport,
            callback=self.topics.on_message,
            on_partitions_revoked=self._on_partitions_revoked,
            on_partitions_assigned=self._on_partitions_assigned,
            beacon=self.beacon,
            loop=self.transport.loop,
            intake=self.intake,
        )


class Worker:
    """The assembled worker: a faust app plus its processor, sink, metrics and web server."""

    def __init__(
        self,
        config: StreamsConfig,
        sink: Sink,
        registry: CollectorRegistry | None = None,
        *,
        rules: list[Rule] | None = None,
        notifier: Receivers | None = None,
        scrub: Callable[[str], str] | None = None,
    ) -> None:
        """``rules``: default from ``config.rules_file`` (or the shipped set when it is empty);
        ``scrub``: what redacts an error type before alerts carry it (see ``AlertStage``)."""
        self.config = config
        self.sink = sink
        self.metrics = WorkerMetrics(registry)
        self.notifier = notifier
        self.silences = Silences()
        self.silence_feed = SilenceFeed(
            config.kafka_bootstrap, config.silences_topic, self.silences
        )
        # The topics the worker writes to: one deleted under it holds every batch (see
        # ``_remake_missing_topics``).
        self.outputs = [
            spec
            for spec in topic_specs(config)
            if spec.name not in (config.events_topic, config.silences_topic)
        ]
        self.kafka = BrokerProbe(
            config.kafka_bootstrap,
            config.events_topic,
            outputs=[spec.name for spec in self.outputs],
        )
        self.metrics.kafka_up.set_function(lambda: float(self.kafka.up))
        self._reported_partitions: int | None = None
        self.assigned: set[int] = set()
        # Assigned partitions whose table state is recovered: only their records are
        # processed. A batch may still hold records fetched before a rebalance; those are
        # left un-acked and read again from the committed offset.
        self.ready: set[int] = set()
        # The group's committed offset of owned partitions this worker has not committed.
        self._group_committed: dict[int, int] = {}
        self.joined = False
        self.stopping = False
        self.intake = BatchIntake(config.events_topic, high_water=max(4 * config.batch_max, 8192))
        self.app = _App(
            config.app_id,
            broker=broker_urls(config.kafka_bootstrap),
            store=config.store,
            datadir=str(config.state_dir),
            web_enabled=False,
            autodiscover=False,
            topic_partitions=config.partitions,
            topic_replication_factor=1,
            table_standby_replicas=0,
            producer_acks=-1,
            producer_linger=PRODUCER_LINGER_S,
            producer_max_batch_size=PRODUCER_MAX_BATCH_BYTES,
            # A dead letter cut to the dead-letter topic's limit always leaves.
            producer_max_request_size=DLQ_MAX_MESSAGE_BYTES + 64 * 1024,
            consumer_auto_offset_reset="earliest",
            consumer_metadata_max_age_ms=CONSUMER_METADATA_MAX_AGE_MS,
            broker_commit_interval=1.0,
            broker_session_timeout=config.session_timeout_s,
            broker_heartbeat_interval=min(3.0, config.session_timeout_s / 4),
            stream_wait_empty=False,
        )
        self.app.intake = self.intake
        self.app.before_stop = self._stop_batches
        self._batches: asyncio.Task[Any] | None = None
        self._inflight: deque[_InFlight] = deque()
        # While a failed batch is redone: why, for /ready.
        self._failing = ""
        self.events_topic = self.app.topic(
            config.events_topic,
            key_serializer="raw",
            value_serializer="raw",
            partitions=config.partitions,
        )
        # bytes in, bytes out: the processor encodes its own compact state with orjson.
        self.table = self.app.Table(
            TABLE_NAME,
            partitions=config.partitions,
            key_type=bytes,
            value_type=bytes,
            options=dict(ROCKSDB_OPTIONS),  # faust pops keys from it: a copy each time
        )
        table = self.state = FaustTable(
            self.table, config.events_topic, config.partitions, owned=lambda: self.ready
        )
        if rules is None:
            rules = load_rules(config.rules_file or None)
        self.alerts = AlertStage(rules, table, self.silences, notifier, scrub)
        self.processor = BatchProcessor(
            config,
            table,
            KafkaOutputs(self.app, config),
            sink,
            self.metrics,
            alerts=self.alerts,
            notify=notifier,
            log_end=self._log_end,
        )
        self.web = WebServer(
            build_web_app(self.metrics.registry, self.readiness, self.status, self.active_alerts),
            config.web_host,
            config.web_port,
        )
        self._wire()

    def _wire(self) -> None:
        config = self.config
        app = self.app

        # Subscribed like an agent's topic; its records reach ``process`` through the intake.
        app.topics.add(self.events_topic)

        @app.task
        async def process() -> None:
            self._batches = asyncio.current_task()
            try:
                await self._batch_loop()
            except Exception as exc:
                # Not expected (a batch's failures are retried in place). Going on with the
                # next batch would commit past this one: stop the worker instead.
                log.exception("the batch loop failed")
                await app.crash(exc)
                raise

        self.table.on_recover(self._adopt_recovered)

        self._wire_timers()

        @app.task
        async def serve_web() -> None:
            await self.sink.start()
            if self.notifier is not None:
                await self.notifier.start()
            await self.silence_feed.start()
            await self.kafka.start()
            await self.web.start()
            log.info("web endpoints on http://%s:%s", config.web_host, config.web_port)
            try:
                await asyncio.Event().wait()
            finally:
                await self.web.stop()
                await self.kafka.stop()
                await self.silence_feed.stop()
                # A write still waiting for the sink raises now; its batch stays uncommitted.
                await self.sink.stop()
                if self.notifier is not None:
                    await self.notifier.stop()

        async def on_revoked(sender: Any, /, *args: Any, signal: Any = None, **_: Any) -> None:
            gone = [tp.partition for tp in args[0] if tp.topic == config.events_topic]
            for partition in gone:
                self._group_committed.pop(partition, None)
            self._forget_lag(gone)
            # A rebalance: nothing is read until the group assigns partitions again (which
            # waits for every member, a dead one up to its session timeout).
            self.joined = False
            self.assigned.difference_update(gone)
            self.ready.difference_update(gone)
            await self.processor.release(gone)

        async def on_assigned(sender: Any, /, *args: Any, signal: Any = None, **_: Any) -> None:
            mine = {tp.partition for tp in args[0] if tp.topic == config.events_topic}
            self.ready.difference_update(mine - self.assigned)
            await self.processor.release(sorted(mine - self.assigned))
            self.assigned |= mine
            self.joined = True

        app.on_partitions_revoked.connect(on_revoked)
        app.on_partitions_assigned.connect(on_assigned)

    async def _adopt_recovered(self) -> None:
        """The table now holds the changelog of every partition we own: load their state."""
        try:
            await self.processor.adopt_owned(sorted(self.assigned))
        except Exception as exc:
            # Not expected. Left alone, faust logs it as a task nobody awaited and the
            # partitions are never read, while /ready says all is well: stop instead.
            log.exception(
                "loading the recovered state of partitions %s failed; stopping",
                sorted(self.assigned),
            )
            await self.app.crash(exc)  # stops the worker; raising would log it twice more
            return
        self.ready = set(self.assigned)

    def _wire_timers(self) -> None:
        @self.app.timer(interval=ALERT_REFRESH_S)
        async def refresh_alert_receivers() -> None:
            if not self.ready or self.stopping:
                return
            try:
                self.alerts.refresh_receivers()
            except Exception:
                log.exception("refreshing what alert receivers re-send failed; trying again")

        @self.app.timer(interval=2.0)
        async def close_idle_windows() -> None:
            if self.stopping:
                return
            try:
                await self.processor.close_idle(busy=await self._partitions_behind())
            except Exception:
                # Its partitions were reloaded from the table: the next tick closes them again.
                log.exception("closing idle windows failed; retrying on the next tick")

        @self.app.timer(interval=1.0)
        async def ping_sink() -> None:
            try:
                await self.sink.ping()
            except Exception:  # its health says what is wrong; a ping must not stop the worker
                log.exception("pinging the sink failed")

        @self.app.timer(interval=2.0)
        async def remake_missing_topics() -> None:
            if self.stopping:
                return
            if self.kafka.missing:
                await self._remake_missing_topics()
            if self.state.pending & self.ready and not self.kafka.missing:
                await self._rewrite_state()

        @self.app.timer(interval=10.0)
        async def check_changelog() -> None:
            if self.stopping or self.kafka.missing or not self.ready:
                return
            await self._mend_shorter_changelog()

        @self.app.timer(interval=5.0)
        async def update_lag() -> None:
            self._update_lag()
            self._check_partitions()
            await self._check_gaps()

        if self.config.retire_after_s > 0:
            self._wire_retirement()

        @self.app.timer(interval=5.0)
        async def flush_throttled_lines() -> None:
            try:
                flush_throttled(logging.getLogger())
            except Exception:  # a log line must never stop the worker
                log.exception("logging the summaries of throttled lines failed")

    def _wire_retirement(self) -> None:
        # A tenth of the retirement time, within 1 s to a minute: a scan of every bot.
        every_s = min(max(self.config.retire_after_s / 10, 1.0), 60.0)

        @self.app.timer(interval=every_s)
        async def retire_quiet_bots() -> None:
            if not self.ready or self.stopping:
                return
            try:
                await self.processor.retire_quiet(
                    await self._committed(), behind=await self._partitions_behind()
                )
            except Exception:
                # Its partitions were reloaded from the table: the next check does it again.
                log.exception("retiring quiet bots failed; retrying on the next check")

        @self.app.timer(interval=self.config.alert_tick_s)
        async def tick_alerts() -> None:
            if not self.ready or self.stopping:
                return
            try:
                await self.processor.tick_alerts(behind=await self._partitions_behind())
            except Exception:
                # Retried by the next tick: its partitions were reloaded from the table.
                log.exception("evaluating alert rules on the tick failed; retrying next tick")
            self.metrics.silences.set(len(self.silences))

    async def _batch_loop(self) -> None:
        config = self.config
        while True:
            epoch, batch = await self.intake.take(config.batch_max, config.batch_within_s)
            if batch:
                await self._submit(epoch, batch)
            else:  # woken by a batch that failed: redo it, and those after it, now
                await self._settle(0)

    async def _submit(self, epoch: int, fetched: list[Any]) -> None:
        """Route one batch of fetched records; it is acked by its task once it is durable.

        Nothing is acked otherwise: a batch that fails, is cancelled, or belongs to an
        assignment a rebalance ended is read again from the committed offset.
        """
        batch = await self._owned(epoch, fetched)
        if not batch:
            return
        records = to_records(batch)
        await self.sink.start()  # idempotent; a batch may arrive before the web task ran
        await self._settle(PIPELINE_DEPTH - 1)
        try:
            task = await self._route(epoch, records)
        except Exception:
            log.exception("routing a batch of %d records failed", len(records))
            await self._settle(0)  # the batches before it: durable, or redone
            self.processor.forget(sorted({r.partition for r in records}))
            await self._redo(epoch, records)
            return
        if task is not None:  # else revoked while waiting: read again by the next owner
            self._inflight.append(_InFlight(epoch, records, task))
            task.add_done_callback(self._batch_ended)

    def _batch_ended(self, task: asyncio.Task[None]) -> None:
        """A failed batch is redone by the batch loop, which may be waiting for records:
        with none coming, the failure went unnoticed (no log, no retry, /ready 200)."""
        if task.cancelled() or task.exception() is not None:
            self.intake.wake()

    async def _route(self, epoch: int, records: list[Record]) -> asyncio.Task[None] | None:
        """``processor.submit``, acked once durable; None when the batch's assignment ended
        before it was routed (asked again under the processor's lock)."""
        partitions = {r.partition for r in records}
        return await self.processor.submit(
            records,
            then=lambda: self._ack(records),
            owned=lambda: self.intake.epoch == epoch and partitions <= self.ready,
        )

    async def _settle(self, keep: int) -> None:
        """Wait until at most ``keep`` batches are in flight; failed ones are redone here."""
        inflight = self._inflight
        while inflight and (len(inflight) > keep or inflight[0].task.done()):
            head = inflight[0]
            await asyncio.wait([head.task])
            if head.task.cancelled() or head.task.exception() is not None:
                failed = list(inflight)
                inflight.clear()
                await self._recover(failed)
            else:
                inflight.popleft()

    async def _recover(self, failed: list[_InFlight]) -> None:
        """Redo failed batches one by one, from the table's state, until each is durable.

        Every batch after a failed one fails too (its state waits for its predecessor's), so
        the processor's cache is ahead of the table for all of their partitions.
        """
        await asyncio.wait([f.task for f in failed])
        error = next((f.task.exception() for f in failed if not f.task.cancelled()), None)
        self._failing = _failing_reason(sum(len(f.records) for f in failed), error)
        log.error(
            "writing %d batch(es) of %d records failed (%s); redoing them from the table's state",
            len(failed),
            sum(len(f.records) for f in failed),
            _error_text(error),
        )
        self.processor.forget(sorted({r.partition for f in failed for r in f.records}))
        try:
            for f in failed:
                await self._redo(f.epoch, f.records)
        finally:
            self._failing = ""

    async def _redo(self, epoch: int, records: list[Record]) -> None:
        delay = 0.5
        while self.intake.epoch == epoch:  # else: revoked, read again from the commit
            try:
                task = await self._route(epoch, records)
                if task is None:
                    return
                await asyncio.wait([task])
                error = "cancelled" if task.cancelled() else task.exception()
            except Exception as exc:
                error = exc
            if error is None:
                return
            self._failing = _failing_reason(len(records), error)
            log.error(
                "processing a batch of %d records failed (%s); retrying in %.1f s "
                "(state reloaded from the table)",
                len(records),
                _error_text(error),
                delay,
            )
            self.processor.forget(sorted({r.partition for r in records}))
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)

    def _ack(self, records: Sequence[Record]) -> None:
        by_partition: dict[int, list[int]] = {}
        for rec in records:
            found = by_partition.get(rec.partition)
            if found is None:
                by_partition[rec.partition] = [rec.offset]
            else:
                found.append(rec.offset)
        topic = self.config.events_topic
        consumer = self.app.consumer
        assert isinstance(consumer, BatchConsumer)
        consumer.ack_offsets({TP(topic, p): offsets for p, offsets in by_partition.items()})

    async def _owned(self, epoch: int, fetched: list[Any]) -> list[Any]:
        """The batch once its partitions' state is recovered; nothing if it is stale.

        Records fetched before a rebalance (an older epoch) are dropped un-acked: they are
        read again from the committed offset, in order. Records of the current epoch are
        of partitions assigned to this worker (aiokafka hands over no others), perhaps not
        yet announced or recovered: they wait, so they are applied, in order, to the
        restored state. None is skipped: a later record of its partition would be acked
        and committed past it.
        """
        partitions = {rec.partition for rec in fetched}
        while not partitions <= self.ready:
            if self.intake.epoch != epoch:
                return []
            await asyncio.sleep(0.05)
        return fetched if self.intake.epoch == epoch else []

    async def _stop_batches(self) -> None:
        """Stop taking batches; the one in flight finishes (or not) and is acked first.

        Runs before faust stops its consumer, whose last commit then includes it. From now
        on the timers change no state either: a worker on its way out must not close
        windows as idle (or write anything) that its partitions' next owner recovers.
        """
        self.stopping = True
        task = self._batches
        if task is not None:
            # Cancelled again until it ends: a cancellation can be lost (on Python 3.11
            # ``asyncio.wait_for`` returns instead of raising when what it waits for completes
            # as the cancellation arrives), and the loop would then wait for records forever.
            while not task.done():
                task.cancel()
                await asyncio.wait([task], timeout=CANCEL_AGAIN_S)
            if not task.cancelled() and task.exception() is not None:
                log.error("the batch loop failed while stopping", exc_info=task.exception())
        # The batches in flight ack themselves once durable; faust's last commit follows.
        unfinished = [f for f in self._inflight if not f.task.done()]
        if unfinished:  # said now: the wait may be long and otherwise silent (a sink down)
            ready, why = self.readiness()
            log.log(
                logging.INFO if ready else logging.WARNING,
                "stopping: waiting up to %.0f s for %d batch(es) of %d record(s) in flight "
                "to be written; %s",
                SHUTDOWN_GRACE_S,
                len(unfinished),
                sum(len(f.records) for f in unfinished),
                why,
            )
        try:
            await asyncio.wait_for(self.processor.drain(), timeout=SHUTDOWN_GRACE_S)
        except TimeoutError:
            log.warning(
                "shutting down with %d batch(es) unfinished: not committing them (they are "
                "read again from Kafka by the next owner of their partitions)",
                len(self._inflight),
            )

    async def _partitions_behind(self) -> set[int]:
        """Owned partitions with records in Kafka not yet processed (or not known yet).

        Compares the broker's end offsets with the offset processed so far, which a worker
        taking a partition over restores from the table: a partition behind is busy, not
        quiet, and its windows must wait for its records instead of closing idle.
        """
        consumer = self.app.consumer
        tps = [tp for tp in consumer.assignment() if tp.topic == self.config.events_topic]
        if not tps:
            # Nothing assigned right now (a rebalance, or stopping): nothing can be shown to
            # be quiet, so every partition with state counts as busy.
            return set(self.processor.partitions())
        try:
            ends = await consumer.highwaters(*tps)
        except Exception:  # broker busy or rebalancing: nothing counts as quiet now
            return {tp.partition for tp in tps}
        last = self.processor.last_offsets()
        behind: set[int] = set()
        for tp in tps:
            end = ends.get(tp)
            done = last.get(tp.partition)
            next_offset = done + 1 if done is not None else 0
            if end is None or next_offset < end:
                behind.add(tp.partition)
        return behind

    def _unread_partitions(self) -> str:
        """Why records wait that this worker will never read, or "" (see ``topic_specs``)."""
        if not self.kafka.topic_found:
            return (
                f"the events topic {self.config.events_topic} does not exist on Kafka at "
                f"{self.config.kafka_bootstrap} (deleted while the worker ran?): nothing is "
                f"read. A topic made again is read from its start, its records as new events "
                f"(make it with {self.config.partitions} partitions; see README, 'Partitions')"
            )
        found, n = self.kafka.partitions, self.config.partitions
        if found is None or found == n:
            return ""
        return (
            f"the events topic {self.config.events_topic} has {found} partitions and the "
            f"worker reads {n} (BOTWATCH_PARTITIONS): "
            + (f"records of partitions {n}..{found - 1} are never read. " if found > n else "")
            + "Partitions cannot be added to the events topic of a running pipeline; "
            "see README, 'Partitions'"
        )

    async def _remake_missing_topics(self) -> None:
        """Make the topics the worker writes to again when they were deleted under it.

        Its writes to such a topic wait (aiokafka retries them until the topic is back), and
        with them every batch: the worker makes them at start, and again here. A state
        changelog made again gets the state of this worker's partitions (``FaustTable``).
        """
        missing = set(self.kafka.missing)
        changelog = changelog_topic(self.config.app_id)
        if changelog in missing:
            try:
                self.state.changelog_lost()
            except Exception:  # the stores: tried again at the next tick
                log.exception("forgetting the offsets of the deleted changelog %s", changelog)
        specs = [replace(spec, create=True) for spec in self.outputs if spec.name in missing]
        try:
            made = await ensure_topics(self.config.kafka_bootstrap, specs)
        except Exception:
            log.exception("making the deleted topics %s again failed", ", ".join(sorted(missing)))
            return
        for spec in made:
            log.warning(
                "topic %s was deleted while the worker ran; made it again (%d partitions)%s",
                spec.name,
                spec.partitions,
                _CHANGELOG_REMADE if spec.name == changelog else "",
            )
        if changelog in missing:  # it exists again (made here or elsewhere)
            await self._rewrite_state()

    async def _mend_shorter_changelog(self) -> None:
        """Write the state again where the changelog was made again unseen: another worker
        made it before the probe saw it missing (``FaustTable.mend_shorter_log``).

        The log's ends are asked on a connection of their own, with a timeout, and without
        the processor's lock: batches and rebalances wait for that lock, and a broker slow
        to answer about a topic just deleted held them all. Only a log that looks short is
        asked again under the lock (a save may have landed meanwhile) and mended.
        """
        changelog = changelog_topic(self.config.app_id)

        async def owned_ends() -> dict[int, int]:
            ends = await asyncio.wait_for(
                end_offsets(self.config.kafka_bootstrap, changelog), _END_OFFSETS_TIMEOUT_S
            )
            return {p: ends[p] for p in sorted(self.ready) if p in ends}

        async def mend() -> None:
            ends = await owned_ends()
            if ends:
                await self.state.mend_shorter_log(ends)

        try:
            ends = await owned_ends()  # none: the topic is missing, the probe's case
            if ends and self.state.shorter_logs(ends):
                await self.processor.exclusive(mend)
        except (TimeoutError, KafkaError, KafkaUnavailable):
            return  # Kafka away or slow: the broker probe says so; the next tick asks again
        except Exception:  # the next tick asks again
            log.exception("comparing the state changelog %s with the local store failed", changelog)

    async def _rewrite_state(self) -> None:
        """Write the local state of the owned partitions ``pending`` to the changelog,
        between batches and rebalances (``release`` waits for it)."""

        async def rewrite() -> None:
            await self.state.write_again(sorted(self.state.pending & self.ready))

        try:
            await self.processor.exclusive(rewrite)
        except Exception:  # still pending: tried again at the next tick
            log.exception(
                "writing the state to the changelog %s again failed",
                changelog_topic(self.config.app_id),
            )

    def _missing_outputs(self) -> str:
        """Why every batch waits when a topic the worker writes to is gone, or ""."""
        missing = self.kafka.missing
        if not missing:
            return ""
        return (
            f"the topic(s) {', '.join(missing)} do not exist on Kafka at "
            f"{self.config.kafka_bootstrap} (deleted while the worker ran?): every batch waits "
            "for its writes to them; the worker makes them again"
        )

    async def _committed(self) -> dict[int, int]:
        """The next offset to read of each owned events partition, as far as the group's
        commits go: this worker's own, else what the group had committed when this worker
        got the partition (asked once). A partition that has had no new record since is
        never committed here, and its quiet bots were never retired after a restart."""
        consumer = self.app.consumer
        if not isinstance(consumer, BatchConsumer):
            return {}
        events = self.config.events_topic
        mine = {
            tp.partition: offset
            for tp, offset in list(consumer.durably_committed.items())
            if tp.topic == events
        }
        asked = self._group_committed
        missing = sorted(self.ready - mine.keys() - asked.keys())
        if missing:
            found = await committed_offsets(
                self.config.kafka_bootstrap, self.config.app_id, events, missing
            )
            # -1: asked, none. Not for a partition revoked during the question.
            asked.update((p, found.get(p, -1)) for p in missing if p in self.ready)
        return {**{p: o for p, o in asked.items() if p in self.ready and o >= 0}, **mine}

    def _check_partitions(self) -> None:
        """Log each time the events topic's partition count changes to one the worker does not
        read, and keep the gauge."""
        found = self.kafka.partitions
        if found is None:
            return
        self.metrics.unread_partitions.set(max(found - self.config.partitions, 0))
        unread = self._unread_partitions()
        if unread and found != self._reported_partitions:
            log.error("%s", unread)
        self._reported_partitions = found

    def _forget_lag(self, partitions: Iterable[int]) -> None:
        """Drop the lag series of revoked partitions (a rebalance revokes them all; those
        assigned again get theirs back): the series of one gone to another worker kept its
        last value for good, and summed over the group, or alerted on, it was wrong."""
        for partition in partitions:
            with contextlib.suppress(KeyError):
                self.metrics.consumer_lag.remove(str(partition))

    def _update_lag(self) -> None:
        """Records of each owned partition not yet committed, i.e. not yet durable.

        Measured from the committed offset, not from what was routed: during an outage the
        batches in flight hold records that are read but not written anywhere, and they are
        exactly the backlog that waits in Kafka.
        """
        consumer = self.app.consumer
        if consumer is None:
            return
        committed: Mapping[Any, int | None] = getattr(consumer, "_committed_offset", {})
        # aiokafka keeps the old assignment through a rebalance: partitions revoked (and
        # their series removed) would be reported again until the new one arrives.
        for tp in consumer.assignment():
            if tp.topic != self.config.events_topic or tp.partition not in self.assigned:
                continue
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            lag = uncommitted(highwater, committed.get(tp))
            self.metrics.consumer_lag.labels(partition=str(tp.partition)).set(lag)

    async def _check_gaps(self) -> None:
        """Report the skipped offsets that lay below their partition's log start: records
        Kafka deleted before this worker read them. aiokafka moves a consumer whose offset
        fell out of the log to its start, saying so at INFO level only: lost in silence."""
        gaps = self.processor.take_gaps()
        consumer = self.app.consumer
        if not gaps or consumer is None:
            return
        topic = self.config.events_topic
        try:
            starts = await consumer.earliest_offsets(*{TP(topic, g.partition) for g in gaps})
        except Exception as exc:  # not known now; the gaps stay unexplained, and logged so
            log.warning("could not check %d skipped offset range(s): %s", len(gaps), exc)
            return
        for gap in gaps:
            start = starts.get(TP(topic, gap.partition))
            lost = 0 if start is None else min(start, gap.next_read) - gap.first_missing
            if lost <= 0:
                continue  # not deleted: skipped for another reason (transaction markers)
            self.metrics.records_expired_unread.inc(lost)
            log.error(
                "%d record(s) of partition %d of the events topic %s (offsets %d..%d) were "
                "deleted by Kafka before this worker read them (the topic's retention.ms "
                "passed while they waited, or records were deleted by hand); their events are "
                "lost to botwatch. Keep workers running and raise the topic's retention.ms "
                "above the longest outage.",
                lost,
                gap.partition,
                topic,
                gap.first_missing,
                gap.first_missing + lost - 1,
            )

    def _log_end(self, partition: int) -> int | None:
        """The end offset of an events partition, as of the consumer's last fetch."""
        consumer = self.app.consumer
        if consumer is None:
            return None
        try:
            return consumer.highwater(TP(self.config.events_topic, partition))
        except Exception:  # not assigned any more (aiokafka asserts it): not known
            return None

    def run(self, loglevel: str = "warn") -> None:
        """Run the worker until SIGTERM or Ctrl-C (logging at ``loglevel``), then return."""
        from faust.worker import Worker as FaustWorker

        class _Runner(FaustWorker):
            def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
                # No spinner: faust would set the root logger to DEBUG to animate it.
                self.spinner = None
                # A broker outage makes aiokafka log hundreds of lines a second.
                throttle_handlers(logger)
                # opensearch-py (the retention sweeper's client) logs each failed request
                # with its traceback, retries included; the sweeper says it in one line.
                logging.getLogger("opensearch").setLevel(logging.ERROR)

        tune_gc()
        self._forget_offsets_past_the_changelog()
        _Runner(self.app, loglevel=loglevel, quiet=True).execute_from_commandline()

    def _forget_offsets_past_the_changelog(self) -> None:
        """Before faust opens the stores: see ``streams.state_offsets``."""
        changelog = changelog_topic(self.config.app_id)
        try:
            stale, pending = asyncio.run(
                forget_past_the_end(
                    self.config.kafka_bootstrap,
                    changelog,
                    Path(self.app.conf.tabledir),
                    TABLE_NAME,
                    self.config.partitions,
                )
            )
        except Exception as exc:  # a store locked or unreadable: faust's recovery says so
            log.warning("could not compare the state directory with %s: %s", changelog, exc)
            return
        self.state.pending.update(stale, pending)
        if stale:
            log.warning(
                "the state changelog %s ends before offsets this worker's state directory "
                "applied from it, on partition(s) %s: it was deleted and made again (or lost "
                "records) while the worker was stopped. Their stores are read together with "
                "the new log, and written to it again once this worker owns them.",
                changelog,
                ", ".join(map(str, stale)),
            )

    def readiness(self) -> tuple[bool, str]:
        kafka_ok, kafka = self.kafka.health()
        if not kafka_ok:
            return False, kafka
        unread = self._unread_partitions() or self._missing_outputs()
        if unread:
            return False, unread
        if not self.joined:
            return False, "joining the consumer group (or rebalancing): no partitions assigned yet"
        ok, reason = self.sink.health()
        if not ok:
            return False, reason
        if self._failing:
            return False, self._failing
        return True, f"consuming {len(self.assigned)} partition(s); sink: {reason}"

    def status(self) -> dict[str, Any]:
        ok, reason = self.readiness()
        receivers = self.notifier.health() if self.notifier is not None else []
        return {
            "app_id": self.config.app_id,
            "ready": ok,
            "reason": reason,
            "assigned_partitions": sorted(self.assigned),
            "partitions": self.processor.status(),
            "alerts": {
                "rules": len(self.alerts.rules),
                "silences": len(self.silences),
                "silences_topic": self.silence_feed.failing or "following",
                "receivers": [{"ok": ok_, "status": text} for ok_, text in receivers],
            },
            "time": time.time(),
        }

    def active_alerts(self) -> dict[str, Any]:
        """Pending and firing alerts of the partitions this worker owns, and the silences."""
        return {
            "app_id": self.config.app_id,
            "partitions": sorted(self.assigned),
            "alerts": self.alerts.active(),
            "silences": self.silences.to_list(),
        }
