"""UUIDv7 event ids (RFC 9562): time-ordered, so ids sort like the events were made.

Python 3.11 has no ``uuid.uuid7``. Layout: 48-bit Unix milliseconds, version 7, then 74
bits that start random each millisecond and count up within it (RFC 9562, method 3), so
ids made by one process are strictly increasing even within one millisecond.
"""

from __future__ import annotations

import os
import random
import threading
import time

__all__ = ["Uuid7", "format_uuid", "uuid7"]

_RAND_BITS = 74
_RAND_B_BITS = 62
_RAND_B_MASK = (1 << _RAND_B_BITS) - 1
_VERSION = 0x7 << 76
_VARIANT = 0b10 << 62


def format_uuid(value: int) -> str:
    """The canonical 8-4-4-4-12 text of a 128-bit integer."""
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class Uuid7:
    """A monotonic UUIDv7 source; thread-safe, re-seeded in a forked child."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._random = random.Random(os.urandom(16))  # noqa: S311 - ids, not secrets
        self._last_ms = -1
        self._last_rand = 0
        os.register_at_fork(after_in_child=self._reseed)

    def _reseed(self) -> None:
        self._random.seed(os.urandom(16))
        self._last_ms = -1

    def next(self, now_ns: int | None = None) -> tuple[str, int]:
        """(id, the clock's millisecond); ``now_ns`` defaults to ``time.time_ns()``.

        The millisecond returned is the clock's, not the id's: after the clock stepped back
        (NTP, a VM resumed), ids keep counting up from the last one while an event's time
        follows the clock. Stamped with the id's, every event until the clock caught up
        carried one instant, ahead, in one window, pushing the partition's watermark on."""
        ms = clock_ms = (time.time_ns() if now_ns is None else now_ns) // 1_000_000
        with self._lock:
            if ms > self._last_ms:
                # Top bit clear: leaves room to count up within this millisecond.
                rand = self._random.getrandbits(_RAND_BITS - 1)
            else:
                ms = self._last_ms
                rand = self._last_rand + 1
                if rand >> _RAND_BITS:
                    ms, rand = ms + 1, 0
            self._last_ms, self._last_rand = ms, rand
        value = (
            (ms << 80)
            | _VERSION
            | ((rand >> _RAND_B_BITS) << 64)
            | _VARIANT
            | (rand & _RAND_B_MASK)
        )
        return format_uuid(value), clock_ms


_default = Uuid7()


def uuid7() -> str:
    """A new UUIDv7 string from the process-wide source."""
    return _default.next()[0]
