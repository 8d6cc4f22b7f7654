"""The event-time clock of one source partition: watermark, window closing, lateness, idle close.

Rules (all windows are tumbling, ``[start, end)``, aligned to the epoch):

- ``max_event_ms`` is the highest event time observed; replaying records cannot lower it, so
  observing the same records again after a restart changes nothing.
- ``watermark = max_event_ms - lateness_ms``, never decreasing. A window **closes** when
  ``watermark >= end``. An event is **late** iff its window is already closed when it arrives,
  i.e. ``window_end <= watermark``: an event ``lateness_ms`` behind the newest one is still
  counted, unless an idle close has already closed its window.
- **Idle close**: a partition that has read no record for ``idle_close_ms`` of wall-clock time
  (``now - last_activity >= idle_close_ms`` when ``idle_close`` is called) advances its
  watermark to the end of the window holding ``max_event_ms``, closing every window that holds
  an observed event. Records arriving afterwards for those windows are late. The default
  (2 minutes) is longer than one window plus the lateness, so a partition whose producers'
  clocks are right never has a window closed by idleness before the watermark would have.
- Idleness means "nothing to read", not "not reading": the worker calls ``idle_close`` only for
  partitions it is fetching, and ``touch`` when it resumes one paused by backpressure. A
  restored clock counts the restore as activity, so the backlog read after a restart is never
  declared late because the process was down.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from streams.windows import WINDOW_MS, window_start

NO_TIME: Final = -(2**63)
DEFAULT_LATENESS_MS: Final = 30_000
DEFAULT_IDLE_CLOSE_MS: Final = 120_000


class PartitionClock:
    """Watermark of one partition. ``watermark`` is a plain attribute: read it per event."""

    __slots__ = (
        "idle_close_ms",
        "last_activity_ms",
        "lateness_ms",
        "max_event_ms",
        "watermark",
        "window_ms",
    )

    def __init__(
        self,
        lateness_ms: int = DEFAULT_LATENESS_MS,
        idle_close_ms: int = DEFAULT_IDLE_CLOSE_MS,
        window_ms: int = WINDOW_MS,
    ) -> None:
        if lateness_ms < 0 or idle_close_ms <= 0 or window_ms <= 0:
            raise ValueError("lateness must be >= 0, idle close and window size > 0")
        self.lateness_ms = lateness_ms
        self.idle_close_ms = idle_close_ms
        self.window_ms = window_ms
        self.max_event_ms = NO_TIME
        self.watermark = NO_TIME
        self.last_activity_ms = NO_TIME

    def observe(self, ts_ms: int, now_wall_ms: int) -> None:
        """Account for one record read from the partition (event time, wall-clock time)."""
        if ts_ms > self.max_event_ms:
            self.max_event_ms = ts_ms
            candidate = ts_ms - self.lateness_ms
            if candidate > self.watermark:  # noqa: PLR1730 (hot path: max() costs more)
                self.watermark = candidate
        if now_wall_ms > self.last_activity_ms:  # noqa: PLR1730
            self.last_activity_ms = now_wall_ms

    def touch(self, now_wall_ms: int) -> None:
        """Count ``now_wall_ms`` as activity (a resumed partition is not idle)."""
        self.last_activity_ms = max(self.last_activity_ms, now_wall_ms)

    def idle_close(self, now_wall_ms: int) -> bool:
        """Apply the idle rule at ``now_wall_ms``; True when the watermark moved."""
        if self.max_event_ms == NO_TIME:
            return False
        if now_wall_ms - self.last_activity_ms < self.idle_close_ms:
            return False
        target = window_start(self.max_event_ms, self.window_ms) + self.window_ms
        if target <= self.watermark:
            return False
        self.watermark = target
        return True

    def is_closed(self, window_end_ms: int) -> bool:
        return window_end_ms <= self.watermark

    def is_late(self, ts_ms: int) -> bool:
        return window_start(ts_ms, self.window_ms) + self.window_ms <= self.watermark

    def to_dict(self) -> dict[str, Any]:
        """Event-time state only: configuration comes from settings, wall time from the restore."""
        return {"max_event_ms": self.max_event_ms, "watermark": self.watermark}

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        now_wall_ms: int,
        lateness_ms: int = DEFAULT_LATENESS_MS,
        idle_close_ms: int = DEFAULT_IDLE_CLOSE_MS,
        window_ms: int = WINDOW_MS,
    ) -> PartitionClock:
        """Restore the clock; the restore at ``now_wall_ms`` counts as activity.

        The stored watermark is kept even if ``lateness_ms`` grew since: windows already
        closed (and emitted) stay closed.
        """
        clock = cls(lateness_ms, idle_close_ms, window_ms)
        clock.max_event_ms = int(data["max_event_ms"])
        clock.watermark = int(data["watermark"])
        clock.last_activity_ms = now_wall_ms
        return clock

    def __repr__(self) -> str:
        return (
            f"PartitionClock(max_event_ms={self.max_event_ms}, watermark={self.watermark}, "
            f"last_activity_ms={self.last_activity_ms})"
        )
