"""Building one event on the caller's thread: cheap checks, ids, time, size limits, JSON bytes.

Checks here catch programmer errors at the call site (a ValueError naming the field) and
cost a few type tests per event; the full contract check runs in the pipeline.
"""

from __future__ import annotations

import math
import reprlib
import socket
import time
import traceback
from collections.abc import Mapping
from typing import Any

import orjson

from producers.ids import Uuid7
from schemas import (
    BOT_ID_RE,
    ERROR_FIELDS,
    LEVELS,
    MAX_JOB_ID_CHARS,
    MAX_MESSAGE_BYTES,
    MAX_META_BYTES,
    SCHEMA_VERSION,
    STATUSES,
)
from schemas.event import (
    RULE_DURATION,
    RULE_JOB_ID,
    RULE_LEVEL,
    RULE_RETRY_COUNT,
    RULE_STATUS,
    RULE_STRING,
)
from schemas.jsonbytes import json_bytes

__all__ = ["EventFactory", "check_bot_id", "error_info"]

_LEVELS = frozenset(LEVELS)
_STATUSES = frozenset(STATUSES)
_MAX_RETRY_COUNT = 2**63 - 1
_MAX_JSON_INT = 2**63
# Contract fields a caller may pass among meta's keywords.
_LIFTED = frozenset({"status", "job_id", "duration_ms", "retry_count", "error"})
_DUMPS_OPTIONS = orjson.OPT_NON_STR_KEYS
# An event this small cannot break a size limit, so the common case skips the size checks.
_SMALL_EVENT = MAX_META_BYTES
_META_PREVIEW_BYTES = 2048  # escaped at most 6x in JSON: stays under MAX_META_BYTES
_ERROR_MESSAGE_CHARS = 8 * 1024
_ERROR_STACK_CHARS = 16 * 1024
_ids = Uuid7()


def check_bot_id(bot_id: object) -> str:
    if not isinstance(bot_id, str) or BOT_ID_RE.fullmatch(bot_id) is None:
        raise ValueError(
            f"bot_id: must match {BOT_ID_RE.pattern} (letters, digits, '._:-', "
            f"at most 128 characters), got {bot_id!r}"
        )
    return bot_id


def _field_error(name: str, rule: str, value: object) -> ValueError:
    return ValueError(f"{name}: {rule}, got {value!r}"[:300])


class _Clock:
    """UTC RFC 3339 text with milliseconds; the seconds part is formatted once per second."""

    def __init__(self) -> None:
        self._cached = (-1, "")

    def format(self, ms: int) -> str:
        second, millis = divmod(ms, 1000)
        cached = self._cached  # one tuple: threads never see a second with another's text
        if cached[0] != second:
            cached = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
            self._cached = cached
        return f"{cached[1]}.{millis:03d}Z"


def _default(value: Any) -> Any:
    """What orjson cannot serialize natively goes into meta as text."""
    return str(value)


def error_info(exc: BaseException) -> dict[str, str]:
    """The ``error`` object of an exception: type, message and the end of its stack."""
    stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return {
        "type": type(exc).__qualname__,
        "message": exception_text(exc)[:_ERROR_MESSAGE_CHARS],
        "stack": stack[-_ERROR_STACK_CHARS:],
    }


def exception_text(exc: BaseException) -> str:
    """``str(exc)``, or what says it could not be had: an exception whose ``__str__`` raises
    must not replace the bot's own exception on its way out of a job."""
    try:
        return str(exc)
    except Exception as failed:
        return f"<str() failed: {type(failed).__name__}>"


def _error_object(error: object) -> dict[str, str]:
    """``error`` checked as the contract checks it (only type, message and stack), its values
    as text, and long ones cut as ``error_info`` cuts them: the worker would dead-letter the
    event otherwise, and the bot's stats would never see it."""
    if not isinstance(error, Mapping):
        raise _field_error("error", f"must be a mapping of {', '.join(ERROR_FIELDS)}", error)
    out: dict[str, str] = {}
    for key, value in error.items():
        if key not in ERROR_FIELDS:
            rule = f"is not allowed (error has only {', '.join(ERROR_FIELDS)})"
            raise _field_error(f"error.{key}", rule, value)
        text = str(value)
        out[key] = text[-_ERROR_STACK_CHARS:] if key == "stack" else text[:_ERROR_MESSAGE_CHARS]
    return out


class EventFactory:
    """Makes the JSON bytes of a bot's events; one per bot, safe to share across threads."""

    def __init__(self, bot_id: str, *, env: str = "", host: str | None = None) -> None:
        self.bot_id = check_bot_id(bot_id)
        self.key = bot_id.encode()
        self.host = socket.gethostname() if host is None else host
        self.env = env
        self._clock = _Clock()

    def build(
        self,
        level: str,
        message: str,
        *,
        status: str | None = None,
        job_id: str | None = None,
        duration_ms: float | None = None,
        retry_count: int | None = None,
        error: Mapping[str, str] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> bytes:
        """The serialized event; ValueError naming the field for a value the contract forbids.

        A contract field's name in ``meta`` (``bot.info("done", duration_ms=12)``, logging's
        ``extra``) sets that field when its value is one the field takes and the field is
        not given itself: in meta, the stats never saw the duration or the job's outcome.
        Any other value stays in meta (``status=200``, an HTTP status)."""
        if meta and not _LIFTED.isdisjoint(meta):
            given: dict[str, Any] = {
                "status": status,
                "job_id": job_id,
                "duration_ms": duration_ms,
                "retry_count": retry_count,
                "error": error,
            }
            meta = _lift(meta, given)
            status, job_id, duration_ms = given["status"], given["job_id"], given["duration_ms"]
            retry_count, error = given["retry_count"], given["error"]
        if type(level) is not str or level not in _LEVELS:  # a list is no level (nor hashable)
            raise _field_error("level", RULE_LEVEL, level)
        if type(message) is not str:
            raise _field_error("message", RULE_STRING, message)
        event_id, ms = _ids.next()
        event: dict[str, Any] = {
            "event_id": event_id,
            "timestamp": self._clock.format(ms),
            "bot_id": self.bot_id,
            "level": level,
            "message": message,
        }
        if job_id is not None:
            if not _takes("job_id", job_id):
                raise _field_error("job_id", RULE_JOB_ID, job_id)
            event["job_id"] = job_id
        if status is not None:
            if not _takes("status", status):
                raise _field_error("status", RULE_STATUS, status)
            event["status"] = status
        if duration_ms is not None:
            if not _takes("duration_ms", duration_ms):  # NaN too
                raise _field_error("duration_ms", RULE_DURATION, duration_ms)
            if duration_ms >= _MAX_JSON_INT:  # beyond JSON's 64-bit integers: as a float
                try:
                    duration_ms = float(duration_ms)
                except OverflowError:
                    raise _field_error("duration_ms", RULE_DURATION, duration_ms) from None
            event["duration_ms"] = duration_ms
        if retry_count is not None:
            if not _takes("retry_count", retry_count):
                raise _field_error("retry_count", RULE_RETRY_COUNT, retry_count)
            event["retry_count"] = retry_count
        if error is not None:
            event["error"] = _error_object(error)
        if meta:
            event["meta"] = dict(meta)
        event["host"] = self.host
        if self.env:
            event["env"] = self.env
        event["schema_version"] = SCHEMA_VERSION
        try:
            raw = json_bytes(event, default=_default, option=_DUMPS_OPTIONS)
        except orjson.JSONEncodeError:
            _sanitize(event)
            raw = json_bytes(event, default=_default, option=_DUMPS_OPTIONS)
        if len(raw) <= _SMALL_EVENT:
            return raw
        if _enforce_limits(event):
            raw = json_bytes(event, default=_default, option=_DUMPS_OPTIONS)
        return raw


def _mended(text: str) -> str:
    """``text`` without lone surrogates: the bytes ``surrogateescape`` kept, escaped
    (``report-\\xe9.csv``: two file names stay two job ids), other surrogates replaced."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")


def _lift(meta: Mapping[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """``meta`` without the contract fields it sets, which go into ``given`` (field ->
    the value given for it, None when none was)."""
    rest = dict(meta)
    for name in _LIFTED.intersection(meta):
        if given[name] is None and _takes(name, meta[name]):
            given[name] = rest.pop(name)
    return rest


def _takes(field: str, value: Any) -> bool:
    """Whether the contract field takes ``value``: what ``build`` checks, and what a name
    in meta must hold to be lifted (``_lift``)."""
    kind = type(value)
    if field == "status":
        return kind is str and value in _STATUSES
    if field == "job_id":
        return kind is str and len(value) <= MAX_JOB_ID_CHARS
    if field == "duration_ms":
        return (kind is int or kind is float) and 0 <= value < math.inf
    if field == "retry_count":
        return kind is int and 0 <= value <= _MAX_RETRY_COUNT
    return isinstance(value, Mapping) and all(key in ERROR_FIELDS for key in value)


def _sanitize(event: dict[str, Any]) -> None:
    """Make an event orjson refused serializable (lone surrogates, huge ints, cycles).

    Lone surrogates come from text decoded with ``surrogateescape``: a file name of another
    encoding (``os.listdir``, ``os.fsdecode``), an environment variable; as a job id or
    the host, one raised into the bot."""
    for name in ("message", "job_id", "host", "env"):
        if name in event:
            event[name] = _mended(event[name])
    if "error" in event:
        event["error"] = {
            k: v.encode("utf-8", "replace").decode("utf-8") for k, v in event["error"].items()
        }
    if "meta" in event:
        # Value by value first: one integer beyond 64 bits must not take the rest of meta
        # (searchable fields) with it. What still fails (a cycle) goes whole, as text.
        event["meta"] = _serializable(event["meta"], set())
        try:
            orjson.dumps(event["meta"], default=_default, option=_DUMPS_OPTIONS)
        except orjson.JSONEncodeError:
            text = _PREVIEW.repr(event["meta"]).encode("utf-8", "replace")[:_META_PREVIEW_BYTES]
            event["meta"] = {"unserializable": text.decode("utf-8", "ignore"), "truncated": True}


# The text of a meta that cannot be serialized: bounded in depth and length (``repr`` of
# one nested beyond the recursion limit raises).
_PREVIEW = reprlib.Repr()
_PREVIEW.maxlevel, _PREVIEW.maxdict, _PREVIEW.maxlist = 16, 64, 64
_PREVIEW.maxstring = _PREVIEW.maxother = 256
# orjson serializes containers 255 deep: what is deeper cannot be mended value by value.
_MAX_DEPTH = 255


def _key(key: Any) -> Any:
    return _serializable(key, set()) if isinstance(key, str | int) else key


def _serializable(value: Any, path: set[int]) -> Any:
    """``value`` with what orjson refuses made text: integers beyond 64 bits (as their
    digits), lone surrogates in strings (replaced); a container inside itself stays as it
    is (the caller's fallback)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else str(value)
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict | list | tuple):
        if id(value) in path or len(path) >= _MAX_DEPTH:
            return value  # inside itself, or deeper than orjson goes: the caller's fallback
        path.add(id(value))
        try:
            if isinstance(value, dict):
                return {_key(k): _serializable(v, path) for k, v in value.items()}
            return [_serializable(v, path) for v in value]
        finally:
            path.discard(id(value))
    return value


def _enforce_limits(event: dict[str, Any]) -> bool:
    """Cut an oversized message and replace an oversized meta; True when anything changed."""
    changed = False
    message: str = event["message"]
    if len(message) * 4 > MAX_MESSAGE_BYTES:
        encoded = message.encode("utf-8")
        if len(encoded) > MAX_MESSAGE_BYTES:
            # "ignore" drops the partial character the cut may leave at the end.
            event["message"] = encoded[:MAX_MESSAGE_BYTES].decode("utf-8", "ignore")
            changed = True
    meta = event.get("meta")
    if meta is not None:
        serialized = orjson.dumps(meta, default=_default, option=_DUMPS_OPTIONS)
        if len(serialized) > MAX_META_BYTES:
            preview = serialized[:_META_PREVIEW_BYTES].decode("utf-8", "ignore")
            meta = {"truncated": True, "original_bytes": len(serialized), "preview": preview}
            event["meta"] = meta
            return True
    if changed:
        meta = dict(meta or {})
        meta["truncated"] = True
        if len(orjson.dumps(meta, default=_default, option=_DUMPS_OPTIONS)) > MAX_META_BYTES:
            meta = {"truncated": True}
        event["meta"] = meta
        # Keep the field order of the contract: meta before host/env/schema_version.
        for name in ("host", "env", "schema_version"):
            if name in event:
                event[name] = event.pop(name)
    return changed
