"""Counters a producer exposes through ``stats()``, and its warn-once rule."""

from __future__ import annotations

import contextlib
import sys
import threading
import warnings

__all__ = ["BotwatchWarning", "Stats"]


class BotwatchWarning(RuntimeWarning):
    """Observability is degraded (events spooled, dropped or refused); the bot goes on."""


class Stats:
    """Counters since start. Each problem kind warns once per producer, never per event."""

    # ``already_delivered`` is part of ``sent``: spooled events of unknown outcome that were
    # found on the broker when it came back, so they were not sent again.
    COUNTERS = (
        "sent",
        "already_delivered",
        "spooled",
        "failed_sends",
        "dropped_queue_full",
        "dropped_spool_full",
        "dropped_spool_error",
        "dropped_rejected",
        "dropped_closed",
    )

    def __init__(self) -> None:
        self.sent = 0
        self.already_delivered = 0
        self.spooled = 0
        self.failed_sends = 0
        self.dropped_queue_full = 0
        self.dropped_spool_full = 0
        self.dropped_spool_error = 0
        self.dropped_rejected = 0
        self.dropped_closed = 0
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def add(self, counter: str, n: int = 1) -> None:
        """Thread-safe increment, for counters that callers' threads touch."""
        with self._lock:
            setattr(self, counter, getattr(self, counter) + n)

    def warn_once(self, kind: str, message: str) -> None:
        with self._lock:
            if kind in self._warned:
                return
            self._warned.add(kind)
        try:
            warnings.warn(f"botwatch: {message}", BotwatchWarning, stacklevel=3)
        except Exception:
            # Warnings made errors (-W error, pytest's filterwarnings = error): raised, this
            # ended the sender for the life of the process, or reached the bot's own call.
            # Written where Python shows a warning: a log line went unseen where the only
            # handler is a BotwatchHandler (it leaves the SDK's own lines out).
            with contextlib.suppress(Exception):
                sys.stderr.write(f"{BotwatchWarning.__name__}: botwatch: {message}\n")

    def snapshot(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.COUNTERS}
