"""The dead-letter document: what ``OpenSearchSink.write_dead_letters`` takes and indexes.

The worker publishes dead letters to Kafka with ``botwatch.dlq.*`` headers (the contract in
the design brief); ``DeadLetterDoc.from_kafka`` reads such a record back, so whoever feeds
the sink from the dead-letter topic needs nothing from ``streams``.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from schemas import timestamp_ms
from schemas.letter_bot import bot_is_key
from schemas.reason_class import reason_class
from schemas.sink import parse_count
from sinks.redact import Redactor, distinct_key

HEADER_PREFIX: Final = "botwatch.dlq."
_UTC_TIMESTAMP: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?Z"
)


@dataclass(frozen=True)
class DeadLetterDoc:
    """One dead letter: the original record (key, value bytes, its own headers) and why.

    ``first_failed_at`` is the RFC 3339 UTC time of the first failure (the header of the
    same name); it picks the daily index, so a rewritten dead letter lands on its old
    document. ``headers`` may include ``botwatch.dlq.*`` ones: they are left out of the
    document, whose own fields carry them.
    """

    key: bytes | None
    value: bytes | None
    stage: str
    reason: str
    original_topic: str
    original_partition: int
    original_offset: int
    original_timestamp_ms: int
    first_failed_at: str
    exception: str = ""
    replay_count: int = 0
    headers: list[tuple[str, bytes]] = field(default_factory=list)

    @property
    def doc_id(self) -> str:
        """``topic-partition-offset-stage``: one record may fail twice (a ``job_failure``
        event the index then rejects at stage ``sink``); neither letter may hide the other."""
        return (
            f"{self.original_topic}-{self.original_partition}-{self.original_offset}-{self.stage}"
        )

    @classmethod
    def from_kafka(
        cls, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]
    ) -> DeadLetterDoc:
        """A record of the dead-letter topic; ValueError when a required header is missing."""
        dlq = {
            name[len(HEADER_PREFIX) :]: (raw or b"").decode("utf-8", "replace")
            for name, raw in headers
            if name.startswith(HEADER_PREFIX)
        }
        try:
            return cls(
                key=key,
                value=value,
                stage=dlq["stage"],
                reason=dlq.get("reason", ""),
                exception=dlq.get("exception", ""),
                original_topic=dlq["original.topic"],
                original_partition=int(dlq["original.partition"]),
                original_offset=int(dlq["original.offset"]),
                original_timestamp_ms=int(dlq["original.timestamp"]),
                first_failed_at=dlq.get("first_failed_at", ""),
                # Informational here: one that is not a count is 0, not a letter that
                # cannot be indexed.
                replay_count=parse_count(dlq.get("replay_count")) or 0,
                headers=headers,
            )
        except KeyError as exc:
            raise ValueError(
                f"not a botwatch dead letter: header {HEADER_PREFIX}{exc.args[0]} is missing"
            ) from None


def failed_at(letter: DeadLetterDoc) -> str | None:
    """``first_failed_at`` when it is a UTC RFC 3339 timestamp (the index date needs it).

    A header any producer may send: shaped like a date is not one (``2026-02-30``), and
    one that did not parse failed its batch for ever."""
    stamp = letter.first_failed_at
    if not _UTC_TIMESTAMP.fullmatch(stamp):
        return None
    try:
        timestamp_ms(stamp)
    except ValueError:
        return None
    return stamp


def dlq_document(letter: DeadLetterDoc, redactor: Redactor) -> dict[str, Any]:
    """The indexed form of a dead letter, secrets redacted.

    ``value`` is the record as text (invalid UTF-8 replaced, ``value_encoding`` says so);
    when secrets may be in it, a JSON object is re-serialized from its redacted copy and
    any other text goes through the text rules. A JSON object also goes to ``event``
    (``flat_object``, so a malformed record cannot break the mappings).
    """
    reason = redactor.redact_reason(letter.reason)
    doc: dict[str, Any] = {
        "stage": letter.stage,
        "reason": reason,
        "reason_class": reason_class(reason),
        "exception": redactor.redact_reason(letter.exception),
        "original_topic": letter.original_topic,
        "original_partition": letter.original_partition,
        "original_offset": letter.original_offset,
        "original_timestamp": letter.original_timestamp_ms,
        "replay_count": letter.replay_count,
    }
    stamp = failed_at(letter)
    if stamp is not None:
        doc["first_failed_at"] = stamp
    if letter.key is not None:
        doc["key"] = redactor.redact_text(letter.key.decode("utf-8", "replace"))
    own = {
        name: raw.decode("utf-8", "replace")
        for name, raw in letter.headers
        if not name.startswith(HEADER_PREFIX)
    }
    if own:
        doc["headers"] = _flat(redactor.redact_value(own))
    bot: Any = None
    if letter.value is not None:
        fields, parsed = _value_fields(letter.value, redactor)
        doc.update(fields)
        if isinstance(parsed, dict):
            bot = parsed.get("bot_id")
    # Who sent it, to filter on: as `botwatch dlq` says (``schemas.letter_bot``).
    if letter.key and (
        bot_is_key(letter.stage, letter.reason) or not (isinstance(bot, str) and bot)
    ):
        bot = letter.key.decode("utf-8", "replace")
    if isinstance(bot, str) and bot:
        doc["bot_id"] = redactor.redact_identifier(bot[:FLAT_LEAF_MAX_CHARS])
    return doc


# flat_object indexes every leaf as one term, "path=value", and Lucene refuses a term over
# 32,766 bytes (the whole document with it). Keys, depth and leaves are bounded so that the
# worst case (4-byte characters) stays below: 10 x 200 + 4,096 characters, under 25 KB.
FLAT_LEAF_MAX_CHARS: Final = 4096
FLAT_KEY_MAX_CHARS: Final = 200
FLAT_DEPTH_MAX: Final = 10


def _flat(value: Any, depth: int = 0) -> Any:
    """``value`` bounded for a ``flat_object`` field (the full record stays in ``value``).

    Strings are cut to ``FLAT_LEAF_MAX_CHARS``, keys to ``FLAT_KEY_MAX_CHARS``, and what
    lies deeper than ``FLAT_DEPTH_MAX`` levels becomes its JSON text, cut like a leaf.
    """
    if isinstance(value, str):
        return value[:FLAT_LEAF_MAX_CHARS]
    if isinstance(value, dict | list) and depth >= FLAT_DEPTH_MAX:
        return orjson.dumps(value).decode()[:FLAT_LEAF_MAX_CHARS]
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            key = str(k)
            if len(key) > FLAT_KEY_MAX_CHARS:  # two long keys may share their start
                key = distinct_key(key, out, value, FLAT_KEY_MAX_CHARS)
            out[key] = _flat(v, depth + 1)
        return out
    if isinstance(value, list):
        return [_flat(v, depth + 1) for v in value]
    return value


def reduced_dlq_document(doc: dict[str, Any], refusal: str) -> dict[str, Any]:
    """``doc`` without its structured copies (``event``, ``headers``), ``bot_id`` and
    ``reason_class`` (an index made before those fields may lack them), for a node that
    refused the whole: the record stays searchable as text, and ``reason`` says what was
    left out."""
    reduced = {
        k: v for k, v in doc.items() if k not in ("event", "headers", "bot_id", "reason_class")
    }
    reduced["reason"] = (
        f"{doc.get('reason', '')} [indexed without its event, headers, bot_id and "
        "reason_class fields: "
        f"OpenSearch refused them: {refusal[:500]}]"
    )
    return reduced


def _value_fields(value: bytes, redactor: Redactor) -> tuple[dict[str, Any], Any]:
    """The document's fields for the record's value, and the value parsed (None if not
    JSON)."""
    try:
        text = value.decode("utf-8")
        encoding = "utf-8"
    except UnicodeDecodeError:
        text = value.decode("utf-8", "replace")
        encoding = "utf-8-replaced"
    parsed: Any = None
    with contextlib.suppress(orjson.JSONDecodeError):
        parsed = orjson.loads(value)
    fields: dict[str, Any] = {"value_encoding": encoding}
    if isinstance(parsed, dict):
        redacted = parsed
        if redactor.needs_redaction(value):
            redacted = redactor.redact_value(parsed)
            text = orjson.dumps(redacted).decode()
        # An oversize message is a typical dead letter: the full text stays in `value`.
        fields["event"] = _flat(redacted)
    elif redactor.needs_redaction(value):
        text = redactor.redact_unparsed(text)
    fields["value"] = text
    return fields, parsed
