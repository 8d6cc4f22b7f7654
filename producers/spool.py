"""A bounded on-disk spool: events Kafka did not take, kept in order until it takes them.

Layout of a spool directory (one per bot, owned by one process at a time)::

    lock                      flock()ed while a producer owns the spool
    cursor                    JSON {segment number: bytes already sent}, replaced atomically
    unknown                   JSON [segment number, byte]: records up to there may be in Kafka
    00000001000000000000.seg  append-only segments, read in number order

A segment is a run of frames ``>IIHH`` (payload length, CRC-32, topic length, key length)
followed by the payload ``topic + key + value``. Writes go straight to the operating
system (no user-space buffer), so a crashed or killed process loses nothing it appended;
a power cut may lose the last writes (no fsync per event, which would cost milliseconds).
A torn or corrupt frame ends its segment: the rest of that segment is cut off and counted.

``prepend`` exists for records that are older than everything spooled (those still in the
producer when it stopped): they go into a segment numbered below the head.

Outcome unknown. A record handed to Kafka that was neither acknowledged nor refused may have
been written (the broker went away before its acknowledgement arrived). Such records are
always the oldest ones spooled (prepended, or the unsent rest of a chunk read from the head),
so they form a prefix: the ``unknown`` file keeps the position of the last of them, and
``read`` returns each record at or before it with ``unknown=True``. Prepended records are of
unknown outcome by definition; ``mark_unknown`` marks records of the last ``read``. The file
is written before the records it covers and is removed once they are all committed; a spool
without it (or written by an older version) simply has no record of unknown outcome.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import BinaryIO, NamedTuple

import orjson

__all__ = ["Record", "Spool", "SpoolLockedError"]

_HEADER = struct.Struct(">IIHH")
_LENS = struct.Struct(">HH")
_FIRST_SEGMENT = 10**12
_SUFFIX = ".seg"


class Record(NamedTuple):
    topic: str
    key: bytes
    value: bytes
    unknown: bool = False
    """Handed to Kafka without a definite outcome: it may already be there (set by ``read``)."""


class SpoolLockedError(OSError):
    """Another live process owns this spool directory."""


def encode_frame(record: Record) -> bytes:
    topic = record.topic.encode()
    lens = _LENS.pack(len(topic), len(record.key))
    payload = topic + record.key + record.value
    crc = zlib.crc32(payload, zlib.crc32(lens))
    return _HEADER.pack(len(payload), crc, len(topic), len(record.key)) + payload


def _decode_frames(data: bytes, start: int = 0) -> Iterable[tuple[Record, int]]:
    """(record, end offset) for each intact frame of ``data`` from ``start``; stops at damage."""
    pos = start
    size = len(data)
    while pos + _HEADER.size <= size:
        length, crc, topic_len, key_len = _HEADER.unpack_from(data, pos)
        end = pos + _HEADER.size + length
        if end > size or topic_len + key_len > length:
            return
        payload = data[pos + _HEADER.size : end]
        if zlib.crc32(payload, zlib.crc32(_LENS.pack(topic_len, key_len))) != crc:
            return
        topic = payload[:topic_len].decode("utf-8", "replace")
        key = payload[topic_len : topic_len + key_len]
        yield Record(topic, key, payload[topic_len + key_len :]), end
        pos = end


class Spool:
    """Append at the tail, read and commit at the head; at most ``max_bytes`` of unsent data.

    Not thread-safe: one owner (the producer's sender) calls it.
    """

    def __init__(self, directory: Path, max_bytes: int, segment_bytes: int = 4 * 1024 * 1024):
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = max(1, min(segment_bytes, max_bytes))
        self.corrupt_bytes = 0
        self._lock_fd: int | None = None
        self._segments: list[int] = []
        self._sizes: dict[int, int] = {}
        self._consumed: dict[int, int] = {}
        self._records = 0
        self._tail: BinaryIO | None = None
        self._read_positions: list[tuple[int, int]] = []
        self._unknown: tuple[int, int] | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def open(self) -> None:
        """Lock the directory, cut damaged tails, and count what is waiting to be sent.

        The directory is made (or set) readable by its owner only: it holds events as the
        bot sent them, secrets included (redaction happens at indexing)."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(PermissionError):  # another user's: the lock decides
            os.chmod(self.directory, 0o700)
        fd = os.open(self.directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SpoolLockedError(f"spool {self.directory} is in use by another process") from None
        self._lock_fd = fd
        self._consumed = self._load_cursor()
        numbers = sorted(
            int(p.name[: -len(_SUFFIX)])
            for p in self.directory.glob(f"*{_SUFFIX}")
            if p.name[: -len(_SUFFIX)].isdigit()
        )
        for number in numbers:
            self._scan(number)
        self._consumed = {n: c for n, c in self._consumed.items() if n in self._sizes}
        for number in list(self._segments):
            self._drop_if_consumed(number, keep_tail=False)
        self._unknown = self._load_unknown()
        self._forget_unknown_if_sent()

    def close(self) -> None:
        if self._tail is not None:
            self._tail.close()
            self._tail = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    # -- state -------------------------------------------------------------------------

    @property
    def records(self) -> int:
        """Records waiting to be sent."""
        return self._records

    @property
    def size_bytes(self) -> int:
        """Bytes of records waiting to be sent (frames included)."""
        return sum(self._sizes.values()) - sum(self._consumed.values())

    def __len__(self) -> int:
        return self._records

    @property
    def has_unknown(self) -> bool:
        """True when the head of the spool holds records of unknown outcome."""
        marker = self._unknown
        if marker is None:
            return False
        for number in self._segments:
            consumed = self._consumed.get(number, 0)
            if consumed < self._sizes[number]:
                return (number, consumed) < marker
        return False

    # -- writing -----------------------------------------------------------------------

    def append(self, records: Sequence[Record]) -> int:
        """Append records in order; returns how many fit (a prefix), the rest are refused."""
        frames, fitted = self._fit(records)
        if not frames:
            return 0
        pos = 0
        while pos < len(frames):
            tail = self._tail_segment()
            room = self.segment_bytes - self._sizes[tail]
            chunk: list[bytes] = []
            size = 0
            while pos < len(frames) and (not chunk or size + len(frames[pos]) <= room):
                chunk.append(frames[pos])
                size += len(frames[pos])
                pos += 1
            self._write(tail, b"".join(chunk))
            self._records += len(chunk)
        return fitted

    def prepend(self, records: Sequence[Record]) -> int:
        """Put records of unknown outcome ahead of everything spooled; returns how many fit
        (a prefix)."""
        frames, fitted = self._fit(records)
        if not frames:
            return 0
        number = (self._segments[0] if self._segments else _FIRST_SEGMENT) - 1
        size = sum(len(f) for f in frames)
        self._set_unknown((number, size))  # before the data: a crash in between leaves no gap
        path = self._path(number)
        with path.open("wb", buffering=0) as f:
            f.write(b"".join(frames))
        self._segments.insert(0, number)
        self._sizes[number] = size
        self._records += fitted
        return fitted

    def _fit(self, records: Sequence[Record]) -> tuple[list[bytes], int]:
        free = self.max_bytes - self.size_bytes
        frames: list[bytes] = []
        for record in records:
            frame = encode_frame(record)
            if len(frame) > free:
                break
            frames.append(frame)
            free -= len(frame)
        return frames, len(frames)

    def _tail_segment(self) -> int:
        if self._segments and self._sizes[self._segments[-1]] < self.segment_bytes:
            tail = self._segments[-1]
            if self._tail is None or self._tail.name != str(self._path(tail)):
                self._open_tail(tail)
            return tail
        number = self._segments[-1] + 1 if self._segments else _FIRST_SEGMENT
        self._segments.append(number)
        self._sizes[number] = 0
        self._open_tail(number)
        return number

    def _open_tail(self, number: int) -> None:
        if self._tail is not None:
            self._tail.close()
        self._tail = self._path(number).open("ab", buffering=0)

    def _write(self, number: int, data: bytes) -> None:
        assert self._tail is not None
        view = memoryview(data)
        while view:
            written = self._tail.write(view)
            view = view[written or 0 :]
        self._sizes[number] += len(data)

    # -- reading -----------------------------------------------------------------------

    def read(self, max_records: int, max_bytes: int = 1024 * 1024) -> list[Record]:
        """Up to ``max_records`` records from the head, in order; ``commit`` marks them sent."""
        out: list[Record] = []
        self._read_positions = []
        size = 0
        for number in self._segments:
            start = self._consumed.get(number, 0)
            end = self._sizes[number]
            if start >= end:
                continue
            data = self._read_at(number, start, min(end - start, max(max_bytes - size, 1 << 16)))
            if len(data) < end - start and len(data) >= _HEADER.size:
                needed = _HEADER.size + _HEADER.unpack_from(data)[0]
                if needed > len(data):  # one frame larger than the read: read all of it
                    data = self._read_at(number, start, min(end - start, needed))
            progressed = False
            marker = self._unknown
            for record, rel_end in _decode_frames(data):
                unknown = marker is not None and (number, start + rel_end) <= marker
                out.append(record._replace(unknown=True) if unknown else record)
                self._read_positions.append((number, start + rel_end))
                size += len(record.value)
                progressed = True
                if len(out) >= max_records or size >= max_bytes:
                    return out
            if not progressed:
                # Damage that appeared after open(): skip the rest of this segment.
                self.corrupt_bytes += end - start
                self._consumed[number] = end
                continue
            if self._read_positions[-1][1] < end:
                return out
        return out

    def commit(self, count: int) -> None:
        """Mark the first ``count`` records of the last ``read`` as sent, and persist that."""
        if count <= 0:
            return
        positions = self._read_positions[:count]
        self._read_positions = self._read_positions[count:]
        for number, end in positions:
            self._consumed[number] = max(self._consumed.get(number, 0), end)
        self._records -= len(positions)
        for number in {n for n, _ in positions}:
            self._drop_if_consumed(number, keep_tail=False)
        self._save_cursor()
        self._forget_unknown_if_sent()

    def mark_unknown(self, count: int) -> None:
        """Mark the first ``count`` records of the last ``read`` (after any ``commit``) as of
        unknown outcome: they were handed to Kafka and neither acknowledged nor refused."""
        positions = self._read_positions[: max(count, 0)]
        if positions:
            self._set_unknown(positions[-1])

    # -- internals ---------------------------------------------------------------------

    def _path(self, number: int) -> Path:
        return self.directory / f"{number:020d}{_SUFFIX}"

    def _read_at(self, number: int, offset: int, size: int) -> bytes:
        with self._path(number).open("rb") as f:
            f.seek(offset)
            return f.read(size)

    def _scan(self, number: int) -> None:
        path = self._path(number)
        data = path.read_bytes()
        start = min(self._consumed.get(number, 0), len(data))
        valid_end = start
        count = 0
        for _, end in _decode_frames(data, start):
            valid_end = end
            count += 1
        if valid_end < len(data):
            self.corrupt_bytes += len(data) - valid_end
            with path.open("r+b") as f:
                f.truncate(valid_end)
        self._segments.append(number)
        self._sizes[number] = valid_end
        if start:
            self._consumed[number] = start
        self._records += count

    def _drop_if_consumed(self, number: int, *, keep_tail: bool) -> None:
        if self._consumed.get(number, 0) < self._sizes.get(number, 0):
            return
        if keep_tail and self._segments and number == self._segments[-1]:
            return
        if self._tail is not None and self._tail.name == str(self._path(number)):
            self._tail.close()
            self._tail = None
        with contextlib.suppress(FileNotFoundError):
            self._path(number).unlink()
        self._segments.remove(number)
        del self._sizes[number]
        self._consumed.pop(number, None)

    def _load_cursor(self) -> dict[int, int]:
        try:
            raw = orjson.loads((self.directory / "cursor").read_bytes())
            return {int(k): int(v) for k, v in raw.items()}
        except (OSError, ValueError, TypeError, AttributeError):
            return {}

    def _set_unknown(self, position: tuple[int, int]) -> None:
        marker = position if self._unknown is None else max(self._unknown, position)
        if marker == self._unknown:
            return
        tmp = self.directory / "unknown.tmp"
        tmp.write_bytes(orjson.dumps(list(marker)))
        os.replace(tmp, self.directory / "unknown")
        self._unknown = marker

    def _forget_unknown_if_sent(self) -> None:
        if self._unknown is None or self.has_unknown:
            return
        self._unknown = None
        with contextlib.suppress(FileNotFoundError):
            (self.directory / "unknown").unlink()

    def _load_unknown(self) -> tuple[int, int] | None:
        try:
            number, end = orjson.loads((self.directory / "unknown").read_bytes())
            return int(number), int(end)
        except (OSError, ValueError, TypeError):
            return None

    def _save_cursor(self) -> None:
        tmp = self.directory / "cursor.tmp"
        tmp.write_bytes(orjson.dumps({str(k): v for k, v in self._consumed.items()}))
        os.replace(tmp, self.directory / "cursor")
