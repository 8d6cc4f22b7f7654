"""Fetched aiokafka records as the processor's ``Record``s."""

from __future__ import annotations

from aiokafka.structs import ConsumerRecord

from streams.app import to_records
from streams.processor import Record


def consumer_record(offset: int, headers: tuple[tuple[str, object], ...]) -> ConsumerRecord:
    return ConsumerRecord(
        "events", 4, offset, 1_795_428_000_000, 0, b"bot", b"{}", None, 3, 2, headers
    )


def test_fields_carry_over_and_header_values_become_bytes() -> None:
    fetched = [
        consumer_record(7, (("trace", b"t1"),)),
        consumer_record(8, ()),
        consumer_record(9, (("n", 5),)),
        consumer_record(10, (("null", None),)),
    ]
    records = to_records(fetched)
    assert records == [
        Record("events", 4, 7, 1_795_428_000_000, b"bot", b"{}", [("trace", b"t1")]),
        Record("events", 4, 8, 1_795_428_000_000, b"bot", b"{}", []),
        Record("events", 4, 9, 1_795_428_000_000, b"bot", b"{}", [("n", b"5")]),
        Record("events", 4, 10, 1_795_428_000_000, b"bot", b"{}", [("null", b"")]),
    ]
    assert all(type(r) is Record for r in records)
    assert records[0].timestamp_ms == 1_795_428_000_000


def test_a_record_without_a_timestamp_gets_zero() -> None:
    fetched = consumer_record(1, ())
    fetched.timestamp = None
    assert to_records([fetched])[0].timestamp_ms == 0
