"""The small interface between the stream worker and a sink.

It lives with the contract because both sides depend on it: `streams` calls a sink through
it and `sinks` implements it, and neither imports the other; the command line wires a
concrete sink (OpenSearch) into the worker. A sink takes whole batches so it can build one
bulk request per batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol


class SinkRecord(NamedTuple):
    """One validated event, with where it came from (for dead letters and idempotent ids).

    A named tuple, not a frozen dataclass: the worker makes one per event, and a frozen
    dataclass costs ~0.8 us to build against ~0.25 us.
    """

    raw: bytes
    event: dict[str, Any]
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    headers: list[tuple[str, bytes]]


@dataclass(frozen=True)
class DeadLetterRecord:
    """A record as written to the dead-letter topic: the original key and value, and its
    headers including the ``botwatch.dlq.*`` ones that say where and why it failed."""

    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


@dataclass
class Rejected:
    """A record the sink refused for good (e.g. a mapping error): it goes to the DLQ."""

    record: SinkRecord
    reason: str


@dataclass
class SinkResult:
    rejected: list[Rejected] = field(default_factory=list)


class Sink(Protocol):
    """Where validated events and closed windows go.

    ``write_*`` return only after the records are durably written (retrying transient
    failures themselves), because the worker commits Kafka offsets right after.
    """

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def write_events(self, records: list[SinkRecord]) -> SinkResult: ...

    async def write_stats(self, windows: list[dict[str, Any]]) -> None: ...

    async def write_alerts(self, alerts: list[dict[str, Any]]) -> None:
        """Alert records (firing, resolved): the searchable alert history."""
        ...

    async def write_dead_letters(self, letters: list[DeadLetterRecord]) -> None:
        """Make dead letters searchable too (the topic stays the operator's tool)."""
        ...

    def health(self) -> tuple[bool, str]:
        """(healthy, reason): the worker's /ready reports it."""
        ...

    async def ping(self) -> None:
        """Check the destination when idle, so that ``health`` is news without writes."""
        ...


# A replay count fits a signed 64-bit integer (the dead-letter index's ``long``).
_MAX_COUNT_DIGITS = 18


def parse_count(value: bytes | str | None) -> int | None:
    """A dead letter's ``botwatch.dlq.replay_count``: ASCII digits that fit a long, else None
    (``int`` would also take ``-1``, `` 7``, ``1_0`` and other scripts' digits). Another
    producer may have written anything there: the worker carries only a count into a letter,
    and ``dlq list``, replay and the dead-letter index read it alike."""
    if value is None or not value.isascii() or not value.isdigit():
        return None
    return int(value) if len(value) <= _MAX_COUNT_DIGITS else None
