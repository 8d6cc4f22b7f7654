"""Kafka I/O of the dead-letter tools: reading the dead-letter topic, replaying, importing.

Everything here is a coroutine with a clear start and stop (``async with`` or try/finally);
the decisions are made by the pure modules (``records``, ``select``, ``plan``).

How a replay sends nothing twice, even when killed:

- it reads the dead-letter topic with its own consumer group (``plan.replay_group``: the same
  arguments give the same group) and commits, after each chunk of records the broker
  acknowledged, the offsets reached with a ``Checkpoint`` as the commit's metadata;
- every replayed record names its dead letter in ``botwatch.dlq.replay.source``;
- a restarted run that finds an unfinished checkpoint reads each target partition from the
  offset the checkpoint recorded (below anything sent after it) to its end, and skips the
  dead letters it finds named there: sent, but not yet committed, by the run that died.

A transactional producer was not used: the worker reads ``read_uncommitted`` (faust's default
without exactly-once processing), so it would process the records of an aborted transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordListTooLargeError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from schemas.letter_bot import miskeyed
from streams import dlq
from streams.deadletters.plan import (
    REPLAY_ORIGIN,
    REPLAY_SOURCE,
    Action,
    Checkpoint,
    Decision,
    PlanError,
    TokenBucket,
    Window,
    check_target,
    decide,
    replay_headers,
    replay_key,
    resume_from,
    triage,
    window,
)
from streams.deadletters.records import Letter, decode, source_id
from streams.deadletters.select import Selection, Summary

POLL_MS: Final = 500
CHUNK: Final = 5000
MIN_SLEEP_S: Final = 0.005
PREVIEW: Final = 20
PARTITIONER: Final = DefaultPartitioner()
_T = TypeVar("_T")


class KafkaUnavailable(RuntimeError):
    """The broker did not answer."""


class TopicMissing(LookupError):
    """A topic the command needs does not exist."""

    def __init__(self, topic: str, role: str, letters: int = 0) -> None:
        """``letters``: how many selected dead letters name it as their original topic."""
        named = f" (the original topic of {letters:,} selected dead letter(s))" if letters else ""
        super().__init__(f"the {role} topic {topic!r} does not exist{named}")
        self.topic = topic
        self.role = role
        self.letters = letters


# -- connections --------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _running(client: Any, bootstrap: str) -> AsyncIterator[Any]:
    """``client`` started (or ``KafkaUnavailable``), and stopped on exit.

    Consumers and producers stop with ``stop()``, the admin client with ``close()``."""
    stop = client.stop if hasattr(client, "stop") else client.close
    try:
        await client.start()
    except (KafkaError, OSError) as exc:
        with contextlib.suppress(Exception):
            await stop()
        raise KafkaUnavailable(f"Kafka at {bootstrap} is not reachable ({exc})") from exc
    try:
        yield client
    finally:
        await stop()


@contextlib.asynccontextmanager
async def consumer(bootstrap: str, group_id: str | None = None) -> AsyncIterator[AIOKafkaConsumer]:
    """A started consumer that commits nothing by itself; stopped on exit."""
    client = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    async with _running(client, bootstrap) as c:
        yield c


@contextlib.asynccontextmanager
async def producer(bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    client = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=1024 * 1024,
        max_request_size=8 * 1024 * 1024,
    )
    async with _running(client, bootstrap) as p:
        yield p


async def partitions(c: AIOKafkaConsumer, topic: str, role: str) -> list[TopicPartition]:
    """The partitions of ``topic`` from a fresh metadata read; ``TopicMissing`` when absent.

    (The consumer's own cluster view only knows topics it was given; a read of all metadata
    is one request and tells a missing topic apart without waiting for it. The topic found
    is then added to that view: asked for offsets of a topic it does not know, the consumer
    refreshes its metadata only after a retry back-off of 100 ms.)
    """
    cluster = await c._client.fetch_all_metadata()
    found = cluster.partitions_for_topic(topic)
    if not found:
        raise TopicMissing(topic, role)
    await c._client.add_topic(topic)
    return [TopicPartition(topic, p) for p in sorted(found)]


async def existing_topics(c: AIOKafkaConsumer) -> set[str]:
    topics: set[str] = await c.topics()
    return topics


async def full_windows(c: AIOKafkaConsumer, topic: str) -> dict[TopicPartition, Window]:
    tps = await partitions(c, topic, "dead-letter")
    low = await c.beginning_offsets(tps)
    high = await c.end_offsets(tps)
    return {tp: Window(low[tp], high[tp], False) for tp in tps}


# -- reading ------------------------------------------------------------------------------


async def read(
    c: AIOKafkaConsumer, windows: dict[TopicPartition, Window], max_records: int = CHUNK
) -> AsyncIterator[list[tuple[TopicPartition, Any]]]:
    """Chunks of raw records of ``windows`` (each partition in offset order); ``c`` must be
    dedicated to this read. Ends when every partition reached its stop."""
    if not windows:
        return
    c.assign(list(windows))
    todo = {tp: w for tp, w in windows.items() if w.start < w.stop}
    for tp, w in windows.items():
        if tp in todo:
            c.seek(tp, w.start)
        else:
            c.pause(tp)
    while todo:
        batches = await c.getmany(*todo, timeout_ms=POLL_MS, max_records=max_records)
        chunk: list[tuple[TopicPartition, Any]] = []
        for tp, records in batches.items():
            stop = todo[tp].stop
            chunk.extend((tp, r) for r in records if r.offset < stop)
        for tp in list(todo):
            if await c.position(tp) >= todo[tp].stop:
                del todo[tp]
                c.pause(tp)
        if chunk:
            yield chunk


def letter_of(tp: TopicPartition, record: Any) -> Letter:
    return decode(
        tp.topic,
        tp.partition,
        record.offset,
        record.timestamp,
        record.key,
        record.value,
        record.headers,
    )


async def scan(
    bootstrap: str, topic: str, selection: Selection | None = None
) -> AsyncIterator[Letter]:
    """Every dead letter of ``topic`` (that ``selection`` matches), partition by partition
    interleaved as they arrive."""
    async with consumer(bootstrap) as c:
        windows = await full_windows(c, topic)
        async for chunk in read(c, windows):
            for tp, record in chunk:
                letter = letter_of(tp, record)
                if selection is None or selection.matches(letter):
                    yield letter


async def fetch(bootstrap: str, topic: str, partition: int, offset: int) -> Letter | None:
    """The dead letter at ``partition:offset``; None when there is none (any more)."""
    async with consumer(bootstrap) as c:
        tps = await partitions(c, topic, "dead-letter")
        tp = TopicPartition(topic, partition)
        if tp not in tps:
            return None
        low = (await c.beginning_offsets([tp]))[tp]
        high = (await c.end_offsets([tp]))[tp]
        if not low <= offset < high:
            return None
        async for chunk in read(c, {tp: Window(offset, offset + 1, False)}, max_records=1):
            for _, record in chunk:
                if record.offset == offset:
                    return letter_of(tp, record)
        return None


# -- replay -------------------------------------------------------------------------------


@dataclass
class ReplayOptions:
    bootstrap: str
    dlq_topic: str
    selection: Selection
    group: str
    to: str | None = None
    max_replays: int = 3
    rate: float | None = None
    max_records: int | None = None
    restart: bool = False


@dataclass
class ReplayPlan:
    """What a replay would do, from a read of its window (nothing sent, nothing committed)."""

    windows: dict[TopicPartition, Window]
    checkpoints: dict[TopicPartition, Checkpoint | None]
    resumed: bool
    selected: Summary = field(default_factory=Summary)
    actions: Counter[str] = field(default_factory=Counter)
    targets: Counter[str] = field(default_factory=Counter)
    skipped_why: Counter[str] = field(default_factory=Counter)
    preview: list[tuple[Letter, Decision]] = field(default_factory=list)
    counted: bool = True  # every record read, decoded and counted (else windows and targets)
    # What the run selects with: the options', or the times the run it continues resolved.
    selection: Selection | None = None

    @property
    def to_send(self) -> int:
        return self.actions[Action.SEND.value]

    @property
    def bound(self) -> int:
        """At most this many records are selected: the size of the windows."""
        return sum(w.stop - w.start for w in self.windows.values())

    @property
    def total(self) -> int:
        """The records selected when counted, else the bound."""
        return self.selected.total if self.counted else self.bound


@dataclass
class ReplayCounts:
    selected: int = 0
    sent: int = 0
    already_sent: int = 0  # found on a target: sent by an interrupted run of the same replay
    copies: int = 0  # a failure written twice (its batch redone): one of its letters was sent
    quarantined: int = 0
    skipped: int = 0
    seconds: float = 0.0
    stopped_early: bool = False
    sending_seconds: float = 0.0  # from the first send to the last acknowledgement
    sent_by_target: Counter[str] = field(default_factory=Counter)
    skipped_why: Counter[str] = field(default_factory=Counter)
    read: int = 0  # records of the dead-letter topic read, selected or not
    # Dead letters (topic:partition:offset) a target refused as too large, by target.
    too_large: dict[str, list[str]] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0


Progress = Callable[[ReplayCounts, ReplayPlan], None]


async def _committed(
    bootstrap: str, group: str, tps: list[TopicPartition]
) -> dict[TopicPartition, tuple[int, str]]:
    async with _running(AIOKafkaAdminClient(bootstrap_servers=bootstrap), bootstrap) as admin:
        found = await admin.list_consumer_group_offsets(group, partitions=tps)
    return {tp: (om.offset, om.metadata or "") for tp, om in found.items()}


async def plan_replay(
    options: ReplayOptions, *, count: Callable[[int], bool] | None = None
) -> ReplayPlan:
    """Read the replay's window and decide for every selected dead letter.

    ``count`` says, given the windows' size (a bound of what a run would send), whether the
    plan must count and preview what is selected (a dry run, a confirmation); None: always.
    An uncounted plan has windows and targets only: the window is not read with ``--to``
    (the run decides record by record), else it is read once, on the fast path, for the
    targets the letters name, so that a missing one is refused before anything is sent.

    Raises ``PlanError`` (target is the dead-letter topic), ``TopicMissing`` (the dead-letter
    topic or a target) or ``KafkaUnavailable``.
    """
    check_target(options.to, options.dlq_topic)
    async with consumer(options.bootstrap) as c:
        tps = await partitions(c, options.dlq_topic, "dead-letter")
        low = await c.beginning_offsets(tps)
        high = await c.end_offsets(tps)
        committed = await _committed(options.bootstrap, options.group, tps)
        windows: dict[TopicPartition, Window] = {}
        checkpoints: dict[TopicPartition, Checkpoint | None] = {}
        for tp in tps:
            offset, metadata = committed.get(tp, (-1, ""))
            checkpoint = Checkpoint.decode(metadata)
            w = window(offset, checkpoint, low[tp], high[tp], restart=options.restart)
            windows[tp] = w
            checkpoints[tp] = checkpoint if w.resumed else None
        plan = ReplayPlan(windows, checkpoints, any(w.resumed for w in windows.values()))
        options = _continued(options, checkpoints)
        plan.selection = options.selection
        if options.to is not None and options.to not in await existing_topics(c):
            raise TopicMissing(options.to, "target")
        plan.counted = count is None or count(plan.bound)
        if not plan.counted and options.to is not None:
            if plan.bound:
                plan.targets[options.to] = 0  # how many is decided while sending
            return plan
        fast = not plan.counted and options.selection.everything
        async for chunk in read(c, windows):
            for tp, record in chunk:
                found = _classify(options, tp, record, fast=fast)
                if found is None:
                    continue
                decision, _, letter = found
                plan.actions[decision.action.value] += 1
                if decision.action is Action.SKIP:
                    plan.skipped_why[decision.why] += 1
                elif decision.action is Action.SEND and decision.target is not None:
                    plan.targets[decision.target] += 1
                if plan.counted and letter is not None:
                    plan.selected.add(letter)
                    if len(plan.preview) < PREVIEW:
                        plan.preview.append((letter, decision))
        existing = await existing_topics(c)
        for target, n in plan.targets.items():
            if target not in existing:
                raise TopicMissing(target, "target", 0 if target == options.to else n)
    return plan


def _continued(
    options: ReplayOptions, checkpoints: dict[TopicPartition, Checkpoint | None]
) -> ReplayOptions:
    """A run that continues an interrupted one selects with the times that run resolved:
    ``--since 3m`` re-read now would be a later window, and the letters the first run had
    yet to send would no longer be selected."""
    for checkpoint in checkpoints.values():
        if checkpoint is not None and checkpoint.times is not None:
            since_ms, until_ms = checkpoint.times
            selection = replace(options.selection, since_ms=since_ms, until_ms=until_ms)
            return replace(options, selection=selection)
    return options


Replayed = list[tuple[str, bytes]]
# What one replayed record is sent as: target topic, key, the dead letter, headers.
_Sending = tuple[str, bytes | None, Any, Replayed]
# The same, and the target partition.
_Sent = tuple[str, int, bytes | None, Any, Replayed]


def _classify(
    options: ReplayOptions, tp: TopicPartition, record: Any, *, fast: bool
) -> tuple[Decision, Replayed, Letter | None] | None:
    """What a replay does with one record of the dead-letter topic, and the headers it sends
    (empty unless sent); None when the selection does not take it. ``fast``: from the raw
    headers when they suffice (no filter), with no ``Letter``."""
    if fast:
        found = triage(
            record.headers,
            source_id(tp.topic, tp.partition, record.offset),
            to=options.to,
            dlq_topic=options.dlq_topic,
            max_replays=options.max_replays,
        )
        if found is not None:
            return found[0], found[1], None
    letter = letter_of(tp, record)
    if not options.selection.matches(letter):
        return None
    decision = decide(
        letter, to=options.to, dlq_topic=options.dlq_topic, max_replays=options.max_replays
    )
    return decision, replay_headers(letter) if decision.action is Action.SEND else [], letter


async def _already_sent(bootstrap: str, since: dict[str, dict[int, int]]) -> set[str]:
    """``replay.source`` and ``replay.origin`` of every record on the targets from the
    checkpoint's offsets on (the two never look alike: an origin has five parts)."""
    found: set[str] = set()
    async with consumer(bootstrap) as c:
        windows: dict[TopicPartition, Window] = {}
        for topic, parts in since.items():
            tps = [TopicPartition(topic, p) for p in parts]
            high = await c.end_offsets(tps)
            windows.update({tp: Window(parts[tp.partition], high[tp], False) for tp in tps})
        async for chunk in read(c, windows):
            for _, record in chunk:
                for name, value in record.headers or ():
                    if name in {REPLAY_SOURCE, REPLAY_ORIGIN} and value:
                        found.add(value.decode("utf-8", "replace"))
    return found


async def _target_ends(c: AIOKafkaConsumer, topics: Iterable[str]) -> dict[str, dict[int, int]]:
    ends: dict[str, dict[int, int]] = {}
    for topic in topics:
        tps = await partitions(c, topic, "target")
        high = await c.end_offsets(tps)
        ends[topic] = {tp.partition: high[tp] for tp in tps}
    return ends


async def run_replay(
    options: ReplayOptions,
    plan: ReplayPlan,
    *,
    progress: Progress | None = None,
    stop: asyncio.Event | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> ReplayCounts:
    """Send what ``plan`` selected, committing progress after each acknowledged chunk.

    ``stop`` set: the chunk in flight is finished and committed, then it returns with
    ``stopped_early``. Records the plan counted but a resumed run finds already on a target
    are counted as ``already_sent``.
    """
    started = clock()
    if plan.selection is not None:
        options = replace(options, selection=plan.selection)
    already = (
        await _already_sent(options.bootstrap, resume_from(plan.checkpoints))
        if plan.resumed
        else set()
    )
    run = _Run(options, plan, already, clock)
    async with (
        consumer(options.bootstrap, options.group) as c,
        producer(options.bootstrap) as p,
    ):
        # Below anything sent from now on: the targets' ends, once what was sent is known.
        run.targets = await _target_ends(c, plan.targets)
        run.limits = await max_message_bytes(options.bootstrap, plan.targets)
        # Committed before the first send, so a run killed in its first chunk is resumed
        # (and its sends looked up) rather than started afresh.
        c.assign(list(plan.windows))
        await _commit(c, plan, run.positions, run.targets)
        # About a second of sending per chunk: the checkpoint keeps up with a slow rate.
        size = CHUNK if not options.rate else max(1, min(CHUNK, int(options.rate)))
        async for chunk in read(c, plan.windows, max_records=size):
            cut = await run.chunk(p, chunk)
            await run.settle(c, cut)
            await _commit(c, plan, run.positions, run.targets)
            run.counts.seconds = clock() - started
            if progress is not None:
                progress(run.counts, plan)
            if run.done or (stop is not None and stop.is_set()):
                break
        counts = run.counts
        counts.stopped_early = any(run.positions[tp] < w.stop for tp, w in plan.windows.items())
        if plan.windows and not counts.stopped_early:
            # Also records a window that had nothing to read as finished.
            await _commit(c, plan, run.positions, run.targets)
    counts.seconds = clock() - started
    return counts


class _Run:
    """The state of one replay run between chunks."""

    def __init__(
        self,
        options: ReplayOptions,
        plan: ReplayPlan,
        already: set[str],
        clock: Callable[[], float],
    ) -> None:
        self.options = options
        self.plan = plan
        self.already = already
        # Origins sent by this run: a second letter of one failure is not sent again.
        self.origins: set[bytes] = set()
        self.counts = ReplayCounts()
        self.bucket = TokenBucket(options.rate, clock=clock) if options.rate else None
        self.positions = {tp: w.start for tp, w in plan.windows.items()}
        self.targets: dict[str, dict[int, int]] = {}
        self.limits: dict[str, int] = {}  # each target's max.message.bytes
        self.done = False
        # Each batch sent and what it holds: (target, partition, key, dead letter, headers).
        self.futures: list[tuple[asyncio.Future[Any], list[_Sent]]] = []
        self.partitions: dict[str, list[int]] = {}
        self.clock = clock
        self.first_send: float | None = None

    async def chunk(
        self, p: AIOKafkaProducer, chunk: list[tuple[TopicPartition, Any]]
    ) -> set[TopicPartition]:
        """Send the chunk's selected records; returns partitions cut short by ``--max``."""
        options, counts = self.options, self.counts
        fast = options.selection.everything
        cut: set[TopicPartition] = set()
        sending: list[_Sending] = []
        for tp, record in chunk:
            if tp in cut:
                continue
            if options.max_records is not None and counts.sent >= options.max_records:
                self.done = True
                cut.add(tp)
                continue
            self.positions[tp] = record.offset + 1
            counts.read += 1
            found = _classify(options, tp, record, fast=fast)
            if found is None:
                continue
            decision, headers, _ = found
            counts.selected += 1
            if decision.action is Action.SKIP:
                counts.skipped += 1
                counts.skipped_why[decision.why] += 1
            elif decision.action is Action.QUARANTINE:
                counts.quarantined += 1
            elif self.already and source_id(tp.topic, tp.partition, record.offset) in self.already:
                counts.already_sent += 1
            elif self._copy(headers):
                counts.copies += 1
            elif decision.target is not None:
                key = replay_key(record.key, record.value) if decision.rekey else record.key
                sending.append((decision.target, key, record, headers))
                counts.sent += 1
                counts.sent_by_target[decision.target] += 1
        await self._send(p, sending)
        return cut

    def _copy(self, headers: Replayed) -> bool:
        """Whether a letter of the same failure was sent already (by this run, or by an
        interrupted run of this replay); else its origin counts as sent from now on."""
        # Among the last headers the replay added: searched from the end.
        origin = next((v for n, v in reversed(headers) if n == REPLAY_ORIGIN), None)
        if origin is None:
            return False
        if origin in self.origins:
            return True
        if self.already and origin.decode("utf-8", "replace") in self.already:
            return True
        self.origins.add(origin)
        return False

    async def _send(self, p: AIOKafkaProducer, sending: list[_Sending]) -> None:
        """Hand the records to the producer as one batch per target partition, in order;
        at the rate limit, in slices of the bucket's burst, each after its wait."""
        async for piece in _paced(sending, self.bucket, len(sending)):
            if self.first_send is None:
                self.first_send = self.clock()
            by_partition: dict[tuple[str, int], list[tuple[bytes | None, Any, Replayed]]] = {}
            for target, key, record, headers in piece:
                part = await _partition_of(p, self.partitions, target, key)
                kept = _kept_partition(_origin(record.headers), target, self.partitions)
                if kept is not None and key == record.key:
                    part = kept
                by_partition.setdefault((target, part), []).append((key, record, headers))
            for (target, part), records in by_partition.items():
                await self._send_batches(p, target, part, records)

    async def _send_batches(
        self,
        p: AIOKafkaProducer,
        topic: str,
        part: int,
        records: list[tuple[bytes | None, Any, Replayed]],
    ) -> None:
        items = [(key, record.value, headers, (topic, part, key, record, headers))
                 for key, record, headers in records]  # fmt: skip
        sent, refused = await send_fitting(p, topic, part, items, self.limits.get(topic))
        self.futures += sent
        for item in refused:
            self._refused(item)

    def _refused(self, sent: _Sent) -> None:
        """A record too large for its target: counted as skipped and named in the report;
        its dead letter stays where it is."""
        target, record = sent[0], sent[3]
        counts = self.counts
        counts.sent -= 1
        counts.sent_by_target[target] -= 1
        if not counts.sent_by_target[target]:
            del counts.sent_by_target[target]
        counts.skipped += 1
        counts.skipped_why[f"too large for {target}"] += 1
        where = source_id(record.topic, record.partition, record.offset)
        counts.too_large.setdefault(target, []).append(where)

    async def settle(self, c: AIOKafkaConsumer, cut: set[TopicPartition]) -> None:
        """Wait for the broker's acknowledgements; note how far the targets and the
        partitions got."""
        futures, self.futures = self.futures, []
        acked = await _acked(futures)
        for meta, (_, members) in zip(acked, futures, strict=True):
            parts = self.targets.setdefault(meta.topic, {})
            parts[meta.partition] = max(parts.get(meta.partition, 0), meta.offset + len(members))
        if futures and self.first_send is not None:
            self.counts.sending_seconds = self.clock() - self.first_send
        # A partition read to the end of its window has no record left below its stop.
        for tp, w in self.plan.windows.items():
            if tp not in cut and self.positions[tp] < w.stop and await c.position(tp) >= w.stop:
                self.positions[tp] = w.stop


# -- sending ------------------------------------------------------------------------------


async def _paced(
    items: Sequence[_T], bucket: TokenBucket | None, whole: int
) -> AsyncIterator[Sequence[_T]]:
    """``items`` a slice at a time, each after the rate limit's wait: slices of the bucket's
    burst, or of ``whole`` without a limit."""
    step = max(1, int(bucket.burst) if bucket is not None else whole)
    for start in range(0, len(items), step):
        piece = items[start : start + step]
        if bucket is not None:
            delay = bucket.reserve(len(piece))
            if delay > MIN_SLEEP_S:
                await asyncio.sleep(delay)
        yield piece


async def _partition_of(
    p: AIOKafkaProducer, known: dict[str, list[int]], topic: str, key: bytes | None
) -> int:
    """The partition the producer's default partitioner would choose; ``known`` keeps each
    topic's partitions."""
    parts = known.get(topic)
    if parts is None:
        parts = known[topic] = sorted(await p.partitions_for(topic))
    return int(PARTITIONER(key, parts, parts))


def _kept_partition(
    origin: tuple[str | None, int | None], target: str, known: dict[str, list[int]]
) -> int | None:
    """The partition the letter's record came from, when it goes back to that topic keyed as
    it was: where its bot's other events are, whatever partitioner their producer used
    (librdkafka's and kcat's hash keys unlike Kafka's Java default, so a replay placed by
    the default partitioner could open a second window of the bot on another partition).
    None when it goes elsewhere or its partition is gone."""
    topic, partition = origin
    if topic != target or partition is None:
        return None
    return partition if partition in known.get(target, ()) else None


def _origin(headers: Sequence[tuple[str, bytes]] | None) -> tuple[str | None, int | None]:
    """The original topic and partition a dead letter's headers name."""
    fields = dlq.parse_dlq_headers(headers)
    partition = fields.get(dlq.ORIGINAL_PARTITION, "")
    number = int(partition) if partition.isascii() and partition.isdigit() else None
    return fields.get(dlq.ORIGINAL_TOPIC), number


# What one record to send is: key, value, headers, and what the caller knows it by.
_Item = tuple[bytes | None, bytes | None, Replayed, Any]
# Kafka compares each record batch, its header included, with the topic's max.message.bytes.
_BATCH_HEADER_BYTES: Final = 61


async def max_message_bytes(bootstrap: str, topics: Iterable[str]) -> dict[str, int]:
    """Each topic's ``max.message.bytes`` (its own, or the broker's default); a topic the
    broker gives none for is left out."""
    names = sorted(set(topics))
    if not names:
        return {}
    client = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    async with _running(client, bootstrap) as admin:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name, {_MAX_BYTES: None}) for name in names]
        )
    limits: dict[str, int] = {}
    for response in responses:
        for error, _, _, name, entries in response.resources:
            for entry in entries if not error else ():
                if entry[0] == _MAX_BYTES and entry[1]:
                    limits[name] = int(entry[1])
    return limits


_MAX_BYTES: Final = "max.message.bytes"


async def send_fitting(
    p: AIOKafkaProducer, topic: str, part: int, items: list[_Item], limit: int | None
) -> tuple[list[tuple[asyncio.Future[Any], list[Any]]], list[Any]]:
    """Hand ``items`` to the producer, in order, as record batches of partition ``part``
    that each fit ``limit`` (the topic's max.message.bytes; None: unknown).

    Returns each batch's future with what its records are known by, and what is known of
    the records too large for the topic even alone: those are not sent. A batch the broker
    refuses would fail its records that fit too, and with an idempotent producer it breaks
    the sequence of every batch after it on that partition (``OutOfOrderSequenceNumber``).
    """
    room = limit if limit is not None else 1 << 62
    sent: list[tuple[asyncio.Future[Any], list[Any]]] = []
    refused: list[Any] = []
    batch, members = p.create_batch(), list[Any]()

    async def flush() -> None:
        nonlocal batch, members
        if members:
            batch.close()
            sent.append((await p.send_batch(batch, topic, partition=part), members))
            batch, members = p.create_batch(), []

    for key, value, headers, known_as in items:
        alone = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers)
        if alone > room:
            refused.append(known_as)
            continue
        if members and batch.size() + alone - _BATCH_HEADER_BYTES > room:
            await flush()
        if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
            # Full at the producer's batch size. A batch takes its first record whatever
            # its size (one within the topic's limit here).
            await flush()
            batch.append(key=key, value=value, timestamp=None, headers=headers)
        members.append(known_as)
    await flush()
    return sent, refused


async def _acked(futures: list[tuple[asyncio.Future[Any], list[Any]]]) -> list[Any]:
    """The broker's answers; a batch refused as too large all the same (the topic's limit
    changed since it was read, say) is named."""
    answers = await asyncio.gather(*(f for f, _ in futures), return_exceptions=True)
    for answer, (_, members) in zip(answers, futures, strict=True):
        if isinstance(answer, (MessageSizeTooLargeError, RecordListTooLargeError)):
            raise PlanError(
                f"a batch of {len(members)} record(s) was refused as too large for its topic "
                f"({answer}); was its max.message.bytes lowered meanwhile? Run the command "
                "again: records too large are then named and left out"
            )
        if isinstance(answer, BaseException):
            raise answer
    return answers


async def _commit(
    c: AIOKafkaConsumer,
    plan: ReplayPlan,
    positions: dict[TopicPartition, int],
    targets: dict[str, dict[int, int]],
) -> None:
    selection = plan.selection
    times = None if selection is None else (selection.since_ms, selection.until_ms)
    offsets = {
        tp: (positions[tp], Checkpoint(w.stop, targets, times).encode())
        for tp, w in plan.windows.items()
    }
    if offsets:
        await c.commit(offsets)


# -- import -------------------------------------------------------------------------------


async def send_letters(
    bootstrap: str,
    items: list[tuple[Letter, str]],
    *,
    rate: float | None = None,
) -> tuple[Counter[str], list[tuple[Letter, str]]]:
    """Send each letter's replayed record to its target. Returns, once the broker
    acknowledged every one, the counts sent by target and the letters too large for their
    target (not sent)."""
    sent: Counter[str] = Counter()
    refused: list[tuple[Letter, str]] = []
    bucket = TokenBucket(rate) if rate else None
    limits = await max_message_bytes(bootstrap, {target for _, target in items})
    # Sent a slice at a time (at the rate limit, a slice of the bucket's burst), each slice
    # as record batches per target partition: one letter per batch was one produce request
    # per letter, one after another.
    async with producer(bootstrap) as p:
        partitions: dict[str, list[int]] = {}
        futures: list[tuple[asyncio.Future[Any], list[Any]]] = []
        async for piece in _paced(items, bucket, CHUNK):
            groups: dict[tuple[str, int], list[_Item]] = {}
            for letter, target in piece:
                key = letter.key
                if miskeyed(letter.stage, letter.reason):
                    key = replay_key(key, letter.value)
                part = await _partition_of(p, partitions, target, key)
                origin = (letter.original_topic, letter.original_partition)
                kept = _kept_partition(origin, target, partitions)
                if kept is not None and key == letter.key:
                    part = kept
                item = (key, letter.value, replay_headers(letter), (letter, target))
                groups.setdefault((target, part), []).append(item)
            for (target, part), group in groups.items():
                batches, too_large = await send_fitting(p, target, part, group, limits.get(target))
                futures += batches
                refused += too_large
        await _acked(futures)
        for _, members in futures:
            for _, target in members:
                sent[target] += 1
    return sent, refused


async def check_topics(bootstrap: str, topics: Iterable[str], role: str) -> None:
    async with consumer(bootstrap) as c:
        existing = await existing_topics(c)
        for topic in topics:
            if topic not in existing:
                raise TopicMissing(topic, role)


def plan_import(
    letters: Iterable[Letter], *, to: str | None, dlq_topic: str, max_replays: int
) -> list[tuple[Letter, Decision]]:
    check_target(to, dlq_topic)
    return [
        (letter, decide(letter, to=to, dlq_topic=dlq_topic, max_replays=max_replays))
        for letter in letters
    ]


__all__ = [
    "KafkaUnavailable",
    "PlanError",
    "ReplayCounts",
    "ReplayOptions",
    "ReplayPlan",
    "TopicMissing",
    "check_topics",
    "fetch",
    "plan_import",
    "plan_replay",
    "run_replay",
    "scan",
    "send_letters",
]
