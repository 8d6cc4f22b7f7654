"""Records of the events topic in whole fetched batches, past faust's per-message path.

Faust hands every record to its streams one at a time: a message object, a task per
delivery (``wait_first``), a queue put, an event object, stream iteration, sensors, one
ack each. That path cost ~70% of the worker's CPU. Here faust still owns the consumer
group, the assignment, table recovery, the read-offset and gap bookkeeping and the
commits; only the records of one topic (the events topic) leave its fetch loop as they
were fetched and wait in a ``BatchIntake`` for the worker, which acks them in bulk once a
batch is durable (``BatchConsumer.ack_offsets``, the same bookkeeping ``Consumer.ack``
does per message). Records of every other topic (the table changelogs during recovery)
take faust's usual path.

What keeps a record from being acked before it is processed, and from being applied out
of order after a rebalance:

- nothing is acked implicitly: a batch that is not finished is simply never acked, so its
  offsets are never committed;
- a revocation starts a new epoch and drops everything buffered: those records are read
  again from the committed offset once the partitions are recovered, in order; a batch
  taken before the revocation is dropped un-acked unless it is already being processed
  (the processor finishes it before the revocation proceeds);
- a fetch is stamped with the epoch in the consumer's thread, as aiokafka hands it over:
  one that reaches the main thread after a revocation is dropped (the next assignment
  starts at the committed offsets), and one stamped after it is kept (dropping those
  would lose them: nothing would read them again);
- a fetch in flight across a rebalance can hand over records of the new assignment
  while its recovery still holds the flow: those are not taken, and their partitions are
  sought back to them (faust's seek to the committed offsets leaves a partition that has
  none where aiokafka's fetch left it, past records nobody processed);
- a full intake holds the fetch loop (backpressure) only while no rebalance is under way:
  a revocation empties the intake, and recovery needs the fetch loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from time import monotonic
from typing import Any, cast

from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer
from faust.types.tuples import ack_lock
from mode.utils.futures import notify

log = logging.getLogger(__name__)


class BatchIntake:
    """Fetched records of one topic, waiting for the worker; bounded by pausing fetches."""

    def __init__(self, topic: str, high_water: int) -> None:
        self.topic = topic
        self.high_water = high_water
        self.epoch = 0
        self._chunks: deque[list[Any]] = deque()
        self._size = 0
        self._taker: asyncio.Future[None] | None = None
        self._putter: asyncio.Future[None] | None = None
        self._woken = False

    def __len__(self) -> int:
        return self._size

    def put(self, records: list[Any]) -> None:
        """Buffer ``records``; the fetch loop then waits for room (``wait_for_room``)."""
        if not records:
            return
        self._chunks.append(records)
        self._size += len(records)
        notify(self._taker)

    def revoke(self) -> None:
        """A rebalance began: what is buffered belongs to the old assignment."""
        self.epoch += 1
        self._chunks.clear()
        self._size = 0
        notify(self._putter)

    async def wait_for_room(self, stop: Callable[[], bool]) -> None:
        """Wait while the intake is full, or until ``stop()`` (checked every 0.1 s)."""
        while self._size >= self.high_water and not stop():
            await self._wait("_putter", 0.1)

    async def take(self, most: int, within: float) -> tuple[int, list[Any]]:
        """Up to ``most`` records and their epoch; waits up to ``within`` s to fill them.

        Returns as soon as ``most`` records are there; after ``within`` seconds, with what
        arrived so far; at once after ``wake``, perhaps with nothing. A revocation while
        waiting discards what was gathered.
        """
        while not self._size and not self._woken:
            await self._wait("_taker", None)
        epoch = self.epoch
        out: list[Any] = []
        deadline = monotonic() + within
        while True:
            self._drain_into(out, most)
            if len(out) >= most or self._woken:
                break
            left = deadline - monotonic()
            if left <= 0:
                break
            await self._wait("_taker", left)
            if self.epoch != epoch:  # revoked while waiting: start over
                out.clear()
                epoch = self.epoch
                while not self._size and not self._woken:
                    await self._wait("_taker", None)
                deadline = monotonic() + within
        self._woken = False
        return epoch, out

    def wake(self) -> None:
        """Make ``take`` return now with what it holds, even nothing (a batch failed, and
        the worker must redo it instead of waiting for more records)."""
        self._woken = True
        notify(self._taker)

    def _drain_into(self, out: list[Any], most: int) -> None:
        chunks = self._chunks
        while chunks and len(out) < most:
            chunk = chunks[0]
            room = most - len(out)
            if len(chunk) <= room:
                chunks.popleft()
                out.extend(chunk)
                self._size -= len(chunk)
            else:
                out.extend(chunk[:room])
                chunks[0] = chunk[room:]
                self._size -= room
        if self._size < self.high_water:
            notify(self._putter)

    async def _wait(self, name: str, timeout: float | None) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        setattr(self, name, waiter)
        try:
            if timeout is None:
                await waiter
            else:
                # Not ``asyncio.wait_for``: on Python 3.11 it returns instead of raising when
                # the waiter is notified as a cancellation arrives (CPython gh-86296), and the
                # batch loop, its cancellation lost, kept a stopping worker from exiting.
                await asyncio.wait([waiter], timeout=timeout)
        finally:
            setattr(self, name, None)


# faust asks the broker to hold an empty fetch for 1.5 s, and aiokafka keeps one fetch in flight
# per broker. A fetch sent while the events partitions still hold records not yet taken
# carries only idle partitions (faust's leader topic), so it is held that long and the next
# fetch of events waits behind it. 100 ms keeps that stall short; idle, it costs ten small
# requests a second.
FETCH_MAX_WAIT_MS = 100
# aiokafka asks for at least 1 byte, so under a steady stream every fetch returns at once with
# the few records that arrived since the last one: hundreds of small fetches a second, each
# costing the worker (a thread hand-over, faust's bookkeeping) and the broker. Asking for
# 256 KiB lets the broker gather about 40 ms of a 15k events/s stream (and never holds a fetch
# past FETCH_MAX_WAIT_MS). Measured (bench_e2e latency run, 15k events/s, same 2 cores as
# the stack): worker CPU 51% -> 34% of a core, produce-to-searchable p99 4.3 s -> 2.1 s.
FETCH_MIN_BYTES = 256 * 1024


# How long stopping waits for the aiokafka consumer to close (it leaves the group, and with
# the broker away it may wait for it).
CONSUMER_STOP_S = 10.0


class _Fetched(dict[Any, list[Any]]):
    """A fetch result, stamped with the intake's epoch when aiokafka handed it over."""

    epoch = -1


class _ConsumerThread(AIOKafkaConsumerThread):
    consumer: BatchConsumer

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Both are read when the consumer starts; faust passes neither.
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        consumer._fetch_min_bytes = FETCH_MIN_BYTES
        return consumer

    async def on_thread_stop(self) -> None:
        """faust stops the aiokafka consumer here, within ``CONSUMER_STOP_S``.

        With the broker away, aiokafka's ``Fetcher.close`` awaits a fetch task it has just
        cancelled while that task sleeps before a retry, and re-raises its cancellation: the
        thread's shutdown stopped half-way and the worker sat out faust's 60 s shutdown
        timeout before it exited. Its group coordinator can also wait for its coordination
        task, itself waiting for a broker that is gone. Either way the consumer's ``stop``
        ends before closing its client: that is closed here, and the tasks left over are
        cancelled with the rest of the thread's tasks when its loop ends.
        """
        stopping = asyncio.ensure_future(super().on_thread_stop())
        try:
            done, _ = await asyncio.wait({stopping}, timeout=CONSUMER_STOP_S)
        except asyncio.CancelledError:
            stopping.cancel()
            raise  # this thread's own task is being cancelled
        if not done:
            stopping.cancel()
            await asyncio.wait({stopping})
        elif not stopping.cancelled():  # else: aiokafka's leftover cancellation
            error = stopping.exception()
            if error is not None:
                raise error
            return
        log.warning("the Kafka consumer closed while the broker was unreachable")
        consumer = self._consumer
        if consumer is not None:
            with contextlib.suppress(Exception):
                await consumer._client.close()

    async def _fetch_records(self, *args: Any, **kwargs: Any) -> _Fetched:
        records = await super()._fetch_records(*args, **kwargs)
        # Runs in the consumer's thread. aiokafka only hands over records of the assignment
        # in force, and deactivates it before faust's revocation (which bumps the epoch)
        # runs: records stamped with the current epoch belong to the current assignment.
        # Stamped here, not when the main thread resumes: a revocation can run in between.
        fetched = _Fetched(records)
        fetched.epoch = self.consumer.intake.epoch
        return fetched


class BatchConsumer(AIOKafkaConsumer):
    """faust's aiokafka consumer; the intake's topic is fetched in batches (module doc)."""

    intake: BatchIntake

    def __init__(self, *args: Any, intake: BatchIntake, **kwargs: Any) -> None:
        self.intake = intake
        # The next offset to read of each partition, as far as a commit of this process
        # succeeded. faust's own ``_committed_offset`` moves on even when a commit failed
        # (a group that already rebalanced), so it cannot say what is durable.
        self.durably_committed: dict[Any, int] = {}
        super().__init__(*args, **kwargs)

    async def _commit(self, offsets: Mapping[Any, int]) -> bool:
        done: bool = await super()._commit(offsets)
        if done:
            self.durably_committed.update(offsets)
        return done

    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _wait_next_records(self, timeout: float) -> tuple[Any, Any]:
        intake = self.intake
        got, active = await super()._wait_next_records(timeout)
        records = cast(dict[Any, list[Any]], got)  # aiokafka's dict; faust says Mapping
        if not records:
            return records, active
        topic = intake.topic
        mine = [tp for tp in records if tp.topic == topic]
        if not mine:
            return records, active
        # faust's own loop must never see these: nothing reads the topic's channel.
        fetched = [(tp, records.pop(tp)) for tp in mine]
        epoch = getattr(got, "epoch", -1)
        if epoch != intake.epoch:
            # Fetched before a revocation: the next assignment reads them again (aiokafka
            # starts a new assignment at the committed offsets).
            return records, active
        if self.should_stop or self.app.should_stop:
            return records, active  # stopping: this consumer reads nothing more
        if not self.flow_active:
            # Recovery of a new assignment holds the flow; a fetch in flight since before
            # the rebalance brings its records nonetheless (under load). Read them again
            # once the flow resumes.
            await self._rewind(epoch, fetched)
            return records, active
        taken: list[Any] = []
        monitor = self.app.monitor
        for tp, batch in fetched:
            fresh = await self._track_read(tp, batch)
            if fresh:
                taken.extend(fresh)
                if monitor is not None:
                    monitor.track_tp_end_offset(tp, self.highwater(tp))
        if intake.epoch == epoch:
            intake.put(taken)
            # Backpressure: fetch no more until the worker caught up. A rebalance (which
            # empties the intake) or a stop frees this loop at once.
            await intake.wait_for_room(self._must_not_wait)
        return records, active

    async def _rewind(self, epoch: int, fetched: list[tuple[Any, list[Any]]]) -> None:
        """Seek each partition back to the first of its records that were not taken.

        aiokafka moved past them as it handed them over. faust's seek to the committed
        offsets when the flow resumes does not help a partition that has no committed
        offset yet (aiokafka seeks only to an offset above 0): without this, its records up
        to there would never be read, and the first commit after its later records would go
        past them. Runs in the consumer's thread, and only while the assignment they were
        fetched under is in force: a revocation bumps the epoch before aiokafka takes a new
        assignment, whose positions start at the committed offsets anyway.
        """
        thread = self._thread
        intake = self.intake
        offsets = {tp: batch[0].offset for tp, batch in fetched}

        async def seek() -> None:
            if intake.epoch != epoch:
                return
            consumer = thread._ensure_consumer()
            assigned = consumer.assignment()
            for tp, offset in offsets.items():
                if tp in assigned:
                    consumer.seek(tp, offset)

        await thread.call_thread(seek)

    def _must_not_wait(self) -> bool:
        return bool(self.should_stop or not self.flow_active or self.app.rebalancing)

    async def _track_read(self, tp: Any, batch: list[Any]) -> list[Any]:
        """faust's per-message read-offset and gap bookkeeping, once per partition batch."""
        read = self._read_offset[tp]
        if read is not None and batch[0].offset < read:
            batch = [r for r in batch if r.offset >= read]
            if not batch:
                return batch
        first, last = batch[0].offset, batch[-1].offset
        if read and first - read > 1:
            await self._add_gap(tp, read + 1, first - 1)
        if last - first + 1 != len(batch):
            previous = first
            for record in batch:
                if record.offset - previous > 1:
                    await self._add_gap(tp, previous + 1, record.offset - 1)
                previous = record.offset
        self._read_offset[tp] = last
        return batch

    def ack_offsets(self, offsets: Mapping[Any, Sequence[int]]) -> int:
        """Ack processed records of the intake's topic in bulk; returns how many were new.

        The same bookkeeping as ``Consumer.ack`` per message: offsets below the committed
        one are ignored, each offset counts once (also when ``offsets`` lists it twice).
        """
        if not self.app.topics.acks_enabled_for(self.intake.topic):
            return 0
        added = 0
        now = monotonic()
        monitor = self.app.monitor
        with ack_lock:
            for tp, offs in offsets.items():
                committed = self._committed_offset[tp]
                index = self._acked_index[tp]
                fresh = [
                    o for o in offs if (committed is None or o >= committed) and o not in index
                ]
                if fresh:
                    known = len(index)
                    index.update(fresh)
                    if len(index) - known != len(fresh):
                        # An offset twice in one batch (see ``processor.in_log_order``): a
                        # copy in the acked list would cut faust's run of consecutive offsets.
                        fresh = sorted(set(fresh))
                    self._acked[tp].extend(fresh)
                    added += len(fresh)
                if monitor is not None:
                    # faust's livelock check reads this per partition (stream "inbound").
                    monitor.stream_inbound_time[tp] = now
            self._n_acked += added
            notify(self._waiting_for_ack)
        return added

    async def on_partitions_revoked(self, revoked: set[Any]) -> None:
        self.intake.revoke()
        await super().on_partitions_revoked(revoked)
