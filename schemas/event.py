"""The event, schema version 1: its fields, its rules, and the checker the pipeline runs per record.

The checker is hand-written over the dict orjson returns: one pass of ``isinstance`` tests,
precompiled regexes and membership tests, no intermediate objects; ``decode_event`` first
tries a fast path that can only accept, and leaves every rejection to the full pass. Measured
against jsonschema on the same records in ``bench/bench_validate.py``. It is the one place the rules
live in code; ``event.schema.json`` states the same rules for other tools, and the tests hold
the two to agreement.

Rules beyond the design brief's field table, chosen so that every valid event is indexable:

- ``event_id``: 1 to 128 characters (at most 512 UTF-8 bytes, OpenSearch's ``_id`` limit).
- ``timestamp``: ``YYYY-MM-DDTHH:MM:SS[.fraction]`` then ``Z`` or ``+HH:MM``/``-HH:MM``, the
  RFC 3339 profile OpenSearch's ``strict_date_optional_time`` parses: upper-case ``T`` and
  ``Z``, a real calendar date, seconds 00-59 (no leap second), 1 to 9 fraction digits,
  an offset within 18:00.
- ``retry_count`` and ``schema_version`` are JSON integers written without a fraction:
  ``1.0`` is rejected (JSON Schema would accept it); ``retry_count`` fits a signed 64-bit long.
- Optional fields are left out when they have no value: ``null`` is never valid.
- ``error`` holds only ``type``, ``message`` and ``stack``, each optional, each a string.
"""

# No ``from __future__ import annotations`` here: TypedDict reads NotRequired only from
# evaluated annotations (Event.__required_keys__ would list every field).
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, NotRequired, TypedDict

import orjson

from schemas.errors import EventDecodeError, EventValidationError, short_repr

SCHEMA_VERSION: Final = 1

Level = Literal["debug", "info", "warning", "error", "critical"]
Status = Literal["started", "success", "failure", "retry", "heartbeat"]
LEVELS: Final[tuple[Level, ...]] = ("debug", "info", "warning", "error", "critical")
STATUSES: Final[tuple[Status, ...]] = ("started", "success", "failure", "retry", "heartbeat")
ERROR_LEVELS: Final[frozenset[str]] = frozenset({"error", "critical"})

MAX_EVENT_ID_CHARS: Final = 128
MAX_JOB_ID_CHARS: Final = 256
MAX_MESSAGE_BYTES: Final = 32 * 1024
MAX_META_BYTES: Final = 16 * 1024
MAX_RETRY_COUNT: Final = 2**63 - 1

# Use BOT_ID_RE.fullmatch: with re.match, "$" also matches before a trailing newline.
BOT_ID_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
# A timestamp is a fixed-width date and time to the second (19 characters), then the
# fraction and the offset: two patterns, so that each half can be checked (and cached) alone.
_DATE_TIME_PATTERN: Final = (
    r"(?:[0-9]{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
    r"|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
    r"|02-(?:0[1-9]|1[0-9]|2[0-8]))"
    r"|(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)-02-29)"
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
)
_FRACTION_OFFSET_PATTERN: Final = (
    r"(?:\.[0-9]{1,9})?(?:Z|[+-](?:(?:0[0-9]|1[0-7]):[0-5][0-9]|18:00))"
)
TIMESTAMP_RE: Final = re.compile(f"^{_DATE_TIME_PATTERN}{_FRACTION_OFFSET_PATTERN}$")

FIELDS: Final = (
    "event_id",
    "timestamp",
    "bot_id",
    "job_id",
    "level",
    "message",
    "status",
    "duration_ms",
    "retry_count",
    "error",
    "meta",
    "host",
    "env",
    "schema_version",
)
REQUIRED_FIELDS: Final = ("event_id", "timestamp", "bot_id", "level", "message", "schema_version")
ERROR_FIELDS: Final = ("type", "message", "stack")


class ErrorInfo(TypedDict, total=False):
    """The ``error`` object of an event."""

    type: str
    message: str
    stack: str


class Event(TypedDict):
    """A valid event as a dict; ``decode_event`` returns exactly this shape."""

    event_id: str
    timestamp: str
    bot_id: str
    level: Level
    message: str
    schema_version: int
    job_id: NotRequired[str]
    status: NotRequired[Status]
    duration_ms: NotRequired[float]
    retry_count: NotRequired[int]
    error: NotRequired[ErrorInfo]
    meta: NotRequired[dict[str, Any]]
    host: NotRequired[str]
    env: NotRequired[str]


# The rule texts, stable so that dead letters can be grouped by them.
RULE_OBJECT: Final = "must be a JSON object"
RULE_REQUIRED: Final = "is required"
RULE_UNKNOWN: Final = "is not allowed (unknown fields belong in meta)"
RULE_UNKNOWN_ERROR: Final = "is not allowed (error has only type, message and stack)"
RULE_STRING: Final = "must be a string"
RULE_EVENT_ID: Final = f"must be a non-empty string of at most {MAX_EVENT_ID_CHARS} characters"
RULE_TIMESTAMP: Final = (
    "must be an RFC 3339 date-time with offset, like 2026-11-23T10:00:00.123Z or "
    "2026-11-23T12:00:00+02:00"
)
RULE_BOT_ID: Final = f"must match {BOT_ID_RE.pattern}"
RULE_JOB_ID: Final = f"must be a string of at most {MAX_JOB_ID_CHARS} characters"
RULE_LEVEL: Final = f"must be one of {', '.join(LEVELS)}"
RULE_MESSAGE_SIZE: Final = f"must be at most {MAX_MESSAGE_BYTES} bytes of UTF-8"
RULE_STATUS: Final = f"must be one of {', '.join(STATUSES)}"
RULE_DURATION: Final = "must be a finite number >= 0"
RULE_RETRY_COUNT: Final = "must be an integer from 0 to 2**63-1"
RULE_META_SIZE: Final = f"must serialize to at most {MAX_META_BYTES} bytes of JSON"
RULE_META_JSON: Final = "must hold only JSON values under string keys"
RULE_SCHEMA_VERSION: Final = f"must be the integer {SCHEMA_VERSION}"
RULE_UTF8: Final = "must be UTF-8 encoded"
RULE_JSON: Final = "must be a JSON document"
RULE_BYTES: Final = "must be bytes"
RULES: Final = (
    RULE_OBJECT,
    RULE_REQUIRED,
    RULE_UNKNOWN,
    RULE_UNKNOWN_ERROR,
    RULE_STRING,
    RULE_EVENT_ID,
    RULE_TIMESTAMP,
    RULE_BOT_ID,
    RULE_JOB_ID,
    RULE_LEVEL,
    RULE_MESSAGE_SIZE,
    RULE_STATUS,
    RULE_DURATION,
    RULE_RETRY_COUNT,
    RULE_META_SIZE,
    RULE_META_JSON,
    RULE_SCHEMA_VERSION,
    RULE_UTF8,
    RULE_JSON,
    RULE_BYTES,
)

_FIELD_SET: Final = frozenset(FIELDS)
_ERROR_FIELD_SET: Final = frozenset(ERROR_FIELDS)
_REQUIRED_COUNT: Final = len(REQUIRED_FIELDS)
_LEVEL_SET: Final = frozenset(LEVELS)
_STATUS_SET: Final = frozenset(STATUSES)
# Below this many characters a str cannot exceed the byte limit, so it is never encoded.
_MESSAGE_SAFE_CHARS: Final = MAX_MESSAGE_BYTES // 4
# orjson writes a value parsed from JSON text in at most 4.5 times the bytes of that text: the
# worst token is a float like 1e15 (4 bytes in, 1000000000000000.0 out); strings, integers and
# literals come out no longer than they went in. So the meta of a record this small is within
# MAX_META_BYTES, and decode_event does not serialize it again to measure it.
_META_FITS_RECORD_BYTES: Final = MAX_META_BYTES * 2 // 9
# bot_ids that matched BOT_ID_RE; cleared when full so that it stays small.
_VALID_BOT_IDS: Final[set[str]] = set()
_VALID_BOT_IDS_MAX: Final = 4096
# Timestamps seen valid, by their two halves (``_DATE_TIME_PATTERN``, 19 characters, and
# ``_FRACTION_OFFSET_PATTERN``): epoch seconds of the date and time, and the milliseconds the
# rest adds (the fraction, less the offset). A bot's events share their second with many
# others and their suffix shape with all of them, so most timestamps are checked and
# converted by two slices and two lookups instead of a regex and a datetime. Cleared when
# full, like the bot ids.
_DATE_TIME_SECONDS: Final[dict[str, int]] = {}
_SUFFIX_MS: Final[dict[str, int]] = {}
_TIMESTAMP_CACHE_MAX: Final = 4096
_DATE_TIME_FULLMATCH: Final = re.compile(_DATE_TIME_PATTERN).fullmatch
_SUFFIX_FULLMATCH: Final = re.compile(_FRACTION_OFFSET_PATTERN).fullmatch
_INF: Final = math.inf
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND: Final = timedelta(milliseconds=1)


def decode_event(raw: bytes) -> dict[str, Any]:  # noqa: PLR0915 (one flat pass: calls cost)
    """The event in one Kafka record value, or an EventError saying what is wrong with it."""
    try:
        event = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _decode_error(raw, exc) from None
    if type(event) is not dict:
        raise EventDecodeError("", RULE_OBJECT, short_repr(event))
    # The fast path below only ever accepts: at the first doubt it breaks out to _check, which
    # applies every rule again in contract order and words the error. orjson makes only exact
    # dict, list, str, int, float, bool and None, so ``type(x) is str`` stands in for
    # isinstance; a missing required field (KeyError) and an unhashable bot_id (TypeError)
    # also end up in _check. ``left`` counts the fields not checked yet: the common field
    # sets stop early, and an unknown field (never checked) keeps it above zero. The loop
    # runs once; it is there for ``break``, so that _check raises outside any handler.
    while True:
        try:
            version = event["schema_version"]
            event_id = event["event_id"]
            bot_id = event["bot_id"]
            message = event["message"]
            if not (
                version == SCHEMA_VERSION
                and type(version) is int
                and type(event_id) is str
                and 0 < len(event_id) <= MAX_EVENT_ID_CHARS
                and event["level"] in LEVELS
                and (bot_id in _VALID_BOT_IDS or (type(bot_id) is str and _new_bot_id(bot_id)))
                and type(message) is str
                and len(message) <= _MESSAGE_SAFE_CHARS
                and type(timestamp := event["timestamp"]) is str
                and (
                    (timestamp[:19] in _DATE_TIME_SECONDS and timestamp[19:] in _SUFFIX_MS)
                    or _rfc3339_ms(timestamp) is not None
                )
            ):
                break
        except (KeyError, TypeError):
            break
        left = len(event) - _REQUIRED_COUNT
        # Most frequent fields first.
        if "host" in event:
            if type(event["host"]) is not str:
                break
            left -= 1
        if "env" in event:
            if type(event["env"]) is not str:
                break
            left -= 1
        if "job_id" in event:
            value = event["job_id"]
            if type(value) is not str or len(value) > MAX_JOB_ID_CHARS:
                break
            left -= 1
        if "meta" in event:
            value = event["meta"]
            if type(value) is not dict or (value and len(raw) > _META_FITS_RECORD_BYTES):
                break
            left -= 1
        if not left:
            return event
        if "status" in event:
            if event["status"] not in STATUSES:
                break
            left -= 1
        if "retry_count" in event:
            value = event["retry_count"]
            if type(value) is not int or not 0 <= value <= MAX_RETRY_COUNT:
                break
            left -= 1
        if not left:
            return event
        if "duration_ms" in event:
            value = event["duration_ms"]
            kind = type(value)
            if (kind is not float and kind is not int) or not 0 <= value < _INF:
                break
            left -= 1
        if "error" in event:
            value = event["error"]
            if type(value) is not dict:
                break
            for key, item in value.items():
                if key not in _ERROR_FIELD_SET or type(item) is not str:
                    break
            else:
                left -= 1  # not counted when broken: left stays above zero
        if not left:
            return event
        break
    _check(event, meta_fits=len(raw) <= _META_FITS_RECORD_BYTES)
    return event


def validate_event(event: Mapping[str, Any]) -> None:
    """Raise EventValidationError unless ``event`` is a valid event (for producers, pre-send).

    Unlike ``decode_event`` it may see values JSON cannot carry (NaN, infinities, sets):
    they are rejected by the same rules.
    """
    if not isinstance(event, Mapping):
        raise EventValidationError("", RULE_OBJECT, short_repr(event))
    _check(event, meta_fits=False)


def timestamp_ms(value: str) -> int:
    """Epoch milliseconds of a valid ``timestamp``, truncated like OpenSearch's ``date`` field.

    Also takes the other ISO 8601 forms ``datetime.fromisoformat`` reads, with an offset.
    Raises ValueError for text that is not a timestamp with offset.
    """
    seconds = _DATE_TIME_SECONDS.get(value[:19])
    if seconds is not None:
        shift = _SUFFIX_MS.get(value[19:])
        if shift is not None:
            return seconds * 1000 + shift
    millis = _rfc3339_ms(value)
    if millis is not None:
        return millis
    parsed = datetime.fromisoformat(value)  # raises ValueError for what it cannot read
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp has no offset: {value!r}")
    return (parsed - _EPOCH) // _MILLISECOND


def _rfc3339_ms(value: str) -> int | None:
    """Epoch milliseconds of ``value`` when it matches TIMESTAMP_RE (its halves cached for
    the next timestamps), else None.

    By hand, not by ``datetime``: RFC 3339 (and OpenSearch) start at year 0, ``datetime`` at
    year 1. The fraction is truncated to milliseconds, so the result is the floor of the
    exact time, before 1970 too.
    """
    head, tail = value[:19], value[19:]
    if _DATE_TIME_FULLMATCH(head) is None or _SUFFIX_FULLMATCH(tail) is None:
        return None
    year, month, day = int(head[0:4]), int(head[5:7]), int(head[8:10])
    # Days since 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant's days_from_civil).
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month - 3 if month > 2 else month + 9) + 2) // 5 + day - 1
    days = era * 146097 + year_of_era * 365 + year_of_era // 4 - year_of_era // 100
    days += day_of_year - 719468
    seconds = ((days * 24 + int(head[11:13])) * 60 + int(head[14:16])) * 60 + int(head[17:19])
    if tail[-1] == "Z":
        zone, fraction = 0, tail[1:-1]
    else:
        zone = (int(tail[-5:-3]) * 60 + int(tail[-2:])) * 60_000
        zone = zone if tail[-6] == "+" else -zone
        fraction = tail[1:-6]
    shift = (int(fraction[:3].ljust(3, "0")) if fraction else 0) - zone
    if len(_DATE_TIME_SECONDS) >= _TIMESTAMP_CACHE_MAX:
        _DATE_TIME_SECONDS.clear()
    if len(_SUFFIX_MS) >= _TIMESTAMP_CACHE_MAX:
        _SUFFIX_MS.clear()
    _DATE_TIME_SECONDS[head] = seconds
    _SUFFIX_MS[tail] = shift
    return seconds * 1000 + shift


def _decode_error(raw: Any, exc: orjson.JSONDecodeError) -> EventDecodeError:
    if not isinstance(raw, bytes | bytearray | memoryview):
        return EventDecodeError("", RULE_BYTES, short_repr(raw))
    try:
        str(raw, "utf-8")
    except UnicodeDecodeError as bad:
        return EventDecodeError(
            "", f"{RULE_UTF8} (invalid byte at offset {bad.start})", short_repr(raw)
        )
    return EventDecodeError("", f"{RULE_JSON} ({exc})", short_repr(raw))


def _check(  # noqa: PLR0915 (one flat pass: calls cost)
    event: Mapping[str, Any], *, meta_fits: bool
) -> None:
    """Raise for the first broken rule: version, unknown fields, missing fields, then each field.

    The version comes first so that an event of another version is reported as such rather
    than by the fields that version adds. Fields are then checked in ``FIELDS`` order,
    required ones first. Unknown fields are found by counting the known ones, cheaper than a
    set comparison per record; every other failure goes through ``_invalid``, which reports
    an unknown field instead when there is one. ``meta_fits`` says the record is too small
    for its ``meta`` to break the size limit.
    """
    try:
        version = event["schema_version"]
        event_id = event["event_id"]
        timestamp = event["timestamp"]
        bot_id = event["bot_id"]
        level = event["level"]
        message = event["message"]
    except KeyError:
        raise _missing(event) from None
    if not isinstance(version, int) or isinstance(version, bool) or version != SCHEMA_VERSION:
        raise EventValidationError("schema_version", RULE_SCHEMA_VERSION, short_repr(version))

    if not isinstance(event_id, str) or not 0 < len(event_id) <= MAX_EVENT_ID_CHARS:
        raise _invalid(event, "event_id", RULE_EVENT_ID, short_repr(event_id))
    if not isinstance(timestamp, str) or TIMESTAMP_RE.fullmatch(timestamp) is None:
        raise _invalid(event, "timestamp", RULE_TIMESTAMP, short_repr(timestamp))
    if not isinstance(bot_id, str) or (bot_id not in _VALID_BOT_IDS and not _new_bot_id(bot_id)):
        raise _invalid(event, "bot_id", RULE_BOT_ID, short_repr(bot_id))
    if not isinstance(level, str) or level not in _LEVEL_SET:
        raise _invalid(event, "level", RULE_LEVEL, short_repr(level))
    if not isinstance(message, str):
        raise _invalid(event, "message", RULE_STRING, short_repr(message))
    if len(message) > _MESSAGE_SAFE_CHARS:
        size = len(message) if message.isascii() else len(message.encode("utf-8", "surrogatepass"))
        if size > MAX_MESSAGE_BYTES:
            raise _invalid(event, "message", RULE_MESSAGE_SIZE, f"{size} bytes")
    if len(event) == _REQUIRED_COUNT:
        return

    known = _REQUIRED_COUNT
    if "job_id" in event:
        known += 1
        value = event["job_id"]
        if not isinstance(value, str) or len(value) > MAX_JOB_ID_CHARS:
            raise _invalid(event, "job_id", RULE_JOB_ID, _optional_got(value))
    if "status" in event:
        known += 1
        value = event["status"]
        if not isinstance(value, str) or value not in _STATUS_SET:
            raise _invalid(event, "status", RULE_STATUS, _optional_got(value))
    if "duration_ms" in event:
        known += 1
        value = event["duration_ms"]
        if (
            not isinstance(value, (int, float))
            or isinstance(value, bool)
            or not 0 <= value < math.inf
        ):
            raise _invalid(event, "duration_ms", RULE_DURATION, _optional_got(value))
    if "retry_count" in event:
        known += 1
        value = event["retry_count"]
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or not 0 <= value <= MAX_RETRY_COUNT
        ):
            raise _invalid(event, "retry_count", RULE_RETRY_COUNT, _optional_got(value))
    if "error" in event:
        known += 1
        _check_error(event, event["error"])
    if "meta" in event:
        known += 1
        value = event["meta"]
        if not isinstance(value, dict):
            raise _invalid(event, "meta", RULE_OBJECT, _optional_got(value))
        if value and not meta_fits:
            _check_meta_size(event, value)
    if "host" in event:
        known += 1
        if not isinstance(event["host"], str):
            raise _invalid(event, "host", RULE_STRING, _optional_got(event["host"]))
    if "env" in event:
        known += 1
        if not isinstance(event["env"], str):
            raise _invalid(event, "env", RULE_STRING, _optional_got(event["env"]))
    if known != len(event):
        raise _unknown_field(event) or AssertionError("a field was counted twice")


def _optional_got(value: Any) -> str:
    """What an optional field held, for its reason: a JSON null says how to send nothing."""
    return "null (leave an optional field out instead)" if value is None else short_repr(value)


def _missing(event: Mapping[str, Any]) -> EventValidationError:
    """The error for a record without a required field, in the order ``_check`` promises."""
    version = event.get("schema_version", SCHEMA_VERSION)
    if not isinstance(version, int) or isinstance(version, bool) or version != SCHEMA_VERSION:
        return EventValidationError("schema_version", RULE_SCHEMA_VERSION, short_repr(version))
    name = next(name for name in REQUIRED_FIELDS if name not in event)
    return _invalid(event, name, RULE_REQUIRED, None)


def _invalid(
    event: Mapping[str, Any], path: str, rule: str, got: str | None
) -> EventValidationError:
    """The error to raise for a broken rule, unless an unknown field outranks it."""
    return _unknown_field(event) or EventValidationError(path, rule, got)


def _unknown_field(event: Mapping[str, Any]) -> EventValidationError | None:
    for key in event:
        if key not in _FIELD_SET:
            return EventValidationError(str(key), RULE_UNKNOWN, short_repr(event[key]))
    return None


def _new_bot_id(bot_id: str) -> bool:
    """Match a bot_id not seen before; a fleet has few bots, so most events skip the regex."""
    if BOT_ID_RE.fullmatch(bot_id) is None:
        return False
    if len(_VALID_BOT_IDS) >= _VALID_BOT_IDS_MAX:
        _VALID_BOT_IDS.clear()
    _VALID_BOT_IDS.add(bot_id)
    return True


def _check_error(event: Mapping[str, Any], value: Any) -> None:
    if not isinstance(value, dict):
        raise _invalid(event, "error", RULE_OBJECT, _optional_got(value))
    for key, item in value.items():
        if key not in _ERROR_FIELD_SET:
            raise _invalid(event, f"error.{key}", RULE_UNKNOWN_ERROR, short_repr(item))
        if not isinstance(item, str):
            raise _invalid(event, f"error.{key}", RULE_STRING, short_repr(item))


def _check_meta_size(event: Mapping[str, Any], value: dict[Any, Any]) -> None:
    try:
        size = len(orjson.dumps(value))
    except orjson.JSONEncodeError as exc:
        raise _invalid(event, "meta", f"{RULE_META_JSON} ({exc})", short_repr(value)) from None
    if size > MAX_META_BYTES:
        raise _invalid(event, "meta", RULE_META_SIZE, f"{size} bytes")
