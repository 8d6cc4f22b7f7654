"""Dead letters as JSON lines, for an operator to fix by hand (``dlq export`` / ``dlq import``).

One line per dead letter. ``headers`` (every header, ``botwatch.dlq.*`` included, as text;
a value that is not UTF-8 as ``{"base64": ...}``) and ``source`` (where it sat in the
dead-letter topic) are what import reads back, with ``key`` (``key_base64`` beside it when
the key is not UTF-8) and the value; ``stage``, ``reason`` and the other fields are there to
read. The value is:

- ``event``: the payload as a JSON object, when it is one that reads back the same
  (edit it like any JSON);
- else ``value``: the payload as text, when it is UTF-8 (a JSON object whose numbers or
  keys a JSON parser would change: an integer beyond 64 bits, a key given twice);
- else ``value_base64``.

Import re-serializes ``event`` compactly: spacing, escapes and how a number is spelled
(``1E2`` becomes ``100.0``) may change, what it says does not.
"""

from __future__ import annotations

import base64
import binascii
import json
from decimal import Decimal
from typing import Any

import orjson

from schemas.jsonbytes import json_bytes
from streams.deadletters.records import Letter, decode, parse_position
from streams.windows import rfc3339


class LineError(ValueError):
    """A line of an import file that is not a dead letter this module wrote."""


def to_line(letter: Letter) -> bytes:
    doc: dict[str, Any] = {
        "source": letter.source_id,
        "stage": letter.stage,
        "reason": letter.reason,
        "bot": letter.bot,
        "first_failed_at": letter.first_failed_at,
        "replay_count": letter.replay_count,
        "timestamp": rfc3339(letter.timestamp_ms),
        "key": None if letter.key is None else letter.key.decode("utf-8", "replace"),
        "headers": [[n, _header_text(v)] for n, v in letter.headers],
    }
    if letter.key is not None and doc["key"].encode() != letter.key:
        doc["key_base64"] = base64.b64encode(letter.key).decode()
    payload = letter.payload()
    if payload is not None and reads_back(letter.value or b"", payload):
        doc["event"] = payload
    elif letter.value is not None:
        try:
            doc["value"] = letter.value.decode("utf-8")
        except UnicodeDecodeError:
            doc["value_base64"] = base64.b64encode(letter.value).decode()
    else:
        doc["value"] = None
    return orjson.dumps(doc) + b"\n"


def from_line(line: bytes | str, number: int = 0) -> Letter:
    """The dead letter of one exported line, with the (possibly edited) key and value."""
    where = f"line {number}: " if number else ""
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise LineError(f"{where}not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise LineError(f"{where}not a JSON object")
    try:
        topic, _, rest = str(doc["source"]).partition(":")
        position = parse_position(rest)
        if not topic or position is None:
            raise LineError(f"{where}source {doc['source']!r} is not topic:partition:offset")
        headers = [(str(n), _header_bytes(v)) for n, v in doc["headers"]]
        key = _bytes(doc, "key")
        if "key_base64" in doc and doc.get("key") != _text(key):
            raise LineError(
                f"{where}key and key_base64 disagree: edit key and delete key_base64 (it "
                "holds the key's exact bytes, which are not UTF-8)"
            )
        given = [name for name in ("event", "value", "value_base64") if name in doc]
        if len(given) > 1:
            raise LineError(
                f"{where}{' and '.join(given)} each hold the record's value: keep the one you "
                "edited and delete the rest (an export writes one: event for a JSON event, "
                "value for other text, value_base64 for bytes that are not UTF-8)"
            )
        if "event" in doc:
            value: bytes | None = json_bytes(doc["event"])
        else:
            value = _bytes(doc, "value")
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        if isinstance(exc, LineError):
            raise
        what = f"{type(exc).__name__}: {exc}"
        raise LineError(f"{where}not an exported dead letter ({what})") from None
    return decode(topic, position[0], position[1], 0, key, value, headers)


def _header_text(value: bytes) -> str | dict[str, str]:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(value).decode()}


def _header_bytes(value: Any) -> bytes:
    if isinstance(value, dict):
        return base64.b64decode(value["base64"], validate=True)
    return str(value).encode()


def _text(key: bytes | None) -> str | None:
    return None if key is None else key.decode("utf-8", "replace")


def reads_back(value: bytes, payload: Any) -> bool:
    """Whether ``payload`` (orjson's reading of ``value``) serializes to the same JSON: no
    integer turned into a float (beyond 64 bits), no key given twice, no number rounded."""
    try:
        original = json.loads(value, parse_float=Decimal, object_pairs_hook=list)
    except (ValueError, RecursionError):
        return False
    return bool(original == json.loads(orjson.dumps(payload), parse_float=Decimal,
                                       object_pairs_hook=list))  # fmt: skip


def _bytes(doc: dict[str, Any], name: str) -> bytes | None:
    encoded = doc.get(f"{name}_base64")
    if encoded is not None:
        return base64.b64decode(encoded, validate=True)
    text = doc.get(name)
    if text is None:
        return None
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a string or null")
    return text.encode()
