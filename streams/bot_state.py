"""What one table entry holds per bot, and what one entry holds per source partition.

All records of a bot share one partition (key = bot_id), so a bot's offsets only grow and
``BotState.last_offset`` makes applying a record idempotent: after a crash the worker
re-reads from its last committed offset, and every record already reflected in the restored
state comes back as ``Outcome.DUPLICATE`` instead of being counted twice.

Late events (their window already closed, see ``streams.watermark``) are not added to any
window. Each one increments ``late_pending``, which is reported as ``late_events_excluded``
on the next window record of the same bot to close (the earliest one if several close at
once), and ``late_total``, the bot's lifetime count for metrics, so a late event is visible
even when its bot never sends another timely event.

A record replayed from the dead-letter topic has an offset of its own, so the offset rule
cannot tell two copies of it apart (two replay runs that selected the same dead letter, an
export imported twice): ``apply_replayed`` remembers the ``event_id`` of each replayed event
a window counted, until the window closes (a copy after that is late anyway). It keeps a
12-character digest of each, and at most ``MAX_REPLAYED_PER_WINDOW`` per window, so that a
bot's table entry stays far below Kafka's record size limit whatever a replay sends; a
copy of an event past that many in one window is counted again.

``seen_until_ms`` is the end of the newest window the bot had an event in (closed, or late
into): how long a bot without open windows has been quiet, so that one quiet long enough
can be retired (its entry deleted: bot ids that come and go must not fill the worker).
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from typing import Any, Final

from streams.watermark import NO_TIME, PartitionClock
from streams.windows import WINDOW_MS, WindowStats

NO_OFFSET: Final = -1
# Replayed events remembered per window (digests of 12 characters: about 75 KB of state).
MAX_REPLAYED_PER_WINDOW: Final = 5000


class Outcome(enum.Enum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    LATE = "late"
    # Not offered to a bot (the processor): the event time is out of the range windows take,
    # or the record key is not the bot_id (the bot's windows live on another partition).
    UNWINDOWED = "unwindowed"
    MISKEYED = "miskeyed"


# On Python 3.11 looking a member up through the enum class costs ~80 ns: too much per event.
_APPLIED: Final = Outcome.APPLIED
_DUPLICATE: Final = Outcome.DUPLICATE
_LATE: Final = Outcome.LATE


def event_digest(event_id: str) -> str:
    """12 hex characters (48 bits) of the event id's BLAKE2b: with 5,000 of them in a window,
    a new event is taken for a copy about once in 5 * 10^10."""
    return hashlib.blake2b(event_id.encode("utf-8", "surrogatepass"), digest_size=6).hexdigest()


class BotState:
    """The open windows of one bot, its last applied offset and its late counters.

    The window size is part of the state (1 minute by default): records carry it, and it must
    equal the ``window_ms`` of the partition clock the state is applied with.
    """

    __slots__ = (
        "bot_id",
        "last_offset",
        "late_pending",
        "late_total",
        "replayed",
        "seen_until_ms",
        "window_ms",
        "windows",
    )

    def __init__(self, bot_id: str, window_ms: int = WINDOW_MS) -> None:
        if window_ms <= 0 or window_ms % 1000:
            raise ValueError(f"window size must be a positive number of seconds, got {window_ms}ms")
        self.bot_id = bot_id
        self.window_ms = window_ms
        self.windows: dict[int, WindowStats] = {}
        self.last_offset = NO_OFFSET
        self.late_pending = 0
        self.late_total = 0
        self.seen_until_ms = NO_TIME
        # Window start -> event ids of the replayed events it counted (see the module doc).
        self.replayed: dict[int, set[str]] | None = None

    def apply(
        self, offset: int, event: Mapping[str, Any], ts_ms: int, clock: PartitionClock
    ) -> Outcome:
        """Apply the validated ``event`` read at ``offset`` with event time ``ts_ms``.

        ``clock`` is the partition's clock; whether the worker observes the record before or
        after this call does not matter (an event never closes its own window).
        """
        if offset <= self.last_offset:
            return _DUPLICATE
        size = self.window_ms
        start = ts_ms - ts_ms % size
        if start + size <= clock.watermark:
            self.last_offset = offset
            self.late_pending += 1
            self.late_total += 1
            self.seen_until_ms = max(self.seen_until_ms, start + size)
            return _LATE
        # add() before storing anything: an event it rejects leaves no trace.
        stats = self.windows.get(start)
        if stats is None:
            stats = WindowStats()
            stats.add(event)
            self.windows[start] = stats
        else:
            stats.add(event)
        self.last_offset = offset
        return _APPLIED

    def apply_replayed(
        self, offset: int, event: Mapping[str, Any], ts_ms: int, clock: PartitionClock
    ) -> Outcome:
        """``apply`` for a record replayed from the dead-letter topic: a second copy of an
        event its open window counted from a replay is a duplicate."""
        digest = event_digest(event["event_id"])
        start = ts_ms - ts_ms % self.window_ms
        replayed = self.replayed
        if replayed is not None and digest in replayed.get(start, ()):
            self.last_offset = max(self.last_offset, offset)
            return _DUPLICATE
        outcome = self.apply(offset, event, ts_ms, clock)
        if outcome is _APPLIED:
            if replayed is None:
                replayed = self.replayed = {}
            seen = replayed.setdefault(start, set())
            if len(seen) < MAX_REPLAYED_PER_WINDOW:
                seen.add(digest)
        return outcome

    @property
    def next_close_ms(self) -> int | None:
        """End of the earliest open window: when this bot next has a record to emit."""
        return min(self.windows) + self.window_ms if self.windows else None

    def close_ready_stats(self, watermark_ms: int) -> list[tuple[int, WindowStats]]:
        """Remove and return the windows closed at ``watermark_ms``, oldest first."""
        size = self.window_ms
        ready = sorted(s for s in self.windows if s + size <= watermark_ms)
        closed = [(start, self.windows.pop(start)) for start in ready]
        replayed = self.replayed
        if replayed is not None:
            for start in ready:
                replayed.pop(start, None)
            if not replayed:
                self.replayed = None
        if closed:
            self.seen_until_ms = max(self.seen_until_ms, closed[-1][0] + size)
            if self.late_pending:
                closed[0][1].late_events_excluded += self.late_pending
                self.late_pending = 0
        return closed

    def quiet_since(self) -> int | None:
        """Since when (event time) the bot sent nothing: None while it has open windows or
        nothing says (an entry written before this was kept)."""
        if self.windows or self.seen_until_ms == NO_TIME:
            return None
        return self.seen_until_ms

    def close_ready(self, watermark_ms: int) -> list[dict[str, Any]]:
        """Window records (DESIGN.md) of the windows closed at ``watermark_ms``, oldest first."""
        size_s = self.window_ms // 1000
        return [
            stats.to_record(self.bot_id, start, size_s)
            for start, stats in self.close_ready_stats(watermark_ms)
        ]

    def to_dict(self) -> dict[str, Any]:
        data = {
            "bot_id": self.bot_id,
            "window_ms": self.window_ms,
            "last_offset": self.last_offset,
            "late_pending": self.late_pending,
            "late_total": self.late_total,
            "seen_until": self.seen_until_ms,
            "windows": {str(start): stats.to_dict() for start, stats in self.windows.items()},
        }
        if self.replayed:
            data["replayed"] = {str(start): sorted(ids) for start, ids in self.replayed.items()}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BotState:
        state = cls(str(data["bot_id"]), int(data.get("window_ms", WINDOW_MS)))
        state.last_offset = int(data["last_offset"])
        state.late_pending = int(data["late_pending"])
        state.late_total = int(data["late_total"])
        state.seen_until_ms = int(data.get("seen_until", NO_TIME))
        state.windows = {
            int(start): WindowStats.from_dict(stats) for start, stats in data["windows"].items()
        }
        replayed = data.get("replayed")
        if replayed:
            state.replayed = {int(start): set(map(str, ids)) for start, ids in replayed.items()}
        return state

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BotState):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"BotState({self.bot_id!r}, last_offset={self.last_offset}, "
            f"open_windows={sorted(self.windows)}, late_pending={self.late_pending})"
        )


class PartitionState:
    """The clock of one source partition and which of its bots have windows to close when.

    ``due`` answers "whose windows closed?" without scanning the bot table: after every
    ``BotState.apply`` or close, the worker calls ``track`` with the bot's ``next_close_ms``.

    ``offset_base`` is added to the offset of every record before a bot sees it: a topic
    deleted and made again starts its offsets at 0 once more, and its records would
    otherwise be taken for repeats of the ones the bots have already applied. The worker
    raises it past every offset applied so far when it finds the log made again
    (``rebase``), so that no bot entry has to be rewritten.
    """

    __slots__ = ("clock", "next_close", "offset_base")

    def __init__(self, clock: PartitionClock | None = None) -> None:
        self.clock = clock if clock is not None else PartitionClock()
        self.next_close: dict[str, int] = {}
        self.offset_base = 0

    def track(self, bot_id: str, next_close_ms: int | None) -> None:
        if next_close_ms is None:
            self.next_close.pop(bot_id, None)
        else:
            self.next_close[bot_id] = next_close_ms

    def due(self) -> list[str]:
        """Bots with at least one window closed at the current watermark, in name order."""
        watermark = self.clock.watermark
        return sorted(bot for bot, end in self.next_close.items() if end <= watermark)

    def rebase(self, last_offset: int) -> None:
        """The log was made again after the record at ``last_offset`` was applied: the
        records of the new log come after every one applied before."""
        self.offset_base += last_offset + 1

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"clock": self.clock.to_dict(), "next_close": dict(self.next_close)}
        if self.offset_base:
            data["offset_base"] = self.offset_base
        return data

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], now_wall_ms: int, **clock_settings: int
    ) -> PartitionState:
        """Restore; ``clock_settings`` are ``PartitionClock.from_dict``'s keyword arguments."""
        clock = PartitionClock.from_dict(data["clock"], now_wall_ms, **clock_settings)
        state = cls(clock)
        state.next_close = {str(bot): int(end) for bot, end in data["next_close"].items()}
        state.offset_base = int(data.get("offset_base", 0))
        return state
