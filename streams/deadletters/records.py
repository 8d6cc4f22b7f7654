"""A dead letter read back from the dead-letter topic, as a typed record (no I/O).

``decode`` turns one Kafka record of the dead-letter topic into a ``Letter``: its own
position, the original record (key, value, own headers) and the ``botwatch.dlq.*`` headers
parsed into fields. A record whose headers are missing or malformed still decodes (so it can
be listed and shown); what is wrong is in ``problems`` and replay leaves it alone.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Final

import orjson

from schemas import timestamp_ms
from schemas.letter_bot import bot_is_key
from schemas.sink import parse_count
from streams import dlq

UNKNOWN_STAGE: Final = "?"
# A letter that says this cannot be counted by the loop guard (``plan.decide`` skips it).
BAD_REPLAY_COUNT: Final = f"header {dlq.REPLAY_COUNT} is not an integer"
# A letter cut to fit the dead-letter topic, its value or its record's own headers
# (``plan.decide`` skips it).
CUT_VALUE: Final = "the letter was cut to fit the dead-letter topic"


@dataclass(frozen=True, slots=True)
class Letter:
    """One record of the dead-letter topic."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    stage: str
    reason: str
    exception: str
    original_topic: str | None
    original_partition: int | None
    original_offset: int | None
    original_timestamp_ms: int | None
    first_failed_at: str
    replay_count: int
    problems: tuple[str, ...] = ()

    @property
    def position(self) -> str:
        """``PARTITION:OFFSET`` in the dead-letter topic (what ``dlq show`` takes)."""
        return f"{self.partition}:{self.offset}"

    @property
    def origin(self) -> str | None:
        """What the failure this letter records is known by (``origin_id``): a letter
        written twice (its batch redone) has the origin of the first."""
        return origin_id(
            self.original_topic,
            self.original_partition,
            self.original_offset,
            self.stage,
            self.replay_count,
        )

    @property
    def source_id(self) -> str:
        """``topic:partition:offset`` of this dead letter: identifies it in replayed records
        (Kafka topic names cannot contain ``:``)."""
        return source_id(self.topic, self.partition, self.offset)

    @property
    def failed_at_ms(self) -> int:
        """When the record first failed (``first_failed_at``), else the record's timestamp."""
        if self.first_failed_at:
            with contextlib.suppress(ValueError):
                return timestamp_ms(self.first_failed_at)
        return self.timestamp_ms

    @property
    def own_headers(self) -> list[tuple[str, bytes]]:
        """The original record's headers (everything but ``botwatch.dlq.*``)."""
        return [(n, v) for n, v in self.headers if not n.startswith(dlq.PREFIX)]

    @property
    def bot(self) -> str | None:
        """The bot: the record key (bot_id by contract), else the payload's ``bot_id``.

        The payload's first where it holds a valid event's: a letter refused for its key
        (what a replay keys it by), and the ``job_failure`` and ``sink`` letters, whose
        event passed validation (the ``job_failure`` letter of a record keyed wrong is its
        event's bot's, as in the dead-letter index). A key that is not printable text is
        shown escaped."""
        if self.key and bot_is_key(self.stage, self.reason):
            return _printable(self.key)
        payload = self.payload()
        bot = payload.get("bot_id") if payload is not None else None
        if isinstance(bot, str) and bot:
            return bot
        return _printable(self.key) if self.key else None

    @property
    def event_id(self) -> str | None:
        payload = self.payload()
        event_id = payload.get("event_id") if payload is not None else None
        return event_id if isinstance(event_id, str) else None

    def payload(self) -> dict[str, Any] | None:
        """The value as a JSON object, or None when it is not one."""
        if not self.value:
            return None
        try:
            parsed = orjson.loads(self.value)
        except orjson.JSONDecodeError:
            return None
        return parsed if isinstance(parsed, dict) else None


def _printable(raw: bytes) -> str:
    """``raw`` as text, escaped (``\\xff``, ``\\x00``) unless it is printable UTF-8."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    return text if text and text.isprintable() else repr(raw)[2:-1]


def source_id(topic: str, partition: int, offset: int) -> str:
    return f"{topic}:{partition}:{offset}"


def origin_id(
    topic: str | None, partition: int | None, offset: int | None, stage: str, replay_count: int
) -> str | None:
    """What one failure of one record is known by; None when the letter does not say where
    the record was."""
    if topic is None or partition is None or offset is None:
        return None
    return f"{topic}:{partition}:{offset}:{stage}:{replay_count}"


def parse_position(text: str) -> tuple[int, int] | None:
    """``"2:17"`` -> ``(2, 17)``; None when ``text`` is not ``PARTITION:OFFSET``."""
    part, sep, off = text.partition(":")
    if not sep or not part.isdigit() or not off.isdigit():
        return None
    return int(part), int(off)


def _int(fields: dict[str, str], name: str, problems: list[str]) -> int | None:
    raw = fields.get(name)
    if raw is None:
        problems.append(f"header {name} is missing")
        return None
    try:
        return int(raw)
    except ValueError:
        problems.append(f"header {name} is not an integer: {raw!r}")
        return None


def decode(  # noqa: PLR0917 - the fields of a Kafka record
    topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int,
    key: bytes | None,
    value: bytes | None,
    headers: Any,
) -> Letter:
    """The ``Letter`` of one record of the dead-letter topic (never raises)."""
    raw = tuple(
        (str(n), v if isinstance(v, bytes) else b"" if v is None else bytes(v))
        for n, v in headers or ()
    )
    fields = dlq.parse_dlq_headers(raw)
    problems: list[str] = []
    stage = fields.get(dlq.STAGE)
    if stage is None:
        problems.append(f"header {dlq.STAGE} is missing: not a botwatch dead letter")
        stage = UNKNOWN_STAGE
    original_topic = fields.get(dlq.ORIGINAL_TOPIC) or None
    if original_topic is None:
        problems.append(f"header {dlq.ORIGINAL_TOPIC} is missing")
    replay_raw = fields.get(dlq.REPLAY_COUNT, "0") or "0"
    parsed = parse_count(replay_raw)
    if parsed is None:
        problems.append(f"{BAD_REPLAY_COUNT}: {replay_raw!r}")
    replay_count = parsed or 0
    cut = fields.get(dlq.TRUNCATED)
    if cut is not None:
        problems.append(f"{CUT_VALUE} ({dlq.TRUNCATED}: {cut})")
    return Letter(
        topic=topic,
        partition=partition,
        offset=offset,
        timestamp_ms=timestamp_ms,
        key=key,
        value=value,
        headers=raw,
        stage=stage,
        reason=fields.get(dlq.REASON, ""),
        exception=fields.get(dlq.EXCEPTION, ""),
        original_topic=original_topic,
        original_partition=_int(fields, dlq.ORIGINAL_PARTITION, problems),
        original_offset=_int(fields, dlq.ORIGINAL_OFFSET, problems),
        original_timestamp_ms=_int(fields, dlq.ORIGINAL_TIMESTAMP, problems),
        first_failed_at=fields.get(dlq.FIRST_FAILED_AT, ""),
        replay_count=replay_count,
        problems=tuple(problems),
    )
