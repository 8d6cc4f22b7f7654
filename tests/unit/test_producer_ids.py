import re
import uuid

from producers.ids import Uuid7, format_uuid, uuid7

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def test_format_version_and_variant() -> None:
    value = uuid7()
    assert UUID_RE.fullmatch(value)
    parsed = uuid.UUID(value)
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122


def test_timestamp_is_the_leading_48_bits() -> None:
    now_ns = 1_790_000_000_123_456_789
    value, ms = Uuid7().next(now_ns)
    assert ms == now_ns // 1_000_000
    assert int(value.replace("-", "")[:12], 16) == ms


def test_strictly_increasing_within_one_millisecond_and_across() -> None:
    source = Uuid7()
    same_ms = [source.next(1_790_000_000_000_000_000)[0] for _ in range(1000)]
    later = [source.next(1_790_000_000_005_000_000)[0] for _ in range(10)]
    ids = same_ms + later
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_clock_going_back_does_not_break_order_and_times_follow_the_clock() -> None:
    source = Uuid7()
    first, first_ms = source.next(1_790_000_000_010_000_000)
    second, second_ms = source.next(1_790_000_000_000_000_000)
    third, third_ms = source.next(1_790_000_000_001_000_000)
    assert first < second < third
    assert (first_ms, second_ms, third_ms) == (
        1_790_000_000_010,
        1_790_000_000_000,
        1_790_000_000_001,
    )


def test_format_uuid_matches_stdlib() -> None:
    value = 0x0123456789ABCDEF0123456789ABCDEF
    assert format_uuid(value) == str(uuid.UUID(int=value))
