"""The per-batch work of the worker: validate, dead-letter, window, close, hand to the sink.

Everything that touches Kafka or OpenSearch comes in through ``Outputs`` and ``StateTable``,
so this module is tested directly with in-memory doubles and runs unchanged in the Faust
agent. A batch is routed (decoded, validated, windowed, its closed windows and alert records
made, its changed state serialized) as soon as it is submitted; its writes then run in a task
of their own while the next batch is routed, so the worker's CPU and the sink's I/O overlap.
Order of the effects of one batch, and why:

1. at once, each awaited: events to the sink (it retries transient failures itself),
   closed windows to the stats topic and the sink, alert records (of the closed windows
   and the batch's events) to the alerts topic and the sink, and dead letters to the
   dead-letter topic and the sink;
2. events the sink rejected, as dead letters (stage ``sink``), the same way;
3. once every earlier batch's state is written: the state serialized when the batch was routed
   written to the changelog-backed table (bot and alert entries first, partition entries
   last) and the changelog's acknowledgements awaited;
4. alert notifications queued for the receivers (Alertmanager, webhook, Slack).

The table goes last so that a crash anywhere before it replays the batch from the same
state (deterministically, so a re-published window or alert record is identical). Receivers
hear of an alert only once its state is durable, so a restarted worker never notifies twice;
the cost is that a crash in the instant between the table write and the queueing loses that
notification for receivers (the topic and the index have it, and Alertmanager gets firing
alerts re-sent). The partition entry goes
after its bots' entries on the same changelog partition, so a restored partition clock is
never ahead of the bot states it governs. A partition entry equal to the one this processor
last wrote for the partition (since it was assigned) is not written again: the table holds
it already, and skipping it cannot put it ahead of any bot entry. Offsets are committed by
faust only after the batch (the worker acks it afterwards) and after its producer is flushed.
Timers and rebalances wait for the batches in flight before they touch the state.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import attrgetter, itemgetter
from typing import Any, Final, NamedTuple, Protocol

import orjson

from schemas import EventError, decode_event, timestamp_ms
from schemas.gather import gather_all
from schemas.jsonbytes import json_bytes
from schemas.sink import DeadLetterRecord, Sink, SinkRecord
from streams.alerting import AlertStage, Notify
from streams.bot_state import NO_OFFSET, BotState, Outcome, PartitionState
from streams.config import StreamsConfig
from streams.dlq import REPLAY_REKEYED, REPLAYED_STAGE, DlqStage, dlq_headers, miskeyed_reason
from streams.metrics import WorkerMetrics, observe_ages
from streams.watermark import NO_TIME, PartitionClock
from streams.windows import FIRST_WINDOWED_MS, LAST_WINDOWED_MS, rfc3339

log = logging.getLogger(__name__)

# Bots not in the cache judged for retirement per partition and check (see ``_quiet``).
DORMANT_PER_CHECK = 2000
# Offset gaps kept between two checks (``take_gaps``).
_GAPS_KEPT = 1000
_PARTITION_OFFSET: Final = itemgetter(1, 2)  # of a Record


class Record(NamedTuple):
    """One Kafka record as the processor needs it (decoupled from faust's types).

    A named tuple (immutable, and ~3x cheaper to build than a frozen dataclass): one is made
    per record read.
    """

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


@dataclass(frozen=True)
class DeadLetter:
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    timestamp_ms: int
    stage: DlqStage
    reason: str
    # Where the record was read: a batch redone after a failure tells by it which of its
    # letters Kafka already has.
    origin: tuple[int, int] = (-1, -1)


class Outputs(Protocol):
    """Kafka topics the worker writes; each call returns once the broker acknowledged."""

    async def dead_letters(self, letters: list[DeadLetter]) -> None: ...

    async def stats(self, windows: list[dict[str, Any]]) -> None: ...

    async def alerts(self, records: list[dict[str, Any]]) -> None: ...


class StateTable(Protocol):
    """The changelog-backed table, addressed per source partition."""

    def load(self, partition: int, key: str) -> bytes | None: ...

    def save(self, entries: Sequence[tuple[int, str, bytes | None]]) -> Awaitable[None] | None:
        """Store each ``(partition, key, value)`` in order (a value of None deletes its
        entry); the awaitable (if any) resolves once the changes are durable."""
        ...

    def scan(self, partition: int, prefix: str) -> Iterable[tuple[str, bytes]]:
        """The entries of ``partition`` whose key starts with ``prefix``."""
        ...


def _bot_key(partition: int, bot_id: str) -> str:
    # The partition is part of the key so that a bot whose records were spread over
    # partitions by a foreign partitioner still has one consistent state per partition.
    return f"b|{partition}|{bot_id}"


def _partition_key(partition: int) -> str:
    return f"p|{partition}"


def _wall_ms() -> int:
    return int(time.time() * 1000)


# (partition, key, value) of the state table; value None deletes the entry.
_Entry = tuple[int, str, bytes | None]


class OffsetGap(NamedTuple):
    """Offsets of an events partition the worker skipped: the one after the last it had
    processed, and the next it read. Kafka's retention (or a deletion by hand) removes
    records an idle or slow worker has not read yet, and the consumer then starts at the
    log's new start; the worker asks the broker where that start is (``take_gaps``)."""

    partition: int
    first_missing: int
    next_read: int


@dataclass
class _Batch:
    """What routing one batch produced, before any of it is written."""

    now: int
    stamp: datetime
    letters: list[DeadLetter] = field(default_factory=list)
    valid: list[SinkRecord] = field(default_factory=list)
    touched: set[tuple[int, str]] = field(default_factory=set)
    partitions: set[int] = field(default_factory=set)
    late: int = 0
    unwindowed: int = 0
    miskeyed: int = 0
    duplicates: int = 0
    reindexed: int = 0
    # Windows closed while routing, in record order (see ``_route_all``).
    closed: list[dict[str, Any]] = field(default_factory=list)
    # For the alert stage: newest event time and env per (partition, bot), typed errors,
    # and the alert records of the windows closed while routing.
    last_seen: dict[tuple[int, str], int] = field(default_factory=dict)
    # Kafka's timestamp of each (partition, bot)'s last record: when it was sent, by the
    # producer's clock (or appended, by the broker's), whatever the event times say
    # (absence, judged at the wall clock).
    heard: dict[tuple[int, str], int] = field(default_factory=dict)
    # The same for bots whose events of the batch were all unwindowed (dated over an hour
    # ahead, say): they are sending, whatever their clock says (``AlertEngine.on_heard``).
    heard_only: dict[tuple[int, str], int] = field(default_factory=dict)
    envs: dict[tuple[int, str], str] = field(default_factory=dict)
    errors: list[tuple[int, str, str, int]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    # Partitions whose first records of the batch were processed before (a restart or a
    # rebalance before their offsets were committed): the last offset processed before.
    repeats: dict[int, int] = field(default_factory=dict)
    # Dead letters of those records, not sent again (their first reading sent them).
    repeated_letters: int = 0


class _Prepared(NamedTuple):
    """A routed batch: what it writes, and its state entries serialized when it was routed."""

    records: Sequence[Record]
    batch: _Batch
    state: list[_Entry]


_timestamp_of = attrgetter("timestamp_ms")
_LATE = Outcome.LATE
_DUPLICATE = Outcome.DUPLICATE
_UNWINDOWED = Outcome.UNWINDOWED
_MISKEYED = Outcome.MISKEYED
_NEVER = 1 << 62  # later than any window end
# A record without a value (null, as a tombstone) is not an empty document.
_NO_VALUE: Final = "record: has no value (null, as a tombstone); an event is a JSON object"


def _next_due(part: PartitionState) -> int:
    return min(part.next_close.values(), default=_NEVER)


class BatchProcessor:
    def __init__(
        self,
        config: StreamsConfig,
        table: StateTable,
        outputs: Outputs,
        sink: Sink,
        metrics: WorkerMetrics,
        *,
        alerts: AlertStage | None = None,
        notify: Notify | None = None,
        now_ms: Callable[[], int] = _wall_ms,
        log_end: Callable[[int], int | None] | None = None,
    ) -> None:
        self.config = config
        self.table = table
        self.outputs = outputs
        self.sink = sink
        self.metrics = metrics
        self.alerts = alerts if alerts is not None and alerts.enabled else None
        self.notify = notify
        self.now_ms = now_ms
        # The offset after the last record of an events partition, as last fetched (None:
        # not known): whether a record at or below one already processed is read again or
        # belongs to a log made again.
        self._log_end = log_end
        self._lateness_ms = int(config.lateness_s * 1000)
        self._future_ms = int(config.max_future_s * 1000)
        self._idle_ms = int(config.idle_close_s * 1000)
        self._retire_ms = int(config.retire_after_s * 1000)
        self._parts: dict[int, PartitionState] = {}
        self._bots: dict[int, dict[str, BotState]] = {}
        self._last_offset: dict[int, int] = {}
        # Bots in the table that no record of this run touched (not in the cache), found by
        # one scan per partition at its first retirement check, with the time from which
        # each may be quiet long enough: they are judged then, without being cached.
        self._dormant: dict[int, dict[str, int]] = {}
        # Skipped offsets seen since the last ``take_gaps`` (at most _GAPS_KEPT).
        self._gaps: list[OffsetGap] = []
        # Windows open in the cached bot states, kept up to date instead of counted per batch.
        self._open_windows = 0
        # The partition entry last written per partition: an unchanged one is not written again.
        self._saved_partition: dict[int, bytes] = {}
        self._lock = asyncio.Lock()
        # The last submitted batch's task: the next one writes its state after it.
        self._tail: asyncio.Task[None] | None = None
        # Partitions of submitted batches that failed: the cache holds changes the table does
        # not, and the timers write nothing until the caller ``forget``s them.
        self._broken: set[int] = set()
        # Records (partition, offset) and stage of dead letters Kafka acknowledged while their
        # batch's state is not written yet: a batch redone after a failure (a refused bulk
        # request, an output down) does not send them again. Once the state is written, the
        # partition entry's last offset says the same, across restarts.
        self._letters_sent: set[tuple[tuple[int, int], str]] = set()

    # -- state cache -----------------------------------------------------------------

    def forget(self, partitions: Sequence[int]) -> None:
        """Drop cached state of partitions this worker no longer (or newly) owns.

        Also how a caller recovers from a failed batch: once every task in flight ended, it
        forgets their partitions (state is reloaded from the table) and submits them again.
        """
        self._broken.difference_update(partitions)
        tail = self._tail
        if tail is not None and tail.done():
            self._tail = None  # a new chain: the next batch must not wait on a failed one
        for partition in partitions:
            self._parts.pop(partition, None)
            self._saved_partition.pop(partition, None)
            bots = self._bots.pop(partition, None)
            if bots:
                self._open_windows -= sum(len(bot.windows) for bot in bots.values())
            self._last_offset.pop(partition, None)
            self._dormant.pop(partition, None)
        if self.alerts is not None:
            self.alerts.forget(partitions)
        self.metrics.open_windows.set(self._open_windows)

    async def release(self, partitions: Sequence[int]) -> None:
        """``forget`` once the batch in flight (if any) is finished.

        A rebalance must not pull state from under a running batch: the batch would fail
        half-way, and a worker stopping right then could ack records it never saved.
        """
        async with self._lock:
            await self.drain()
            self.forget(partitions)
            # Whoever owns them next reads their uncommitted records again, and sends what
            # it does not know was sent; held here, these would only be kept for nothing.
            self._drop_letters_sent(set(partitions))

    async def adopt_owned(self, partitions: Sequence[int]) -> None:
        """``adopt`` between batches (see ``release``)."""
        async with self._lock:
            await self.drain()
            self.adopt(partitions)

    def adopt(self, partitions: Sequence[int]) -> None:
        """Load the state of owned partitions that no record has touched yet.

        A partition taken over from another worker may receive no new record; its open
        windows must still close (by watermark or by the idle rule), so its state is loaded
        as soon as the table is recovered rather than on its first record.
        """
        now = self.now_ms()
        for partition in partitions:
            if partition not in self._parts:
                self._partition(partition, now)
            if self.alerts is not None:
                self.alerts.engine(partition)

    def _partition(self, partition: int, now: int) -> PartitionState:
        state = self._parts.get(partition)
        if state is None:
            raw = self.table.load(partition, _partition_key(partition))
            if raw is None:
                state = PartitionState()
                state.clock.lateness_ms = self._lateness_ms
                state.clock.idle_close_ms = self._idle_ms
            else:
                data = orjson.loads(raw)
                state = PartitionState.from_dict(
                    data, now, lateness_ms=self._lateness_ms, idle_close_ms=self._idle_ms
                )
                stored = data.get("offset")
                if stored is not None and stored > self._last_offset.get(partition, -1):
                    self._last_offset[partition] = stored
            self._parts[partition] = state
            self._bots.setdefault(partition, {})
        return state

    def _bot(self, partition: int, bot_id: str) -> BotState:
        bots = self._bots[partition]
        state = bots.get(bot_id)
        if state is None:
            state = self._stored_bot(partition, bot_id)
            bots[bot_id] = state
            self._open_windows += len(state.windows)
            dormant = self._dormant.get(partition)
            if dormant:
                dormant.pop(bot_id, None)
        return state

    def _stored_bot(self, partition: int, bot_id: str) -> BotState:
        raw = self.table.load(partition, _bot_key(partition, bot_id))
        return BotState.from_dict(orjson.loads(raw)) if raw else BotState(bot_id)

    def _dormant_bots(self, partition: int) -> dict[str, int]:
        """Bots of ``partition`` in the table but not in the cache (see ``_dormant``).

        Without them, a bot that went quiet before the worker restarted (or before another
        worker took its partition over) stayed in the table for good: only the bots a
        record brought into the cache were ever retired.
        """
        dormant = self._dormant.get(partition)
        if dormant is None:
            prefix = _bot_key(partition, "")
            cached = self._bots[partition]
            dormant = {
                key[len(prefix) :]: 0
                for key, _ in self.table.scan(partition, prefix)
                if key[len(prefix) :] not in cached
            }
            self._dormant[partition] = dormant
        return dormant

    # -- processing ------------------------------------------------------------------

    async def process(self, records: Sequence[Record]) -> None:
        """Process one batch. Never raises for a bad record: it becomes a dead letter."""
        task = await self.submit(records)
        assert task is not None  # always routed: no ownership test was asked for
        await task

    async def submit(
        self,
        records: Sequence[Record],
        then: Callable[[], None] | None = None,
        owned: Callable[[], bool] | None = None,
    ) -> asyncio.Task[None] | None:
        """Route the batch now; return the task that writes it out, then calls ``then``.

        ``owned`` is asked once the batch holds the lock, just before routing: False (its
        partitions were revoked while it waited) drops the batch, unrouted and un-acked, and
        returns None. Routing it would load a partition another worker now owns, write
        entries to its changelog, and close its windows here as idle later on.

        The pipeline (see the module doc): the next batch is routed while this one's writes
        are in flight. What this batch changed is serialized before ``submit`` returns, so
        later batches cannot leak into its table entries, and the task writes them only
        after every earlier batch's table writes (a task whose predecessor failed fails too,
        without writing state). A failed task leaves the processor's cache ahead of the
        table: the caller waits for every task in flight, ``forget``s their partitions and
        submits them again.
        """
        async with self._lock:
            if owned is not None and not owned():
                return None
            try:
                prepared = self._prepare(records)
            except BaseException:
                # Offsets may have moved on in the cache: no timer may save it before the
                # caller ``forget``s these partitions.
                self._broken.update(r.partition for r in records)
                raise
            task = asyncio.ensure_future(self._finish(prepared, self._tail, then))
            self._tail = task
        return task

    async def drain(self) -> None:
        """Wait until every submitted batch has ended (its outcome is the submitter's)."""
        tail = self._tail
        if tail is not None:
            await asyncio.wait([tail])

    def _prepare(self, records: Sequence[Record]) -> _Prepared:
        batch = _Batch(now=self.now_ms(), stamp=datetime.now(UTC))
        routed, seen = self._advance_offsets(records, batch)
        repeats = batch.repeats
        if repeats:
            again = [r for r in routed if r.offset <= repeats.get(r.partition, -1)]
            fresh = [r for r in routed if r.offset > repeats.get(r.partition, -1)]
            # Routed first (each partition's records keep their order) for their windows'
            # sake; their dead letters are dropped: the batch that first read them sent them
            # before its state, which says they were processed, was written.
            dropped: list[DeadLetter] = []
            counted = batch.unwindowed, batch.miskeyed, batch.reindexed
            self._route_all(again, batch, dropped)
            batch.repeated_letters = len(dropped)
            # Counted when first read, like their letters (the windows count their own
            # repeats as duplicates).
            batch.unwindowed, batch.miskeyed, batch.reindexed = counted
            self._route_all(fresh, batch, batch.letters)
        else:
            self._route_all(routed, batch, batch.letters)
        alerts = batch.alerts
        alerts += self._observe(batch)
        batch.closed += self._close_due(batch.partitions, batch.touched, alerts)
        state = self._snapshot(batch.touched, batch.partitions | seen)
        return _Prepared(records, batch, state)

    async def _finish(
        self,
        prepared: _Prepared,
        before: asyncio.Task[None] | None,
        then: Callable[[], None] | None,
    ) -> None:
        try:
            await self._write_out(prepared, before)
        except BaseException:
            self._broken.update(r.partition for r in prepared.records)
            raise
        if then is not None:
            then()

    async def _write_out(self, prepared: _Prepared, before: asyncio.Task[None] | None) -> None:
        batch = prepared.batch
        alerts = batch.alerts
        # Independent writes go out together; each is idempotent, and all have ended before
        # the table is written. Only the events' sink rejections wait for their answer.
        written, *_ = await gather_all(
            self.sink.write_events(batch.valid),
            self._publish_windows(batch.closed),
            self._publish_alerts(alerts),
            self._publish_letters(batch.letters),
        )
        rejections = []
        repeats = batch.repeats
        for rejected in written.rejected:
            r = rejected.record
            if r.offset <= repeats.get(r.partition, -1):
                batch.repeated_letters += 1  # rejected and dead-lettered when first read
                continue
            source = Record(r.topic, r.partition, r.offset, r.timestamp_ms, r.key, r.raw, r.headers)
            rejections.append(self._letter(source, "sink", rejected.reason, None, batch.stamp))
        await self._publish_letters(rejections)
        batch.letters += rejections
        if before is not None:
            await before  # raises when the batch before failed: this one's state waits too
        await self._write(prepared.state)
        if self._letters_sent:
            self._letters_sent.difference_update((x.origin, x.stage) for x in batch.letters)
        self._notify(alerts)
        self._count(prepared.records, batch)

    def _advance_offsets(
        self, records: Sequence[Record], batch: _Batch
    ) -> tuple[Sequence[Record], set[int]]:
        """Record how far each partition was processed; it is stored with the partition entry.

        A worker that takes a partition over learns from it whether anything is left to
        read, which the idle rule needs (a backlog is not quietness). Runs before the batch
        is routed: a partition whose log was made again is rebased first (``_rebase``), and
        one whose first record was processed before goes into ``batch.repeats``.

        Returns the records to route (``records``, or ``in_log_order(records)`` when a
        partition's offsets go back in the batch) and the partitions seen. Nothing changes
        before the one pass over the records has shown they are in order.
        """
        top: dict[int, int] = {}  # each partition's highest offset so far in the batch
        first: dict[int, int] = {}
        jumps: list[tuple[int, int, int]] = []  # (partition, offset, next offset) apart > 2
        get = top.get
        for partition, offset in map(_PARTITION_OFFSET, records):
            before = get(partition)
            if before is None:
                first[partition] = offset
            elif offset <= before:
                ordered = in_log_order(records)
                batch.duplicates += len(records) - len(ordered)
                return self._advance_offsets(ordered, batch)
            elif offset > before + 2:
                jumps.append((partition, before, offset))
            top[partition] = offset
        last = self._last_offset
        gaps = self._gaps
        done_before: dict[int, int] = {}
        for partition, offset in first.items():
            self._partition(partition, batch.now)
            self._rebase(partition, offset)
            done = done_before[partition] = last.get(partition, -1)
            if offset <= done:
                batch.repeats[partition] = done
            # A gap of one is a transaction's commit marker, not a record.
            elif offset > done + 2 and done >= 0 and len(gaps) < _GAPS_KEPT:
                gaps.append(OffsetGap(partition, done + 1, offset))
            if top[partition] > done:
                last[partition] = top[partition]
        for partition, offset, following in jumps:
            done = max(offset, done_before[partition])
            if following > done + 2 and len(gaps) < _GAPS_KEPT:
                gaps.append(OffsetGap(partition, done + 1, following))
        return records, set(first)

    def _drop_letters_sent(self, partitions: set[int]) -> None:
        sent = self._letters_sent
        sent.difference_update([x for x in sent if x[0][0] in partitions])

    def take_gaps(self) -> list[OffsetGap]:
        """The offsets skipped since the last call (the worker checks them against the log's
        start: those below it were deleted before anyone read them)."""
        gaps, self._gaps = self._gaps, []
        return gaps

    def _rebase(self, partition: int, offset: int) -> None:
        """Rebase ``partition`` when its log was deleted and made again under the worker.

        A record at or below the last one processed is normally read again (a restart, a
        rebalance: ``Outcome.DUPLICATE``). When the log also ends at or before that last
        offset, the records processed cannot be in it any more: the topic was made again (or
        the broker lost its end), and its records, numbered from 0 again, are new. Seen
        only while the new log is shorter than the old one was: a topic made again while no
        worker ran, and filled past the old end before one starts, is not told apart.
        """
        done = self._last_offset.get(partition, -1)
        if offset > done or self._log_end is None:
            return
        end = self._log_end(partition)
        if end is None or end > done:
            return
        self._parts[partition].rebase(done)
        self._last_offset[partition] = -1
        self._drop_letters_sent({partition})
        log.warning(
            "partition %d of the events topic %s ends at offset %d, before offset %d that "
            "this worker already processed: the topic was deleted and made again (or the "
            "broker lost records). Its records from offset %d on are taken as new events.",
            partition,
            self.config.events_topic,
            end,
            done,
            offset,
        )

    def _route_all(  # noqa: PLR0915
        self, records: Sequence[Record], batch: _Batch, letters: list[DeadLetter]
    ) -> None:
        """Decode, validate and window each record; what fails becomes a dead letter in
        ``letters``.

        One loop with its lookups hoisted (a call and a few attribute lookups per record
        are a measurable share of the worker's time): the partition state is looked up
        when the partition changes, a cached bot state without a method call.
        """
        decode = decode_event
        ts_of = timestamp_ms
        new_tuple = tuple.__new__
        load_bot = self._bot
        bots_of = self._bots
        now = batch.now
        stamp = batch.stamp
        valid = batch.valid
        touched = batch.touched
        late = duplicates = opened = reindexed = unwindowed = miskeyed = 0
        # Event times a window may take: not beyond the clock's future skew (one far-future
        # event would otherwise push the watermark ahead and make every later event late).
        horizon = min(now + self._future_ms, LAST_WINDOWED_MS)
        alerting = self.alerts is not None
        last_seen, heard, envs, errors = batch.last_seen, batch.heard, batch.envs, batch.errors
        current, base = -1, 0
        bots: dict[str, BotState] = {}
        clock: PartitionClock | None = None
        part: PartitionState | None = None
        due_at = _NEVER  # the partition's earliest window end: windows close when it passes
        for rec in records:
            value = rec.value
            try:
                event = decode(value if value is not None else b"")
            except EventError as exc:
                if value is None:
                    letters.append(self._letter(rec, "decode", _NO_VALUE, None, stamp))
                    continue
                stage: DlqStage = "decode" if exc.stage == "decode" else "validate"
                letters.append(self._letter(rec, stage, exc.reason, exc, stamp))
                continue
            except Exception as exc:  # a poison record must not stop the stream
                reason = f"could not decode: {exc}"
                letters.append(self._letter(rec, "decode", reason, exc, stamp))
                continue
            partition = rec.partition
            headers = rec.headers
            replay = _replayed_stage(headers) if headers else None
            if replay == b"sink":
                # Counted in its window when first read; only OpenSearch refused it then.
                valid.append(_sink_record(rec, event))
                reindexed += 1
                continue
            try:
                ts = ts_of(event["timestamp"])
                bot_id = event["bot_id"]
                if rec.key != bot_id.encode():
                    # Its bot's other events (keyed right) and windows are on another
                    # partition: windowed here, the bot's stats would be split in two.
                    outcome = _MISKEYED
                elif not FIRST_WINDOWED_MS <= ts <= horizon:
                    outcome = _UNWINDOWED
                else:
                    if partition != current or clock is None or part is None:
                        part = self._partition(partition, now)
                        clock = part.clock
                        base = part.offset_base
                        bots = bots_of[partition]
                        current = partition
                        due_at = _next_due(part)
                    clock.observe(ts, now)
                    if clock.watermark >= due_at:
                        self._close_now(partition, part, batch)
                        due_at = _next_due(part)
                    bot = bots.get(bot_id)
                    if bot is None:
                        bot = load_bot(partition, bot_id)
                    windows = bot.windows
                    before = len(windows)
                    if replay is None:
                        outcome = bot.apply(rec.offset + base, event, ts, clock)
                    else:  # two copies of one replayed event count once
                        outcome = bot.apply_replayed(rec.offset + base, event, ts, clock)
                    if len(windows) != before:
                        opened += len(windows) - before
                        end = bot.next_close_ms
                        part.track(bot_id, end)
                        if end is not None and end < due_at:
                            due_at = end
            except Exception as exc:  # dead-letter it, keep going
                reason = f"windowing failed for a valid event: {exc}"
                letters.append(self._letter(rec, "validate", reason, exc, stamp))
                continue
            if outcome is _UNWINDOWED:  # no bot state read or changed: only indexed
                unwindowed += 1
                if alerting and replay is None:
                    batch.heard_only[(partition, bot_id)] = rec.timestamp_ms
            elif outcome is _MISKEYED:  # the same, and a dead letter to replay it keyed right
                miskeyed += 1
                letters.append(
                    self._letter(rec, "validate", miskeyed_reason(rec.key, bot_id), None, stamp)
                )
            else:
                if outcome is _LATE:
                    late += 1
                elif outcome is _DUPLICATE:
                    duplicates += 1
                key = (partition, bot_id)
                touched.add(key)
                # A replayed record is old news sent by the replay, not by its bot: it must
                # not take a bot that is down for back, nor page about an old error.
                if alerting and replay is None:
                    if last_seen.get(key, ts - 1) < ts:
                        last_seen[key] = ts
                    heard[key] = rec.timestamp_ms
                    env = event.get("env")
                    if env is not None:
                        envs[key] = env
                    error = event.get("error")
                    if error is not None and error.get("type"):
                        errors.append((partition, bot_id, error["type"], ts))
            # ``_sink_record`` inlined (a call and the named tuple's ``__new__`` per event);
            # ``rec[0]`` to ``rec[4]`` are the record's topic, partition, offset, timestamp
            # and key (indexing: a slice and unpacking made two more tuples per event).
            sink_record = (value, event, rec[0], rec[1], rec[2], rec[3], rec[4], headers)
            valid.append(new_tuple(SinkRecord, sink_record))
            if event.get("status") == "failure" and not (headers and _rekeyed(headers)):
                letters.append(self._letter(rec, "job_failure", _job_failure(event), None, stamp))
        self._open_windows += opened
        batch.late += late
        batch.unwindowed += unwindowed
        batch.miskeyed += miskeyed
        batch.duplicates += duplicates
        batch.reindexed += reindexed
        batch.partitions.update(partition for partition, _ in touched)

    def _count(self, records: Sequence[Record], batch: _Batch) -> None:
        m = self.metrics
        m.records_in.inc(len(records))
        m.records_valid.inc(len(batch.valid))
        m.batch_size.observe(len(records))
        if batch.late:
            m.late_events.inc(batch.late)
        if batch.unwindowed:
            m.unwindowed_events.inc(batch.unwindowed)
        if batch.miskeyed:
            m.miskeyed_events.inc(batch.miskeyed)
        if batch.duplicates:
            m.duplicates_skipped.inc(batch.duplicates)
        if batch.reindexed:
            m.reindexed.inc(batch.reindexed)
        if batch.repeated_letters:
            m.repeated_letters_skipped.inc(batch.repeated_letters)
        if batch.letters:
            for stage, n in Counter(letter.stage for letter in batch.letters).items():
                m.dead_letters.labels(stage=stage).inc(n)
        observe_ages(m.processing_latency, _wall_ms(), map(_timestamp_of, records))

    def _close_now(self, partition: int, part: PartitionState, batch: _Batch) -> None:
        """Close the partition's windows that its watermark passed, before the next record.

        Closing as soon as the watermark passes a window's end (not at the end of the
        batch) makes what a closed window reports independent of where batches begin and
        end: the late events counted into it (``late_events_excluded``) are those read
        before that point, so a replay after a crash, cut into other batches, publishes
        the same record.
        """
        watermark = part.clock.watermark
        bots = self._bots[partition]
        for bot_id in part.due():
            bot = bots.get(bot_id)
            if bot is None:
                bot = self._bot(partition, bot_id)
            windows = bot.close_ready(watermark)
            self._open_windows -= len(windows)
            batch.closed.extend(windows)
            batch.touched.add((partition, bot_id))
            part.track(bot_id, bot.next_close_ms)
            if self.alerts is not None and windows:
                batch.alerts += self.alerts.on_windows(partition, windows)

    def _observe(self, batch: _Batch) -> list[dict[str, Any]]:
        """Alert records the batch's events cause (an absent bot back, a new error type)."""
        stage = self.alerts
        if stage is None or not (batch.last_seen or batch.heard_only):
            return []
        by_partition: dict[int, tuple[dict[str, int], dict[str, str], list[Any], dict[str, int]]]
        by_partition = {}
        for (partition, bot_id), ts in batch.last_seen.items():
            by_partition.setdefault(partition, ({}, {}, [], {}))[0][bot_id] = ts
        for (partition, bot_id), env in batch.envs.items():
            by_partition[partition][1][bot_id] = env
        for partition, bot_id, error_type, ts in batch.errors:
            by_partition[partition][2].append((bot_id, error_type, ts))
        now = batch.now
        for (partition, bot_id), at in batch.heard.items():
            # A producer's clock ahead of the worker's must not make its bot look heard later.
            by_partition[partition][3][bot_id] = min(at, now)
        out: list[dict[str, Any]] = []
        for partition, (seen, envs, errors, heard) in sorted(by_partition.items()):
            out += stage.observe(partition, seen, envs, errors, heard)
        for (partition, bot_id), at in sorted(batch.heard_only.items()):
            if (partition, bot_id) not in batch.last_seen:
                out += stage.heard(partition, bot_id, min(at, now))
        return out

    def _close_due(
        self,
        partitions: set[int],
        touched: set[tuple[int, str]],
        alerts: list[dict[str, Any]],
    ) -> list[dict[str, Any]]:
        """Close the windows the watermarks passed; their alert records go to ``alerts``.

        Routing tracks every bot whose windows it opened, so ``due`` already knows them.
        """
        closed: list[dict[str, Any]] = []
        stage = self.alerts
        for partition in sorted(partitions):
            part = self._parts[partition]
            for bot_id in part.due():
                bot = self._bot(partition, bot_id)
                windows = bot.close_ready(part.clock.watermark)
                self._open_windows -= len(windows)
                closed.extend(windows)
                touched.add((partition, bot_id))
                part.track(bot_id, bot.next_close_ms)
                if stage is not None and windows:
                    alerts += stage.on_windows(partition, windows)
        return closed

    async def _publish_windows(self, closed: list[dict[str, Any]]) -> None:
        if not closed:
            return
        await self.outputs.stats(closed)
        await self.sink.write_stats(closed)
        self.metrics.windows_closed.inc(len(closed))

    async def _publish_letters(self, letters: list[DeadLetter]) -> None:
        """Send ``letters`` to the dead-letter topic, then to the sink (idempotent there).

        Those Kafka acknowledged for an earlier try of the same batch are not sent again.
        """
        if not letters:
            return
        sent = self._letters_sent
        unsent = [x for x in letters if (x.origin, x.stage) not in sent] if sent else letters
        if unsent:
            await self.outputs.dead_letters(unsent)
            sent.update((x.origin, x.stage) for x in unsent)
        await self.sink.write_dead_letters(
            [DeadLetterRecord(x.key, x.value, x.headers) for x in letters]
        )

    async def _publish_alerts(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        await self.outputs.alerts(records)
        await self.sink.write_alerts(records)
        counter = self.metrics.alert_notifications
        for record in records:
            counter.labels(severity=record["severity"], state=record["state"]).inc()

    def _notify(self, records: list[dict[str, Any]]) -> None:
        if self.notify is None:
            return
        for record in records:
            self.notify.submit(record)

    def _snapshot(self, touched: set[tuple[int, str]], partitions: set[int]) -> list[_Entry]:
        """The table entries the batch changed, serialized now, in the order they are written.

        Bot and alert entries go before their partition's entry (module doc).
        """
        entries: list[_Entry] = []
        for partition, bot_id in sorted(touched):
            state = self._bots[partition][bot_id]
            entries.append((partition, _bot_key(partition, bot_id), json_bytes(state.to_dict())))
        if self.alerts is not None:
            for partition in sorted(partitions):
                entries += self.alerts.dirty_entries(partition)
        saved = self._saved_partition
        for partition in sorted(partitions):
            entry = self._parts[partition].to_dict()
            entry["offset"] = self._last_offset.get(partition)
            value = json_bytes(entry)
            if saved.get(partition) != value:
                entries.append((partition, _partition_key(partition), value))
                saved[partition] = value
        self.metrics.open_windows.set(self._open_windows)
        return entries

    async def _write(self, entries: list[_Entry]) -> None:
        """Write table entries and wait until the changelog holds them.

        Waiting here, before the batch is acked, keeps the state durable whatever order the
        framework later stops its producer and commits offsets in (a graceful stop or a
        rebalance right after this batch must not commit offsets whose state was lost).
        """
        done = self.table.save(entries)
        if done is not None:
            await done

    async def _save(self, touched: set[tuple[int, str]], partitions: set[int]) -> None:
        await self._write(self._snapshot(touched, partitions))

    async def close_idle(self, busy: set[int] | frozenset[int] = frozenset()) -> int:
        """Close windows of partitions quiet for the idle time (wall clock). Returns count.

        ``busy`` partitions still have records waiting in Kafka: they are not quiet, only
        behind, so they count as active and their windows wait for their records.
        """
        async with self._between_batches() as usable:
            if not usable:
                return 0
            now = self.now_ms()
            moved = set()
            for partition, part in self._parts.items():
                if partition in busy:
                    part.clock.touch(now)
                elif part.clock.idle_close(now):
                    moved.add(partition)
            if not moved:
                return 0
            touched: set[tuple[int, str]] = set()
            alerts: list[dict[str, Any]] = []
            async with self._reloaded_on_failure(moved):
                closed = self._close_due(moved, touched, alerts)
                await self._publish_windows(closed)
                await self._publish_alerts(alerts)
                await self._save(touched, moved)
            self._notify(alerts)
            return len(closed)

    async def tick_alerts(self, behind: set[int] | frozenset[int] = frozenset()) -> int:
        """Absence, repeats, silences and quiet bots, per owned partition. Returns records.

        A caught-up partition is judged at the wall clock, its windows settled up to its
        watermark (or, once quiet past the idle time, up to the wall clock less lateness and
        idle time); a partition ``behind`` is judged in its own event time.
        """
        if self.alerts is None:
            return 0
        async with self._between_batches() as usable:
            if not usable:
                return 0
            now = self.now_ms()
            records: list[dict[str, Any]] = []
            ticked: list[int] = []
            async with self._reloaded_on_failure(self._parts):
                for partition, part in sorted(self._parts.items()):
                    clock = part.clock
                    if partition in behind:
                        if clock.max_event_ms == NO_TIME:
                            continue
                        at, settled = clock.max_event_ms, clock.watermark
                    else:
                        at = now
                        settled = max(clock.watermark, now - self._lateness_ms - self._idle_ms)
                    records += self.alerts.tick(partition, at, settled, partition not in behind)
                    ticked.append(partition)
                await self._publish_alerts(records)
                await self._write([entry for p in ticked for entry in self.alerts.dirty_entries(p)])
            self._notify(records)
            self._count_active()
            return len(records)

    async def retire_quiet(
        self, committed: Mapping[int, int], behind: set[int] | frozenset[int] = frozenset()
    ) -> int:
        """Forget the bots that sent nothing for ``retire_after_s``; returns how many went.

        Their window and alert entries are deleted (tombstones in the changelog) and their
        firing alerts resolve; a bot that comes back starts afresh. Quiet is judged like the
        alert tick: by the wall clock where a partition is caught up, by its own event time
        where it is ``behind``. A bot with open windows is not quiet, and a bot goes only
        once every record of it is committed (its ``last_offset`` below the partition's
        offset in ``committed``): a record read again after a crash must find its state.
        Late events it sent after its last window closed are in ``botwatch_late_events_total``
        but, with no window of it left to close, in no window record.
        """
        if self._retire_ms <= 0:
            return 0
        async with self._between_batches() as usable:
            if not usable:
                return 0
            now = self.now_ms()
            reason = (
                f"no events for {_duration(self._retire_ms)}: botwatch forgot this bot, and "
                "its next event starts it afresh"
            )
            entries: list[_Entry] = []
            records: list[dict[str, Any]] = []
            retired = 0
            async with self._reloaded_on_failure(self._parts):
                for partition, part in sorted(self._parts.items()):
                    done = committed.get(partition)
                    at = part.clock.max_event_ms if partition in behind else now
                    if done is None or at == NO_TIME:
                        continue
                    wall_clock = partition not in behind
                    for bot_id in self._quiet(partition, at, done, entries, wall_clock):
                        retired += 1
                        self._bots[partition].pop(bot_id, None)
                        entries.append((partition, _bot_key(partition, bot_id), None))
                        if self.alerts is not None:
                            resolved, deleted = self.alerts.retire(partition, bot_id, at, reason)
                            records += resolved
                            entries += deleted
                await self._publish_alerts(records)
                await self._write(entries)
            self._notify(records)
            self._count_active()
            self.metrics.bots_retired.inc(retired)
            return retired

    def _quiet(
        self, partition: int, at: int, committed: int, entries: list[_Entry], wall_clock: bool
    ) -> list[str]:
        """The bots of ``partition`` quiet since before ``at`` less the retirement time.

        A bot with a window entry written before its quiet time was kept starts the clock now
        (its entry, rewritten, goes to ``entries``). Judged by the wall clock, when the bot's
        last record was sent counts too (as for absence): a bot whose clock runs days
        behind was retired at once, while it kept sending.
        """
        horizon = at - self._retire_ms
        bots = self._bots[partition]
        part = self._parts[partition]
        engine = self.alerts.engine(partition) if self.alerts is not None else None
        candidates = set(bots)
        if engine is not None:
            candidates.update(engine.bot_ids())
        dormant = self._dormant_bots(partition)
        # A bounded number per check: each is read from the table and parsed, under the lock
        # that batches wait for, and a restart may leave a great many of them.
        due = (bot_id for bot_id, due_at in dormant.items() if due_at <= at)
        candidates.update(itertools.islice(due, DORMANT_PER_CHECK))
        quiet = []
        for bot_id in sorted(candidates):
            if bot_id in part.next_close:
                continue
            bot = bots.get(bot_id)
            if bot is None:
                if bot_id not in dormant:
                    bot = self._bot(partition, bot_id)  # an alert engine's: cached as before
                else:
                    bot = self._stored_bot(partition, bot_id)
                    dormant[bot_id] = at  # judged again next time, unless said below
            if bot.windows or bot.last_offset >= committed + part.offset_base:
                continue
            signs = [bot.quiet_since()]
            if engine is not None:
                signs.append(engine.last_seen(bot_id))
                if wall_clock:
                    signs.append(engine.last_heard(bot_id))
            seen = [t for t in signs if t is not None]
            if seen:
                if max(seen) <= horizon:
                    quiet.append(bot_id)
                    dormant.pop(bot_id, None)
                elif bot_id in dormant:
                    dormant[bot_id] = max(seen) + self._retire_ms
            elif bot.last_offset == NO_OFFSET:  # nothing says it ever sent anything
                quiet.append(bot_id)
                dormant.pop(bot_id, None)
            else:
                bot.seen_until_ms = at
                entries.append((partition, _bot_key(partition, bot_id), json_bytes(bot.to_dict())))
                if bot_id in dormant:
                    dormant[bot_id] = at + self._retire_ms
        return quiet

    async def exclusive(self, step: Callable[[], Awaitable[None]]) -> None:
        """Run ``step`` between batches, under the lock ``release`` takes: a state write that
        must neither interleave with a batch's nor outlive its partitions' ownership."""
        async with self._between_batches():
            await step()

    @contextlib.asynccontextmanager
    async def _between_batches(self) -> AsyncIterator[bool]:
        """The processor's lock, once every batch in flight has ended: what a timer needs
        before it touches the state. False while a failed batch's partitions wait for the
        caller to ``forget`` them (the cache is ahead of the table)."""
        async with self._lock:
            await self.drain()
            yield not self._broken

    @contextlib.asynccontextmanager
    async def _reloaded_on_failure(self, partitions: Iterable[int]) -> AsyncIterator[None]:
        """A timer's step that fails half-way leaves the cache ahead of what it published
        (windows popped, alerts moved on): the partitions are reloaded from the table, so
        the next step does it again rather than the next batch saving what nobody saw."""
        chosen = sorted(partitions)
        try:
            yield
        except BaseException:
            # The reload is not activity: a quiet partition stays as idle as it was.
            activity = {
                p: self._parts[p].clock.last_activity_ms for p in chosen if p in self._parts
            }
            self.forget(chosen)
            self.adopt(chosen)
            for partition, last in activity.items():
                self._parts[partition].clock.last_activity_ms = last
            raise

    def _count_active(self) -> None:
        if self.alerts is None:
            return
        states = {"pending": 0, "firing": 0}
        for alert in self.alerts.active():
            states[alert["state"]] = states.get(alert["state"], 0) + 1
        for state, n in states.items():
            self.metrics.alerts_active.labels(state=state).set(n)

    def _letter(
        self,
        rec: Record,
        stage: DlqStage,
        reason: str,
        exc: BaseException | None,
        now: datetime,
    ) -> DeadLetter:
        headers = dlq_headers(
            stage,
            reason,
            exc,
            original_topic=rec.topic,
            partition=rec.partition,
            offset=rec.offset,
            timestamp_ms=rec.timestamp_ms,
            original_headers=rec.headers,
            now=now,
        )
        origin = (rec.partition, rec.offset)
        return DeadLetter(rec.key, rec.value, headers, rec.timestamp_ms, stage, reason, origin)

    # -- introspection ---------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Per loaded partition, for ``/status``: times as RFC 3339 and as epoch ms, None
        where no event was seen yet (not the sentinel the clock keeps)."""
        out: dict[str, Any] = {}
        for p, part in sorted(self._parts.items()):
            watermark, newest = part.clock.watermark, part.clock.max_event_ms
            out[str(p)] = {
                "watermark": None if watermark == NO_TIME else rfc3339(watermark),
                "watermark_ms": None if watermark == NO_TIME else watermark,
                "max_event": None if newest == NO_TIME else rfc3339(newest),
                "max_event_ms": None if newest == NO_TIME else newest,
                "bots_with_open_windows": len(part.next_close),
                "last_offset": self._last_offset.get(p),
            }
        return out

    def partitions(self) -> list[int]:
        """Partitions whose state is loaded."""
        return sorted(self._parts)

    def last_offsets(self) -> dict[int, int]:
        return dict(self._last_offset)


def _duration(ms: int) -> str:
    """``7d``, ``36h``, ``90m`` or ``45s``: the largest unit that divides ``ms`` exactly."""
    seconds = ms // 1000
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{ms / 1000:g}s"


def in_log_order(records: Sequence[Record]) -> Sequence[Record]:
    """``records`` with each partition's in offset order, each offset once.

    A batch may hold some offsets of a partition twice, and out of order: the consumer went
    back to the committed offset (as faust does once a rebalance's recovery is done) while
    records it had fetched before still waited. Routed as they came, a record's dead letter
    went out twice, both copies new to the state, and records behind a later one counted as
    duplicates in their windows. Returns ``records`` itself when nothing is out of order.

    Of two records at one offset the later is kept: a copy fetched again is the same record,
    and should a log have started again within one batch, the later is of the log read now.
    (A topic deleted and made again normally ends the assignment first: what was fetched
    from the old log is then dropped with its epoch, see ``streams.app``.)
    """
    top: dict[int, int] = {}
    for rec in records:
        if rec.offset <= top.get(rec.partition, -1):
            break
        top[rec.partition] = rec.offset
    else:
        return records
    by_partition: dict[int, dict[int, Record]] = {}
    for rec in records:
        by_partition.setdefault(rec.partition, {})[rec.offset] = rec  # copies: the last
    return [rec for found in by_partition.values() for _, rec in sorted(found.items())]


def _sink_record(rec: Record, event: dict[str, Any]) -> SinkRecord:
    # Positional: keyword arguments double the cost of building it, once per event.
    return SinkRecord(
        rec.value or b"",
        event,
        rec.topic,
        rec.partition,
        rec.offset,
        rec.timestamp_ms,
        rec.key,
        rec.headers,
    )


def _replayed_stage(headers: list[tuple[str, bytes]]) -> bytes | None:
    """The stage of the dead letter a replayed record was sent from; None when not replayed."""
    return next((value for name, value in headers if name == REPLAYED_STAGE), None)


def _rekeyed(headers: list[tuple[str, bytes]]) -> bool:
    """A replayed event its first reading already copied as a job failure (stage validate)."""
    return any(name == REPLAY_REKEYED for name, _ in headers)


def _job_failure(event: dict[str, Any]) -> str:
    error = event.get("error") or {}
    what = f"{error.get('type', 'failure')}: {error.get('message', event.get('message', ''))}"
    return f"job {event.get('job_id', '?')} of bot {event['bot_id']} failed: {what}"[:1000]
