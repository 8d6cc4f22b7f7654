"""Bulk bodies (raw bytes reused, ids per family, splitting) and per-item result handling."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import timestamp_ms
from schemas.letter_bot import MISKEYED_PREFIX
from schemas.sink import SinkRecord
from sinks.bulk import (
    BulkItem,
    BulkResponseError,
    Outcome,
    action_line,
    alert_item,
    body,
    classify,
    dlq_item,
    event_item,
    event_items,
    refusal_hint,
    request_docs,
    split,
    stats_item,
)
from sinks.config import SinkConfig
from sinks.documents import DeadLetterDoc
from sinks.redact import Redactor
from sinks.retention import retention_days
from streams.deadletters.records import Letter

R = Redactor(SinkConfig().redact_keys)
KEEP = retention_days(SinkConfig())  # events 90 days, errors 365
SENT = timestamp_ms("2026-11-23T10:00:01Z")  # when the records were sent, and now


def record(raw: bytes | None = None, **fields: Any) -> SinkRecord:
    ev: dict[str, Any] = {
        "event_id": "01J0000000000000000000000A",
        "timestamp": "2026-11-23T10:00:00.123Z",
        "bot_id": "invoice-bot",
        "level": "info",
        "message": "done",
        "schema_version": 1,
        **fields,
    }
    return SinkRecord(
        raw or orjson.dumps(ev), ev, "botwatch.events", 2, 41, SENT, b"invoice-bot", []
    )


def action(item: BulkItem) -> dict[str, Any]:
    parsed: dict[str, Any] = orjson.loads(item.action)
    return parsed


def test_event_reuses_the_raw_bytes_when_nothing_needs_redaction() -> None:
    rec = record()
    item = event_item(rec, 0, "bw", R, keep=KEEP, now_ms=SENT)
    assert item.source is rec.raw
    assert action(item) == {
        "create": {"_index": "bw-events-2026.11.23", "_id": "01J0000000000000000000000A"}
    }
    assert item.action.endswith(b"\n") and item.action.count(b"\n") == 1


def test_event_with_a_secret_is_reserialized_redacted() -> None:
    rec = record(message="login with password=hunter2")
    item = event_item(rec, 0, "bw", R, keep=KEEP, now_ms=SENT)
    assert b"hunter2" not in item.source
    assert orjson.loads(item.source)["message"] == "login with password=[REDACTED]"


def test_multi_line_raw_json_becomes_one_line() -> None:
    rec = record()
    pretty = orjson.dumps(rec.event, option=orjson.OPT_INDENT_2)
    item = event_item(record(pretty), 0, "bw", R, keep=KEEP, now_ms=SENT)
    assert b"\n" not in item.source
    assert orjson.loads(item.source) == rec.event


def test_a_batch_rewrites_exactly_the_records_that_need_it() -> None:
    secret_last = record(message="ok", meta={"api_key": "k1"})
    pretty = orjson.dumps(record().event, option=orjson.OPT_INDENT_2)
    batch = [
        record(message="token=abc at the very start"),
        record(message="nothing to hide"),
        record(pretty),
        record(message="also clean"),
        secret_last,
    ]
    items = event_items(batch, "bw", R, keep=KEEP, now_ms=SENT)
    assert [i.ref for i in items] == list(range(5))
    reused = [item.source is rec.raw for item, rec in zip(items, batch, strict=True)]
    assert reused == [False, True, False, True, False]
    assert b"abc" not in items[0].source
    assert b"\n" not in items[2].source
    assert orjson.loads(items[4].source)["meta"] == {"api_key": "[REDACTED]"}


def _index_of(timestamp: str, level: str = "info", sent_ms: int = SENT, now: int = SENT) -> str:
    rec = record(timestamp=timestamp, level=level)._replace(timestamp_ms=sent_ms)
    index: str = action(event_item(rec, 0, "bw", R, keep=KEEP, now_ms=now))["create"]["_index"]
    return index


def test_an_event_goes_to_its_day_unless_retention_would_delete_it_at_once() -> None:
    assert _index_of("2026-11-23T23:59:59Z") == "bw-events-2026.11.23"
    assert _index_of("2026-08-25T00:00:00Z") == "bw-events-2026.08.25"  # 90 days: kept
    assert _index_of("2026-11-24T23:00:00Z") == "bw-events-2026.11.24"  # a day ahead
    # A broken clock: by its own day a sweep deletes it at once, or never (and each day
    # it invents makes an index); it goes to the day its record was sent.
    assert _index_of("2026-08-24T23:59:59Z") == "bw-events-2026.11.23"  # 91 days
    assert _index_of("2001-01-01T00:00:00Z") == "bw-events-2026.11.23"
    assert _index_of("2026-11-25T00:00:00Z") == "bw-events-2026.11.23"  # two days ahead
    assert _index_of("9999-12-31T23:59:59Z") == "bw-events-2026.11.23"
    # Errors are kept 365 days, in an index per month: 200 days back is their own month.
    assert _index_of("2026-05-07T10:00:00Z", "error") == "bw-events-errors-2026.05"
    assert _index_of("2025-11-22T10:00:00Z", "error") == "bw-events-errors-2026.11"


def test_a_record_sent_at_an_odd_time_too_goes_to_the_index_of_today() -> None:
    now = timestamp_ms("2026-12-07T12:00:00Z")
    assert _index_of("2001-01-01T00:00:00Z", sent_ms=0, now=now) == "bw-events-2026.12.07"
    assert _index_of("2001-01-01T00:00:00Z", sent_ms=-1, now=now) == "bw-events-2026.12.07"
    # An event of a normal day sent with an odd time goes to its own day.
    assert _index_of("2026-12-06T10:00:00Z", sent_ms=0, now=now) == "bw-events-2026.12.06"
    # One broken clock stamped both (a producer's): judged by today.
    sent_2001 = timestamp_ms("2001-01-01T00:00:00Z")
    assert _index_of("2001-01-01T00:00:00Z", sent_ms=sent_2001, now=now) == "bw-events-2026.12.07"
    sent_2099 = timestamp_ms("2099-05-05T00:00:00Z")
    assert _index_of("2099-05-05T00:00:00Z", sent_ms=sent_2099, now=now) == "bw-events-2026.12.07"


def test_an_empty_batch_has_no_items() -> None:
    assert event_items([], "bw", R, keep=KEEP, now_ms=SENT) == []


words = st.sampled_from(["done", "Bearer", "x://y", "tok", "en", "\\u0041", "pass", "word"])


@settings(max_examples=300)
@given(st.lists(st.lists(words, max_size=4).map(" ".join), max_size=8))
def test_a_batch_reuses_raw_bytes_exactly_where_one_record_alone_would(
    messages: list[str],
) -> None:
    batch = [record(message=m) for m in messages]
    items = event_items(batch, "bw", R, keep=KEEP, now_ms=SENT)
    for item, rec in zip(items, batch, strict=True):
        assert (item.source is rec.raw) == (not R.needs_redaction(rec.raw))
        assert item == event_item(rec, item.ref, "bw", R, keep=KEEP, now_ms=SENT)


@pytest.mark.parametrize(
    ("timestamp", "day"),
    [
        ("9999-12-31T23:30:00-01:00", "9999.12.31"),  # year 10000 in UTC: the last day
        ("0000-01-01T00:00:00+01:00", "0001.01.01"),  # year 0 in UTC: the first day
        ("0000-03-01T00:00:00Z", "0001.01.01"),
        ("2026-11-23T23:30:00-01:00", "2026.11.24"),
    ],
)
def test_every_valid_timestamp_has_an_index_a_retention_sweep_can_date(
    timestamp: str, day: str
) -> None:
    from sinks.indices import day_of_ms, day_of_timestamp, parse_index

    assert day_of_timestamp(timestamp) == day
    assert parse_index("bw", f"bw-events-{day}") is not None
    assert day_of_ms(-(2**62)) == "0001.01.01"
    assert day_of_ms(2**62) == "9999.12.31"


def test_error_events_go_to_the_errors_family_by_utc_day() -> None:
    rec = record(level="critical", timestamp="2026-11-23T01:00:00+05:00")
    item = event_item(rec, 0, "bw", R, keep=KEEP, now_ms=SENT)
    assert item.family == "events-errors"
    assert action(item)["create"]["_index"] == "bw-events-errors-2026.11"


NOW_MS = 1_795_521_600_000  # 2026-11-24T12:00:00Z


def dlq_doc(letter: DeadLetterDoc) -> BulkItem:
    return dlq_item(letter, 0, "bw", R, keep_days=30, now_ms=NOW_MS)


def test_stats_alert_and_dead_letter_ids() -> None:
    window = {"bot_id": "b", "window_start": "2026-11-23T10:00:00Z", "window_size_s": 60}
    assert action(stats_item(window, 0, "bw")) == {
        "index": {"_index": "bw-stats-2026.11", "_id": "b|2026-11-23T10:00:00Z|60"}
    }
    alert = {"fingerprint": "f1", "starts_at": "2026-11-23T10:05:00Z", "labels": {"token": "x"}}
    item = alert_item(alert, 0, "bw", R)
    assert action(item) == {
        "index": {"_index": "bw-alerts-2026.11", "_id": "f1|2026-11-23T10:05:00Z"}
    }
    assert orjson.loads(item.source)["labels"] == {"token": "[REDACTED]"}
    letter = DeadLetterDoc(
        key=b"b",
        value=b"not json",
        stage="decode",
        reason="bad",
        original_topic="botwatch.events",
        original_partition=3,
        original_offset=99,
        original_timestamp_ms=1_763_892_000_000,
        first_failed_at="2026-11-24T00:00:01.000Z",
    )
    assert action(dlq_doc(letter)) == {
        "index": {"_index": "bw-dlq-2026.11.24", "_id": "botwatch.events-3-99-decode"}
    }


@pytest.mark.parametrize(
    ("first_failed_at", "index"),
    [
        ("2026-10-25T00:00:00.000Z", "bw-dlq-2026.10.25"),  # 30 days ago: kept 30 days
        ("2026-11-25T23:59:59.999Z", "bw-dlq-2026.11.25"),  # a clock a day ahead
        ("2026-10-24T23:59:59.999Z", "bw-dlq-2026.11.24"),  # swept at once: today's
        ("2026-11-26T00:00:00.000Z", "bw-dlq-2026.11.24"),  # never swept: today's
        ("9999-12-31T00:00:00.000Z", "bw-dlq-2026.11.24"),
        ("0001-01-01T00:00:00.000Z", "bw-dlq-2026.11.24"),
        ("2026-02-30T00:00:00.000Z", "bw-dlq-2026.11.24"),  # shaped like a date, is none
    ],
)
def test_a_dead_letter_dated_outside_retention_goes_to_todays_index(
    first_failed_at: str, index: str
) -> None:
    """The first failure's time is a header a producer may send: no index per invented day."""
    letter = DeadLetterDoc(None, b"x", "decode", "r", "t", 0, 1, 0, first_failed_at)
    assert action(dlq_doc(letter))["index"]["_index"] == index
    doc = orjson.loads(dlq_doc(letter).source)
    if first_failed_at.startswith("2026-02-30"):
        assert "first_failed_at" not in doc  # a date field the node would refuse
    else:
        assert doc["first_failed_at"] == first_failed_at  # the header's value, searchable


def test_dead_letter_document_redacts_and_keeps_the_text() -> None:
    value = orjson.dumps({"message": "x", "meta": {"api_key": "K3Y"}})
    letter = DeadLetterDoc.from_kafka(
        b"bot",
        value,
        [
            ("trace", b"1"),
            ("Authorization", b"Bearer abc"),
            ("botwatch.dlq.stage", b"validate"),
            ("botwatch.dlq.reason", b"unknown field"),
            ("botwatch.dlq.original.topic", b"botwatch.events"),
            ("botwatch.dlq.original.partition", b"0"),
            ("botwatch.dlq.original.offset", b"7"),
            ("botwatch.dlq.original.timestamp", b"1763892000000"),
            ("botwatch.dlq.first_failed_at", b"2026-11-23T10:00:00.000Z"),
            ("botwatch.dlq.replay_count", b"2"),
        ],
    )
    doc = orjson.loads(dlq_doc(letter).source)
    assert b"K3Y" not in orjson.dumps(doc) and b"abc" not in orjson.dumps(doc)
    assert doc["event"]["meta"] == {"api_key": "[REDACTED]"}
    assert doc["headers"] == {"trace": "1", "Authorization": "[REDACTED]"}
    assert doc["stage"] == "validate" and doc["replay_count"] == 2
    assert doc["value_encoding"] == "utf-8"
    assert doc["bot_id"] == "bot"  # the key: the payload has no bot_id
    with pytest.raises(ValueError, match=r"botwatch\.dlq\.stage"):
        DeadLetterDoc.from_kafka(None, b"", [])


@pytest.mark.parametrize(
    ("stage", "reason", "key", "value", "bot"),
    [
        # Refused for its key: the payload's bot (what a replay keys it by).
        ("validate", MISKEYED_PREFIX + "must be...", b"wrong", b'{"bot_id": "inv-bot"}', "inv-bot"),
        # Failed validation: the key, whatever the payload holds as bot_id.
        ("validate", "bot_id: must match", b"bot-000", b'{"bot_id": "invoice bot!"}', "bot-000"),
        ("decode", "not JSON", b"inv-bot", b"{not json", "inv-bot"),
        # A valid event: its bot_id, whatever its key.
        ("job_failure", "job j failed", b"wrong", b'{"bot_id": "inv-bot"}', "inv-bot"),
        ("sink", "refused", b"k", b'{"bot_id": "inv-bot"}', "inv-bot"),
        ("sink", "refused", b"inv-bot", b'{"bot_id": ""}', "inv-bot"),
        ("validate", "r", b"inv-bot", b'{"bot_id": 7}', "inv-bot"),
        ("validate", "level: is required", b"", b'{"bot_id": "inv-bot"}', "inv-bot"),  # no key
        ("decode", "r", None, b"{not json", None),
        ("decode", "r", None, None, None),
    ],
)
def test_a_dead_letter_is_one_bots_in_the_index_and_in_botwatch_dlq(
    stage: str, reason: str, key: bytes | None, value: bytes | None, bot: str | None
) -> None:
    """The index went by the payload's bot_id and the CLI by the key: one letter was two
    bots' (``dlq list --bot`` found nothing the index had)."""
    doc = DeadLetterDoc(key, value, stage, reason, "t", 0, 1, 0, "")
    assert orjson.loads(dlq_doc(doc).source).get("bot_id") == bot
    letter = Letter("botwatch.dlq", 0, 1, 0, key, value, (), stage, reason, "", "t", 0, 1, 0, "", 0)
    assert letter.bot == bot


def test_non_utf8_dead_letter_value_is_kept_as_replaced_text() -> None:
    letter = DeadLetterDoc(None, b"\xff\xfe ok", "decode", "r", "t", 0, 1, 0, "")
    doc = orjson.loads(dlq_doc(letter).source)
    assert doc["value_encoding"] == "utf-8-replaced" and doc["value"].endswith(" ok")
    assert "event" not in doc and "first_failed_at" not in doc


def items(n: int, size: int) -> list[BulkItem]:
    return [BulkItem(b"a" * 10, b"s" * (size - 11), "events", "create", i) for i in range(n)]


def test_split_by_count() -> None:
    chunks = list(split(items(10, 100), max_docs=4, max_bytes=10**6))
    assert [len(c) for c in chunks] == [4, 4, 2]
    assert [i.ref for c in chunks for i in c] == list(range(10))


def test_split_by_bytes_and_oversized_items_go_alone() -> None:
    chunks = list(split(items(5, 100), max_docs=100, max_bytes=250))
    assert [len(c) for c in chunks] == [2, 2, 1]
    big = list(split(items(3, 1000), max_docs=100, max_bytes=250))
    assert [len(c) for c in big] == [1, 1, 1]
    assert all(len(body(c)) <= 250 for c in chunks)


def test_body_is_the_concatenation() -> None:
    it = items(2, 20)
    assert body(it) == b"".join(i.action + i.source + b"\n" for i in it)


def canned(*statuses: tuple[str, int, dict[str, Any] | None]) -> dict[str, Any]:
    answers = []
    for op, status, error in statuses:
        detail: dict[str, Any] = {"status": status}
        if error:
            detail["error"] = error
        answers.append({op: detail})
    return {"errors": True, "items": answers}


def test_classify_each_item() -> None:
    action = action_line("create", "botwatch-events-2026.12.06", "e-2")
    its = [BulkItem(action if i == 2 else b"", b"", "events", "create", i) for i in range(5)] + [
        BulkItem(b"", b"", "stats", "index", 5)
    ]
    mapping_error = {
        "type": "mapper_parsing_exception",
        "reason": "failed to parse field [host] of type [long]",
        "caused_by": {"type": "illegal_argument_exception", "reason": 'For input string: "h"'},
    }
    response = canned(
        ("create", 201, None),
        ("create", 409, {"type": "version_conflict_engine_exception", "reason": "exists"}),
        ("create", 400, mapping_error),
        ("create", 429, {"type": "es_rejected_execution_exception", "reason": "queue full"}),
        ("create", 503, {"type": "unavailable_shards_exception", "reason": "no shard"}),
        ("index", 200, None),
    )
    results = classify(response, its)
    assert [r.outcome for r in results] == [
        Outcome.WRITTEN,
        Outcome.DUPLICATE,
        Outcome.REJECTED,
        Outcome.RETRY,
        Outcome.RETRY,
        Outcome.WRITTEN,
    ]
    # The index too: a template fixed since does not change the mapping of this one.
    assert results[2].reason == (
        "mapper_parsing_exception: failed to parse field [host] of type [long] "
        '(caused by illegal_argument_exception: For input string: "h") '
        "(index botwatch-events-2026.12.06)"
    )
    assert results[3].reason == "es_rejected_execution_exception: queue full"
    assert results[2].status == 400


def test_a_conflict_on_index_is_retried_not_taken_as_duplicate() -> None:
    its = [BulkItem(b"", b"", "stats", "index", 0)]
    assert classify(canned(("index", 409, None)), its)[0].outcome is Outcome.RETRY


def test_no_errors_means_every_item_written() -> None:
    its = items(3, 20)
    assert [r.outcome for r in classify({"errors": False}, its)] == [Outcome.WRITTEN] * 3


def test_an_answer_of_the_wrong_length_is_an_error() -> None:
    with pytest.raises(BulkResponseError):
        classify(canned(("create", 201, None)), items(2, 20))


def test_dead_letter_of_an_oversize_message_stays_indexable() -> None:
    from sinks.documents import FLAT_LEAF_MAX_CHARS, dlq_document

    raw = orjson.dumps({"bot_id": "b", "message": "x" * 40_000})
    letter = DeadLetterDoc(b"b", raw, "validate", "message: too long", "t", 0, 7, 0, "")
    doc = dlq_document(letter, Redactor(SinkConfig().redact_keys))
    # The searchable copy is cut below Lucene's 32 KiB term limit; the full record is kept.
    assert len(doc["event"]["message"]) == FLAT_LEAF_MAX_CHARS
    assert doc["value"] == raw.decode()


def test_dead_letter_copy_keeps_keys_and_depth_within_a_terms_limit() -> None:
    from sinks.documents import FLAT_DEPTH_MAX, FLAT_KEY_MAX_CHARS, dlq_document

    deep: dict[str, object] = {"leaf": "bottom"}
    for _ in range(FLAT_DEPTH_MAX + 5):
        deep = {"k": deep}
    raw = orjson.dumps({"bot_id": "b", "meta": {"x" * 40_000: 1, "deep": deep}})
    letter = DeadLetterDoc(b"b", raw, "validate", "meta: too large", "t", 0, 7, 0, "")
    event = dlq_document(letter, Redactor(SinkConfig().redact_keys))["event"]
    assert list(event["meta"]) == ["x" * FLAT_KEY_MAX_CHARS, "deep"]
    level = event["meta"]["deep"]
    for _ in range(FLAT_DEPTH_MAX - 2):  # event and meta are the first two levels
        level = level["k"]
    assert isinstance(level, str)  # what lies deeper is its JSON text
    assert orjson.loads(level)["k"]["k"]


def test_long_keys_cut_alike_all_stay_in_the_dead_letter_copy() -> None:
    from sinks.documents import FLAT_KEY_MAX_CHARS, dlq_document

    stem = "k" * FLAT_KEY_MAX_CHARS
    # Two long keys that share their first 200 characters, and one key that is that start.
    meta = {stem + "-a": 1, stem + "-b": 2, stem: 3}
    raw = orjson.dumps({"bot_id": "b", "meta": meta})
    letter = DeadLetterDoc(b"b", raw, "validate", "meta: too large", "t", 0, 7, 0, "")
    copy = dlq_document(letter, Redactor(SinkConfig().redact_keys))["event"]["meta"]
    assert sorted(copy.values()) == [1, 2, 3]
    assert all(len(key) <= FLAT_KEY_MAX_CHARS for key in copy)
    assert copy[stem] == 3


def test_a_reduced_dead_letter_keeps_the_text_and_says_what_was_left_out() -> None:
    from sinks.documents import dlq_document, reduced_dlq_document

    raw = b'{"bot_id": "b", "message": "m"}'
    letter = DeadLetterDoc(b"b", raw, "validate", "level: missing", "t", 0, 7, 0, "", "",
                           0, [("trace", b"t1")])  # fmt: skip
    doc = dlq_document(letter, Redactor(SinkConfig().redact_keys))
    assert {"event", "headers", "bot_id", "reason_class"} <= set(doc)
    reduced = reduced_dlq_document(doc, "mapper_parsing_exception: event")
    assert not {"event", "headers", "bot_id", "reason_class"} & set(reduced)
    assert reduced["value"] == raw.decode()
    assert reduced["reason"] == (
        "level: missing [indexed without its event, headers, bot_id and reason_class fields: "
        "OpenSearch refused them: mapper_parsing_exception: event]"
    )


def test_a_dead_letter_document_holds_its_reason_without_particulars_to_group_by() -> None:
    # The reasons hold values and job messages: nearly one per document, so a chart of
    # dead letters by reason had a bar each.
    from sinks.documents import dlq_document

    redactor = Redactor(SinkConfig().redact_keys)
    classes = {
        dlq_document(
            DeadLetterDoc(
                b"b", b"{}", "validate", f"retry_count: {why}, got {n}", "t", 0, n, 0, ""
            ),
            redactor,
        )["reason_class"]
        for n, why in ((1, "must be at most 100"), (2, "must be at most 100"))
    }
    assert classes == {"retry_count: must be at most N"}
    secret = DeadLetterDoc(b"b", b"{}", "validate", "password: not allowed, got 'hunter2'", "t",
                           0, 3, 0, "")  # fmt: skip
    assert "hunter2" not in dlq_document(secret, redactor)["reason_class"]


def test_dead_letter_that_is_not_json_is_redacted_through_its_escapes() -> None:
    from sinks.documents import dlq_document

    raw = b'{"meta":{"pass\\u0077ord":"S1","list":{"api.key":["S2"]}},"u":"https:\\/\\/S3@h" cut'
    letter = DeadLetterDoc(b"b", raw, "decode", "unexpected end", "t", 0, 8, 0, "")
    doc = dlq_document(letter, Redactor(SinkConfig().redact_keys))
    assert "event" not in doc  # not JSON: kept as text only
    for secret in ("S1", "S2", "S3"):
        assert secret not in doc["value"]


@pytest.mark.parametrize(
    ("count", "max_docs", "concurrency", "expected"),
    [
        (2000, 5000, 4, 500),  # four requests of 500
        (100, 5000, 4, 250),  # small writes are not cut below 250 documents
        (40_000, 5000, 4, 5000),  # never above the request limit
        (7, 5000, 1, 250),
        (1, 5000, 0, 250),  # a concurrency of 0 counts as 1
    ],
)
def test_a_write_is_cut_into_about_concurrency_requests(
    count: int, max_docs: int, concurrency: int, expected: int
) -> None:
    assert request_docs(count, max_docs, concurrency) == expected


def test_refusal_hints_say_what_to_do_about_a_full_disk_a_full_queue_or_a_red_index() -> None:
    flood = (
        "cluster_block_exception: index [botwatch-events-2026.11.23] blocked by: "
        "[TOO_MANY_REQUESTS/12/disk usage exceeded flood-stage watermark, index has "
        "read-only-allow-delete block];"
    )
    assert refusal_hint(flood).startswith("Free disk space on the node")
    queue = "es_rejected_execution_exception: rejected execution of coordinating operation"
    assert "BOTWATCH_BULK_CONCURRENCY" in refusal_hint(queue)
    red = "unavailable_shards_exception: [i][0] primary shard is not active Timeout: [10s]"
    assert "GET _cluster/allocation/explain" in refusal_hint(red)
    assert refusal_hint("version_conflict_engine_exception: [x]: version conflict") == ""


def test_a_new_index_refused_for_the_shard_limit_is_retried_not_dead_lettered() -> None:
    # A 400 about the cluster, not the document: dead-lettered, every document of the new
    # day would have gone, with /ready 200.
    action = action_line("create", "botwatch-events-2026.12.08", "e-1")
    full = {
        "type": "validation_exception",
        "reason": "Validation Failed: 1: this action would add [1] total shards, but this "
        "cluster currently has [1000]/[1000] maximum shards open;",
    }
    [result] = classify(
        canned(("create", 400, full)), [BulkItem(action, b"", "events", "create", 0)]
    )
    assert (result.outcome, result.status) == (Outcome.RETRY, 400)
    assert "cluster.max_shards_per_node" in refusal_hint(result.reason)


def test_a_reason_names_its_index_when_its_words_do_not() -> None:
    its = [BulkItem(b"", b"", "events", "create", 0), BulkItem(b"", b"", "events", "create", 1)]
    closed = {"type": "index_closed_exception", "reason": "closed", "index": "bw-events-2026.11.20"}
    blocked = {
        "type": "cluster_block_exception",
        "reason": "index [bw-events-2026.11.20] blocked by: [FORBIDDEN/8/index write (api)];",
        "index": "bw-events-2026.11.20",
    }
    results = classify(canned(("create", 400, closed), ("create", 403, blocked)), its)
    assert [r.reason for r in results] == [
        "index_closed_exception: closed (index bw-events-2026.11.20)",
        "cluster_block_exception: index [bw-events-2026.11.20] blocked by: "
        "[FORBIDDEN/8/index write (api)];",
    ]
    assert [r.outcome for r in results] == [Outcome.REJECTED, Outcome.REJECTED]
