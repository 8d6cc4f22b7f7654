"""The one thing that talks to Kafka: an ``AIOKafkaProducer`` behind a small interface, and a
short-lived ``AIOKafkaConsumer`` to read back what the broker already has (``find_delivered``).

The interface lets unit tests drive the sender with an in-memory fake.
"""

from __future__ import annotations

import asyncio
import contextlib

# Imported now, not lazily by the sender thread's first getaddrinfo: a process that forks
# while that import runs leaves its child holding the import lock with no thread to
# release it, and a BotLogger made in the child (as the README says to) hung on its first
# connection, its events spooled and never sent.
import encodings.idna  # noqa: F401
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import (
    BrokerResponseError,
    DuplicateSequenceNumber,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    ProducerClosed,
)

from producers import resend
from producers.config import ProducerConfig
from producers.spool import Record
from schemas.log_throttle import RepeatThrottle

__all__ = [
    "KafkaTransport",
    "TopicMissingError",
    "Transport",
    "is_delivered",
    "is_transient",
    "producer_options",
]


class TopicMissingError(LookupError):
    """The events topic does not exist on the broker (a name mistyped, setup not run)."""

    def __init__(self, topic: str, bootstrap: str) -> None:
        super().__init__(f"the topic {topic} does not exist on Kafka at {bootstrap}")
        self.topic = topic


class Transport(Protocol):
    async def start(self) -> None:
        """Connect; raises when the broker cannot be reached."""

    async def send(self, topic: str, key: bytes, value: bytes) -> asyncio.Future[Any]:
        """Hand one record over; the future resolves when the broker acknowledged it."""

    async def stop(self, timeout: float) -> None:
        """Send what is buffered for up to ``timeout`` seconds, then disconnect."""

    async def find_delivered(
        self, records: Sequence[Record], floors: Mapping[tuple[str, int], int]
    ) -> set[str]:
        """The event ids of ``records`` (of unknown outcome) that the broker already has.

        ``floors`` maps (topic, partition) to the last offset acknowledged before the records
        were sent. Raises when the broker cannot be read (nothing is known then).
        """


def producer_options(config: ProducerConfig) -> dict[str, Any]:
    """AIOKafkaProducer settings every botwatch producer (and the benchmark) uses."""
    return {
        "bootstrap_servers": config.bootstrap,
        "acks": "all",
        "enable_idempotence": True,
        "compression_type": None if config.compression == "none" else config.compression,
        "linger_ms": config.linger_ms,
        "max_batch_size": config.batch_bytes,
        # aiokafka has no delivery.timeout.ms: this bounds how long send() waits for room
        # in a full batch, and how long a produce request may take.
        "request_timeout_ms": config.delivery_timeout_ms,
        "client_id": "botwatch-producer",
    }


def is_delivered(exc: BaseException | None) -> bool:
    """True when the outcome means the broker has the record (a duplicate it refused)."""
    return exc is None or isinstance(exc, DuplicateSequenceNumber)


def is_transient(exc: BaseException) -> bool:
    """True for "Kafka is away" problems (spool and retry); False when Kafka refused the record."""
    if isinstance(exc, KafkaTimeoutError | KafkaConnectionError | ProducerClosed | OSError):
        return True
    if isinstance(exc, asyncio.TimeoutError | asyncio.CancelledError):
        return True
    if isinstance(exc, BrokerResponseError) and exc.errno in _PRODUCER_STATE_ERRNOS:
        # The producer's sequence or id went stale (a batch expired while the broker was away):
        # the broker refused the batch, so it is not written; a new producer sends it.
        return True
    return isinstance(exc, KafkaError) and bool(getattr(exc, "retriable", False))


# OUT_OF_ORDER_SEQUENCE_NUMBER, INVALID_PRODUCER_EPOCH, INVALID_PRODUCER_ID_MAPPING,
# UNKNOWN_PRODUCER_ID
_PRODUCER_STATE_ERRNOS = frozenset({45, 47, 49, 59})


def bad_bootstrap(bootstrap: str, exc: ValueError) -> str:
    """What is wrong with a bootstrap aiokafka could not read (it raises ValueError while
    reading the addresses, before any I/O)."""
    return f"BOTWATCH_KAFKA_BOOTSTRAP={bootstrap!r} is not host:port[,host:port...] ({exc})"


# One for the process: the throttle keeps what it let through per logger, level and message.
_KAFKA_LOG_THROTTLE = RepeatThrottle(window_s=60.0)


def throttle_kafka_client_logs() -> None:
    """While the broker is away, aiokafka logs every failed connection and metadata refresh
    (~40 lines a second into the bot's output). A filter on aiokafka's own loggers lets the
    first line of a kind through and then one a minute, saying how many were left out; the
    bot's handlers and its other loggers are left alone. (The SDK warns of an outage once,
    in its own words.)"""
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        is_kafka = name == "aiokafka" or name.startswith("aiokafka.")
        if is_kafka and isinstance(logger, logging.Logger):
            logger.addFilter(_KAFKA_LOG_THROTTLE)  # once: addFilter skips one already there


class KafkaTransport:
    """Idempotent, acks=all, compressed and lingering: aiokafka keeps order per partition and
    retries an unacknowledged batch itself (with idempotence it never expires a batch that
    reached a known leader), so a record leaves this transport only as acknowledged,
    refused, or still pending."""

    def __init__(self, config: ProducerConfig) -> None:
        self._options = producer_options(config)
        self._topic = config.topic
        self._producer: AIOKafkaProducer | None = None
        throttle_kafka_client_logs()

    async def start(self) -> None:
        """Connect, and check that the events topic exists (``TopicMissingError``).

        A send to a topic that does not exist waits for its metadata until the request
        timeout, while aiokafka logs a warning about it ten times a second into the bot's
        output. The check asks for every topic's metadata, which creates none.
        """
        producer = AIOKafkaProducer(**self._options)
        try:
            await producer.start()
            metadata = await producer.client.fetch_all_metadata()
            if self._topic not in metadata.topics():
                raise TopicMissingError(self._topic, self._options["bootstrap_servers"])
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), 1.0)
            raise
        self._producer = producer

    async def send(self, topic: str, key: bytes, value: bytes) -> asyncio.Future[Any]:
        if self._producer is None:
            raise ProducerClosed()
        future: asyncio.Future[Any] = await self._producer.send(topic, value, key=key)
        return future

    async def stop(self, timeout: float) -> None:
        producer, self._producer = self._producer, None
        if producer is None:
            return
        # stop() flushes, and with the broker away an idempotent batch is retried forever:
        # flush for the time given, then end aiokafka's sender task so stop() can finish.
        try:
            await asyncio.wait_for(producer.flush(), max(timeout, 0.01))
        except (TimeoutError, KafkaError):
            with contextlib.suppress(AttributeError):
                producer._sender.sender_task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(producer.stop(), 5.0)

    async def find_delivered(
        self, records: Sequence[Record], floors: Mapping[tuple[str, int], int]
    ) -> set[str]:
        """Read back the tails of the partitions ``records`` went to (``producers.resend``),
        with a consumer of no group that commits nothing; the caller bounds the time."""
        producer = self._producer
        if producer is None:
            raise ProducerClosed()
        partitions: dict[str, list[int]] = {}
        for topic in sorted({record.topic for record in records}):
            partitions[topic] = sorted(await producer.partitions_for(topic))
        wanted = resend.targets(records, partitions, floors)
        if not wanted:
            return set()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._options["bootstrap_servers"],
            client_id="botwatch-producer-check",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        try:
            await consumer.start()
            return await resend.read_back(consumer, wanted, resend.READ_BACK_MAX_RECORDS)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(consumer.stop(), 2.0)
