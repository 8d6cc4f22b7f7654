"""A sink that keeps nothing."""

from __future__ import annotations

from typing import Any

from schemas.sink import DeadLetterRecord, SinkRecord, SinkResult


class DiscardSink:
    """A sink that keeps nothing, for running the stream logic alone (benchmarks, tests).

    Like Vector's ``blackhole`` sink: it is chosen explicitly with ``--sink discard``.
    """

    def __init__(self) -> None:
        self.events = 0
        self.windows = 0
        self.dead_letters = 0
        self.alerts = 0

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def write_events(self, records: list[SinkRecord]) -> SinkResult:
        self.events += len(records)
        return SinkResult()

    async def write_stats(self, windows: list[dict[str, Any]]) -> None:
        self.windows += len(windows)

    async def write_dead_letters(self, letters: list[DeadLetterRecord]) -> None:
        self.dead_letters += len(letters)

    async def write_alerts(self, alerts: list[dict[str, Any]]) -> None:
        self.alerts += len(alerts)

    def health(self) -> tuple[bool, str]:
        return True, "discard sink: records are not stored"

    async def ping(self) -> None:
        return None
