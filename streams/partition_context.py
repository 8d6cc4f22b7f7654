"""Telling faust which source partition a table access belongs to.

faust picks a table key's changelog partition (and its RocksDB partition database) from
the *current event*, a context variable it sets while a stream is iterated one event at a
time. Inside a `take_events` batch, or in a timer, that variable is unset or points at
some other partition's event, so every table access here is wrapped in ``in_partition``.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from faust.streams import _current_event


@dataclass(frozen=True)
class _Message:
    topic: str
    partition: int
    value: bytes | None = b""


@dataclass(frozen=True)
class PartitionMarker:
    """Stands in for an event of ``topic``/``partition`` where faust only reads those two."""

    message: _Message

    @classmethod
    def of(cls, topic: str, partition: int) -> PartitionMarker:
        return cls(_Message(topic, partition))


@contextmanager
def in_partition(event: Any) -> Iterator[None]:
    """Make ``event`` (a faust event or a PartitionMarker) faust's current event."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)
