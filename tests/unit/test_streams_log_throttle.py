"""Repeated lines of the Kafka client are throttled; everything else passes untouched."""

from __future__ import annotations

import logging

from streams.log_throttle import RepeatThrottle, throttle_handlers


def record(name: str, msg: str, *args: object, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_repeats_within_the_window_are_left_out_and_counted_on_the_next_line() -> None:
    now = [0.0]
    throttle = RepeatThrottle(window_s=30.0, clock=lambda: now[0])
    unable = "Unable connect to node with id %s: %s"
    assert throttle.filter(record("aiokafka.client", unable, 1, "refused"))
    for n in range(5):
        now[0] += 1
        assert not throttle.filter(record("aiokafka.client", unable, 1, f"refused {n}"))
    # Another kind of line, another level, another logger: each passes once.
    assert throttle.filter(record("aiokafka.client", "Unable to update metadata from %s", 1))
    assert throttle.filter(record("aiokafka.client", unable, 1, "x", level=logging.WARNING))
    assert throttle.filter(record("aiokafka.conn", unable, 1, "x"))
    now[0] = 30.0
    after = record("aiokafka.client", unable, 1, "refused")
    assert throttle.filter(after)
    assert after.getMessage() == (
        "Unable connect to node with id 1: refused "
        "[and 5 more like this since the last one logged, not logged]"
    )
    now[0] = 61.0
    quiet = record("aiokafka.client", unable, 1, "refused")
    assert throttle.filter(quiet)
    assert quiet.getMessage() == "Unable connect to node with id 1: refused"


def test_lines_of_other_loggers_always_pass() -> None:
    throttle = RepeatThrottle(clock=lambda: 0.0)
    for _ in range(3):
        assert throttle.filter(record("streams.app", "writing a batch failed"))
        assert throttle.filter(record("aiokafkaesque", "not the Kafka client"))


def test_each_handler_gets_a_throttle_of_its_own_once() -> None:
    logger = logging.getLogger("test-throttle-handlers")
    first, second = logging.StreamHandler(), logging.StreamHandler()
    logger.addHandler(first)
    logger.addHandler(second)
    try:
        throttle_handlers(logger)
        throttle_handlers(logger)
        assert len(first.filters) == len(second.filters) == 1
        assert first.filters[0] is not second.filters[0]
        line = record("aiokafka.conn", "Connection at %s closed", "127.0.0.1:9092")
        assert first.filter(line) and second.filter(line)  # both print the first line
    finally:
        logger.removeHandler(first)
        logger.removeHandler(second)


def test_two_handlers_judge_the_line_as_it_was_logged() -> None:
    """Each handler's throttle sees the record after the one before may have annotated it."""
    now = [0.0]
    first = RepeatThrottle(clock=lambda: now[0])
    second = RepeatThrottle(clock=lambda: now[0])
    unable = "Unable connect to node with id %s"
    for _ in range(4):
        line = record("aiokafka.client", unable, 1)
        assert first.filter(line) == second.filter(line)
        now[0] += 1
    now[0] = 31.0
    line = record("aiokafka.client", unable, 1)
    assert first.filter(line) and second.filter(line)
    assert line.getMessage().endswith(
        "[and 3 more like this since the last one logged, not logged]"
    )
    now[0] = 32.0
    line = record("aiokafka.client", unable, 1)
    assert not first.filter(line) and not second.filter(line)
