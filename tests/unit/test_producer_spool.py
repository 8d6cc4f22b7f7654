from pathlib import Path

import pytest

from producers.spool import Record, Spool, SpoolLockedError, encode_frame


def records(n: int, start: int = 0, size: int = 10) -> list[Record]:
    return [Record("t", b"bot", f"{i:0{size}d}".encode()) for i in range(start, start + n)]


def values(items: list[Record]) -> list[bytes]:
    return [r.value for r in items]


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    s = Spool(tmp_path / "s", max_bytes=1 << 20, segment_bytes=1024)
    s.open()
    yield s
    s.close()


def test_append_then_read_in_order_across_segments(spool: Spool) -> None:
    assert spool.append(records(100)) == 100
    assert len(list(spool.directory.glob("*.seg"))) > 1
    got = spool.read(1000)
    assert values(got) == values(records(100))
    assert got[0] == Record("t", b"bot", b"0000000000")


def test_commit_advances_and_deletes_sent_segments(spool: Spool) -> None:
    spool.append(records(100))
    first = spool.read(40)
    spool.commit(len(first))
    assert spool.records == 60
    assert values(spool.read(1000)) == values(records(60, start=40))
    spool.commit(60)
    assert spool.records == 0
    assert spool.size_bytes == 0
    assert list(spool.directory.glob("*.seg")) == []


def test_uncommitted_records_are_read_again(spool: Spool) -> None:
    spool.append(records(5))
    spool.read(3)
    assert values(spool.read(10)) == values(records(5))


def test_bounded_refuses_what_does_not_fit(tmp_path: Path) -> None:
    frame = len(encode_frame(records(1)[0]))
    spool = Spool(tmp_path / "s", max_bytes=frame * 10)
    spool.open()
    assert spool.append(records(7)) == 7
    assert spool.append(records(7, start=7)) == 3
    assert spool.size_bytes == frame * 10
    assert values(spool.read(100)) == values(records(10))
    spool.commit(5)
    assert spool.append(records(7, start=10)) == 5
    spool.close()


def test_survives_reopen_with_cursor(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s", max_bytes=1 << 20, segment_bytes=512)
    spool.open()
    spool.append(records(50))
    spool.commit(len(spool.read(20)))
    spool.close()
    again = Spool(tmp_path / "s", max_bytes=1 << 20, segment_bytes=512)
    again.open()
    assert again.records == 30
    assert values(again.read(100)) == values(records(30, start=20))
    again.append(records(1, start=50))
    assert values(again.read(100))[-1] == records(1, start=50)[0].value
    again.close()


def test_torn_tail_is_cut_and_counted(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s", max_bytes=1 << 20)
    spool.open()
    spool.append(records(10))
    spool.close()
    segment = next((tmp_path / "s").glob("*.seg"))
    data = segment.read_bytes()
    segment.write_bytes(data + encode_frame(records(1, start=10)[0])[:-3])  # killed mid-write
    again = Spool(tmp_path / "s", max_bytes=1 << 20)
    again.open()
    assert again.records == 10
    assert again.corrupt_bytes > 0
    assert segment.stat().st_size == len(data)
    again.append(records(1, start=11))
    assert values(again.read(100)) == values(records(10)) + values(records(1, start=11))
    again.close()


def test_flipped_byte_ends_the_segment(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s", max_bytes=1 << 20)
    spool.open()
    spool.append(records(10))
    spool.close()
    segment = next((tmp_path / "s").glob("*.seg"))
    data = bytearray(segment.read_bytes())
    frame = len(encode_frame(records(1)[0]))
    data[frame * 5 + 14] ^= 0xFF  # inside the 6th record's payload
    segment.write_bytes(bytes(data))
    again = Spool(tmp_path / "s", max_bytes=1 << 20)
    again.open()
    assert values(again.read(100)) == values(records(5))
    again.close()


def test_prepend_goes_ahead_of_everything(spool: Spool) -> None:
    spool.append(records(5, start=10))
    spool.commit(len(spool.read(2)))
    spool.prepend(records(3))
    assert values(spool.read(100)) == values(records(3)) + values(records(3, start=12))


def test_one_owner_at_a_time(spool: Spool) -> None:
    other = Spool(spool.directory, max_bytes=1 << 20)
    with pytest.raises(SpoolLockedError):
        other.open()


def unknown_flags(items: list[Record]) -> list[bool]:
    return [r.unknown for r in items]


def test_prepended_records_are_of_unknown_outcome_appended_ones_not(spool: Spool) -> None:
    spool.append(records(3, start=10))
    assert not spool.has_unknown
    spool.prepend(records(2))
    assert spool.has_unknown
    got = spool.read(100)
    assert values(got) == values(records(2)) + values(records(3, start=10))
    assert unknown_flags(got) == [True, True, False, False, False]
    spool.append(records(1, start=13))  # behind everything: known, even in the same segment
    assert unknown_flags(spool.read(100)) == [True, True, False, False, False, False]


def test_unknown_marker_goes_once_those_records_are_committed(spool: Spool) -> None:
    spool.prepend(records(2))
    spool.append(records(2, start=10))
    assert (spool.directory / "unknown").exists()
    spool.read(1)
    spool.commit(1)
    assert spool.has_unknown
    assert unknown_flags(spool.read(100)) == [True, False, False]
    spool.commit(1)
    assert not spool.has_unknown
    assert not (spool.directory / "unknown").exists()
    assert unknown_flags(spool.read(100)) == [False, False]
    spool.prepend(records(1, start=20))  # a new marker covers only the new records
    assert unknown_flags(spool.read(100)) == [True, False, False]


def test_mark_unknown_marks_a_prefix_of_the_last_read(spool: Spool) -> None:
    spool.append(records(6))
    spool.read(100)
    spool.commit(2)  # acknowledged
    spool.mark_unknown(2)  # handed over, no answer
    got = spool.read(100)
    assert values(got) == values(records(4, start=2))
    assert unknown_flags(got) == [True, True, False, False]
    spool.read(100)
    spool.mark_unknown(0)
    assert unknown_flags(spool.read(100)) == [True, True, False, False]


def test_unknown_outcome_survives_reopen(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s", max_bytes=1 << 20, segment_bytes=256)
    spool.open()
    spool.append(records(30))
    spool.read(100)
    spool.mark_unknown(25)  # spans segments
    spool.close()
    again = Spool(tmp_path / "s", max_bytes=1 << 20, segment_bytes=256)
    again.open()
    assert again.has_unknown
    assert unknown_flags(again.read(100)) == [True] * 25 + [False] * 5
    again.close()


def test_a_damaged_unknown_file_means_none_is_unknown(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s", max_bytes=1 << 20)
    spool.open()
    spool.prepend(records(2))
    spool.close()
    (tmp_path / "s" / "unknown").write_bytes(b"{not json")
    again = Spool(tmp_path / "s", max_bytes=1 << 20)
    again.open()
    assert not again.has_unknown
    assert unknown_flags(again.read(100)) == [False, False]
    again.close()


def test_the_spool_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    """It holds events as the bot sent them, secrets included (redaction is at indexing)."""
    made_before = tmp_path / "old"
    made_before.mkdir(mode=0o755)
    for directory in (tmp_path / "new" / "s", made_before):
        s = Spool(directory, max_bytes=1 << 20)
        s.open()
        try:
            s.append(records(3))
            assert directory.stat().st_mode & 0o777 == 0o700
            assert (directory / "lock").stat().st_mode & 0o077 == 0
        finally:
            s.close()
