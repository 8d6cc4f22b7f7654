"""What `botwatch top` shows: per bot, its newest closed window and its totals since a time.

Pure: the stats topic's values (window records, DESIGN.md) in, rows out; reading the topic
is the command's job. A window published again (a worker restarted before its offsets were
committed, or a partition moved) replaces itself, so no total counts it twice. A value that
is not a window record is counted, never fatal: the view is for looking, not for judging.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson

Sort = Literal["error-rate", "failure-rate", "events", "p95", "bot"]
SORTS: Final[tuple[Sort, ...]] = ("error-rate", "failure-rate", "events", "p95", "bot")

# The fields a record must have (with these types) to be shown.
_REQUIRED: Final = {
    "bot_id": str,
    "window_start": str,
    "window_size_s": int,
    "count": int,
    "errors": int,
    "successes": int,
    "failures": int,
    "retries": int,
}


@dataclass(frozen=True)
class BotRow:
    """One bot: its newest window (``last``) and the sums over every window seen."""

    bot_id: str
    last: dict[str, Any]
    windows: int
    events: int
    errors: int
    successes: int
    failures: int

    @property
    def error_rate(self) -> float:
        return self.errors / self.events if self.events else 0.0

    @property
    def failure_rate(self) -> float:
        finished = self.successes + self.failures
        return self.failures / finished if finished else 0.0

    def last_duration(self, name: str) -> float | None:
        durations = self.last.get("duration_ms")
        value = durations.get(name) if isinstance(durations, dict) else None
        return float(value) if isinstance(value, int | float) else None


class StatsView:
    """Window records folded per bot and window, with when each was published."""

    def __init__(self) -> None:
        # bot_id -> (window_start, window_size_s) -> (record, published at)
        self._windows: dict[str, dict[tuple[str, int], tuple[dict[str, Any], int]]] = {}
        self.records = 0
        self.skipped = 0  # values that are not window records

    def add(self, value: bytes | None, published_ms: int = 0) -> None:
        self.records += 1
        try:
            record = orjson.loads(value or b"")
        except orjson.JSONDecodeError:
            self.skipped += 1
            return
        if not isinstance(record, dict) or any(
            type(record.get(name)) is not kind for name, kind in _REQUIRED.items()
        ):
            self.skipped += 1
            return
        key = (record["window_start"], record["window_size_s"])
        self._windows.setdefault(record["bot_id"], {})[key] = (record, published_ms)

    def forget_before(self, published_ms: int) -> None:
        """Drop the windows published before ``published_ms`` (and bots left with none): a
        live view's totals keep covering the last ``--since``, and its memory stays bounded."""
        for bot_id, windows in list(self._windows.items()):
            kept = {key: seen for key, seen in windows.items() if seen[1] >= published_ms}
            if kept:
                self._windows[bot_id] = kept
            else:
                del self._windows[bot_id]

    def __len__(self) -> int:
        return len(self._windows)

    def rows(self, sort: Sort = "error-rate", limit: int | None = None) -> list[BotRow]:
        """Bots ordered by ``sort`` (their newest window's value, largest first; ``bot``: by
        name), at most ``limit`` of them."""
        rows = [_row(bot_id, windows) for bot_id, windows in self._windows.items()]
        rows.sort(key=lambda r: r.bot_id)
        if sort != "bot":
            rows.sort(key=lambda r: _sort_value(r, sort), reverse=True)  # stable: ties by name
        return rows if limit is None else rows[:limit]


def _row(bot_id: str, windows: dict[tuple[str, int], tuple[dict[str, Any], int]]) -> BotRow:
    # RFC 3339 UTC with a fixed layout (the worker writes them): text order is time order.
    last = windows[max(windows)][0]
    records = [record for record, _ in windows.values()]
    return BotRow(
        bot_id=bot_id,
        last=last,
        windows=len(windows),
        events=sum(r["count"] for r in records),
        errors=sum(r["errors"] for r in records),
        successes=sum(r["successes"] for r in records),
        failures=sum(r["failures"] for r in records),
    )


def _sort_value(row: BotRow, sort: Sort) -> float:
    last = row.last
    if sort == "events":
        return float(last["count"])
    if sort == "p95":
        p95 = row.last_duration("p95")
        return -1.0 if p95 is None else p95
    name = "error_rate" if sort == "error-rate" else "failure_rate"
    value = last.get(name)
    return float(value) if isinstance(value, int | float) else 0.0
