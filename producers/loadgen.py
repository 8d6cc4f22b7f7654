"""The load generator's I/O: send a Generator's records to Kafka, paced, and count what landed.

Throughput is the point (50,000+ records/s from one process), so records skip
``producer.send()``: they go straight into one ``BatchBuilder`` per partition, full batches
are handed to ``send_batch()``, and delivery is checked per batch, never per record. The
partition of a bot is computed once with the default (murmur2) partitioner, the same one
``send()`` would use, so the generator's records of a bot share a partition with the SDK's.

The truth is fed only from acknowledged batches: if the run is interrupted or a batch fails,
it still describes exactly what Kafka stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from producers.generator import LATE, VALID, Generator, Record, Truth

DEFAULT_BATCH_BYTES: Final = 512 * 1024
# Records generated per step of the send loop: big enough to amortize the loop's awaits,
# small enough to keep pacing smooth.
_CHUNK: Final = 2048
# Batches sent but not yet acknowledged before the loop waits for the oldest one.
_MAX_IN_FLIGHT: Final = 64
# When paced, records go out in steps of this much send time (at most 5 ms late), the loop
# sleeping in between. Shipping whatever was due at every turn of the loop sent a batch of
# one or two records per partition ~1,400 times a second at 15,000 records/s: 0.7 of a core
# for what costs 0.13 unpaced, most of it in the produce requests' socket writes.
_STEP_S: Final = 0.005
# ... and never sleeps longer than this (a slow rate still ships each record when due).
_TICK_S: Final = 0.05
_METADATA_TIMEOUT_S: Final = 15.0


class LoadError(RuntimeError):
    """The records could not be sent (no broker, no topic, a failed batch)."""


@dataclass(frozen=True)
class LoadOptions:
    """Where and how to send; ``pace`` False sends as fast as the broker takes it."""

    bootstrap: str
    topic: str
    records: int
    rate: float
    pace: bool = True
    compression: str | None = None
    batch_bytes: int = DEFAULT_BATCH_BYTES


@dataclass
class LoadStats:
    """Counts of acknowledged records; ``interrupted`` when a signal stopped the run early."""

    generated: int = 0
    delivered: int = 0
    valid: int = 0
    late: int = 0
    malformed: int = 0
    elapsed_s: float = 0.0
    interrupted: bool = False
    error: str | None = None
    started: float = field(default_factory=time.monotonic)

    @property
    def rate(self) -> float:
        return self.delivered / self.elapsed_s if self.elapsed_s > 0 else 0.0


class _Open:
    """The batch being filled for one partition and the records in it, in append order."""

    __slots__ = ("builder", "records")

    def __init__(self, builder: Any) -> None:
        self.builder = builder
        self.records: list[Record] = []


class _Sender:
    def __init__(
        self,
        producer: AIOKafkaProducer,
        options: LoadOptions,
        partition_of_bot: list[int],
        truth: Truth | None,
        stats: LoadStats,
    ) -> None:
        self.producer = producer
        self.topic = options.topic
        self.partition_of_bot = partition_of_bot
        self.truth = truth
        self.stats = stats
        self.open: dict[int, _Open] = {
            p: _Open(producer.create_batch()) for p in sorted(set(partition_of_bot))
        }
        self.in_flight: deque[tuple[asyncio.Future[Any], int, list[Record]]] = deque()

    async def add(self, records: list[Record]) -> None:
        partition_of_bot = self.partition_of_bot
        opened = self.open
        for record in records:
            partition = partition_of_bot[record.bot]
            batch = opened[partition]
            if batch.builder.append(timestamp=None, key=record.key, value=record.value) is None:
                await self.ship(partition)
                batch = opened[partition]
                if batch.builder.append(timestamp=None, key=record.key, value=record.value) is None:
                    raise LoadError(f"record of {len(record.value)} bytes does not fit a batch")
            batch.records.append(record)
        self.stats.generated += len(records)

    async def ship(self, partition: int) -> None:
        batch = self.open[partition]
        if not batch.records:
            return
        self.open[partition] = _Open(self.producer.create_batch())
        future = await self.producer.send_batch(batch.builder, self.topic, partition=partition)
        self.in_flight.append((future, partition, batch.records))

    async def ship_all(self) -> None:
        for partition in list(self.open):
            await self.ship(partition)

    async def settle(self, limit: int = _MAX_IN_FLIGHT) -> None:
        """Account acknowledged batches; wait for the oldest while more than ``limit`` fly."""
        in_flight = self.in_flight
        while in_flight and (in_flight[0][0].done() or len(in_flight) > limit):
            future, partition, records = in_flight[0]
            metadata = await future
            in_flight.popleft()
            self._account(partition, metadata.offset, records)

    async def drain(self) -> None:
        """Wait for every batch sent; account those acknowledged even if one failed."""
        failure: BaseException | None = None
        while self.in_flight:
            future, partition, records = self.in_flight.popleft()
            try:
                metadata = await future
            except KafkaError as exc:
                failure = failure or exc
                continue
            self._account(partition, metadata.offset, records)
        if failure is not None:
            raise failure

    def _account(self, partition: int, base_offset: int, records: list[Record]) -> None:
        stats = self.stats
        stats.delivered += len(records)
        truth = self.truth
        for relative, record in enumerate(records):
            kind = record.kind
            if kind == VALID:
                stats.valid += 1
            elif kind == LATE:
                stats.valid += 1
                stats.late += 1
            else:
                stats.malformed += 1
            if truth is not None:
                truth.add(record, partition, base_offset + relative)


async def send(
    generator: Generator,
    options: LoadOptions,
    *,
    truth: Truth | None = None,
    stop: asyncio.Event | None = None,
    progress: Callable[[LoadStats], None] | None = None,
    progress_every_s: float = 0.25,
) -> LoadStats:
    """Send ``options.records`` records of ``generator``; returns what Kafka acknowledged.

    Setting ``stop`` ends the run early: what was generated is flushed and awaited first.
    Raises LoadError when the broker or topic is unusable or a batch fails (``truth`` then
    holds the acknowledged records, and the returned stats are attached to the error).
    """
    stop = stop or asyncio.Event()
    producer = AIOKafkaProducer(
        bootstrap_servers=options.bootstrap,
        client_id="botwatch-generate",
        acks="all",
        compression_type=options.compression,
        max_batch_size=options.batch_bytes,
        max_request_size=max(options.batch_bytes * 2, 1024 * 1024),
        linger_ms=0,
    )
    try:
        await producer.start()
    except KafkaError as exc:
        with contextlib.suppress(Exception):
            await producer.stop()
        raise LoadError(f"cannot reach Kafka at {options.bootstrap}: {exc}") from None
    stats = LoadStats()
    reporter: asyncio.Task[None] | None = None
    try:
        cluster = await producer.client.fetch_all_metadata()
        if options.topic not in cluster.topics():
            raise LoadError(
                f"topic {options.topic!r} does not exist on {options.bootstrap} "
                "(topics are not auto-created: run `botwatch setup` or create it)"
            )
        try:
            partitions = sorted(
                await asyncio.wait_for(producer.partitions_for(options.topic), _METADATA_TIMEOUT_S)
            )
        except (KafkaError, TimeoutError):
            raise LoadError(f"no partition metadata for topic {options.topic!r}") from None
        partitioner = DefaultPartitioner()
        partition_of_bot = [partitioner(key, partitions, partitions) for key in generator.keys]
        sender = _Sender(producer, options, partition_of_bot, truth, stats)
        stats.started = time.monotonic()
        if progress is not None:
            reporter = asyncio.create_task(_report(stats, progress, progress_every_s))
        try:
            await _loop(generator, options, sender, stop)
            await sender.ship_all()
            await sender.drain()
        except KafkaError as exc:
            # Account what did land, so the truth matches the topic.
            with contextlib.suppress(KafkaError):
                await sender.ship_all()
            with contextlib.suppress(KafkaError):
                await sender.drain()
            stats.error = f"{type(exc).__name__}: {exc}"
        stats.interrupted = stop.is_set() and stats.generated < options.records
    finally:
        stats.elapsed_s = time.monotonic() - stats.started
        if reporter is not None:
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter
        await producer.stop()
    return stats


async def _loop(
    generator: Generator, options: LoadOptions, sender: _Sender, stop: asyncio.Event
) -> None:
    total = options.records
    rate = options.rate
    paced = options.pace and rate > 0
    started = sender.stats.started
    done = 0
    while done < total and not stop.is_set():
        if paced:
            count, wait = paced_step(time.monotonic() - started, done, total, rate)
            if not count:
                await sender.ship_all()
                await sender.settle()
                await asyncio.sleep(wait)
                continue
        else:
            count = min(total - done, _CHUNK)
        await sender.add(generator.take(count))
        done += count
        if paced:
            await sender.ship_all()
        await sender.settle()
        # Let the producer's sender task run even when no await above had to wait.
        await asyncio.sleep(0)


def paced_step(elapsed_s: float, done: int, total: int, rate: float) -> tuple[int, float]:
    """How many records to generate now, or else how long to sleep first.

    Record ``i`` (from 0) is due ``i / rate`` seconds into the run. Records are taken once a
    step's worth (``_STEP_S`` of them, at least one) is due, or the last ones are: ``(n, 0)``
    with ``n`` at most ``_CHUNK``; otherwise ``(0, s)``, ``s`` the time until they are.
    """
    due = min(total, int(elapsed_s * rate) + 1)
    step = max(1, int(rate * _STEP_S))
    if due - done >= step or (due == total and due > done):
        return min(due - done, _CHUNK), 0.0
    until = (min(done + step, total) - 1) / rate - elapsed_s
    return 0, min(_TICK_S, max(until, 0.0005))


async def _report(stats: LoadStats, progress: Callable[[LoadStats], None], every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        stats.elapsed_s = time.monotonic() - stats.started
        progress(stats)


def install_stop_signals(stop: asyncio.Event) -> Callable[[], None]:
    """Ctrl-C (SIGINT) and SIGTERM set ``stop`` instead of killing the run; returns an undo."""
    loop = asyncio.get_running_loop()
    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
            installed.append(signum)

    def undo() -> None:
        for signum in installed:
            loop.remove_signal_handler(signum)

    return undo


def write_truth(path: Path, truth: dict[str, Any]) -> None:
    """Write the truth file atomically: a reader never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_bytes(orjson.dumps(truth, option=orjson.OPT_INDENT_2) + b"\n")
    partial.replace(path)
