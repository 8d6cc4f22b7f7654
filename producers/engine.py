"""The sender: moves events from the in-memory queue to Kafka, or to the spool while Kafka is away.

Order. Events leave in the order they were queued. While the spool holds anything, new events
go behind it; the spool is drained (oldest first) only when nothing sent directly is still
unacknowledged, so spooled events never overtake older ones still in the producer.

Duplicates. A record is spooled only when it was *not* handed to the producer, or when the
producer gave it back as failed. Records in flight stay with aiokafka, which (idempotent,
acks=all) retries them until the broker acknowledges them; when they are not acknowledged
within ``delivery_timeout_ms`` only *new* events are diverted to the spool.

A record handed over and then given back without a definite answer (a timeout or a lost
connection: the broker may have written it and gone away before its acknowledgement
arrived), one still unacknowledged at close, and the unacknowledged rest of a spool chunk
are spooled marked *unknown outcome*. Before such records are sent again, under a new
producer id that the broker cannot deduplicate against, a background check
(``producers.resend``) reads back the tail of the partitions they went to (from the last
offset acknowledged before them, or since their creation time; bounded in records and time)
and drops those whose ``event_id`` is already there: counted in ``sent`` and in
``already_delivered``. The bot's calls never wait for it. If the check fails because Kafka is
away again, the records stay spooled and it is retried; if Kafka refuses it (e.g. no read
permission on the topic), they are sent again unchecked, with a warning. An event is dropped
only when the check saw it on the broker.

The residual at-least-once window, deduplicated downstream on ``event_id``: a spool chunk is
committed after it is acknowledged, so a crash in between sends some of its records again; a
record that lies further back than the check reads (more than ``READ_BACK_MAX_RECORDS`` per
partition) is sent again; and so is one in a partition the topic's partition count no longer
maps its key to.

Loss. Nothing is dropped without a counter and a warning: a full queue (the caller waited
``emit_block_ms``), a full or failing spool, a record Kafka refuses. Events only in memory
(queue and in flight) are lost if the process is killed; spooled ones are sent at next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from producers import resend
from producers.config import ProducerConfig
from producers.resend import Verdict
from producers.spool import Record, Spool, SpoolLockedError
from producers.stats import Stats
from producers.transport import (
    KafkaTransport,
    TopicMissingError,
    Transport,
    bad_bootstrap,
    is_delivered,
    is_transient,
)

__all__ = ["Engine", "TransportFactory"]

TransportFactory = Callable[[ProducerConfig], Transport]

_TICK_S = 0.2
_MAX_SEND_ROUND = 5_000
_DRAIN_RECORDS = 2_000
_DRAIN_BYTES = 1024 * 1024
_SPOOL_SLOTS = 8
_CHECK_TIMEOUT_S = 20.0
_CHECK_BACKOFF_MAX_S = 10.0


class _InFlight(NamedTuple):
    key: bytes
    value: bytes
    future: asyncio.Future[Any]
    sent_at: float


class _Delivered:
    """A spooled record the broker already has: committed without being sent again."""


_DELIVERED = _Delivered()

_DrainItem = asyncio.Future[Any] | BaseException | _Delivered


class _Drain(NamedTuple):
    futures: list[_DrainItem]
    started: float


class Engine:
    """Owns the queue, the transport and the spool; runs as one task on one event loop.

    ``offer`` may be called from any thread; everything else runs on the engine's loop.
    """

    def __init__(
        self,
        config: ProducerConfig,
        *,
        spool_name: str = "default",
        transport_factory: TransportFactory = KafkaTransport,
    ) -> None:
        self.config = config
        self.topic = config.topic
        self.stats = Stats()
        self.spool_path: Path | None = None
        self._spool_name = spool_name
        self._transport_factory = transport_factory
        self._queue: deque[tuple[bytes, bytes]] = deque()
        self._max_queue = max(1, config.queue_max_events)
        self._delivery_timeout_s = config.delivery_timeout_ms / 1000
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._wakeup: asyncio.Event | None = None
        self._idle = False
        self._task: asyncio.Task[None] | None = None
        self._transport: Transport | None = None
        self._next_connect = 0.0
        self._connect_backoff = 0.1
        self._spool: Spool | None = None
        self._inflight: deque[_InFlight] = deque()
        self._rescue: list[Record] = []
        self._drain: _Drain | None = None
        self._next_drain = 0.0
        # Outcome-unknown records: last acknowledged offset per (topic, partition), the floors
        # for reading back (a snapshot taken when the first unknown record arose; {} when the
        # spool had some at start), and the check in progress or its verdict.
        self._acked: dict[tuple[str, int], int] = {}
        self._floors: dict[tuple[str, int], int] | None = None
        self._check: asyncio.Task[set[str]] | None = None
        self._check_ids: frozenset[str] = frozenset()
        self._check_failures = 0
        self._verdict: Verdict | None = None
        self._degraded = False
        self._reset = False
        self._closing = False
        self._closed = False

    # -- any thread --------------------------------------------------------------------

    def offer(self, key: bytes, value: bytes) -> bool:
        """Queue one record without waiting; False when the queue is full."""
        if len(self._queue) >= self._max_queue or self._closing:
            return False
        self._queue.append((key, value))
        if self._idle:
            self._idle = False
            self._notify()
        return True

    @property
    def closed(self) -> bool:
        return self._closing or self._closed

    def forked(self) -> None:
        """In a forked child: this copy sends nothing (the parent's thread sends the queue)."""
        self._closing = True
        self._queue.clear()

    def has_room(self) -> bool:
        return len(self._queue) < self._max_queue

    def snapshot(self) -> dict[str, Any]:
        spool = self._spool
        out: dict[str, Any] = self.stats.snapshot()
        out["queued"] = len(self._queue)
        out["in_flight"] = len(self._inflight) + (len(self._drain.futures) if self._drain else 0)
        out["spool_records"] = spool.records if spool else 0
        out["spool_bytes"] = spool.size_bytes if spool else 0
        out["spool_corrupt_bytes"] = spool.corrupt_bytes if spool else 0
        out["connected"] = self._transport is not None and not self._degraded
        return out

    def _notify(self) -> None:
        loop, event = self._loop, self._wakeup
        if loop is None or event is None:
            return  # not started yet: the first pass picks the queue up
        if threading.get_ident() == self._loop_thread:
            event.set()
        else:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(event.set)

    # -- lifecycle (engine loop) -------------------------------------------------------

    async def start(self) -> None:
        """Start the sender task on the running loop; returns at once (connecting is lazy)."""
        if self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._wakeup = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="botwatch-sender")

    async def flush(self, timeout: float, *, until_safe: bool = False) -> bool:
        """Wait up to ``timeout`` s until every queued event is acknowledged; True if so.

        With ``until_safe`` it also stops waiting once Kafka is away and everything pending
        is on disk (nothing more can happen before Kafka returns).
        """
        deadline = time.monotonic() + timeout
        while not self._all_delivered():
            if time.monotonic() >= deadline or self._task is None or self._task.done():
                return False
            if until_safe and self._all_on_disk():
                return False
            self._wake()
            await asyncio.sleep(0.005)
        return True

    async def close(self, timeout: float) -> None:
        """Flush for up to ``timeout`` s, then spool whatever is still pending, and stop."""
        if self._closed or self._closing:
            return
        started = time.monotonic()
        if self._task is not None:
            await self.flush(timeout, until_safe=True)
        self._closing = True
        for task in (self._task, self._check):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._check = None
        self._open_spool()  # never started: still keep what was queued
        transport, self._transport = self._transport, None
        if transport is not None:
            await transport.stop(max(0.0, timeout - (time.monotonic() - started)))
        # Whatever is still unacknowledged goes ahead of the spool, then the queue behind it.
        self._finish_drain(time.monotonic(), final=True)
        unresolved = list(self._rescue)
        for item in self._inflight:
            if item.future.done() and is_delivered(_exception(item.future)):
                self.stats.sent += 1
            else:
                unresolved.append(Record(self.topic, item.key, item.value))
        self._inflight.clear()
        self._rescue = []
        self._rescue_to_spool(unresolved)
        self._spool_queue()
        if self._queue:
            self.stats.dropped_spool_error += len(self._queue)
            self.stats.warn_once("spool_error", "no spool: events pending at close were dropped")
            self._queue.clear()
        if self._spool is not None:
            self._spool.close()
        self._closed = True

    # -- the sender task ---------------------------------------------------------------

    async def _run(self) -> None:
        self._open_spool()
        while True:
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never let a bug here take the bot down
                self.stats.warn_once("internal", f"sender error, retrying: {exc!r}")
                await asyncio.sleep(1.0)
            await self._sleep()

    async def _step(self) -> None:
        now = time.monotonic()
        if self._transport is None and now >= self._next_connect:
            await self._connect()
        self._reap(now)
        self._finish_drain(now)
        if self._check is not None and self._check.done():
            self._end_check(now)
        if self._rescue and not self._inflight:
            self._rescue_to_spool(self._rescue)
            self._rescue = []
        if self._reset and not self._inflight and self._drain is None and self._check is None:
            await self._restart_transport()
        if self._queue:
            if self._direct_ok():
                await self._send_direct()
            if self._queue and not self._direct_ok():
                self._spool_queue()
        if (
            self._transport is not None
            and self._drain is None
            and self._check is None
            and not self._inflight
            and self._spool is not None
            and self._spool.records
            and now >= self._next_drain
        ):
            await self._start_drain()

    async def _sleep(self) -> None:
        assert self._wakeup is not None
        self._idle = True
        if self._queue or self._wakeup.is_set():
            self._idle = False
        else:
            # Not ``asyncio.wait_for``: on Python 3.11 it swallows a cancellation that arrives
            # as the wake-up does (CPython gh-86296), and ``close()`` would wait for this loop
            # forever.
            woken = asyncio.ensure_future(self._wakeup.wait())
            try:
                await asyncio.wait([woken], timeout=_TICK_S)
            finally:
                woken.cancel()
        self._idle = False
        self._wakeup.clear()

    def _wake(self, _: object = None) -> None:
        if self._wakeup is not None:
            self._wakeup.set()

    def _direct_ok(self) -> bool:
        spool_empty = self._spool is None or not self._spool.records
        return (
            self._transport is not None
            and not self._degraded
            and spool_empty
            and self._drain is None
            and self._check is None
            and not self._rescue
        )

    def _all_on_disk(self) -> bool:
        away = (self._transport is None and self._next_connect > 0) or self._degraded
        quiet = (
            not self._queue and not self._inflight and self._drain is None and self._check is None
        )
        return away and quiet and self._spool is not None

    def _all_delivered(self) -> bool:
        spool_empty = self._spool is None or not self._spool.records
        return not self._queue and not self._inflight and self._drain is None and spool_empty

    # -- connecting --------------------------------------------------------------------

    async def _connect(self) -> None:
        transport = self._transport_factory(self.config)
        try:
            await transport.start()
        except Exception as exc:
            self.stats.failed_sends += 1
            self._next_connect = time.monotonic() + self._connect_backoff
            self._connect_backoff = min(self._connect_backoff * 2, 5.0)
            if isinstance(exc, TopicMissingError):
                self.stats.warn_once(
                    "topic_missing",
                    f"{exc}: events are kept in the spool {self.spool_path} and sent once it "
                    "does. Create it (`botwatch setup`) or fix BOTWATCH_EVENTS_TOPIC",
                )
                return
            if isinstance(exc, ValueError):  # aiokafka reading the addresses, before any I/O
                self.stats.warn_once(
                    "bootstrap",
                    f"{bad_bootstrap(self.config.bootstrap, exc)}; events are kept in the "
                    f"spool {self.spool_path} until it is fixed and the bot restarted",
                )
                return
            self.stats.warn_once(
                "connect",
                f"cannot reach Kafka at {self.config.bootstrap} ({exc!r}); events are kept "
                f"in the spool {self.spool_path} and sent when it is back",
            )
            return
        self._transport = transport
        self._connect_backoff = 0.1

    async def _restart_transport(self) -> None:
        """After a failed delivery the idempotent producer's sequence has a gap that the broker
        refuses (OUT_OF_ORDER_SEQUENCE_NUMBER): start over with a new producer id."""
        self._reset = False
        transport, self._transport = self._transport, None
        if transport is not None:
            await transport.stop(0.5)
        self._next_connect = 0.0

    def _open_spool(self) -> None:
        if self._spool is not None:
            return
        base = self.config.spool_dir / self._spool_name
        # A free slot holding events first: a run beside another one of the same bot spooled
        # into the next slot, and a later run alone must send those too (once its slot is
        # empty, the run after it takes the next one left). Else the first free slot, held
        # (locked) while the others are looked at, so no other run takes it meanwhile.
        empty: tuple[Spool, Path] | None = None
        for slot in range(_SPOOL_SLOTS):
            path = base if slot == 0 else base.with_name(f"{base.name}.{slot}")
            if empty is not None and not path.exists():
                continue
            spool = Spool(path, self.config.spool_max_bytes)
            try:
                spool.open()
            except SpoolLockedError:
                continue
            except OSError as exc:
                if empty is not None:
                    continue  # a slot left by another user, say: the one held will do
                self.stats.warn_once(
                    "spool_open",
                    f"cannot use the spool {path} ({exc}); undeliverable events wait in memory",
                )
                return
            if spool.records:
                if empty is not None:
                    empty[0].close()
                self._use_spool(spool, path)
                return
            if empty is None:
                empty = (spool, path)
            else:
                spool.close()
        if empty is not None:
            self._use_spool(*empty)
            return
        self.stats.warn_once(
            "spool_open", f"all spool slots of {base} are in use; events wait in memory only"
        )

    def _use_spool(self, spool: Spool, path: Path) -> None:
        self._spool, self.spool_path = spool, path
        if spool.has_unknown:  # left by an earlier run: no acknowledged offsets known
            self._floors = {}

    # -- direct sending ----------------------------------------------------------------

    async def _send_direct(self) -> None:
        transport = self._transport
        assert transport is not None
        queue, inflight, topic = self._queue, self._inflight, self.topic
        now = time.monotonic()
        last: asyncio.Future[Any] | None = None
        for _ in range(_MAX_SEND_ROUND):
            if not queue:
                break
            # Left in the queue until the producer has it: ``send`` may wait (for the topic's
            # metadata, for room), and a ``close`` meanwhile cancels it; the record must still
            # count as pending then, and be spooled.
            key, value = queue[0]
            try:
                last = await transport.send(topic, key, value)
            except Exception as exc:
                if is_transient(exc):  # not handed over: the spool keeps it in order
                    self._degrade(exc)
                    break
                queue.popleft()
                self._refused(exc)
                continue
            queue.popleft()
            inflight.append(_InFlight(key, value, last, now))
        if last is not None:
            last.add_done_callback(self._wake)
        if queue:
            self._wake()

    def _reap(self, now: float) -> None:
        inflight = self._inflight
        sent = 0
        while inflight and inflight[0].future.done():
            item = inflight.popleft()
            exc = _exception(item.future)
            if exc is None or is_delivered(exc):
                sent += 1
                self._degraded = False
                if exc is None:
                    self._note_acked(item.future)
            elif is_transient(exc):
                self._outcome_unknown()
                self._rescue.append(Record(self.topic, item.key, item.value))
                self._degrade(exc)
                self._reset = True
            else:
                self._refused(exc)
        self.stats.sent += sent
        if inflight and not self._degraded and now - inflight[0].sent_at > self._delivery_timeout_s:
            self._degrade(TimeoutError(f"no acknowledgement within {self._delivery_timeout_s} s"))

    def _degrade(self, exc: BaseException) -> None:
        self.stats.failed_sends += 1
        self._degraded = True
        self.stats.warn_once(
            "degraded",
            f"Kafka at {self.config.bootstrap} is not taking events ({exc!r}); new events "
            f"go to the spool {self.spool_path} and are sent in order when it is back",
        )

    def _note_acked(self, future: asyncio.Future[Any]) -> None:
        """Remember the offset of an acknowledged record (aiokafka's RecordMetadata)."""
        metadata = future.result()
        offset = getattr(metadata, "offset", None)
        if isinstance(offset, int) and offset >= 0:
            self._acked[(metadata.topic, metadata.partition)] = offset

    def _outcome_unknown(self) -> None:
        """A record of unknown outcome arose: fix the offsets a read-back starts after."""
        if self._floors is None:
            self._floors = dict(self._acked)

    def _refused(self, exc: BaseException) -> None:
        self.stats.dropped_rejected += 1
        self.stats.warn_once("rejected", f"Kafka refused an event, dropped: {exc!r}")

    # -- the spool ---------------------------------------------------------------------

    def _spool_queue(self) -> None:
        if not self._queue:
            return
        spool = self._spool
        if spool is None:
            return  # no spool: events wait in the (bounded) queue
        records = []
        queue = self._queue
        while queue:
            key, value = queue.popleft()
            records.append(Record(self.topic, key, value))
        try:
            accepted = spool.append(records)
        except OSError as exc:
            self.stats.dropped_spool_error += len(records)
            self.stats.warn_once("spool_error", f"cannot write the spool {self.spool_path}: {exc}")
            return
        self.stats.spooled += accepted
        if accepted < len(records):
            self.stats.dropped_spool_full += len(records) - accepted
            self.stats.warn_once(
                "spool_full",
                f"spool {self.spool_path} is full ({spool.max_bytes} bytes, "
                "BOTWATCH_SPOOL_MAX_BYTES): new events are dropped until Kafka takes the backlog",
            )

    def _rescue_to_spool(self, records: list[Record]) -> None:
        if not records:
            return
        spool = self._spool
        if spool is None:
            self.stats.dropped_spool_error += len(records)
            self.stats.warn_once("spool_error", "no spool: unacknowledged events were dropped")
            return
        try:
            accepted = spool.prepend(records)
        except OSError as exc:
            accepted = 0
            self.stats.warn_once("spool_error", f"cannot write the spool {self.spool_path}: {exc}")
        self.stats.spooled += accepted
        if accepted < len(records):
            self.stats.dropped_spool_full += len(records) - accepted
            self.stats.warn_once("spool_full", f"spool {self.spool_path} is full: events dropped")

    async def _start_drain(self) -> None:
        transport, spool = self._transport, self._spool
        assert transport is not None and spool is not None
        # To the events topic configured now, whatever topic a record was spooled for: one
        # that no longer exists (a typo fixed since, or the old topic of a move) would hold
        # the spool back for good, and every event behind it.
        topic = self.topic
        records = [
            r if r.topic == topic else r._replace(topic=topic)
            for r in spool.read(_DRAIN_RECORDS, _DRAIN_BYTES)
        ]
        actions = resend.plan(records, self._verdict)
        if records and not actions:  # the head is of unknown outcome: look before resending
            self._start_check(records)
            return
        futures: list[_DrainItem] = []
        for record, delivered in zip(records, actions, strict=False):
            if delivered:
                futures.append(_DELIVERED)
                continue
            try:
                futures.append(await transport.send(record.topic, record.key, record.value))
            except Exception as exc:
                if is_transient(exc):
                    self._degrade(exc)
                    break
                futures.append(exc)  # refused: counted and skipped when the chunk commits
        if not futures:
            self._next_drain = time.monotonic() + 1.0
            return
        self._drain = _Drain(futures, time.monotonic())
        last = next((f for f in reversed(futures) if isinstance(f, asyncio.Future)), None)
        if last is not None:
            last.add_done_callback(self._wake)
        else:
            self._wake()

    def _finish_drain(self, now: float, *, final: bool = False) -> None:
        """Commit a finished chunk: the acknowledged (or already delivered, or refused) prefix.
        The rest was handed to Kafka without a definite outcome and is marked so. ``final``
        (at close) settles a chunk that is still pending the same way."""
        drain, spool = self._drain, self._spool
        if drain is None or spool is None:
            return
        pending = any(isinstance(f, asyncio.Future) and not f.done() for f in drain.futures)
        if pending and not final:
            if now - drain.started > self._delivery_timeout_s and not self._degraded:
                self._degrade(TimeoutError("spooled events not acknowledged"))
            return
        committed = 0
        for item in drain.futures:
            if isinstance(item, _Delivered):
                self.stats.sent += 1
                self.stats.already_delivered += 1
            elif isinstance(item, asyncio.Future):
                exc = _exception(item) if item.done() else TimeoutError("closed")
                if exc is None or is_delivered(exc):
                    self.stats.sent += 1
                    if exc is None:
                        self._note_acked(item)
                elif is_transient(exc):
                    self._reset = True
                    break
                else:
                    self._refused(exc)
            else:
                self._refused(item)
            committed += 1
        spool.commit(committed)
        if committed < len(drain.futures):
            for item in drain.futures[committed:]:  # retrieved: asyncio logs them otherwise
                if isinstance(item, asyncio.Future) and item.done():
                    _exception(item)
            self._outcome_unknown()
            spool.mark_unknown(len(drain.futures) - committed)
        self._drain = None
        self._verdict = None  # what was sent since may be on the broker now
        if not spool.has_unknown:
            self._floors = None
        if committed < len(drain.futures):
            self._degrade(TimeoutError("spooled events failed; retrying"))
            self._next_drain = now + 1.0
        else:
            self._degraded = False
            self._wake()

    # -- checking what the broker already has --------------------------------------------

    def _start_check(self, records: list[Record]) -> None:
        transport = self._transport
        assert transport is not None
        head = resend.to_check(records)
        self._check_ids = frozenset(
            event_id for r in head if (event_id := resend.event_id_of(r.value)) is not None
        )
        floors = dict(self._floors or {})
        self._check = asyncio.create_task(
            self._find_delivered(transport, head, floors), name="botwatch-check"
        )
        self._check.add_done_callback(self._wake)

    @staticmethod
    async def _find_delivered(
        transport: Transport, head: list[Record], floors: dict[tuple[str, int], int]
    ) -> set[str]:
        return await asyncio.wait_for(transport.find_delivered(head, floors), _CHECK_TIMEOUT_S)

    def _end_check(self, now: float) -> None:
        task, self._check = self._check, None
        assert task is not None
        try:
            found = task.result()
        except (asyncio.CancelledError, Exception) as exc:
            if is_transient(exc):
                # Nothing is known: keep the records spooled and look again later.
                self._check_failures += 1
                backoff = min(_CHECK_BACKOFF_MAX_S, 0.5 * 2**self._check_failures)
                self._next_drain = now + backoff
                self.stats.warn_once(
                    "check",
                    f"cannot read back {self.topic} to see which spooled events Kafka already "
                    f"has ({exc!r}); they stay in the spool {self.spool_path}, retrying",
                )
                return
            self.stats.warn_once(
                "check_refused",
                f"cannot read back {self.topic} to see which spooled events Kafka already has "
                f"({exc!r}); events whose acknowledgement was lost are sent again and may "
                "arrive twice",
            )
            found = set()
        self._check_failures = 0
        self._verdict = Verdict(self._check_ids, frozenset(found) & self._check_ids)
        self._wake()


def _exception(future: asyncio.Future[Any]) -> BaseException | None:
    if future.cancelled():
        return asyncio.CancelledError()
    return future.exception()
