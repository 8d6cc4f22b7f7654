"""The timestamp rule and ``timestamp_ms``, checked against calendar arithmetic done another way."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from schemas import (
    TIMESTAMP_RE,
    EventValidationError,
    decode_event,
    event_json_schema,
    timestamp_ms,
)
from schemas.event import _rfc3339_ms

TIMESTAMP_ORACLE = Draft202012Validator(event_json_schema()["properties"]["timestamp"])
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DAY_MS = 86_400_000
GREGORIAN_CYCLE_DAYS = 146_097  # the calendar repeats every 400 years
VALID = {
    "event_id": "e-1",
    "timestamp": "2026-11-23T10:00:00Z",
    "bot_id": "bot-1",
    "level": "info",
    "message": "ok",
    "schema_version": 1,
}


def days_in_month(year: int, month: int) -> int:
    return 29 if month == 2 and calendar.isleap(year) else calendar.mdays[month]


def valid_by_reference(text: str) -> bool:
    """The rule written as slicing and range checks, for strings of the generated shape."""
    date, _, rest = text.partition("T")
    if len(date) != 10 or len(rest) < 9 or date[4] != "-" or date[7] != "-":
        return False
    year, month, day = int(date[:4]), int(date[5:7]), int(date[8:10])
    if not (1 <= month <= 12 and 1 <= day <= days_in_month(year, month)):
        return False
    hour, minute, second = int(rest[0:2]), int(rest[3:5]), int(rest[6:8])
    if rest[2] != ":" or rest[5] != ":" or not (hour < 24 and minute < 60 and second < 60):
        return False
    tail = rest[8:]
    if tail.startswith("."):
        digits = len(tail) - len(tail[1:].lstrip("0123456789")) - 1
        if not 1 <= digits <= 9:
            return False
        tail = tail[1 + digits :]
    if tail == "Z":
        return True
    if len(tail) != 6 or tail[0] not in "+-" or tail[3] != ":":
        return False
    offset_hours, offset_minutes = int(tail[1:3]), int(tail[4:6])
    return offset_minutes < 60 and offset_hours * 60 + offset_minutes <= 18 * 60


two = st.integers(0, 99).map("{:02d}".format)
timestamp_shapes = st.builds(
    "{}-{}-{}{}{}:{}:{}{}{}".format,
    st.integers(0, 9999).map("{:04d}".format),
    st.integers(0, 14).map("{:02d}".format),
    st.integers(0, 32).map("{:02d}".format),
    st.sampled_from(["T", "T", "T", "t", " "]),
    st.integers(0, 25).map("{:02d}".format),
    st.integers(0, 61).map("{:02d}".format),
    st.integers(0, 61).map("{:02d}".format),
    st.one_of(st.just(""), st.text("0123456789", max_size=11).map(".{}".format)),
    st.one_of(
        st.sampled_from(["Z", "Z", "z", ""]),
        st.builds(
            "{}{}:{}".format, st.sampled_from("+-"), st.integers(0, 24).map("{:02d}".format), two
        ),
        st.builds("{}{}{}".format, st.sampled_from("+-"), two, two),
    ),
)


@settings(max_examples=500, deadline=None)
@given(timestamp_shapes)
def test_the_pattern_accepts_exactly_the_rule(text: str) -> None:
    expected = valid_by_reference(text)
    assert (TIMESTAMP_RE.fullmatch(text) is not None) == expected
    assert TIMESTAMP_ORACLE.is_valid(text) == expected


@pytest.mark.parametrize(
    "year", [0, 1, 4, 100, 200, 400, 1600, 1900, 1970, 2000, 2023, 2024, 2100, 2400, 9996, 9999]
)
def test_every_day_of_every_month_across_leap_year_rules(year: int) -> None:
    for month in range(14):
        for day in range(33):
            text = f"{year:04d}-{month:02d}-{day:02d}T00:00:00Z"
            expected = 1 <= month <= 12 and 1 <= day <= days_in_month(year, month)
            assert (TIMESTAMP_RE.fullmatch(text) is not None) == expected, text


offsets = st.integers(-18 * 60, 18 * 60).map(lambda m: timezone(timedelta(minutes=m)))


def rfc3339(moment: datetime, fraction_digits: int) -> str:
    text = (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )
    if fraction_digits:
        text += "." + f"{moment.microsecond:06d}000"[:fraction_digits]
    offset = moment.utcoffset() or timedelta(0)
    if moment.tzinfo is UTC:
        return text + "Z"
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(offset) // timedelta(minutes=1)
    return f"{text}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


@settings(max_examples=500, deadline=None)
@given(
    st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=offsets | st.just(UTC),
    ),
    st.integers(0, 9),
)
def test_timestamp_ms_matches_datetime_arithmetic(moment: datetime, fraction_digits: int) -> None:
    text = rfc3339(moment, fraction_digits)
    assert TIMESTAMP_RE.fullmatch(text), text
    dropped = 10 ** max(0, 6 - fraction_digits)  # microsecond digits the text leaves out
    kept = moment.microsecond // dropped * dropped
    expected = (moment.replace(microsecond=kept) - EPOCH) // timedelta(milliseconds=1)
    assert timestamp_ms(text) == expected
    assert _rfc3339_ms(text) == expected


@settings(max_examples=200, deadline=None)
@given(
    st.datetimes(min_value=datetime(400, 1, 1), max_value=datetime(400, 12, 31), timezones=offsets),
    st.integers(0, 9),
)
def test_year_zero_is_one_gregorian_cycle_before_year_400(moment: datetime, digits: int) -> None:
    text = rfc3339(moment, digits)
    year_zero = "0000" + text[4:]
    assert TIMESTAMP_RE.fullmatch(year_zero)
    cycle_ms = GREGORIAN_CYCLE_DAYS * DAY_MS
    assert timestamp_ms(year_zero) == timestamp_ms(text) - cycle_ms


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1970-01-01T00:00:00Z", 0),
        ("1970-01-01T00:00:00.001Z", 1),
        ("1970-01-01T00:00:00.0019Z", 1),
        ("1970-01-01T00:00:00.999999999Z", 999),
        ("1969-12-31T23:59:59.999Z", -1),
        ("1970-01-01T02:00:00+02:00", 0),
        ("1969-12-31T22:00:00-02:00", 0),
        ("1970-01-01T00:00:00-00:00", 0),
        ("2026-11-23T10:00:00.123Z", 1_795_428_000_123),
        ("2026-11-23T12:00:00.5+02:00", 1_795_428_000_500),
        ("0000-01-01T00:00:00Z", -62_167_219_200_000),
        ("0000-01-01T00:00:00+18:00", -62_167_284_000_000),
        ("9999-12-31T23:59:59.999-18:00", 253_402_365_599_999),
    ],
)
def test_timestamp_ms_examples(text: str, expected: int) -> None:
    assert TIMESTAMP_RE.fullmatch(text)
    assert timestamp_ms(text) == expected


@pytest.mark.parametrize("text", ["2026-11-23T10:00:00", "yesterday", "", "0000-13-01T00:00:00Z"])
def test_timestamp_ms_refuses_what_is_not_a_timestamp_with_offset(text: str) -> None:
    with pytest.raises(ValueError, match=r"\S"):
        timestamp_ms(text)


def test_cached_halves_of_other_timestamps_combine_only_into_valid_ones() -> None:
    """Checked and converted by halves seen before (``schemas.event``'s caches): a known
    date-time with a known fraction and offset is valid, a known half beside an unknown
    one is still checked."""
    for text in ("2026-11-23T10:00:00.123Z", "2026-11-24T08:30:15+02:00"):
        timestamp_ms(text)
        decode_event(orjson.dumps({**VALID, "timestamp": text}))
    mixed = "2026-11-23T10:00:00+02:00"
    assert timestamp_ms(mixed) == timestamp_ms("2026-11-23T08:00:00Z")
    assert timestamp_ms("2026-11-24T08:30:15.123Z") == timestamp_ms(mixed) + 88_215_123
    for broken in ("2026-11-23T10:00:00.123z", "2026-11-23T10:00:00+02:0", "2026-11-23t10:00:00Z"):
        with pytest.raises(EventValidationError, match="timestamp"):
            decode_event(orjson.dumps({**VALID, "timestamp": broken}))
