"""Dead-letter headers (DESIGN.md): why a record failed, where it came from, how often replayed.

A dead letter keeps the original record bytes, key and headers and adds ``botwatch.dlq.*``
headers, all UTF-8 strings, modeled on Kafka Connect's ``__connect.errors.*`` and Spring
Kafka's ``kafka_dlt-*``:

- ``stage``: where it failed: ``decode``, ``validate``, ``sink`` or ``job_failure``. There is
  no catch-all stage: an unexpected exception is reported under the stage it happened in.
- ``reason``: the text to fix the producer (or the sink) from.
- ``exception``: ``module.Class: message`` of the exception, empty when there was none
  (a ``job_failure`` is an event, not an error).
- ``original.topic``, ``original.partition``, ``original.offset``: where the record was read.
- ``original.timestamp``: the record's Kafka timestamp, epoch milliseconds in decimal.
- ``first_failed_at``: RFC 3339 UTC with milliseconds, when the record first failed.
- ``replay_count``: how many times the record was replayed from the dead-letter topic.

A dead letter too large for the dead-letter topic (a record near the broker's size limit,
plus these headers) has its value cut to fit and carries ``botwatch.dlq.truncated``: how
many bytes were cut and where the whole record still is. Refusing it instead would stop the
worker for good: the batch holding it could never be written.

A replayed record also carries ``botwatch.dlq.replay.stage``: the stage its dead letter was
made in (see ``REPLAYED_STAGE``).

A replayed record that fails again carries the headers of its previous failure: its
``first_failed_at`` and ``replay_count`` (incremented by the replayer) are kept as they are,
every other ``botwatch.dlq.*`` header is replaced, so a dead letter never holds two values of
one header. Texts longer than ``MAX_TEXT_CHARS`` are cut (record headers count against the
broker's message size limit).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Final, Literal

from schemas.letter_bot import MISKEYED_PREFIX
from schemas.sink import parse_count

DlqStage = Literal["decode", "validate", "sink", "job_failure"]
STAGES: Final[tuple[DlqStage, ...]] = ("decode", "validate", "sink", "job_failure")

PREFIX: Final = "botwatch.dlq."
STAGE: Final = "botwatch.dlq.stage"
REASON: Final = "botwatch.dlq.reason"
EXCEPTION: Final = "botwatch.dlq.exception"
ORIGINAL_TOPIC: Final = "botwatch.dlq.original.topic"
ORIGINAL_PARTITION: Final = "botwatch.dlq.original.partition"
ORIGINAL_OFFSET: Final = "botwatch.dlq.original.offset"
ORIGINAL_TIMESTAMP: Final = "botwatch.dlq.original.timestamp"
FIRST_FAILED_AT: Final = "botwatch.dlq.first_failed_at"
REPLAY_COUNT: Final = "botwatch.dlq.replay_count"
# Set by the replayer on a replayed record: the stage its dead letter was made in. A record
# replayed from stage ``sink`` was windowed when first read, so the worker only indexes it.
REPLAYED_STAGE: Final = "botwatch.dlq.replay.stage"
# Set by the replayer on an event it re-keyed by its bot_id (a ``MISKEYED_PREFIX`` letter):
# when it was first read, a failed job was already copied as a ``job_failure`` letter.
REPLAY_REKEYED: Final = "botwatch.dlq.replay.rekeyed"
HEADERS: Final = (
    STAGE,
    REASON,
    EXCEPTION,
    ORIGINAL_TOPIC,
    ORIGINAL_PARTITION,
    ORIGINAL_OFFSET,
    ORIGINAL_TIMESTAMP,
    FIRST_FAILED_AT,
    REPLAY_COUNT,
)
_KEY_SHOWN_CHARS: Final = 80
MAX_TEXT_CHARS: Final = 4096
TRUNCATED: Final = "botwatch.dlq.truncated"
# The dead-letter topic is created with this ``max.message.bytes`` (8x the broker's default),
# so the dead letter of any record the events topic accepted fits whole, headers and all.
DLQ_MAX_MESSAGE_BYTES: Final = 8 * 1024 * 1024
# What a topic with the broker's default limits accepts (``message.max.bytes`` is 1,048,588):
# the fallback when an existing dead-letter topic refuses a record.
DEFAULT_MAX_MESSAGE_BYTES: Final = 1_000_000
# Record batch header plus a record's own framing, rounded up.
_FRAMING_BYTES: Final = 128
_HEADER_FRAMING_BYTES: Final = 10
_CUT: Final = "...[truncated]"


def exception_text(exception: BaseException | None) -> str:
    """``module.Class: message`` (builtins without module); empty for no exception."""
    if exception is None:
        return ""
    cls = type(exception)
    name = cls.__qualname__
    if cls.__module__ != "builtins":
        name = f"{cls.__module__}.{name}"
    message = str(exception)
    return f"{name}: {message}" if message else name


def miskeyed_reason(key: bytes | None, bot_id: str) -> str:
    """The reason of a valid event whose record key is not its ``bot_id``."""
    if key is None:
        got = "null"
    else:
        text = key.decode("utf-8", "replace")
        got = repr(text if len(text) <= _KEY_SHOWN_CHARS else text[:_KEY_SHOWN_CHARS] + "...")
    return (
        f"{MISKEYED_PREFIX}must be the event's bot_id {bot_id!r} (all events of a bot share "
        f"one partition, which holds its windows), got {got}; the event is indexed but left "
        "out of the stats: publish with key = bot_id, and replay this dead letter (the replay "
        "keys it by its bot_id)"
    )


@functools.lru_cache(maxsize=4)
def format_utc(now: datetime) -> str:
    """``2026-11-23T10:00:00.123Z``; ``now`` must be timezone-aware.

    Cached: the worker stamps every dead letter of a batch with the same time, and
    ``strftime`` cost ~2.5 us a letter (6% of the records of a typical stream).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    utc = now.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def dlq_headers(
    stage: DlqStage,
    reason: str,
    exception: BaseException | None,
    *,
    original_topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int,
    original_headers: Iterable[tuple[str, bytes]] | None,
    now: datetime,
) -> list[tuple[str, bytes]]:
    """The headers of the dead letter of a record that failed at ``stage``, at ``now``.

    Where the record came from is keyword-only: partition, offset and timestamp are all ints.

    The record's own headers come first, in their order, minus any ``botwatch.dlq.*``; then
    the dead-letter headers in the order of ``HEADERS``.
    """
    if stage not in STAGES:
        raise ValueError(f"dead-letter stage must be one of {', '.join(STAGES)}, got {stage!r}")
    kept: list[tuple[str, bytes]] = []
    first_failed_at: bytes | None = None
    replay_count: bytes | None = None
    for name, value in original_headers or ():
        if not name.startswith(PREFIX):
            kept.append((name, value))
        elif name == FIRST_FAILED_AT and first_failed_at is None:
            first_failed_at = value
        elif name == REPLAY_COUNT and replay_count is None and parse_count(value) is not None:
            replay_count = value
    # One list, no generator: a flood of malformed records makes a letter per record.
    # Integers are ASCII (b"%d"); the stage, topic and time repeat, so they are cached.
    kept += (
        (STAGE, _utf8_cached(stage)),
        (REASON, _utf8(_cut(reason))),
        (EXCEPTION, _utf8(_cut(exception_text(exception))) if exception is not None else b""),
        (ORIGINAL_TOPIC, _utf8_cached(original_topic)),
        (ORIGINAL_PARTITION, b"%d" % partition),
        (ORIGINAL_OFFSET, b"%d" % offset),
        (ORIGINAL_TIMESTAMP, b"%d" % timestamp_ms),
        (FIRST_FAILED_AT, first_failed_at or _utf8_cached(format_utc(now))),
        (REPLAY_COUNT, replay_count or b"0"),
    )
    return kept


def record_size(key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> int:
    """An upper bound of the bytes Kafka counts for one record sent alone."""
    size = _FRAMING_BYTES + len(key or b"") + len(value or b"")
    for name, raw in headers:
        size += _HEADER_FRAMING_BYTES + len(name.encode()) + len(raw or b"")
    return size


def fit_record(
    key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]], limit: int
) -> tuple[bytes | None, list[tuple[str, bytes]]]:
    """``value`` and ``headers`` of a dead letter cut to at most ``limit`` bytes in all.

    The value is cut first; if the record's own headers alone are too large, they go too
    (the ``botwatch.dlq.*`` ones stay, they say where the whole record is).
    """
    size = record_size(key, value, headers)
    if size <= limit:
        return value, headers
    length = len(value or b"")
    note_room = 320
    keep = max(0, length - (size - limit) - note_room)
    kept_headers = headers
    dropped = ""
    if record_size(key, b"", headers) + note_room > limit:
        kept_headers = [(n, v) for n, v in headers if n.startswith(PREFIX)]
        dropped = f", and the record's own headers ({len(headers) - len(kept_headers)}) dropped"
        keep = max(0, min(length, limit - record_size(key, b"", kept_headers) - note_room))
    what = f"value cut from {length} to {keep} bytes" if keep < length else "value kept"
    note = (
        f"{what} to fit the dead-letter topic's {limit}-byte records{dropped}; the whole "
        "record is at its original topic, partition and offset until that topic's "
        "retention deletes it"
    )
    return None if value is None else value[:keep], [*kept_headers, (TRUNCATED, _utf8(note))]


def parse_dlq_headers(headers: Iterable[tuple[str, bytes | None]] | None) -> dict[str, str]:
    """The ``botwatch.dlq.*`` headers of a record by full name (the last one wins, like Kafka's
    ``lastHeader``); undecodable bytes are replaced rather than failing the inspection."""
    parsed: dict[str, str] = {}
    for name, value in headers or ():
        if name.startswith(PREFIX):
            parsed[name] = "" if value is None else value.decode("utf-8", "replace")
    return parsed


def _cut(text: str) -> str:
    if len(text) <= MAX_TEXT_CHARS:
        return text
    return text[: MAX_TEXT_CHARS - len(_CUT)] + _CUT


@functools.lru_cache(maxsize=64)
def _utf8_cached(text: str) -> bytes:
    return _utf8(text)


def _utf8(text: str) -> bytes:
    # Lone surrogates (from a bad decode upstream) must not make the dead-letter path fail.
    return text.encode("utf-8", "backslashreplace")
