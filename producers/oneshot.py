"""Send one event and wait for the broker's acknowledgement: for `botwatch emit` in scripts,
where the exit code must say whether the event arrived (no spool, no background thread)."""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from producers.config import ProducerConfig
from producers.transport import bad_bootstrap, producer_options

__all__ = ["DeliveryError", "deliver"]


class DeliveryError(RuntimeError):
    """The event was not acknowledged; the message says what, where and what to do."""


async def deliver(config: ProducerConfig, key: bytes, value: bytes, timeout: float) -> None:
    """Send one record to ``config.topic``; raise DeliveryError unless acknowledged in time."""
    options = producer_options(config)
    options["request_timeout_ms"] = max(1, int(timeout * 1000))
    where = f"Kafka at {config.bootstrap}"
    producer = AIOKafkaProducer(**options)
    try:
        try:
            await asyncio.wait_for(producer.start(), timeout)
        except ValueError as exc:  # aiokafka reading the addresses, before any I/O
            raise DeliveryError(
                f"{bad_bootstrap(config.bootstrap, exc)}: fix it, or give "
                "`botwatch --kafka-bootstrap HOST:PORT emit ...`"
            ) from None
        except (KafkaError, OSError, TimeoutError) as exc:
            raise DeliveryError(
                f"cannot reach {where} ({type(exc).__name__}): check that it is running "
                "(`botwatch stack status`) and that BOTWATCH_KAFKA_BOOTSTRAP (or "
                "`botwatch --kafka-bootstrap HOST:PORT emit ...`) points at it"
            ) from None
        await producer.client.force_metadata_update()
        if config.topic not in producer.client.cluster.topics():
            raise DeliveryError(
                f"topic {config.topic!r} does not exist on {where}: create it with "
                "`botwatch setup`, or pass --topic / BOTWATCH_EVENTS_TOPIC"
            )
        try:
            await asyncio.wait_for(producer.send_and_wait(config.topic, value, key=key), timeout)
        except (KafkaError, OSError, TimeoutError) as exc:
            raise DeliveryError(
                f"{where} did not acknowledge the event on {config.topic!r} within {timeout} s "
                f"({type(exc).__name__}: {exc}); retry, or raise --timeout"
            ) from None
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(producer.stop(), 5.0)
