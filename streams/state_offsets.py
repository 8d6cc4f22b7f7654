"""The local state store's changelog offsets, checked against the changelog before start.

Each partition's RocksDB records the last changelog offset it holds (faust's persisted
offset), so that a restart reads only what came after. A changelog deleted and made again
while the worker was stopped starts its offsets from 0 again: faust's recovery refuses a
store whose persisted offset lies past the changelog's end (``ConsistencyError``) and the
worker would not start. Such offsets are forgotten before faust opens the stores: recovery
then reads the new log from its start over the local store, and the worker writes those
partitions' local state to the new log once it owns them (``FaustTable.write_again``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from faust.stores.rocksdb import Store

from streams.deadletters.kafka import TopicMissing, consumer, partitions

# faust's key for the persisted offset, in every partition's database.
OFFSET_KEY: bytes = Store.offset_key
FORGOTTEN = -1


def past_the_end(persisted: Mapping[int, int | None], ends: Mapping[int, int]) -> list[int]:
    """Partitions whose persisted offset is at or past their changelog's end offset (the next
    offset it will write): the log is shorter than what the store applied from it, so it
    was made again (or lost records). A partition missing from ``ends`` has no log at all."""
    return sorted(
        p
        for p, offset in persisted.items()
        if offset is not None and offset > FORGOTTEN and offset >= ends.get(p, 0)
    )


def database_path(tabledir: Path, table: str, partition: int) -> Path:
    """Where faust's RocksDB store keeps ``partition`` of ``table``."""
    return tabledir / f"{table}-{partition}.db"


def read_persisted(tabledir: Path, table: str, partitions: int) -> dict[int, int | None]:
    """The persisted offset of each partition that has a database here."""
    from rocksdict import AccessType, Options, Rdict

    found: dict[int, int | None] = {}
    for partition in range(partitions):
        path = database_path(tabledir, table, partition)
        if not path.exists():
            continue
        db = Rdict(str(path), Options(raw_mode=True), access_type=AccessType.read_only())
        try:
            raw = db.get(OFFSET_KEY)
        finally:
            db.close()
        found[partition] = None if raw is None else int(raw)
    return found


def forget(tabledir: Path, table: str, partitions: list[int]) -> None:
    """Set the persisted offset of ``partitions`` to -1: recovery reads their log whole."""
    from rocksdict import Options, Rdict

    for partition in partitions:
        db = Rdict(str(database_path(tabledir, table, partition)), Options(raw_mode=True))
        try:
            db[OFFSET_KEY] = str(FORGOTTEN).encode()
        finally:
            db.close()


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """The end offset of each partition of ``topic``; empty when the topic does not exist."""
    async with consumer(bootstrap) as c:
        try:
            tps = await partitions(c, topic, "state changelog")
        except TopicMissing:
            return {}
        ends = await c.end_offsets(tps)
        return {tp.partition: offset for tp, offset in ends.items()}


async def forget_past_the_end(
    bootstrap: str, changelog: str, tabledir: Path, table: str, count: int
) -> tuple[list[int], list[int]]:
    """Forget every persisted offset past its changelog's end. Returns the partitions
    forgotten now, and those forgotten before whose state was not written again yet (the
    offset stays -1 until a save to the new log sets it)."""
    persisted = read_persisted(tabledir, table, count)
    pending = sorted(p for p, offset in persisted.items() if offset == FORGOTTEN)
    if not any(offset is not None and offset > FORGOTTEN for offset in persisted.values()):
        return [], pending
    stale = past_the_end(persisted, await end_offsets(bootstrap, changelog))
    forget(tabledir, table, stale)
    return stale, pending
