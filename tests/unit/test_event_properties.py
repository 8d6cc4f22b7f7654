"""Generated events, valid and broken in every way, judged by the checker and by jsonschema.

jsonschema's Draft202012Validator on the checked-in ``event.schema.json`` is an independent
oracle: for every record the schema can judge, ``decode_event``, ``validate_event`` and the
oracle must agree. The data stays inside what the schema can state: jsonschema's ``pattern``
uses Python's ``re.search``, whose ``$`` also matches before a final newline (ECMAScript's does
not), so pattern-checked strings never end in one here; JSON Schema counts ``1.0`` as an
integer, so integer fields never get integral floats; the byte limits of ``message`` and
``meta`` are out of the schema's reach. Those rules have their own tests in
test_event_contract.py.
"""

from __future__ import annotations

import calendar
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from schemas import (
    BOT_ID_RE,
    ERROR_FIELDS,
    FIELDS,
    LEVELS,
    MAX_RETRY_COUNT,
    REQUIRED_FIELDS,
    STATUSES,
    EventError,
    decode_event,
    event_json_schema,
    validate_event,
)

ORACLE = Draft202012Validator(event_json_schema())
SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- valid events ----------------------------------------------------------------------------


@st.composite
def timestamps(draw: st.DrawFn) -> str:
    year = draw(st.integers(0, 9999))
    month = draw(st.integers(1, 12))
    days = 29 if month == 2 and calendar.isleap(year) else calendar.mdays[month]
    day = draw(st.integers(1, days))
    clock = draw(st.tuples(st.integers(0, 23), st.integers(0, 59), st.integers(0, 59)))
    text = f"{year:04d}-{month:02d}-{day:02d}T{clock[0]:02d}:{clock[1]:02d}:{clock[2]:02d}"
    if draw(st.booleans()):
        text += "." + draw(st.text("0123456789", min_size=1, max_size=9))
    offset = draw(st.one_of(st.just("Z"), st.integers(-18 * 60, 18 * 60), st.just("-00:00")))
    if isinstance(offset, str):
        return text + offset
    hours, minutes = divmod(abs(offset), 60)
    return f"{text}{'-' if offset < 0 else '+'}{hours:02d}:{minutes:02d}"


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
non_integral_floats = st.floats(allow_nan=False, allow_infinity=False).filter(
    lambda x: not x.is_integer()
)

REQUIRED = {
    "event_id": st.text(min_size=1, max_size=128),
    "timestamp": timestamps(),
    "bot_id": st.from_regex(BOT_ID_RE, fullmatch=True),
    "level": st.sampled_from(LEVELS),
    "message": st.one_of(st.text(max_size=200), st.just("x" * 32768)),
    "schema_version": st.just(1),
}
OPTIONAL = {
    "job_id": st.text(max_size=256),
    "status": st.sampled_from(STATUSES),
    "duration_ms": st.one_of(
        st.integers(0, 2**64 - 1), st.floats(min_value=0, allow_infinity=False)
    ),
    "retry_count": st.integers(0, MAX_RETRY_COUNT),
    "error": st.fixed_dictionaries({}, optional=dict.fromkeys(ERROR_FIELDS, st.text())),
    "meta": st.dictionaries(st.text(max_size=8), json_values, max_size=5),
    "host": st.text(max_size=30),
    "env": st.text(max_size=10),
}
valid_events = st.fixed_dictionaries(REQUIRED, optional=OPTIONAL)

# --- broken events: each kind of breakage ----------------------------------------------------

STRING_FIELDS = ("event_id", "timestamp", "bot_id", "job_id", "message", "host", "env")
ANY_VALUE = st.one_of(json_scalars, st.lists(json_scalars, max_size=2), st.just({"k": "v"}))


def wrong_type(field: str) -> st.SearchStrategy[Any]:
    if field in STRING_FIELDS or field in {"level", "status"}:
        return ANY_VALUE.filter(lambda v: not isinstance(v, str))
    if field == "duration_ms":
        return ANY_VALUE.filter(lambda v: isinstance(v, bool) or not isinstance(v, int | float))
    if field in {"retry_count", "schema_version"}:
        return st.one_of(non_integral_floats, ANY_VALUE).filter(
            lambda v: type(v) is not int and not (type(v) is float and v.is_integer())
        )
    return ANY_VALUE.filter(lambda v: not isinstance(v, dict))  # error, meta


bad_timestamps = st.one_of(
    timestamps().map(lambda t: t[:19]),  # no offset
    timestamps().map(lambda t: t.replace("T", " ", 1)),
    timestamps().map(lambda t: t.replace("T", "t", 1)),
    timestamps().filter(lambda t: t.endswith("Z")).map(lambda t: t[:-1] + "z"),
    timestamps().map(lambda t: t[:19] + ".1234567890Z"),
    timestamps().map(lambda t: t[:19] + ".Z"),
    timestamps().map(lambda t: t[:19] + "+0200"),
    st.sampled_from(["+18:01", "-18:30", "+19:00", "+24:00", "-99:00", "+02:60"]).map(
        lambda off: "2026-11-23T10:00:00" + off
    ),
    st.tuples(st.integers(13, 99), st.integers(1, 28)).map(lambda md: f"2026-{md[0]}-{md[1]:02d}"),
    st.sampled_from(
        [
            "2026-00-10T10:00:00Z",
            "2026-01-00T10:00:00Z",
            "2026-01-32T10:00:00Z",
            "2026-04-31T10:00:00Z",
            "2026-02-29T10:00:00Z",
            "2100-02-29T10:00:00Z",
            "1900-02-29T10:00:00Z",
            "2026-02-30T10:00:00Z",
            "2026-11-23T24:00:00Z",
            "2026-11-23T10:60:00Z",
            "2026-11-23T10:00:60Z",
            "2026-11-23",
            "10:00:00Z",
            "20261123T100000Z",
            "",
        ]
    ),
    # 2025 is not a leap year: in every month the first day past its length is invalid.
    st.integers(1, 12).flatmap(
        lambda m: st.integers(calendar.mdays[m] + 1, 39).map(
            lambda d: f"2025-{m:02d}-{d:02d}T10:00:00Z"
        )
    ),
)
bad_bot_ids = st.one_of(
    st.text(max_size=140),
    st.text("abc-._:", min_size=129, max_size=140),
    st.sampled_from(["-bot", ".bot", "_bot", ":bot", "bot id", "bot/1", "bötchen", ""]),
).filter(lambda s: BOT_ID_RE.fullmatch(s) is None and not s.endswith("\n"))
unknown_names = st.text(min_size=0, max_size=12).filter(lambda s: s not in FIELDS)


def _set(field: str, values: st.SearchStrategy[Any]) -> Any:
    return lambda draw, event: event.__setitem__(field, draw(values))


def _drop(field: str) -> Any:
    return lambda draw, event: event.pop(field)


def _unknown_error_field(draw: st.DrawFn, event: dict[str, Any]) -> None:
    name = draw(st.text(max_size=8).filter(lambda s: s not in ERROR_FIELDS))
    event["error"] = {**event.get("error", {}), name: draw(st.text(max_size=5))}


# name -> how to break a valid event; each gets its own examples (see test_broken_events_...).
BREAKAGES: dict[str, Any] = {
    **{f"wrong type: {field}": _set(field, wrong_type(field)) for field in FIELDS},
    **{f"missing: {field}": _drop(field) for field in REQUIRED_FIELDS},
    "unknown field": lambda draw, e: e.__setitem__(draw(unknown_names), draw(ANY_VALUE)),
    "unknown error field": _unknown_error_field,
    "negative duration_ms": _set(
        "duration_ms",
        st.one_of(
            st.integers(-(2**63), -1),
            st.floats(max_value=0, exclude_max=True, allow_infinity=False),
        ),
    ),
    "negative retry_count": _set("retry_count", st.integers(-(2**63), -1)),
    "retry_count beyond a long": _set("retry_count", st.integers(MAX_RETRY_COUNT + 1, 2**64 - 1)),
    "other schema_version": _set(
        "schema_version", st.integers(-(2**63), 2**64 - 1).filter(lambda v: v != 1)
    ),
    "empty event_id": _set("event_id", st.just("")),
    "long event_id": _set("event_id", st.text(min_size=129, max_size=140)),
    "long job_id": _set("job_id", st.text(min_size=257, max_size=270)),
    "bad timestamp": _set("timestamp", bad_timestamps),
    "bad bot_id": _set("bot_id", bad_bot_ids),
    "bad level": _set("level", st.text(max_size=12).filter(lambda s: s not in LEVELS)),
    "bad status": _set("status", st.text(max_size=12).filter(lambda s: s not in STATUSES)),
    "oversize message": _set("message", st.integers(32769, 33000).map(lambda n: "x" * n)),
}


# --- verdicts --------------------------------------------------------------------------------


def verdicts(event: dict[str, Any]) -> tuple[bool, bool, bool]:
    """(decode_event, validate_event, oracle) verdicts on the record of ``event``."""
    raw = orjson.dumps(event)
    try:
        decode_event(raw)
        decoded = True
    except EventError:
        decoded = False
    try:
        validate_event(event)
        validated = True
    except EventError:
        validated = False
    return decoded, validated, ORACLE.is_valid(orjson.loads(raw))


@SETTINGS
@given(valid_events)
def test_valid_events_pass_all_three(event: dict[str, Any]) -> None:
    assert verdicts(event) == (True, True, True)
    assert decode_event(orjson.dumps(event)) == orjson.loads(orjson.dumps(event))


@pytest.mark.parametrize("breakage", BREAKAGES)
@settings(SETTINGS, max_examples=60)
@given(data=st.data())
def test_broken_events_fail_all_three(breakage: str, data: st.DataObject) -> None:
    event = dict(data.draw(valid_events))
    BREAKAGES[breakage](data.draw, event)
    assert verdicts(event) == (False, False, False)


@SETTINGS
@given(
    st.fixed_dictionaries(
        {},
        optional={
            **{name: st.one_of(REQUIRED[name], ANY_VALUE) for name in REQUIRED},
            **{name: st.one_of(OPTIONAL[name], ANY_VALUE) for name in OPTIONAL},
            "timestamp": st.one_of(timestamps(), bad_timestamps, st.text(max_size=30)),
        },
    ).filter(
        lambda e: (
            not any(
                isinstance(e.get(name), str) and e[name].endswith("\n")
                for name in ("timestamp", "bot_id")
            )
            and not any(
                isinstance(e.get(name), float) and e[name].is_integer()
                for name in ("retry_count", "schema_version")
            )
        )
    )
)
def test_any_mix_of_fields_gets_the_same_verdict(event: dict[str, Any]) -> None:
    decoded, validated, oracle = verdicts(event)
    assert decoded == validated == oracle


@pytest.mark.parametrize("field", ["timestamp", "bot_id"])
def test_a_trailing_newline_is_rejected_as_ecmascript_reads_the_pattern(field: str) -> None:
    """Where jsonschema's Python regex would accept the value (see the module docstring)."""
    event = orjson.loads(
        b'{"event_id":"e","timestamp":"2026-11-23T10:00:00Z","bot_id":"b","level":"info",'
        b'"message":"m","schema_version":1}'
    )
    event[field] += "\n"
    assert verdicts(event)[:2] == (False, False)


# --- the bound decode_event relies on to skip measuring meta ---------------------------------

number_spellings = st.one_of(
    st.integers(-(2**63), 2**64 - 1).map(str),
    st.tuples(st.integers(-9, 9), st.integers(-330, 310)).map(lambda p: f"{p[0]}e{p[1]}"),
    st.tuples(st.integers(0, 99), st.integers(0, 99), st.integers(-30, 30)).map(
        lambda p: f"{p[0]}.{p[1]}E{p[2]}"
    ),
)


def json_text(depth: int = 2) -> st.SearchStrategy[str]:
    leaves = st.one_of(
        number_spellings,
        st.sampled_from(["true", "false", "null", '""', '"a"', '"\\u0041"', '"\\n"']),
    )
    if depth == 0:
        return leaves
    inner = json_text(depth - 1)
    return st.one_of(
        leaves,
        st.lists(inner, max_size=6).map(lambda items: "[" + ",".join(items) + "]"),
        st.lists(inner, max_size=4).map(
            lambda items: "{" + ",".join(f'"k{i}":{v}' for i, v in enumerate(items)) + "}"
        ),
    )


@SETTINGS
@given(json_text())
def test_orjson_never_writes_json_more_than_4_5_times_longer_than_it_read(text: str) -> None:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        assume(False)  # e.g. 1e400: not a finite double
    assert len(orjson.dumps(value)) * 2 <= len(text.encode()) * 9
