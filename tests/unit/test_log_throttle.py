"""Repeated lines of the Kafka client are throttled; everything else passes untouched."""

from __future__ import annotations

import logging

from schemas.log_throttle import RepeatThrottle, flush_throttled, throttle_handlers


def record(name: str, msg: str, *args: object, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


UNABLE = "Unable connect to node with id %s: %s"


def first_and_repeats(throttle: RepeatThrottle, now: list[float], repeats: int) -> None:
    """One "Unable connect" line passes; ``repeats`` more, a second apart, are left out."""
    assert throttle.filter(record("aiokafka.client", UNABLE, 1, "refused"))
    for n in range(repeats):
        now[0] += 1
        assert not throttle.filter(record("aiokafka.client", UNABLE, 1, f"refused {n}"))


def test_repeats_within_the_window_are_left_out_and_counted_on_the_next_line() -> None:
    now = [0.0]
    throttle = RepeatThrottle(window_s=30.0, clock=lambda: now[0])
    first_and_repeats(throttle, now, 5)
    # Another kind of line, another level, another logger: each passes once.
    assert throttle.filter(record("aiokafka.client", "Unable to update metadata from %s", 1))
    assert throttle.filter(record("aiokafka.client", UNABLE, 1, "x", level=logging.WARNING))
    assert throttle.filter(record("aiokafka.conn", UNABLE, 1, "x"))
    now[0] = 30.0
    after = record("aiokafka.client", UNABLE, 1, "refused")
    assert throttle.filter(after)
    assert after.getMessage() == (
        "Unable connect to node with id 1: refused "
        "[and 5 more like this since the last one logged, not logged]"
    )
    now[0] = 61.0
    quiet = record("aiokafka.client", UNABLE, 1, "refused")
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


def test_a_flush_after_the_window_logs_the_last_line_left_out_with_the_count() -> None:
    now = [0.0]
    throttle = RepeatThrottle(window_s=30.0, clock=lambda: now[0])
    first_and_repeats(throttle, now, 3)
    assert throttle.filter(record("aiokafka.conn", "Connection at %s closed", "k:9092"))
    now[0] = 29.0
    assert throttle.due() == []  # the window has not passed: a next line may still come
    now[0] = 31.0
    [summary] = throttle.due()  # the conn line had no repeats: nothing to say about it
    assert summary.name == "aiokafka.client" and summary.levelno == logging.ERROR
    assert summary.getMessage() == (
        "Unable connect to node with id 1: refused 2 "
        "[the last of 3 like this after the one logged; none since]"
    )
    assert throttle.filter(summary)  # passes as it is
    assert throttle.due() == []  # said once
    line = record("aiokafka.client", UNABLE, 1, "refused")
    assert throttle.filter(line)  # the kind starts over: the next line passes, with no count
    assert line.getMessage() == "Unable connect to node with id 1: refused"


def test_flush_hands_each_handler_the_summaries_of_its_own_throttle() -> None:
    now = [0.0]
    logger = logging.getLogger("test-throttle-flush")
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, rec: logging.LogRecord) -> None:
            seen.append(rec.getMessage())

    handler = Keep()
    logger.addHandler(handler)
    try:
        throttle_handlers(logger, lambda: RepeatThrottle(window_s=10.0, clock=lambda: now[0]))
        for n in range(4):
            handler.handle(record("aiokafka.fetcher", "Fetch failed: %s", n))
        flush_throttled(logger)
        assert seen == ["Fetch failed: 0"]
        now[0] = 10.0
        flush_throttled(logger)
        assert seen == [
            "Fetch failed: 0",
            "Fetch failed: 3 [the last of 3 like this after the one logged; none since]",
        ]
    finally:
        logger.removeHandler(handler)


def test_a_line_whose_arguments_do_not_fit_its_format_is_summarised_as_written() -> None:
    now = [0.0]
    throttle = RepeatThrottle(window_s=10.0, clock=lambda: now[0])
    assert throttle.filter(record("aiokafka.conn", "broken %d", "not a number"))
    assert not throttle.filter(record("aiokafka.conn", "broken %d", "again"))
    now[0] = 10.0
    [summary] = throttle.due()
    assert summary.getMessage() == (
        "broken %d [the last of 1 like this after the one logged; none since]"
    )


def test_a_summary_formats_through_the_formatter_the_worker_logs_with() -> None:
    from mode.utils.logging import ExtensionFormatter

    now = [0.0]
    throttle = RepeatThrottle(window_s=10.0, clock=lambda: now[0])
    missing = "Topic %s not found in cluster metadata"
    assert throttle.filter(record("aiokafka.cluster", missing, "bots.events"))
    assert not throttle.filter(record("aiokafka.cluster", missing, "bots.events"))
    now[0] = 10.0
    [summary] = throttle.due()
    text = ExtensionFormatter(fmt="%(message)s").format(summary)
    assert text.endswith(
        "Topic bots.events not found in cluster metadata "
        "[the last of 1 like this after the one logged; none since]"
    )
