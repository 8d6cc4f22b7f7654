"""Persisted changelog offsets past the changelog's end, found and forgotten before start."""

from __future__ import annotations

import asyncio
from pathlib import Path

from rocksdict import Options, Rdict

from streams.state_offsets import (
    OFFSET_KEY,
    forget,
    forget_past_the_end,
    past_the_end,
    read_persisted,
)


def test_offsets_at_or_past_the_end_are_stale_and_a_missing_log_makes_all_stale() -> None:
    persisted = {0: 9, 1: 4, 2: None, 3: -1, 4: 0}
    # Partition 1's log ends at 5 (offsets 0..4): its store is in step. Partition 0 holds
    # offsets the log does not; 2 never persisted one, 3 was forgotten already.
    assert past_the_end(persisted, {0: 9, 1: 5, 2: 0, 3: 0, 4: 3}) == [0]
    assert past_the_end(persisted, {}) == [0, 1, 4]


def _store(tabledir: Path, partition: int, offset: bytes | None) -> None:
    db = Rdict(str(tabledir / f"windows-{partition}.db"), Options(raw_mode=True))
    db[b"b|%d|bot" % partition] = b"{}"
    if offset is not None:
        db[OFFSET_KEY] = offset
    db.close()


def test_offsets_are_read_from_each_database_and_forgotten_in_place(tmp_path: Path) -> None:
    _store(tmp_path, 0, b"41")
    _store(tmp_path, 2, None)
    assert read_persisted(tmp_path, "windows", 4) == {0: 41, 2: None}
    forget(tmp_path, "windows", [0])
    assert read_persisted(tmp_path, "windows", 4) == {0: -1, 2: None}
    db = Rdict(str(tmp_path / "windows-0.db"), Options(raw_mode=True))
    try:
        assert db[b"b|0|bot"] == b"{}"  # the state itself is kept
    finally:
        db.close()


def test_partitions_forgotten_before_and_not_written_again_are_still_pending(
    tmp_path: Path,
) -> None:
    _store(tmp_path, 1, b"-1")
    _store(tmp_path, 3, None)
    # No offset to compare with the changelog: Kafka is not asked (none listens here).
    stale, pending = asyncio.run(forget_past_the_end("127.0.0.1:1", "log", tmp_path, "windows", 4))
    assert (stale, pending) == ([], [1])
