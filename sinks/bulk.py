"""``_bulk`` request bodies and per-item results, as pure functions.

A body is NDJSON: an action line, then the document. An event's document is the record's
own raw bytes whenever they need no redaction (they are JSON already, and validated), so the
hot path encodes only the small action line. Ids make every write idempotent:

- events: ``create`` with ``_id = event_id`` (a 409 on a redelivery is a duplicate: success);
- windows: ``index`` with ``_id = bot_id|window_start|window_size_s`` (a rewrite is identical);
- alerts: ``index`` with ``_id = fingerprint|starts_at`` (``resolved`` replaces ``firing``);
- dead letters: ``index`` with ``_id = topic-partition-offset-stage``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final, Literal, NamedTuple

import orjson

from schemas import timestamp_ms
from schemas.jsonbytes import json_bytes
from schemas.sink import SinkRecord
from sinks.documents import DeadLetterDoc, dlq_document, failed_at, reduced_dlq_document
from sinks.indices import (
    DAY_MS,
    FAMILIES,
    Family,
    day_number,
    day_of_ms,
    day_of_timestamp,
    event_family,
    index_name,
)
from sinks.redact import RECORD_SEPARATOR, Redactor

Op = Literal["create", "index"]

# Ask OpenSearch to return only what is classified: a batch without errors then answers
# with a few bytes per item instead of index, id, version, shards and sequence numbers.
BULK_PATH: Final = "/_bulk?filter_path=errors,items.*.status,items.*.error"


class BulkItem(NamedTuple):
    """One action line (newline-terminated) and its document (one line, without the newline
    ``body`` puts after it, so an event's raw bytes are used without a copy); ``ref`` is the
    position of what it came from in the caller's list. (A named tuple: one is built per
    event, and a frozen dataclass costs several times more to build.)"""

    action: bytes
    source: bytes
    family: Family
    op: Op
    ref: int


def action_line(op: Op, index: str, doc_id: str) -> bytes:
    return orjson.dumps({op: {"_index": index, "_id": doc_id}}) + b"\n"


class _Placed(NamedTuple):
    """Where events of one level and day go: their family, the action line up to the id,
    the day (days since 1970), and how many days the family is kept."""

    family: Family
    action: bytes
    day: int
    keep_days: int


# (prefix, retention days by family) -> (level, first 10 characters of a ``Z`` timestamp) ->
# where. Events of a fleet share a few days and levels: the per-event work is a lookup.
_EVENT_ACTIONS: dict[tuple[str, tuple[int, ...]], dict[tuple[str, str], _Placed]] = {}
_EVENT_ACTIONS_MAX: Final = 4096
assert SinkRecord._fields[5] == "timestamp_ms"  # read by index in ``event_items``


def _placed(prefix: str, family: Family, day: int, keep: Mapping[Family, int]) -> _Placed:
    index = index_name(prefix, family, day_of_ms(day * DAY_MS))
    action = orjson.dumps({"create": {"_index": index}})[:-2] + b',"_id":'
    return _Placed(family, action, day, keep[family])


def _event_action(
    actions: dict[tuple[str, str], _Placed],
    prefix: str,
    level: str,
    timestamp: str,
    keep: Mapping[Family, int],
) -> _Placed:
    key = (level, timestamp[:10])
    found = actions.get(key) if timestamp[-1:] == "Z" else None
    if found is not None:
        return found
    family = event_family(level)
    day = day_number(timestamp_ms(timestamp))
    found = _placed(prefix, family, day, keep)
    if timestamp[-1:] == "Z":
        if len(actions) >= _EVENT_ACTIONS_MAX:
            actions.clear()
        actions[key] = found
    return found


def _by_arrival(
    prefix: str, placed: _Placed, sent_ms: int, keep: Mapping[Family, int], today: int
) -> _Placed:
    """An event dated outside its family's retention, or more than a day ahead, goes to the
    index of the day its record was sent: by its own day, a sweep deleted it at once (or,
    far ahead, never), and a bot with a broken clock made an index per day it invented.
    Searches still find it by its ``timestamp``. A record whose own time is as far off
    from ``today`` (no timestamp, or the same broken clock: a producer stamps both) is
    judged by ``today`` instead."""
    sent = sent_ms // DAY_MS
    if not today - placed.keep_days <= sent <= today + 1:
        sent = today
    if sent - placed.keep_days <= placed.day <= sent + 1:
        return placed
    return _placed(prefix, placed.family, sent, keep)


# ``BulkItem(...)`` runs the named tuple's Python-level ``__new__``; the tuple constructor
# itself builds the same object for a third of the cost, once per event.
_new_item: Final = tuple.__new__


def event_items(
    records: Sequence[SinkRecord],
    prefix: str,
    redactor: Redactor,
    *,
    keep: Mapping[Family, int],
    now_ms: int,
) -> list[BulkItem]:
    """One item per record, ``ref`` its position: the raw bytes when they are one line and
    need no redaction, else the (redacted) event re-serialized: once a secret may be present
    the raw bytes are never trusted. An event goes to the index of its day, unless that day
    lies outside what ``keep`` (the retention days by family) keeps (``_by_arrival``;
    ``now_ms`` is its fallback).

    The batch's raw bytes are joined once, so that the redaction scan and the line-break
    test each run once for the batch, not once per record (the per-event path is hot).
    """
    joined = RECORD_SEPARATOR.join([r.raw for r in records])
    flagged = redactor.flagged_records(joined)
    one_line = b"\n" not in joined  # else some record holds a line break
    cache_key = (prefix, tuple(keep[family] for family in FAMILIES))
    actions = _EVENT_ACTIONS.get(cache_key)
    if actions is None:
        actions = _EVENT_ACTIONS[cache_key] = {}
    today = now_ms // DAY_MS
    dumps = orjson.dumps  # only the event id here: the join copies it at once
    items: list[BulkItem] = []
    append = items.append
    for ref, record in enumerate(records):
        event = record.event
        timestamp = event["timestamp"]
        level = event["level"]
        found = actions.get((level, timestamp[:10]))
        if found is None or timestamp[-1:] != "Z":
            found = _event_action(actions, prefix, level, timestamp, keep)
        # By index (a named tuple's attribute costs more): the day against the day sent,
        # and the day sent against today (a producer stamps both from one clock).
        sent = record[5] // DAY_MS  # timestamp_ms
        days = found[3]
        if not (sent - days <= found[2] <= sent + 1 and today - days <= sent <= today + 1):
            found = _by_arrival(prefix, found, record.timestamp_ms, keep, today)
        raw = record.raw
        if ref in flagged:
            source = json_bytes(redactor.redact_event(event))
        elif one_line or b"\n" not in raw:
            source = raw
        else:  # pretty-printed JSON is valid, but not one NDJSON line
            source = json_bytes(event)
        action = b"".join((found.action, dumps(event["event_id"]), b"}}\n"))
        append(_new_item(BulkItem, (action, source, found.family, "create", ref)))
    return items


def event_item(
    record: SinkRecord,
    ref: int,
    prefix: str,
    redactor: Redactor,
    *,
    keep: Mapping[Family, int],
    now_ms: int,
) -> BulkItem:
    """``event_items`` of one record, at position ``ref``."""
    return event_items([record], prefix, redactor, keep=keep, now_ms=now_ms)[0]._replace(ref=ref)


def stats_item(window: dict[str, Any], ref: int, prefix: str) -> BulkItem:
    doc_id = f"{window['bot_id']}|{window['window_start']}|{window['window_size_s']}"
    index = index_name(prefix, "stats", day_of_timestamp(window["window_start"]))
    return BulkItem(action_line("index", index, doc_id), json_bytes(window), "stats", "index", ref)


def alert_item(alert: dict[str, Any], ref: int, prefix: str, redactor: Redactor) -> BulkItem:
    doc = dict(alert)
    for name in ("labels", "annotations"):
        if name in doc:
            doc[name] = redactor.redact_value(doc[name])
    doc_id = f"{alert['fingerprint']}|{alert['starts_at']}"
    index = index_name(prefix, "alerts", day_of_timestamp(alert["starts_at"]))
    return BulkItem(action_line("index", index, doc_id), json_bytes(doc), "alerts", "index", ref)


def dlq_item(
    letter: DeadLetterDoc,
    ref: int,
    prefix: str,
    redactor: Redactor,
    refusal: str | None = None,
    *,
    keep_days: int,
    now_ms: int,
) -> BulkItem:
    """``refusal``: why OpenSearch refused the full document; the item is then the reduced
    one (``reduced_dlq_document``), written over the same ``_id``.

    A letter goes to the index of the day it first failed, so that a rewrite lands on its
    document; a day outside the ``keep_days`` of retention, or more than a day ahead, is
    taken for today's. The first failure's time is a header any producer may send (replays
    carry it on): by it, a sweep deleted the letter at once, a date far ahead was never
    swept, and every invented day made an index (a shard of the node's limit)."""
    stamp = failed_at(letter)
    at_ms = timestamp_ms(stamp) if stamp else letter.original_timestamp_ms
    today = now_ms // DAY_MS
    if not today - keep_days <= at_ms // DAY_MS <= today + 1:
        at_ms = now_ms
    index = index_name(prefix, "dlq", day_of_ms(at_ms))
    doc = dlq_document(letter, redactor)
    if refusal is not None:
        doc = reduced_dlq_document(doc, refusal)
    source = json_bytes(doc)
    return BulkItem(action_line("index", index, letter.doc_id), source, "dlq", "index", ref)


def split(items: Sequence[BulkItem], max_docs: int, max_bytes: int) -> Iterator[list[BulkItem]]:
    """Consecutive chunks of at most ``max_docs`` items and ``max_bytes`` bytes; an item
    larger than ``max_bytes`` goes alone (OpenSearch is the judge of its size)."""
    chunk: list[BulkItem] = []
    size = 0
    for item in items:
        took = len(item.action) + len(item.source) + 1  # its bytes in the body
        if chunk and (len(chunk) >= max_docs or size + took > max_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += took
    if chunk:
        yield chunk


def request_docs(count: int, max_docs: int, concurrency: int, min_docs: int = 250) -> int:
    """Documents per request so that ``count`` go out in about ``concurrency`` requests,
    none above ``max_docs`` nor (unless all fit in one) below ``min_docs``."""
    share = -(-count // max(concurrency, 1))
    return max(1, min(max_docs, max(share, min_docs)))


def body(items: Sequence[BulkItem]) -> bytes:
    parts: list[bytes] = []
    for item in items:
        parts += (item.action, item.source, b"\n")
    return b"".join(parts)


class Outcome(Enum):
    WRITTEN = "written"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    RETRY = "retry"


@dataclass(frozen=True)
class ItemResult:
    outcome: Outcome
    status: int
    reason: str = ""


WRITTEN: Final = ItemResult(Outcome.WRITTEN, 200)


class BulkResponseError(ValueError):
    """A ``_bulk`` answer that does not match its request (never expected from OpenSearch)."""


def classify(response: dict[str, Any], items: Sequence[BulkItem]) -> list[ItemResult]:
    """One result per item, in order.

    2xx: written. 409 on ``create``: the document exists, a redelivery: duplicate.
    429 and 5xx: retry that item alone. Any other 4xx (mapping, parse, id errors): rejected
    for good, with OpenSearch's error type and reason.
    """
    if not response.get("errors"):
        return [WRITTEN] * len(items)
    answers = response.get("items")
    if not isinstance(answers, list) or len(answers) != len(items):
        got = len(answers) if isinstance(answers, list) else "no"
        raise BulkResponseError(f"_bulk answered {got} items for {len(items)} actions")
    results: list[ItemResult] = []
    for item, answer in zip(items, answers, strict=True):
        detail = next(iter(answer.values())) if isinstance(answer, dict) and answer else {}
        status = int(detail.get("status", 0))
        results.append(_classify_one(item, status, detail.get("error")))
    return results


def _classify_one(item: BulkItem, status: int, error: Any) -> ItemResult:
    if 200 <= status < 300:
        return ItemResult(Outcome.WRITTEN, status)
    if status == 409 and item.op == "create":
        return ItemResult(Outcome.DUPLICATE, status)
    # The index, which OpenSearch's error names only for some errors: a mapping fixed in the
    # template does not change an index made before it.
    reason = error_reason(error, _index_of(item))
    if status >= 500 or status in {0, 409, 429} or _SHARD_LIMIT in reason:
        return ItemResult(Outcome.RETRY, status, reason)
    return ItemResult(Outcome.REJECTED, status, reason)


# A 400, but about the cluster, not the document: the node holds as many shards as it may
# (cluster.max_shards_per_node), so the day's or month's new index cannot be made. Dead-
# lettered, every document bound for a new index would go (and the dead letters' own new
# index would be refused too); retried, they wait in Kafka with /ready 503 saying why.
_SHARD_LIMIT: Final = "maximum shards open"

# What to do about an item OpenSearch keeps answering 429 or 5xx (or refuses for the shard
# limit), by a phrase of its reason.
_REFUSAL_HINTS: Final = (
    (
        "flood-stage watermark",
        "Free disk space on the node: OpenSearch lifts the block by itself once disk usage "
        "is below the high watermark (cluster.routing.allocation.disk.watermark.high). ",
    ),
    (
        "unavailable_shards_exception",
        "The index has no active primary shard (the cluster is red): "
        "GET _cluster/allocation/explain says why (a disk watermark, a lost node). ",
    ),
    (
        _SHARD_LIMIT,
        "The node holds as many shards as cluster.max_shards_per_node allows, and a new index "
        "cannot be made: delete old indices (`botwatch retention run`, or shorter retention "
        "settings), or raise cluster.max_shards_per_node. ",
    ),
    (
        "rejected_execution",
        "The node's write queue is full: give the node more CPU, or lower "
        "BOTWATCH_BULK_CONCURRENCY. ",
    ),
)


def refusal_hint(reason: str) -> str:
    """What an operator can do about items refused for ``reason``; empty when unknown."""
    for phrase, hint in _REFUSAL_HINTS:
        if phrase in reason:
            return hint
    return ""


def _index_of(item: BulkItem) -> str | None:
    try:
        index = orjson.loads(item.action)[item.op]["_index"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    return index if isinstance(index, str) else None


def error_reason(error: Any, index: str | None = None) -> str:
    """``type: reason (caused by type: reason) (index name)`` from an OpenSearch error
    object, and the index the action named when the error does not."""
    if not isinstance(error, dict):
        text = str(error) if error else "no reason given"
        return text if index is None or index in text else f"{text} (index {index})"
    text = f"{error.get('type', 'error')}: {error.get('reason', '')}".strip()
    cause = error.get("caused_by")
    if isinstance(cause, dict):
        text += f" (caused by {cause.get('type', 'error')}: {cause.get('reason', '')})"
    named = error.get("index")
    if isinstance(named, str):
        index = named
    if index is not None and index not in text:  # "index_closed_exception: closed"
        text += f" (index {index})"
    return text
