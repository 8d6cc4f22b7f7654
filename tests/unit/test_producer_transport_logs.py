"""The bot's output through a Kafka outage: aiokafka's repeated lines are throttled on
aiokafka's own loggers once the SDK makes its transport; the bot's own loggers are not."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from producers.config import ProducerConfig
from producers.transport import KafkaTransport
from schemas.log_throttle import RepeatThrottle


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def lines() -> Iterator[Lines]:
    handler = Lines()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


@pytest.fixture
def fresh_throttle() -> Iterator[None]:
    """The throttle is the process's: what it let through before would hide this test's."""
    from producers import transport

    old = transport._KAFKA_LOG_THROTTLE
    transport._KAFKA_LOG_THROTTLE = RepeatThrottle(window_s=60.0)
    try:
        yield
    finally:
        for logger in logging.Logger.manager.loggerDict.values():
            if isinstance(logger, logging.Logger):
                logger.removeFilter(transport._KAFKA_LOG_THROTTLE)
        transport._KAFKA_LOG_THROTTLE = old


@pytest.mark.usefixtures("fresh_throttle")
def test_repeated_kafka_client_lines_pass_once_the_bots_own_all(lines: Lines) -> None:
    conn = logging.getLogger("aiokafka.conn")  # made when aiokafka is imported
    KafkaTransport(ProducerConfig(topic="events"))
    for _ in range(40):
        conn.error("Unable connect to %r: %s", "localhost:9092", "refused")
        logging.getLogger("invoice-bot").error("retrying invoice %d", 7)
    assert lines.lines.count("Unable connect to 'localhost:9092': refused") == 1
    assert lines.lines.count("retrying invoice 7") == 40
