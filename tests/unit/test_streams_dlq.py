"""Dead-letter headers: a fresh failure, a replay that fails again, and reading them back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from schemas import EventValidationError
from sinks.config import DEFAULT_REDACT_KEYS
from sinks.documents import DeadLetterDoc, dlq_document
from sinks.redact import Redactor
from streams.dlq import (
    HEADERS,
    MAX_TEXT_CHARS,
    ORIGINAL_OFFSET,
    STAGE,
    TRUNCATED,
    dlq_headers,
    exception_text,
    fit_record,
    parse_dlq_headers,
    record_size,
)

NOW = datetime(2026, 11, 23, 10, 0, 5, 123456, tzinfo=UTC)
LATER = NOW + timedelta(hours=3)


def headers(**overrides: Any) -> list[tuple[str, bytes]]:
    args: dict[str, Any] = {
        "stage": "validate",
        "reason": "level: must be one of debug, info, warning, error, critical, got 'fatal'",
        "exception": EventValidationError("level", "must be one of ...", "'fatal'"),
        "original_topic": "botwatch.events",
        "partition": 3,
        "offset": 4711,
        "timestamp_ms": 1_795_428_005_000,
        "original_headers": [("traceparent", b"00-abc-def-01"), ("source", b"sdk")],
        "now": NOW,
    }
    args.update(overrides)
    stage, reason, exception = args.pop("stage"), args.pop("reason"), args.pop("exception")
    return dlq_headers(stage, reason, exception, **args)


def test_a_fresh_dead_letter_keeps_the_record_headers_and_adds_the_dlq_ones() -> None:
    assert headers() == [
        ("traceparent", b"00-abc-def-01"),
        ("source", b"sdk"),
        ("botwatch.dlq.stage", b"validate"),
        (
            "botwatch.dlq.reason",
            b"level: must be one of debug, info, warning, error, critical, got 'fatal'",
        ),
        (
            "botwatch.dlq.exception",
            b"schemas.errors.EventValidationError: level: must be one of ..., got 'fatal'",
        ),
        ("botwatch.dlq.original.topic", b"botwatch.events"),
        ("botwatch.dlq.original.partition", b"3"),
        ("botwatch.dlq.original.offset", b"4711"),
        ("botwatch.dlq.original.timestamp", b"1795428005000"),
        ("botwatch.dlq.first_failed_at", b"2026-11-23T10:00:05.123Z"),
        ("botwatch.dlq.replay_count", b"0"),
    ]


def test_a_replay_that_fails_again_keeps_first_failure_and_replay_count() -> None:
    first = headers(stage="decode", reason="record: not JSON", exception=None)
    # The replayer bumps the count and sends the record back to the events topic.
    replayed = [
        (name, b"2" if name == "botwatch.dlq.replay_count" else value) for name, value in first
    ]
    again = headers(
        stage="sink",
        reason="mapper_parsing_exception",
        exception=ConnectionError("opensearch down"),
        partition=0,
        offset=99,
        original_headers=replayed,
        now=LATER,
    )
    names = [name for name, _ in again]
    assert names == ["traceparent", "source", *HEADERS]  # nothing duplicated
    parsed = parse_dlq_headers(again)
    assert parsed == {
        "botwatch.dlq.stage": "sink",
        "botwatch.dlq.reason": "mapper_parsing_exception",
        "botwatch.dlq.exception": "ConnectionError: opensearch down",
        "botwatch.dlq.original.topic": "botwatch.events",
        "botwatch.dlq.original.partition": "0",
        "botwatch.dlq.original.offset": "99",
        "botwatch.dlq.original.timestamp": "1795428005000",
        "botwatch.dlq.first_failed_at": "2026-11-23T10:00:05.123Z",
        "botwatch.dlq.replay_count": "2",
    }


@pytest.mark.parametrize(
    "count", [b"abc", b"-1", b"", None, b"1.0", b" 2", b"\xd9\xa3", b"9" * 19, b"\xff"]
)
def test_a_replay_count_that_is_not_a_count_is_left_out_and_the_letter_still_indexes(
    count: bytes | None,
) -> None:
    """Another producer's ``botwatch.dlq.replay_count: abc`` stopped every batch: the sink
    could not read it back to index the letter, and the batch was retried forever."""
    letter = headers(original_headers=[("botwatch.dlq.replay_count", count), ("k", b"v")])
    assert ("botwatch.dlq.replay_count", b"0") in letter
    assert ("k", b"v") in letter
    doc = DeadLetterDoc.from_kafka(b"bot-1", b"{}", letter)
    assert doc.replay_count == 0
    assert dlq_document(doc, Redactor(DEFAULT_REDACT_KEYS))["replay_count"] == 0
    # Read back from elsewhere (not through the worker), such a count is 0 too.
    odd = [(n, count or b"" if n == "botwatch.dlq.replay_count" else v) for n, v in letter]
    assert DeadLetterDoc.from_kafka(b"bot-1", b"{}", odd).replay_count == 0


def test_stale_dlq_headers_of_any_name_are_replaced() -> None:
    stale = [("botwatch.dlq.stage", b"decode"), ("botwatch.dlq.something.old", b"x"), ("k", b"v")]
    result = headers(original_headers=stale)
    assert [name for name, _ in result] == ["k", *HEADERS]
    assert dict(result)["botwatch.dlq.stage"] == b"validate"
    assert dict(result)["botwatch.dlq.replay_count"] == b"0"


@pytest.mark.parametrize("stage", ["internal", "unknown", ""])
def test_only_the_design_stages_are_allowed(stage: str) -> None:
    with pytest.raises(ValueError, match="decode, validate, sink, job_failure"):
        headers(stage=stage)


def test_every_design_stage_is_accepted() -> None:
    for stage in ("decode", "validate", "sink", "job_failure"):
        assert dict(headers(stage=stage))["botwatch.dlq.stage"] == stage.encode()


def test_exception_text() -> None:
    assert exception_text(None) == ""
    assert exception_text(ValueError("bad")) == "ValueError: bad"
    assert exception_text(KeyError()) == "KeyError"
    assert exception_text(UnicodeError("x")).startswith("UnicodeError")
    job_failure = dict(headers(stage="job_failure", exception=None))
    assert job_failure["botwatch.dlq.exception"] == b""


def test_long_texts_are_cut_and_odd_text_still_encodes() -> None:
    result = dict(headers(reason="x" * 100_000, exception=RuntimeError("\udcff broken")))
    reason = result["botwatch.dlq.reason"].decode()
    assert len(reason) == MAX_TEXT_CHARS
    assert reason.endswith("...[truncated]")
    assert result["botwatch.dlq.exception"] == b"RuntimeError: \\udcff broken"


def test_first_failed_at_is_utc_with_milliseconds() -> None:
    local = NOW.astimezone(timezone(timedelta(hours=-5)))
    stamp = dict(headers(now=local))["botwatch.dlq.first_failed_at"]
    assert stamp == b"2026-11-23T10:00:05.123Z"
    with pytest.raises(ValueError, match="timezone-aware"):
        headers(now=NOW.replace(tzinfo=None))


def test_no_original_headers() -> None:
    assert [name for name, _ in headers(original_headers=None)] == list(HEADERS)
    assert [name for name, _ in headers(original_headers=[])] == list(HEADERS)


def test_parse_ignores_other_headers_and_survives_bad_bytes() -> None:
    parsed = parse_dlq_headers(
        [
            ("traceparent", b"x"),
            ("botwatch.dlq.reason", b"\xff\xfe"),
            ("botwatch.dlq.stage", None),
            ("botwatch.dlq.stage", b"sink"),
        ]
    )
    assert parsed == {"botwatch.dlq.reason": "\ufffd\ufffd", "botwatch.dlq.stage": "sink"}
    assert parse_dlq_headers(None) == {}


def test_a_record_that_fits_is_left_whole() -> None:
    headers = [("trace", b"t"), (STAGE, b"validate")]
    assert fit_record(b"k", b"v" * 100, headers, 1_000) == (b"v" * 100, headers)


def test_a_record_too_large_has_its_value_cut_and_says_so() -> None:
    headers = [("trace", b"t"), (STAGE, b"validate")]
    value, kept = fit_record(b"k", b"v" * 5_000, headers, 2_000)
    assert record_size(b"k", value, kept) <= 2_000
    assert value == b"v" * len(value) and 1_000 < len(value) < 2_000
    assert kept[:2] == headers
    name, note = kept[-1]
    assert name == TRUNCATED
    assert f"value cut from 5000 to {len(value)} bytes" in note.decode()


def test_huge_own_headers_go_too_the_dead_letter_ones_stay() -> None:
    headers = [("blob", b"h" * 5_000), (STAGE, b"validate"), (ORIGINAL_OFFSET, b"7")]
    value, kept = fit_record(None, b"v" * 100, headers, 2_000)
    assert record_size(None, value, kept) <= 2_000
    assert [n for n, _ in kept] == [STAGE, ORIGINAL_OFFSET, TRUNCATED]
    assert "own headers (1) dropped" in kept[-1][1].decode()


def test_a_cut_keeps_a_null_value_null_and_says_what_it_cut() -> None:
    headers = [("blob", b"h" * 5_000), (STAGE, b"validate")]
    value, kept = fit_record(b"k", None, headers, 2_000)
    assert value is None
    assert kept[-1][1].decode().startswith("value kept to fit")
