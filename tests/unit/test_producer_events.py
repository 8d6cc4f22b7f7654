import math
import os
import re
from typing import Any

import orjson
import pytest

from producers.events import EventFactory, error_info
from schemas import MAX_MESSAGE_BYTES, MAX_META_BYTES, decode_event

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


@pytest.fixture
def factory() -> EventFactory:
    return EventFactory("invoice-bot", env="prod", host="host-1")


def test_builds_a_valid_event_with_the_defaults_filled_in(factory: EventFactory) -> None:
    raw = factory.build("info", "invoice sent", meta={"invoice": 42})
    event = decode_event(raw)
    assert event["bot_id"] == "invoice-bot"
    assert event["level"] == "info"
    assert event["message"] == "invoice sent"
    assert event["meta"] == {"invoice": 42}
    assert event["host"] == "host-1"
    assert event["env"] == "prod"
    assert event["schema_version"] == 1
    assert TIMESTAMP.fullmatch(event["timestamp"])
    # The timestamp and the UUIDv7 carry the same millisecond.
    millis = int(event["event_id"].replace("-", "")[:12], 16)
    assert event["timestamp"].endswith(f".{millis % 1000:03d}Z")


def test_all_job_fields(factory: EventFactory) -> None:
    raw = factory.build(
        "error",
        "failed",
        status="failure",
        job_id="job-17",
        duration_ms=12.5,
        retry_count=2,
        error={"type": "KeyError", "message": "x", "stack": "..."},
    )
    event = decode_event(raw)
    assert (event["status"], event["job_id"], event["duration_ms"], event["retry_count"]) == (
        "failure",
        "job-17",
        12.5,
        2,
    )
    assert "meta" not in event


def test_env_left_out_when_empty() -> None:
    event = decode_event(EventFactory("b", env="").build("info", "m"))
    assert "env" not in event


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"level": "fatal"}, "level"),
        ({"status": "bogus"}, "status"),
        ({"duration_ms": "abc"}, "duration_ms"),
        ({"duration_ms": -3}, "duration_ms"),
        ({"duration_ms": math.nan}, "duration_ms"),
        ({"duration_ms": math.inf}, "duration_ms"),
        ({"duration_ms": True}, "duration_ms"),
        ({"retry_count": -1}, "retry_count"),
        ({"retry_count": 1.0}, "retry_count"),
        ({"job_id": "j" * 257}, "job_id"),
        ({"job_id": 17}, "job_id"),
        ({"message": b"bytes"}, "message"),
        ({"error": {"type": "E", "code": "E1"}}, "error.code"),
        ({"error": "boom"}, "error"),
        ({"level": ["info"]}, "level"),  # unhashable: a TypeError before
        ({"duration_ms": 10**400}, "duration_ms"),  # no float holds it
        ({"status": {}}, "status"),
    ],
)
def test_call_site_errors_name_the_field(
    factory: EventFactory, kwargs: dict[str, Any], field: str
) -> None:
    args: dict[str, Any] = {"level": "info", "message": "m"}
    args.update(kwargs)
    level, message = args.pop("level"), args.pop("message")
    with pytest.raises(ValueError, match=rf"^{field}: "):
        factory.build(level, message, **args)


@pytest.mark.parametrize("bot_id", ["", "-starts-with-dash", "has space", "x" * 129, "ok\n"])
def test_invalid_bot_id(bot_id: str) -> None:
    with pytest.raises(ValueError, match=r"^bot_id: "):
        EventFactory(bot_id)


def test_long_message_cut_at_a_utf8_boundary(factory: EventFactory) -> None:
    message = "a" + "é" * MAX_MESSAGE_BYTES  # 2-byte characters, odd offset: the cut splits one
    event = decode_event(factory.build("info", message, meta={"k": "v"}))
    encoded = event["message"].encode()
    assert len(encoded) <= MAX_MESSAGE_BYTES
    assert len(encoded) >= MAX_MESSAGE_BYTES - 1
    assert message.startswith(event["message"])
    assert event["meta"] == {"k": "v", "truncated": True}
    assert list(event)[-3:] == ["host", "env", "schema_version"]


def test_message_at_the_limit_is_kept(factory: EventFactory) -> None:
    message = "m" * MAX_MESSAGE_BYTES
    event = decode_event(factory.build("info", message))
    assert event["message"] == message
    assert "meta" not in event


def test_large_meta_replaced_by_a_truncated_representation(factory: EventFactory) -> None:
    meta = {"rows": ["x" * 100] * 400}
    event = decode_event(factory.build("info", "m", meta=meta))
    assert event["meta"]["truncated"] is True
    assert event["meta"]["original_bytes"] == len(orjson.dumps(meta))
    assert event["meta"]["preview"].startswith('{"rows":["xxx')
    assert len(orjson.dumps(event["meta"])) <= MAX_META_BYTES


def test_unserializable_meta_values_become_text(factory: EventFactory) -> None:
    event = decode_event(factory.build("info", "m", meta={"obj": object(), "n": {1: "a"}}))
    assert event["meta"]["obj"].startswith("<object object")
    assert event["meta"]["n"] == {"1": "a"}


def test_lone_surrogates_do_not_raise(factory: EventFactory) -> None:
    event = decode_event(factory.build("info", "bad \ud800 text", meta={"x": "\udc00", "y": 1}))
    assert event["message"].startswith("bad ")
    assert event["meta"] == {"x": "?", "y": 1}  # the one string replaced, the rest kept


def test_text_from_another_encoding_as_job_id_host_or_env_does_not_raise() -> None:
    """A file name of another encoding as ``os.listdir`` gives it (lone surrogates) is a
    common job id; it raised a TypeError into the bot."""
    name = os.fsdecode(b"report-\xe9t\xe9.csv")
    odd = EventFactory("b", env=os.fsdecode(b"pr\xffod"), host=os.fsdecode(b"h\xfe"))
    event = decode_event(odd.build("info", "m", job_id=name))
    assert (event["job_id"], event["env"], event["host"]) == (
        "report-\\xe9t\\xe9.csv", "pr\\xffod", "h\\xfe",
    )  # fmt: skip
    # Two names that differ only in such bytes stay two job ids.
    other = decode_event(odd.build("info", "m", job_id=os.fsdecode(b"report-\xe8t\xe9.csv")))
    assert other["job_id"] != event["job_id"]


def test_a_duration_beyond_64_bit_integers_is_sent_as_a_float(factory: EventFactory) -> None:
    event = decode_event(factory.build("info", "m", duration_ms=2**70))
    assert event["duration_ms"] == float(2**70)


def test_an_integer_beyond_64_bits_becomes_its_digits_and_the_rest_of_meta_stays(
    factory: EventFactory,
) -> None:
    """One such integer turned the whole meta into one unsearchable string."""
    meta = {"order": 123456789012345678901234, "host": "db1", "ids": [1, -(2**70)], 2**65: "k"}
    event = decode_event(factory.build("info", "m", meta=meta))
    assert event["meta"] == {
        "order": "123456789012345678901234",
        "host": "db1",
        "ids": [1, str(-(2**70))],
        str(2**65): "k",
    }
    cycle: dict[str, object] = {}
    cycle["self"] = cycle
    event = decode_event(factory.build("info", "m", meta={"cycle": cycle}))
    assert event["meta"]["truncated"] is True  # what cannot be mended goes whole, as text
    deep: list[object] = []
    for _ in range(2000):  # beyond orjson's depth, and Python's recursion limit
        deep = [deep]
    event = decode_event(factory.build("info", "m", meta={"deep": deep}))
    assert event["meta"]["truncated"] is True


def test_error_info_has_type_message_and_stack() -> None:
    try:
        raise KeyError("missing")
    except KeyError as exc:
        info = error_info(exc)
    assert info["type"] == "KeyError"
    assert info["message"] == "'missing'"
    assert "raise KeyError" in info["stack"]


def test_an_error_object_given_is_text_and_cut_like_error_info(factory: EventFactory) -> None:
    error = {"type": "Timeout", "message": "m" * 20_000, "stack": "s" * 9 + "t" * 30_000}
    event = decode_event(factory.build("error", "failed", error=error))  # the contract's check
    assert event["error"]["type"] == "Timeout"
    assert event["error"]["message"] == "m" * 8 * 1024
    assert event["error"]["stack"] == "t" * 16 * 1024  # the end of a stack says where
    event = decode_event(factory.build("error", "failed", error={"type": 42}))
    assert event["error"] == {"type": "42"}
