"""The event contract, rule by rule: what is accepted, and the exact error for what is not."""

from __future__ import annotations

import enum
import math
import pickle
from types import MappingProxyType
from typing import Any

import orjson
import pytest

from schemas import (
    BOT_ID_RE,
    FIELDS,
    LEVELS,
    MAX_MESSAGE_BYTES,
    MAX_META_BYTES,
    REQUIRED_FIELDS,
    STATUSES,
    EventDecodeError,
    EventError,
    EventValidationError,
    decode_event,
    validate_event,
)
from schemas.event import _META_FITS_RECORD_BYTES

RULE_TIMESTAMP = (
    "must be an RFC 3339 date-time with offset, like 2026-11-23T10:00:00.123Z or "
    "2026-11-23T12:00:00+02:00"
)
RULE_UNKNOWN = "is not allowed (unknown fields belong in meta)"


def minimal_event() -> dict[str, Any]:
    return {
        "event_id": "0192f3c2-7a1b-7c3d-8e4f-0123456789ab",
        "timestamp": "2026-11-23T10:00:00.123Z",
        "bot_id": "invoice-bot",
        "level": "info",
        "message": "processed invoice 42",
        "schema_version": 1,
    }


def full_event() -> dict[str, Any]:
    return {
        **minimal_event(),
        "job_id": "invoice-bot:42",
        "level": "error",
        "status": "failure",
        "duration_ms": 1234.5,
        "retry_count": 2,
        "error": {"type": "TimeoutError", "message": "gave up", "stack": "Traceback ..."},
        "meta": {"customer": "acme", "pages": [1, 2], "nested": {"ok": True, "none": None}},
        "host": "worker-1",
        "env": "prod",
    }


def rejection(event: dict[str, Any]) -> EventValidationError:
    """The error both entry points give for ``event``; they must give the same one."""
    with pytest.raises(EventValidationError) as decoded:
        decode_event(orjson.dumps(event))
    with pytest.raises(EventValidationError) as validated:
        validate_event(event)
    assert (decoded.value.path, decoded.value.rule, decoded.value.got) == (
        validated.value.path,
        validated.value.rule,
        validated.value.got,
    )
    return decoded.value


@pytest.mark.parametrize("make", [minimal_event, full_event])
def test_a_valid_event_decodes_to_the_same_dict(make: Any) -> None:
    event = make()
    assert decode_event(orjson.dumps(event)) == event
    validate_event(event)


def test_decode_accepts_every_bytes_like_input() -> None:
    raw = orjson.dumps(full_event())
    for value in (raw, bytearray(raw), memoryview(raw)):
        assert decode_event(value) == full_event()  # type: ignore[arg-type]


# --- decode stage ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "rule", "got"),
    [
        (b"\xff\xfe{}", "must be UTF-8 encoded (invalid byte at offset 0)", "b'\\xff\\xfe{}'"),
        (b'{"a": "caf\xe9"}', "must be UTF-8 encoded (invalid byte at offset 10)", None),
        (b"[1, 2]", "must be a JSON object", "[1, 2]"),
        (b'"text"', "must be a JSON object", "'text'"),
        (b"null", "must be a JSON object", "None"),
        (b"42", "must be a JSON object", "42"),
    ],
)
def test_decode_errors_name_the_record(raw: bytes, rule: str, got: str | None) -> None:
    with pytest.raises(EventDecodeError) as caught:
        decode_event(raw)
    error = caught.value
    assert (error.stage, error.path, error.rule) == ("decode", "", rule)
    if got is not None:
        assert error.got == got
        assert error.reason == f"record: {rule}, got {got}"


@pytest.mark.parametrize(
    "raw",
    [b"", b"   ", b'{"a":', b"{'a': 1}", b'{"a": NaN}', b'{"a": Infinity}', b"\xef\xbb\xbf{}"],
)
def test_text_that_is_not_json_is_a_decode_error(raw: bytes) -> None:
    with pytest.raises(EventDecodeError) as caught:
        decode_event(raw)
    assert caught.value.path == ""
    assert caught.value.rule.startswith("must be a JSON document (")
    assert caught.value.got == repr(raw)


def test_a_value_that_is_not_bytes_is_a_decode_error() -> None:
    with pytest.raises(EventDecodeError) as caught:
        decode_event(None)  # type: ignore[arg-type]
    assert caught.value.reason == "record: must be bytes, got None"


def test_errors_form_one_family_of_value_errors() -> None:
    assert issubclass(EventDecodeError, EventError)
    assert issubclass(EventValidationError, EventError)
    assert issubclass(EventError, ValueError)
    assert EventDecodeError.stage == "decode"
    assert EventValidationError.stage == "validate"


# --- validate stage: the example of the brief, then every rule ---------------------------------


def test_reason_reads_field_rule_and_value() -> None:
    error = rejection({**minimal_event(), "duration_ms": -3})
    assert (error.stage, error.path, error.rule, error.got) == (
        "validate",
        "duration_ms",
        "must be a finite number >= 0",
        "-3",
    )
    assert error.reason == "duration_ms: must be a finite number >= 0, got -3"
    assert str(error) == error.reason


def test_an_unknown_top_level_field_belongs_in_meta() -> None:
    error = rejection({**minimal_event(), "customer": "acme"})
    assert error.path == "customer"
    assert error.reason == f"customer: {RULE_UNKNOWN}, got 'acme'"


@pytest.mark.parametrize("name", REQUIRED_FIELDS)
def test_each_required_field_is_named_when_missing(name: str) -> None:
    event = minimal_event()
    del event[name]
    error = rejection(event)
    assert (error.path, error.rule, error.got) == (name, "is required", None)
    assert error.reason == f"{name}: is required"


def test_optional_fields_may_all_be_left_out() -> None:
    event = minimal_event()
    assert set(event) == set(REQUIRED_FIELDS)
    validate_event(event)


@pytest.mark.parametrize(
    ("field", "value", "rule", "got"),
    [
        ("event_id", "", "must be a non-empty string of at most 128 characters", "''"),
        ("event_id", "e" * 129, "must be a non-empty string of at most 128 characters", None),
        ("event_id", 7, "must be a non-empty string of at most 128 characters", "7"),
        ("event_id", None, "must be a non-empty string of at most 128 characters", "None"),
        ("timestamp", "2026-11-23T10:00:00", RULE_TIMESTAMP, "'2026-11-23T10:00:00'"),
        ("timestamp", "2026-13-01T10:00:00Z", RULE_TIMESTAMP, None),
        ("timestamp", "2026-00-01T10:00:00Z", RULE_TIMESTAMP, None),
        ("timestamp", "2026-04-31T10:00:00Z", RULE_TIMESTAMP, None),
        ("timestamp", "2026-02-29T10:00:00Z", RULE_TIMESTAMP, None),
        ("timestamp", "1900-02-29T10:00:00Z", RULE_TIMESTAMP, None),
        ("timestamp", "2026-11-23T24:00:00Z", RULE_TIMESTAMP, None),
        ("timestamp", "2026-11-23T10:60:00Z", RULE_TIMESTAMP, None),
        ("timestamp", "2016-12-31T23:59:60Z", RULE_TIMESTAMP, None),
        ("timestamp", "2026-11-23t10:00:00z", RULE_TIMESTAMP, None),
        ("timestamp", "2026-11-23 10:00:00Z", RULE_TIMESTAMP, None),
        ("timestamp", "2026-11-23T10:00:00.Z", RULE_TIMESTAMP, None),
        ("timestamp", "2026-11-23T10:00:00.1234567891Z", RULE_TIMESTAMP, None),
        ("timestamp", "2026-11-23T10:00:00+0200", RULE_TIMESTAMP, None),
        ("timestamp", "2026-11-23T10:00:00+02", RULE_TIMESTAMP, None),
        ("timestamp", "2026-11-23T10:00:00+18:01", RULE_TIMESTAMP, None),
        ("timestamp", "2026-11-23T10:00:00-19:00", RULE_TIMESTAMP, None),
        ("timestamp", "2026-11-23T10:00:00+02:60", RULE_TIMESTAMP, None),
        ("timestamp", "2026-11-23", RULE_TIMESTAMP, None),
        ("timestamp", "26-11-23T10:00:00Z", RULE_TIMESTAMP, None),
        ("timestamp", "2026-11-23T10:00:00Z\n", RULE_TIMESTAMP, None),
        ("timestamp", 1795428000000, RULE_TIMESTAMP, "1795428000000"),
        ("bot_id", "", f"must match {BOT_ID_RE.pattern}", "''"),
        ("bot_id", "-bot", f"must match {BOT_ID_RE.pattern}", "'-bot'"),
        ("bot_id", ".bot", f"must match {BOT_ID_RE.pattern}", None),
        ("bot_id", "invoice bot", f"must match {BOT_ID_RE.pattern}", None),
        ("bot_id", "invoice/bot", f"must match {BOT_ID_RE.pattern}", None),
        ("bot_id", "bötchen", f"must match {BOT_ID_RE.pattern}", None),
        ("bot_id", "b" * 129, f"must match {BOT_ID_RE.pattern}", None),
        ("bot_id", "invoice-bot\n", f"must match {BOT_ID_RE.pattern}", "'invoice-bot\\n'"),
        ("bot_id", 12, f"must match {BOT_ID_RE.pattern}", "12"),
        ("job_id", "j" * 257, "must be a string of at most 256 characters", None),
        ("job_id", 42, "must be a string of at most 256 characters", "42"),
        (
            "job_id",
            None,
            "must be a string of at most 256 characters",
            "null (leave an optional field out instead)",
        ),
        ("level", "INFO", "must be one of debug, info, warning, error, critical", "'INFO'"),
        ("level", "fatal", "must be one of debug, info, warning, error, critical", None),
        ("level", None, "must be one of debug, info, warning, error, critical", "None"),
        ("message", 5, "must be a string", "5"),
        ("message", None, "must be a string", "None"),
        ("message", ["a"], "must be a string", "['a']"),
        ("status", "done", "must be one of started, success, failure, retry, heartbeat", None),
        ("status", "SUCCESS", "must be one of started, success, failure, retry, heartbeat", None),
        (
            "status",
            None,
            "must be one of started, success, failure, retry, heartbeat",
            "null (leave an optional field out instead)",
        ),
        ("duration_ms", -0.5, "must be a finite number >= 0", "-0.5"),
        ("duration_ms", "12", "must be a finite number >= 0", "'12'"),
        ("duration_ms", True, "must be a finite number >= 0", "True"),
        (
            "duration_ms",
            None,
            "must be a finite number >= 0",
            "null (leave an optional field out instead)",
        ),
        ("retry_count", -1, "must be an integer from 0 to 2**63-1", "-1"),
        ("retry_count", 2**63, "must be an integer from 0 to 2**63-1", str(2**63)),
        ("retry_count", 1.5, "must be an integer from 0 to 2**63-1", "1.5"),
        ("retry_count", 1.0, "must be an integer from 0 to 2**63-1", "1.0"),
        ("retry_count", False, "must be an integer from 0 to 2**63-1", "False"),
        ("retry_count", "3", "must be an integer from 0 to 2**63-1", "'3'"),
        ("error", "boom", "must be a JSON object", "'boom'"),
        ("error", ["boom"], "must be a JSON object", "['boom']"),
        ("error", None, "must be a JSON object", "null (leave an optional field out instead)"),
        ("meta", ["a"], "must be a JSON object", "['a']"),
        ("meta", "k=v", "must be a JSON object", "'k=v'"),
        ("meta", None, "must be a JSON object", "null (leave an optional field out instead)"),
        ("host", 1, "must be a string", "1"),
        ("host", None, "must be a string", "null (leave an optional field out instead)"),
        ("env", ["prod"], "must be a string", "['prod']"),
        ("schema_version", 2, "must be the integer 1", "2"),
        ("schema_version", 0, "must be the integer 1", "0"),
        ("schema_version", "1", "must be the integer 1", "'1'"),
        ("schema_version", 1.0, "must be the integer 1", "1.0"),
        ("schema_version", True, "must be the integer 1", "True"),
    ],
)
def test_each_rule_names_its_field(field: str, value: Any, rule: str, got: str | None) -> None:
    error = rejection({**full_event(), field: value})
    assert (error.stage, error.path, error.rule) == ("validate", field, rule)
    if got is not None:
        assert error.got == got
        assert error.reason == f"{field}: {rule}, got {got}"


@pytest.mark.parametrize(
    ("error_object", "path", "rule", "got"),
    [
        ({"type": 1}, "error.type", "must be a string", "1"),
        ({"message": None}, "error.message", "must be a string", "None"),
        ({"stack": ["frame"]}, "error.stack", "must be a string", "['frame']"),
        (
            {"type": "E", "code": 500},
            "error.code",
            "is not allowed (error has only type, message and stack)",
            "500",
        ),
    ],
)
def test_error_object_rules_name_the_inner_field(
    error_object: dict[str, Any], path: str, rule: str, got: str
) -> None:
    error = rejection({**full_event(), "error": error_object})
    assert (error.path, error.rule, error.got) == (path, rule, got)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("event_id", "e"),
        ("event_id", "e" * 128),
        ("timestamp", "2026-11-23T10:00:00Z"),
        ("timestamp", "2026-11-23T12:00:00+02:00"),
        ("timestamp", "2026-11-23T10:00:00-00:00"),
        ("timestamp", "2026-11-23T10:00:00.1+18:00"),
        ("timestamp", "2026-11-23T10:00:00.123456789-18:00"),
        ("timestamp", "2024-02-29T00:00:00Z"),
        ("timestamp", "2000-02-29T00:00:00Z"),
        ("timestamp", "0000-02-29T00:00:00Z"),
        ("timestamp", "9999-12-31T23:59:59.999Z"),
        ("bot_id", "a"),
        ("bot_id", "B" * 128),
        ("bot_id", "0.bot_v2:eu-west-1"),
        ("job_id", ""),
        ("job_id", "j" * 256),
        ("message", ""),
        ("message", "x" * MAX_MESSAGE_BYTES),
        ("message", "€" * (MAX_MESSAGE_BYTES // 3) + "xx"),
        ("duration_ms", 0),
        ("duration_ms", 0.0),
        ("duration_ms", -0.0),
        ("duration_ms", 2**64 - 1),
        ("duration_ms", 1.7976931348623157e308),
        ("retry_count", 0),
        ("retry_count", 2**63 - 1),
        ("error", {}),
        ("error", {"type": "KeyError"}),
        ("error", {"type": "", "message": "", "stack": ""}),
        ("meta", {}),
        ("meta", {"": None, "a.b": [1, [2, {"c": "d"}]]}),
        ("host", ""),
        ("env", "staging"),
    ],
)
def test_edge_values_are_accepted(field: str, value: Any) -> None:
    event = {**full_event(), field: value}
    assert decode_event(orjson.dumps(event)) == event
    validate_event(event)


@pytest.mark.parametrize("level", LEVELS)
def test_every_level_is_accepted(level: str) -> None:
    validate_event({**minimal_event(), "level": level})


@pytest.mark.parametrize("status", STATUSES)
def test_every_status_is_accepted(status: str) -> None:
    validate_event({**minimal_event(), "status": status})


# --- rules the JSON Schema cannot state ------------------------------------------------------


def test_message_limit_counts_utf8_bytes_not_characters() -> None:
    fits = "€" * (MAX_MESSAGE_BYTES // 3) + "xx"  # 32768 bytes, 10924 characters
    assert len(fits.encode()) == MAX_MESSAGE_BYTES
    validate_event({**minimal_event(), "message": fits})
    over = fits + "x"
    error = rejection({**minimal_event(), "message": over})
    assert error.reason == "message: must be at most 32768 bytes of UTF-8, got 32769 bytes"


def _meta_of_size(size: int) -> dict[str, Any]:
    meta = {"blob": ""}
    meta["blob"] = "m" * (size - len(orjson.dumps(meta)))
    assert len(orjson.dumps(meta)) == size
    return meta


def test_meta_limit_counts_serialized_bytes() -> None:
    validate_event({**minimal_event(), "meta": _meta_of_size(MAX_META_BYTES)})
    assert decode_event(orjson.dumps({**minimal_event(), "meta": _meta_of_size(MAX_META_BYTES)}))
    error = rejection({**minimal_event(), "meta": _meta_of_size(MAX_META_BYTES + 1)})
    assert error.reason == "meta: must serialize to at most 16384 bytes of JSON, got 16385 bytes"


def test_meta_counts_its_serialized_form_not_the_record_text() -> None:
    # Written with escapes the record is longer than meta serialized by orjson: still valid.
    meta = _meta_of_size(MAX_META_BYTES)
    escaped = orjson.dumps(meta).replace(b"m", b"\\u006d")
    raw = orjson.dumps(minimal_event())[:-1] + b',"meta":' + escaped + b"}"
    assert decode_event(raw)["meta"] == meta


def test_small_records_cannot_hide_an_oversized_meta() -> None:
    """decode_event skips measuring meta in records too small to break the limit: the worst
    expansion orjson can make of JSON text is a float like 1e15, 4.5 times its length."""
    raw = orjson.dumps(minimal_event())[:-1] + b',"meta":{"n":[]}}'
    numbers = (_META_FITS_RECORD_BYTES - len(raw)) // len(b"1e15,")
    raw = raw.replace(b"[]", b"[" + b",".join([b"1e15"] * numbers) + b"]")
    assert len(raw) <= _META_FITS_RECORD_BYTES
    meta = decode_event(raw)["meta"]
    assert len(orjson.dumps(meta)) <= MAX_META_BYTES
    validate_event(orjson.loads(raw))


def test_meta_must_hold_json_values_under_string_keys() -> None:
    for meta in ({1: "a"}, {"tags": {"a", "b"}}):
        with pytest.raises(EventValidationError) as caught:
            validate_event({**minimal_event(), "meta": meta})
        assert caught.value.path == "meta"
        assert caught.value.rule.startswith("must hold only JSON values under string keys (")


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_duration_must_be_finite(value: float) -> None:
    with pytest.raises(EventValidationError) as caught:
        validate_event({**minimal_event(), "duration_ms": value})
    assert caught.value.reason == f"duration_ms: must be a finite number >= 0, got {value!r}"


def test_integer_fields_reject_numbers_written_with_a_fraction() -> None:
    for field, value in (("retry_count", 3.0), ("schema_version", 1.0)):
        error = rejection({**minimal_event(), field: value})
        assert error.path == field


# --- which error wins when several rules are broken ------------------------------------------


def test_another_schema_version_is_reported_before_its_fields() -> None:
    event = {**minimal_event(), "schema_version": 2, "trace_id": "t"}
    del event["level"]
    assert rejection(event).reason == "schema_version: must be the integer 1, got 2"


def test_an_unknown_field_is_reported_before_missing_or_bad_fields() -> None:
    event = {**minimal_event(), "duration_ms": -1, "trace_id": "t"}
    assert rejection(event).path == "trace_id"
    del event["message"]
    assert rejection(event).path == "trace_id"


def test_a_missing_field_is_reported_before_bad_values_in_contract_order() -> None:
    event = {**minimal_event(), "event_id": "", "duration_ms": -1}
    del event["message"]
    del event["bot_id"]
    assert rejection(event).path == "bot_id"


def test_fields_are_checked_in_contract_order_required_ones_first() -> None:
    broken = {
        "event_id": "",
        "timestamp": "now",
        "bot_id": "-",
        "level": "loud",
        "message": 1,
        "job_id": 1,
        "status": "gone",
        "duration_ms": -1,
        "retry_count": -1,
        "error": 1,
        "meta": 1,
        "host": 1,
        "env": 1,
    }
    event = full_event()
    required = [name for name in FIELDS if name in REQUIRED_FIELDS and name in broken]
    optional = [name for name in FIELDS if name not in REQUIRED_FIELDS and name in broken]
    order = required + optional
    assert order[:6] == ["event_id", "timestamp", "bot_id", "level", "message", "job_id"]
    event.update(broken)
    for name in order:
        assert rejection(event).path == name
        event[name] = full_event()[name]
    validate_event(event)


# --- validate_event on values JSON cannot carry ----------------------------------------------


class Level(enum.StrEnum):
    ERROR = "error"


def test_validate_accepts_any_mapping_and_str_subclasses() -> None:
    event = {**full_event(), "level": Level.ERROR}
    validate_event(MappingProxyType(event))
    assert decode_event(orjson.dumps(event))["level"] == "error"


@pytest.mark.parametrize("value", [None, [("event_id", "x")], "{}", b"{}"])
def test_validate_rejects_what_is_not_a_mapping(value: Any) -> None:
    with pytest.raises(EventValidationError) as caught:
        validate_event(value)
    assert (caught.value.path, caught.value.rule) == ("", "must be a JSON object")


def test_validate_does_not_change_the_event() -> None:
    event = full_event()
    validate_event(event)
    assert event == full_event()


def test_many_distinct_bot_ids_stay_valid_and_bad_ones_stay_bad() -> None:
    for n in range(5000):
        validate_event({**minimal_event(), "bot_id": f"bot-{n}"})
    assert rejection({**minimal_event(), "bot_id": "bot 1"}).path == "bot_id"
    validate_event({**minimal_event(), "bot_id": "bot-1"})


# --- the error object itself -----------------------------------------------------------------


def test_got_stays_short_for_huge_values() -> None:
    error = rejection({**minimal_event(), "job_id": "j" * 100_000})
    assert error.got is not None
    assert len(error.got) <= 80
    error = rejection({**minimal_event(), "customer": {"k": ["v" * 1000] * 1000}})
    assert error.got is not None
    assert len(error.got) <= 80
    with pytest.raises(EventValidationError) as caught:
        validate_event({**minimal_event(), "retry_count": -(10**5000)})
    assert caught.value.got == "<int of 16610 bits>"


def test_errors_survive_pickling_with_their_fields() -> None:
    error = rejection({**minimal_event(), "duration_ms": -3})
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is EventValidationError
    assert (copy.path, copy.rule, copy.got, copy.reason) == (
        error.path,
        error.rule,
        error.got,
        error.reason,
    )
