"""Index names: ``<prefix>-<family>-YYYY.MM.DD`` per UTC day for events and dead letters,
``<prefix>-<family>-YYYY.MM`` per UTC month for error events, windows and alerts.

Why monthly for those three: every index is a shard, and a node holds 1,000 shards by
default (``cluster.max_shards_per_node``). One index per family per day, kept 90, 365, 400,
30 and 400 days, came to 1,285: some 290 days after the start, the node refused new indices
and every document of the day was rejected. Those families write little per day; by month
the steady state is about 160 shards. A monthly index goes when its last day is past the
family's retention, so it holds at most a month more than the retention asks.

Why dated indices and not data streams: every write is idempotent through its ``_id``
(events are ``create``d under their ``event_id``, windows and alerts are ``index``ed over
their previous version), and a data stream accepts only ``create`` and cannot overwrite a
document by id; and retention by deleting whole indices is cheap and needs no plugin.

Error and critical events get their own family, ``<prefix>-events-errors-YYYY.MM.DD``, so
they can be kept longer (365 days against 90) by deleting indices, never documents; it
still matches ``<prefix>-events-*``, so one Dashboards index pattern finds every event.
"""

from __future__ import annotations

import calendar
import re
from datetime import date, timedelta
from typing import Final, Literal

from schemas import ERROR_LEVELS, timestamp_ms

Family = Literal["events", "events-errors", "stats", "dlq", "alerts"]
FAMILIES: Final[tuple[Family, ...]] = ("events", "events-errors", "stats", "dlq", "alerts")
MONTHLY: Final[frozenset[Family]] = frozenset({"events-errors", "stats", "alerts"})

DAY_MS: Final = 86_400_000
_EPOCH_DATE: Final = date(1970, 1, 1)
_FIRST_DAY: Final = (date.min - _EPOCH_DATE).days
_LAST_DAY: Final = (date.max - _EPOCH_DATE).days


def index_name(prefix: str, family: Family, day: str) -> str:
    """``<prefix>-<family>-<day>``, or ``-<month>`` for a monthly family; ``day`` is
    ``YYYY.MM.DD``."""
    return f"{prefix}-{family}-{day[:7] if family in MONTHLY else day}"


def day_of_ms(ms: int) -> str:
    """The UTC day of an epoch-milliseconds instant as ``YYYY.MM.DD``.

    Instants outside years 1..9999 UTC (a valid ``0000-01-01T00:00:00+01:00``, a Kafka
    timestamp a producer set wildly) are filed under the first or last day: a document
    always has an index, and one a retention sweep can date.
    """
    day = _EPOCH_DATE + timedelta(days=day_number(ms))
    return f"{day.year:04d}.{day.month:02d}.{day.day:02d}"


def day_number(ms: int) -> int:
    """The UTC day of an epoch-milliseconds instant, as days since 1970-01-01, within years
    1..9999 (see ``day_of_ms``)."""
    return min(max(ms // DAY_MS, _FIRST_DAY), _LAST_DAY)


def day_of_timestamp(timestamp: str) -> str:
    """The UTC day of an RFC 3339 timestamp; a ``Z`` timestamp is cut, not parsed."""
    if timestamp.endswith("Z") and len(timestamp) >= 10 and not timestamp.startswith("0000"):
        return f"{timestamp[0:4]}.{timestamp[5:7]}.{timestamp[8:10]}"
    return day_of_ms(timestamp_ms(timestamp))


def event_family(level: str) -> Family:
    return "events-errors" if level in ERROR_LEVELS else "events"


def family_pattern(prefix: str, family: Family) -> str:
    """The wildcard matching one family's indices (``events`` also matches ``events-errors``)."""
    return f"{prefix}-{family}-*"


def parse_index(prefix: str, name: str) -> tuple[Family, date] | None:
    """(family, newest day it holds) of a botwatch index of ``prefix``, daily or monthly
    (the month's last day; daily indices of any family are still read, as made before
    some families went monthly); None for any other index."""
    match = _pattern(prefix).fullmatch(name)
    if match is None:
        return None
    family: Family = match.group(1)  # type: ignore[assignment]
    year, month = int(match.group(2)), int(match.group(3))
    try:
        if match.group(4) is None:
            return family, date(year, month, calendar.monthrange(year, month)[1])
        return family, date(year, month, int(match.group(4)))
    except (ValueError, calendar.IllegalMonthError):
        return None


_PATTERNS: dict[str, re.Pattern[str]] = {}


def _pattern(prefix: str) -> re.Pattern[str]:
    pattern = _PATTERNS.get(prefix)
    if pattern is None:
        # Longest family first, so events-errors is not read as events with a day "errors-".
        families = "|".join(sorted(FAMILIES, key=len, reverse=True))
        pattern = re.compile(
            rf"{re.escape(prefix)}-({families})-([0-9]{{4}})\.([0-9]{{2}})(?:\.([0-9]{{2}}))?"
        )
        _PATTERNS[prefix] = pattern
    return pattern
