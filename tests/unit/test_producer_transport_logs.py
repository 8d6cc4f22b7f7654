"""The bot's output through a Kafka outage: aiokafka's repeated lines are throttled on
aiokafka's own loggers once the SDK makes its transport; the bot's own loggers are not."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from producers.config import ProducerConfig
from producers.transport import KafkaTransport


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


def test_repeated_kafka_client_lines_pass_once_the_bots_own_all(lines: Lines) -> None:
    conn = logging.getLogger("aiokafka.conn")  # made when aiokafka is imported
    KafkaTransport(ProducerConfig(topic="events"))
    for _ in range(40):
        conn.error("Unable connect to %r: %s", "localhost:9092", "refused")
        logging.getLogger("invoice-bot").error("retrying invoice %d", 7)
    assert lines.lines.count("Unable connect to 'localhost:9092': refused") == 1
    assert lines.lines.count("retrying invoice 7") == 40
