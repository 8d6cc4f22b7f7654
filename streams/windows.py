"""Tumbling event-time windows per bot and the window record of DESIGN.md.

State is kept per 1-minute window only. Coarser views (5 minutes, 1 hour) are merges of the
1-minute ``WindowStats`` (``merge_windows``): every count merges exactly and the duration
sketches merge without losing their 1% bound, so no second copy of the stream is kept.

A window with no duration samples reports ``duration_ms`` as ``count: 0, sum: 0.0`` and
``null`` for min, max, mean and the percentiles: OpenSearch aggregations skip nulls, whereas a
zero would drag averages and minimums of dashboards down with a measurement nobody made.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from schemas import ERROR_LEVELS, LEVELS
from streams.sketch import QuantileSketch

SCHEMA_VERSION: Final = 1
WINDOW_S: Final = 60
WINDOW_MS: Final = WINDOW_S * 1000
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_INF: Final = float("inf")
_NO_DURATIONS: Final[dict[str, Any]] = {
    "count": 0,
    "sum": 0.0,
    "min": None,
    "max": None,
    "mean": None,
    "p50": None,
    "p95": None,
    "p99": None,
}


# Event times a window may hold: every window of up to a day around them starts and ends
# within years 1..9999, which ``rfc3339`` (and OpenSearch's date fields) can write.
FIRST_WINDOWED_MS: Final = -62_135_510_400_000  # 0001-01-02T00:00:00Z
LAST_WINDOWED_MS: Final = 253_401_955_200_000  # 9999-12-28T00:00:00Z


def window_start(ts_ms: int, size_ms: int) -> int:
    """Start of the window ``[start, start + size_ms)`` holding ``ts_ms``, aligned to the epoch."""
    return ts_ms - ts_ms % size_ms


def rfc3339(ms: int) -> str:
    """``2026-11-23T10:00:00Z`` (milliseconds shown only when there are any)."""
    dt = _EPOCH + timedelta(milliseconds=ms)
    text = (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}"
    )
    millis = ms % 1000
    return f"{text}.{millis:03d}Z" if millis else f"{text}Z"


def stats_id(bot_id: str, window_start_ms: int, size_s: int) -> str:
    """The OpenSearch ``_id`` of a window record: ``invoice-bot|2026-11-23T10:00:00Z|60``.

    ``|`` cannot occur in a bot id, so the id is unambiguous, and it can be rebuilt from a
    record's own ``bot_id``, ``window_start`` and ``window_size_s`` fields.
    """
    return f"{bot_id}|{rfc3339(window_start_ms)}|{size_s}"


class WindowStats:
    """Exact counts, duration summary and duration sketch of one bot's events in one window.

    ``add`` expects a validated event (``schemas.decode_event``); an unknown level raises
    ValueError before anything is counted.
    """

    __slots__ = (
        "count",
        "duration_count",
        "duration_max",
        "duration_min",
        "duration_sum",
        "errors",
        "failures",
        "late_events_excluded",
        "levels",
        "retries",
        "sketch",
        "successes",
    )

    def __init__(self) -> None:
        self.count = 0
        self.errors = 0
        self.successes = 0
        self.failures = 0
        self.retries = 0
        self.levels: dict[str, int] = dict.fromkeys(LEVELS, 0)
        self.duration_count = 0
        self.duration_sum = 0.0
        # Infinite until the first duration: one comparison per duration, no None checks.
        self.duration_min = _INF
        self.duration_max = -_INF
        # Created on the first duration: most windows of log-only bots never need one.
        self.sketch: QuantileSketch | None = None
        self.late_events_excluded = 0

    def add(self, event: Mapping[str, Any]) -> None:
        level = event["level"]
        try:
            self.levels[level] += 1
        except KeyError:
            raise ValueError(f"unknown level {level!r}") from None
        self.count += 1
        if level in ERROR_LEVELS:
            self.errors += 1
        status = event.get("status")
        if status is not None:
            if status == "success":
                self.successes += 1
            elif status == "failure":
                self.failures += 1
            elif status == "retry":
                self.retries += 1
        duration = event.get("duration_ms")
        if duration is not None:
            self.add_duration(float(duration))

    def add_duration(self, value: float) -> None:
        sketch = self.sketch
        if sketch is None:
            sketch = self.sketch = QuantileSketch()
        sketch.add(value)  # first: it rejects negative and non-finite values
        self.duration_count += 1
        self.duration_sum += value
        # Plain comparisons: on the per-event path, min()/max() calls cost more.
        if value < self.duration_min:  # noqa: PLR1730
            self.duration_min = value
        if value > self.duration_max:  # noqa: PLR1730
            self.duration_max = value

    def merge(self, other: WindowStats) -> None:
        self.count += other.count
        self.errors += other.errors
        self.successes += other.successes
        self.failures += other.failures
        self.retries += other.retries
        for level, n in other.levels.items():
            self.levels[level] += n
        self.late_events_excluded += other.late_events_excluded
        if other.duration_count == 0 or other.sketch is None:
            return
        if self.sketch is None:
            self.sketch = QuantileSketch(other.sketch.alpha, other.sketch.max_bins)
        self.sketch.merge(other.sketch)
        self.duration_count += other.duration_count
        self.duration_sum += other.duration_sum
        self.duration_min = min(self.duration_min, other.duration_min)
        self.duration_max = max(self.duration_max, other.duration_max)

    def to_record(self, bot_id: str, window_start_ms: int, size_s: int) -> dict[str, Any]:
        """The window record of DESIGN.md, field for field."""
        count = self.count
        finished = self.successes + self.failures
        return {
            "bot_id": bot_id,
            "window_start": rfc3339(window_start_ms),
            "window_end": rfc3339(window_start_ms + size_s * 1000),
            "window_size_s": size_s,
            "count": count,
            "errors": self.errors,
            "successes": self.successes,
            "failures": self.failures,
            "retries": self.retries,
            "error_rate": self.errors / count if count else 0.0,
            "failure_rate": self.failures / finished if finished else 0.0,
            "levels": dict(self.levels),
            "duration_ms": self._duration_record(),
            "late_events_excluded": self.late_events_excluded,
            "schema_version": SCHEMA_VERSION,
        }

    def _duration_record(self) -> dict[str, Any]:
        n = self.duration_count
        if n == 0 or self.sketch is None:
            return dict(_NO_DURATIONS)
        low, high = self.duration_min, self.duration_max
        # The exact value lies in [min, max]: clamping can only bring an estimate closer.
        p50, p95, p99 = (min(max(v, low), high) for v in self.sketch.quantiles(0.5, 0.95, 0.99))
        return {
            "count": n,
            "sum": self.duration_sum,
            "min": low,
            "max": high,
            "mean": self.duration_sum / n,
            "p50": p50,
            "p95": p95,
            "p99": p99,
        }

    def to_dict(self) -> dict[str, Any]:
        """Compact JSON-ready state; levels are listed in ``schemas.LEVELS`` order."""
        data: dict[str, Any] = {
            "count": self.count,
            "errors": self.errors,
            "successes": self.successes,
            "failures": self.failures,
            "retries": self.retries,
            "levels": [self.levels[level] for level in LEVELS],
            "late": self.late_events_excluded,
        }
        if self.duration_count and self.sketch is not None:
            data["duration"] = {
                "count": self.duration_count,
                "sum": self.duration_sum,
                "min": self.duration_min,
                "max": self.duration_max,
                "sketch": self.sketch.to_dict(),
            }
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WindowStats:
        stats = cls()
        stats.count = int(data["count"])
        stats.errors = int(data["errors"])
        stats.successes = int(data["successes"])
        stats.failures = int(data["failures"])
        stats.retries = int(data["retries"])
        levels = data["levels"]
        if len(levels) != len(LEVELS):
            raise ValueError(f"expected {len(LEVELS)} level counts, got {len(levels)}")
        stats.levels = {level: int(n) for level, n in zip(LEVELS, levels, strict=True)}
        stats.late_events_excluded = int(data["late"])
        duration = data.get("duration")
        if duration is not None:
            stats.duration_count = int(duration["count"])
            stats.duration_sum = float(duration["sum"])
            stats.duration_min = float(duration["min"])
            stats.duration_max = float(duration["max"])
            stats.sketch = QuantileSketch.from_dict(duration["sketch"])
        return stats

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WindowStats):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"WindowStats(count={self.count}, errors={self.errors}, "
            f"durations={self.duration_count})"
        )


def merge_windows(
    windows: Mapping[int, WindowStats | Mapping[str, Any]]
    | Iterable[tuple[int, WindowStats | Mapping[str, Any]]],
    size_s: int,
    fine_size_s: int = WINDOW_S,
) -> dict[int, WindowStats]:
    """Roll fine windows (``{start_ms: stats}`` or pairs) up into windows of ``size_s``.

    Stats may be ``WindowStats`` or their ``to_dict()`` form (as read back from a table);
    the inputs are not modified. Window records cannot be merged: they carry percentiles, not
    the sketches that percentiles of a longer window need. Returns ``{start_ms: stats}`` in
    start order; ``to_record(bot_id, start_ms, size_s)`` gives the coarse record.
    """
    if size_s <= 0 or size_s % fine_size_s:
        raise ValueError(f"window size {size_s}s is not a multiple of {fine_size_s}s")
    size_ms = size_s * 1000
    fine_ms = fine_size_s * 1000
    pairs = windows.items() if isinstance(windows, Mapping) else windows
    merged: dict[int, WindowStats] = {}
    for start, given in pairs:
        if start % fine_ms:
            raise ValueError(f"window start {start} is not aligned to {fine_size_s}s")
        stats = given if isinstance(given, WindowStats) else WindowStats.from_dict(given)
        coarse = window_start(start, size_ms)
        target = merged.get(coarse)
        if target is None:
            target = merged[coarse] = WindowStats()
        target.merge(stats)
    return dict(sorted(merged.items()))
