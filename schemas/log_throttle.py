"""Repeated log lines of the Kafka client, throttled.

While a broker is away, aiokafka logs every failed connection, metadata refresh, fetch,
heartbeat and produce attempt, from the consumer's thread and the producer alike: a 25 s
outage left 9,000 lines in a worker's log, burying what the worker itself said. The first
line of a kind passes; repeats within ``window_s`` are counted, and the next line of that kind
after the window says how many were left out since the last one logged. When no next line
comes (the outage ended), ``flush_throttled`` logs the last line left out, with the count,
once the window has passed: a log that stops at the first line would hide how long the
trouble lasted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

# Distinct kinds remembered at most (a message formatted before logging makes a kind of its
# own): past it the memory starts over, which at worst lets a few repeats through.
_MAX_KINDS = 1024
# Where the message as logged is kept on a record (the throttle may append to ``msg``).
_ORIGINAL = "_throttle_original_msg"
# Set on the summary a flush makes, which passes the filter as it is.
_SUMMARY = "_throttle_summary"


@dataclass(slots=True)
class _Kind:
    passed_at: float
    left_out: int = 0
    last: logging.LogRecord | None = None  # the last line left out


class RepeatThrottle(logging.Filter):
    """A handler filter for the loggers ``prefixes`` and below them; a kind is (logger, level, the
    message before its arguments are put in)."""

    def __init__(
        self,
        prefixes: tuple[str, ...] = ("aiokafka",),
        window_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.prefixes = prefixes
        self._below = tuple(f"{prefix}." for prefix in prefixes)
        self.window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()  # aiokafka logs from faust's consumer thread too
        self._kinds: dict[tuple[str, int, str], _Kind] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        name = record.name
        if not (name.startswith(self._below) or name in self.prefixes):
            return True
        if getattr(record, _SUMMARY, False):
            return True
        # The record goes to every handler in turn: each one's throttle judges the message as
        # it was logged, not as an earlier throttle annotated it.
        message: str | None = getattr(record, _ORIGINAL, None)
        if message is None:
            message = str(record.msg)
            setattr(record, _ORIGINAL, message)
        kind = (name, record.levelno, message)
        now = self._clock()
        with self._lock:
            seen = self._kinds.get(kind)
            if seen is not None and now - seen.passed_at < self.window_s:
                seen.left_out += 1
                seen.last = record
                return False
            if len(self._kinds) >= _MAX_KINDS:
                self._kinds.clear()
            self._kinds[kind] = _Kind(now)
        left_out = seen.left_out if seen is not None else 0
        record.msg = (
            f"{message} [and {left_out} more like this since the last one logged, not logged]"
            if left_out
            else message
        )
        return True

    def due(self) -> list[logging.LogRecord]:
        """Summaries of the kinds whose window passed with lines left out and no line since:
        the last one left out, saying how many there were. Each kind starts over."""
        now = self._clock()
        with self._lock:  # formatting waits until the lock is let go (see below)
            due = [
                (kind, seen.last, seen.left_out)
                for kind, seen in self._kinds.items()
                if seen.last is not None and now - seen.passed_at >= self.window_s
            ]
            for kind, _, _ in due:
                del self._kinds[kind]
        summaries = []
        for _, last, left_out in due:
            try:  # a line's arguments may not fit its format: logging would say so, not raise
                text = last.getMessage()
            except Exception:
                text = str(last.msg)
            summary = logging.makeLogRecord(last.__dict__)
            summary.msg = (
                f"{text} [the last of {left_out} like this after the one logged; none since]"
            )
            # No arguments left to put in: (), not None, which faust's formatter (mode's
            # ExtensionFormatter) turns into (None,) and then fails to format.
            summary.args = ()
            setattr(summary, _SUMMARY, True)
            summaries.append(summary)
        return summaries


def flush_throttled(logger: logging.Logger) -> None:
    """Hand each of ``logger``'s handlers the summaries its throttle has due (see ``due``)."""
    for handler in logger.handlers:
        for throttle in handler.filters:
            if isinstance(throttle, RepeatThrottle):
                for summary in throttle.due():
                    handler.handle(summary)


def throttle_handlers(
    logger: logging.Logger, make: Callable[[], RepeatThrottle] = RepeatThrottle
) -> None:
    """Put a ``RepeatThrottle`` of its own on each of ``logger``'s handlers (one shared by
    two handlers would take the second's copy of a line for a repeat)."""
    for handler in logger.handlers:
        if not any(isinstance(f, RepeatThrottle) for f in handler.filters):
            handler.addFilter(make())
