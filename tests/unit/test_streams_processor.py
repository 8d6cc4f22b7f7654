"""BatchProcessor with in-memory doubles: the table, the Kafka outputs and the sink."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from types import EllipsisType
from typing import Any

import orjson
import pytest

from schemas import timestamp_ms
from schemas.sink import Rejected, SinkRecord, SinkResult
from sinks.discard import DiscardSink
from streams import dlq
from streams import processor as processor_module
from streams.config import StreamsConfig
from streams.metrics import WorkerMetrics
from streams.processor import BatchProcessor, DeadLetter, OffsetGap, Record, in_log_order
from streams.windows import rfc3339

T0 = 1_795_428_000_000  # 2026-11-23T10:00:00Z
W = 60_000
TOPIC = "events"


class DictTable:
    """``StateTable`` over a dict; remembers the order of writes."""

    def __init__(self) -> None:
        self.data: dict[tuple[int, str], bytes] = {}
        self.writes: list[tuple[int, str]] = []

    def load(self, partition: int, key: str) -> bytes | None:
        return self.data.get((partition, key))

    def save(self, entries: Sequence[tuple[int, str, bytes | None]]) -> None:
        for partition, key, value in entries:
            if value is None:
                self.data.pop((partition, key), None)
            else:
                self.data[(partition, key)] = value
            self.writes.append((partition, key))

    def scan(self, partition: int, prefix: str) -> list[tuple[str, bytes]]:
        return [
            (k, v) for (p, k), v in self.data.items() if p == partition and k.startswith(prefix)
        ]


class RecordingOutputs:
    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []
        self.windows: list[dict[str, Any]] = []
        self.alert_records: list[dict[str, Any]] = []

    async def dead_letters(self, letters: list[DeadLetter]) -> None:
        self.letters.extend(letters)

    async def stats(self, windows: list[dict[str, Any]]) -> None:
        self.windows.extend(windows)

    async def alerts(self, records: list[dict[str, Any]]) -> None:
        self.alert_records.extend(records)


class RejectingSink(DiscardSink):
    """Refuses the events whose message is ``reject me``."""

    async def write_events(self, records: list[SinkRecord]) -> SinkResult:
        await super().write_events(records)
        return SinkResult(
            [
                Rejected(r, "mapper_parsing_exception")
                for r in records
                if r.event["message"] == "reject me"
            ]
        )


class Clock:
    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def event(bot: str, ts: int, level: str = "info", **fields: Any) -> bytes:
    body = {
        "event_id": f"{bot}-{ts}-{level}-{fields.get('status', '')}",
        "timestamp": rfc3339(ts),
        "bot_id": bot,
        "level": level,
        "message": fields.pop("message", "step done"),
        "schema_version": 1,
        **fields,
    }
    return orjson.dumps(body)


def _bot_key_of(value: bytes | None) -> bytes | None:
    try:
        bot_id = orjson.loads(value or b"")["bot_id"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return b"b"
    return bot_id.encode() if isinstance(bot_id, str) else b"b"


def _sent_at(value: bytes | None) -> int:
    """A record's Kafka timestamp: when its bot sent it, which is its event time here."""
    try:
        return timestamp_ms(orjson.loads(value or b"")["timestamp"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return T0


class Feed:
    """Records of one partition with growing offsets, sent as their events happened."""

    def __init__(self, partition: int = 0) -> None:
        self.partition = partition
        self.offset = 0

    def __call__(self, value: bytes | None, key: bytes | EllipsisType | None = ...) -> Record:
        """A record of ``value``, keyed by its bot_id (as the contract says) unless ``key``."""
        if key is ...:
            key = _bot_key_of(value)
        sent = _sent_at(value)
        record = Record(TOPIC, self.partition, self.offset, sent, key, value, [("trace", b"t1")])
        self.offset += 1
        return record


def make(
    table: DictTable | None = None,
    outputs: RecordingOutputs | None = None,
    sink: DiscardSink | None = None,
    clock: Clock | None = None,
    retire_after_s: float = 7 * 86400.0,
    log_end: Callable[[int], int | None] | None = None,
) -> tuple[BatchProcessor, DictTable, RecordingOutputs, DiscardSink, WorkerMetrics]:
    table = table if table is not None else DictTable()
    outputs = outputs if outputs is not None else RecordingOutputs()
    sink = sink if sink is not None else DiscardSink()
    metrics = WorkerMetrics()
    config = StreamsConfig(lateness_s=30.0, idle_close_s=120.0, retire_after_s=retire_after_s)
    processor = BatchProcessor(
        config, table, outputs, sink, metrics, now_ms=clock or Clock(), log_end=log_end
    )
    return processor, table, outputs, sink, metrics


def value(metrics: WorkerMetrics, name: str, **labels: str) -> float:
    sample = metrics.registry.get_sample_value(name, labels or None)
    return 0.0 if sample is None else sample


def headers(letter: DeadLetter) -> dict[str, str]:
    return {name: raw.decode() for name, raw in letter.headers}


async def test_valid_events_are_windowed_and_close_when_the_watermark_passes() -> None:
    processor, table, outputs, sink, metrics = make()
    feed = Feed()
    first = [
        feed(event("b", T0 + 1_000)),
        feed(event("b", T0 + 2_000, "error")),
        feed(event("b", T0 + 3_000, status="success", duration_ms=120.0)),
    ]
    await processor.process(first)
    assert outputs.windows == []
    assert value(metrics, "botwatch_open_windows") == 1
    # Watermark = newest event time - 30 s: an event at T0 + 90 s closes [T0, T0 + 60 s).
    await processor.process([feed(event("b", T0 + W + 30_000))])
    [window] = outputs.windows
    assert window["bot_id"] == "b"
    assert window["window_start"] == rfc3339(T0)
    assert (window["count"], window["errors"], window["successes"]) == (3, 1, 1)
    assert window["duration_ms"]["count"] == 1
    assert sink.events == 4
    assert sink.windows == 1
    assert outputs.letters == []
    assert value(metrics, "botwatch_records_in_total") == 4
    assert value(metrics, "botwatch_records_valid_total") == 4
    assert value(metrics, "botwatch_windows_closed_total") == 1
    assert value(metrics, "botwatch_open_windows") == 1
    assert processor.last_offsets() == {0: 3}
    # Bot entries are written before the partition entry of the same batch.
    assert table.writes[-2:] == [(0, "b|0|b"), (0, "p|0")]


class RecordingSink(DiscardSink):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[SinkRecord] = []

    async def write_events(self, records: list[SinkRecord]) -> SinkResult:
        self.records += records
        return await super().write_events(records)


async def test_the_sink_gets_each_valid_record_with_its_source() -> None:
    sink = RecordingSink()
    processor, *_ = make(sink=sink)
    feed = Feed(partition=3)
    feed.offset = 17
    raw = event("b", T0 + 1_000)
    await processor.process([feed(raw), feed(b"{not json")])
    assert sink.records == [
        SinkRecord(raw, orjson.loads(raw), TOPIC, 3, 17, T0 + 1_000, b"b", [("trace", b"t1")])
    ]


async def test_malformed_records_are_dead_lettered_with_stage_and_path() -> None:
    processor, _, outputs, sink, metrics = make()
    feed = Feed()
    not_json = feed(b"{not json")
    no_level = feed(orjson.dumps({**orjson.loads(event("b", T0)), "level": "loud"}))
    empty = feed(None)
    await processor.process([not_json, no_level, empty, feed(event("b", T0))])
    assert sink.events == 1
    by_offset = {int(headers(x)["botwatch.dlq.original.offset"]): x for x in outputs.letters}
    assert sorted(by_offset) == [0, 1, 2]
    decode = headers(by_offset[0])
    assert decode["botwatch.dlq.stage"] == "decode"
    assert decode["botwatch.dlq.original.topic"] == TOPIC
    assert decode["botwatch.dlq.replay_count"] == "0"
    assert decode["trace"] == "t1"  # the record's own headers are kept
    assert by_offset[0].value == b"{not json"
    assert by_offset[0].key == b"b"
    validate = headers(by_offset[1])
    assert validate["botwatch.dlq.stage"] == "validate"
    assert validate["botwatch.dlq.reason"].startswith("level:")
    tombstone = headers(by_offset[2])
    assert tombstone["botwatch.dlq.stage"] == "decode"
    assert tombstone["botwatch.dlq.reason"].startswith("record: has no value (null, as a tomb")
    assert value(metrics, "botwatch_dead_letters_total", stage="decode") == 2
    assert value(metrics, "botwatch_dead_letters_total", stage="validate") == 1
    assert value(metrics, "botwatch_records_in_total") == 4


async def test_a_job_failure_is_both_sunk_and_dead_lettered() -> None:
    processor, _, outputs, sink, metrics = make()
    feed = Feed()
    failure = event(
        "b",
        T0,
        "error",
        status="failure",
        job_id="j-7",
        error={"type": "TimeoutError", "message": "no answer"},
    )
    await processor.process([feed(failure)])
    assert sink.events == 1
    [letter] = outputs.letters
    found = headers(letter)
    assert found["botwatch.dlq.stage"] == "job_failure"
    assert "job j-7 of bot b failed: TimeoutError: no answer" in found["botwatch.dlq.reason"]
    assert found["botwatch.dlq.exception"] == ""
    assert letter.value == failure
    assert value(metrics, "botwatch_dead_letters_total", stage="job_failure") == 1


async def test_a_record_the_sink_rejects_is_dead_lettered_with_stage_sink() -> None:
    processor, _, outputs, _, metrics = make(sink=RejectingSink())
    feed = Feed()
    rejected = event("b", T0, message="reject me")
    await processor.process([feed(event("b", T0 + 1)), feed(rejected)])
    [letter] = outputs.letters
    found = headers(letter)
    assert found["botwatch.dlq.stage"] == "sink"
    assert found["botwatch.dlq.reason"] == "mapper_parsing_exception"
    assert found["botwatch.dlq.original.offset"] == "1"
    assert letter.value == rejected
    assert value(metrics, "botwatch_dead_letters_total", stage="sink") == 1


async def test_a_record_replayed_from_a_sink_dead_letter_is_indexed_not_counted_again() -> None:
    processor, _, outputs, sink, metrics = make()
    feed = Feed()
    failure = event("b", T0, "error", status="failure", job_id="j-1")
    replayed = [("botwatch.dlq.replay_count", b"1"), ("botwatch.dlq.replay.stage", b"sink")]
    record = feed(failure)
    await processor.process([record._replace(headers=replayed), feed(event("b", T0 + 1))])
    assert sink.events == 2  # both indexed
    assert outputs.letters == []  # its job failure was copied the first time
    await processor.process([feed(event("b", T0 + W + 30_000))])
    [window] = outputs.windows
    assert (window["count"], window["failures"]) == (1, 0)
    assert value(metrics, "botwatch_replayed_reindexed_total") == 1


async def test_an_event_replayed_twice_from_the_dead_letters_counts_once() -> None:
    table, outputs = DictTable(), RecordingOutputs()
    processor, *_ = make(table, outputs)
    feed = Feed()
    replayed = [("botwatch.dlq.replay_count", b"1"), ("botwatch.dlq.replay.stage", b"validate")]
    copy = event("b", T0 + 1, "error")
    await processor.process([feed(event("b", T0)), feed(copy)._replace(headers=replayed)])
    # Another replay run, after a restart, selects the same dead letter.
    restarted, _, _, sink, metrics = make(table, outputs)
    await restarted.process([feed(copy)._replace(headers=replayed)])
    assert sink.events == 1  # indexed (the same _id)
    assert value(metrics, "botwatch_duplicates_skipped_total") == 1
    await restarted.process([feed(event("b", T0 + W + 30_000))])
    [window] = outputs.windows
    assert (window["count"], window["errors"]) == (2, 1)


async def test_replaying_a_batch_after_a_restart_does_not_double_count() -> None:
    table, outputs = DictTable(), RecordingOutputs()
    processor, *_ = make(table, outputs)
    feed = Feed()
    batch = [feed(event("b", T0 + i * 1_000)) for i in range(5)]
    await processor.process(batch)
    # A crash after the table write but before the offsets were committed: a new process
    # over the same table reads the same records again.
    restarted, _, _, _, metrics = make(table, outputs)
    await restarted.process(batch)
    assert value(metrics, "botwatch_duplicates_skipped_total") == 5
    await restarted.process([feed(event("b", T0 + W + 30_000))])
    [window] = outputs.windows
    assert window["count"] == 5


def _stages(letters: list[DeadLetter]) -> list[tuple[str, str]]:
    return [
        (headers(x)["botwatch.dlq.original.offset"], headers(x)["botwatch.dlq.stage"])
        for x in letters
    ]


async def test_records_read_again_after_a_restart_are_not_dead_lettered_again() -> None:
    table, outputs = DictTable(), RecordingOutputs()
    processor, *_ = make(table, outputs, RejectingSink())
    feed = Feed()
    batch = [
        feed(b"{not json"),
        feed(event("b", T0 + 1, "error", status="failure", job_id="j")),
        feed(event("b", T0 + 2, message="reject me")),
        feed(event("b", T0 + 3)),
    ]
    await processor.process(batch)
    first = _stages(outputs.letters)
    assert first == [("0", "decode"), ("1", "job_failure"), ("2", "sink")]
    restarted, _, _, sink, metrics = make(table, outputs, RejectingSink())
    await restarted.process(batch)
    assert _stages(outputs.letters) == first  # the first reading sent them
    assert value(metrics, "botwatch_repeated_dead_letters_skipped_total") == 3
    assert sink.events == 3  # the valid ones are indexed again: the same _id, no new document
    assert value(metrics, "botwatch_records_in_total") == 4
    await restarted.process([feed(event("b", T0 + W + 30_000))])
    [window] = outputs.windows
    assert (window["count"], window["failures"]) == (3, 1)


async def test_records_read_again_are_not_counted_again_as_miskeyed_or_unwindowed() -> None:
    table, outputs = DictTable(), RecordingOutputs()
    processor, *_ = make(table, outputs)
    feed = Feed()
    replayed = [("botwatch.dlq.replay_count", b"1"), ("botwatch.dlq.replay.stage", b"sink")]
    batch = [
        feed(event("b", T0 + 1), key=b"other"),
        feed(event("b", T0 + 3_600_001)),  # past the future skew: not windowed
        feed(event("b", T0 + 2))._replace(headers=replayed),
        feed(event("b", T0 + 3)),
    ]
    await processor.process(batch)
    restarted, _, _, _, metrics = make(table, outputs)
    await restarted.process([*batch, feed(event("b", T0 + 4), key=b"other")])
    assert value(metrics, "botwatch_miskeyed_events_total") == 1  # the new one
    assert value(metrics, "botwatch_unwindowed_events_total") == 0
    assert value(metrics, "botwatch_replayed_reindexed_total") == 0
    assert value(metrics, "botwatch_duplicates_skipped_total") == 1
    assert value(metrics, "botwatch_records_in_total") == 5  # every record read is counted


async def test_records_fetched_twice_in_one_batch_are_routed_once() -> None:
    # The consumer went back to the committed offset while records it had fetched before
    # were still waiting: one batch holds the same offsets twice, both new to the state.
    table, outputs = DictTable(), RecordingOutputs()
    processor, _, _, sink, metrics = make(table, outputs)
    feed = Feed()
    records = [
        feed(b"{not json"),
        feed(event("b", T0 + 1, "error", status="failure", job_id="j")),
        feed(event("b", T0 + 2)),
    ]
    later = feed(event("b", T0 + 3))
    await processor.process([*records, *records[1:], later, *records])
    assert _stages(outputs.letters) == [("0", "decode"), ("1", "job_failure")]
    assert sink.events == 3
    assert value(metrics, "botwatch_duplicates_skipped_total") == 5
    await processor.process([feed(event("b", T0 + W + 30_000))])
    [window] = outputs.windows
    assert (window["count"], window["failures"]) == (3, 1)


async def test_records_fetched_again_from_behind_in_one_batch_are_routed_in_log_order() -> None:
    # Fetched from a position ahead, then again from the committed offset behind it: the
    # records behind are new, and count in their windows.
    outputs = RecordingOutputs()
    processor, _, _, _, metrics = make(outputs=outputs)
    feed = Feed()
    records = [feed(event("b", T0 + i, "error", status="failure")) for i in range(4)]
    await processor.process([*records[2:], *records])
    assert [x.origin for x in outputs.letters] == [(0, 0), (0, 1), (0, 2), (0, 3)]
    assert value(metrics, "botwatch_duplicates_skipped_total") == 2
    assert processor.take_gaps() == []  # the offsets behind came after all
    await processor.process([feed(event("b", T0 + W + 30_000))])
    [window] = outputs.windows
    assert (window["count"], window["failures"]) == (4, 4)


def test_in_log_order_keeps_each_partition_in_offset_order_and_the_later_copy() -> None:
    feed, other = Feed(0), Feed(1)
    a, b, c = feed(b"a"), feed(b"b"), feed(b"c")
    x = other(b"x")
    in_order = [a, x, b, c]
    assert in_log_order(in_order) is in_order  # nothing to do: the same list
    b2 = b._replace(value=b"b again")
    assert in_log_order([b, c, x, a, b2]) == [a, b2, c, x]


async def test_a_batch_of_repeats_and_new_records_dead_letters_only_the_new_ones() -> None:
    table, outputs = DictTable(), RecordingOutputs()
    processor, *_ = make(table, outputs)
    feed, other = Feed(0), Feed(1)
    old = [feed(b"[1"), feed(event("b", T0))]
    await processor.process(old)
    assert _stages(outputs.letters) == [("0", "decode")]
    restarted, _, _, _, metrics = make(table, outputs)
    new = [feed(b"[2"), feed(event("b", T0 + 1, "error", status="failure"))]
    on_other = [other(b"[3")]  # partition 1 was never read: nothing on it is a repeat
    await restarted.process([*old, *on_other, *new])
    assert _stages(outputs.letters) == [
        ("0", "decode"),
        ("0", "decode"),  # partition 1's
        ("2", "decode"),
        ("3", "job_failure"),
    ]
    assert [x.value for x in outputs.letters[1:3]] == [b"[3", b"[2"]
    assert value(metrics, "botwatch_repeated_dead_letters_skipped_total") == 1
    assert value(metrics, "botwatch_dead_letters_total", stage="decode") == 2


async def test_a_log_made_again_dead_letters_its_malformed_records() -> None:
    end = LogEnd()
    processor, _, outputs, _, metrics = make(log_end=end)
    end.end = 3
    first = Feed()
    await processor.process([first(event("b", T0 + i)) for i in range(3)])
    again = Feed()  # offsets from 0 again, the new log shorter: new records, not repeats
    end.end = 2
    await processor.process([again(b"{not json"), again(event("b", T0 + 10))])
    assert _stages(outputs.letters) == [("0", "decode")]
    assert value(metrics, "botwatch_repeated_dead_letters_skipped_total") == 0


async def test_offsets_skipped_are_kept_for_the_worker_to_check_but_not_a_marker() -> None:
    processor, table, *_ = make()
    feed = Feed()
    await processor.process([feed(event("b", T0 + i)) for i in range(3)])  # offsets 0..2
    feed.offset = 4  # one offset skipped: a transaction's commit marker
    await processor.process([feed(event("b", T0 + 10))])
    feed.offset = 100  # 5..99 never read
    batch = [feed(event("b", T0 + 11)), feed(event("b", T0 + 12))]
    feed.offset = 200  # and a gap inside one batch: 102..199
    await processor.process([*batch, feed(event("b", T0 + 13))])
    assert processor.take_gaps() == [OffsetGap(0, 5, 100), OffsetGap(0, 102, 200)]
    assert processor.take_gaps() == []
    # After a restart, from the offset the table says was processed last.
    restarted, *_ = make(table)
    await restarted.process([Feed()(event("b", T0 + 14))])  # offset 0: read again, no gap
    feed.offset = 300
    await restarted.process([feed(event("b", T0 + 15))])
    assert restarted.take_gaps() == [OffsetGap(0, 201, 300)]


class LogEnd:
    """The end offset of every partition's log, as the worker's consumer last fetched it."""

    def __init__(self) -> None:
        self.end: int | None = None

    def __call__(self, partition: int) -> int | None:
        return self.end


async def test_a_log_made_again_is_read_as_new_events_and_its_repeats_as_repeats() -> None:
    table, outputs, end = DictTable(), RecordingOutputs(), LogEnd()
    processor, _, _, _, metrics = make(table, outputs, log_end=end)
    first = Feed()
    end.end = 5
    await processor.process([first(event("b", T0 + i * 1_000)) for i in range(5)])
    # The topic deleted and made again: offsets from 0 again, the new log shorter.
    again = Feed()
    batch = [again(event("b", T0 + 10_000 + i * 1_000)) for i in range(3)]
    end.end = 3
    await processor.process(batch)
    assert value(metrics, "botwatch_duplicates_skipped_total") == 0
    # The new log's records read again (a restart over the same table): repeats.
    restarted, _, _, _, metrics = make(table, outputs, log_end=end)
    await restarted.process(batch[1:])
    assert value(metrics, "botwatch_duplicates_skipped_total") == 2
    await restarted.process([again(event("b", T0 + W + 30_000))])
    [window] = outputs.windows
    assert window["count"] == 8


async def test_records_read_again_from_a_log_that_holds_them_stay_repeats() -> None:
    end = LogEnd()
    processor, _, outputs, _, metrics = make(log_end=end)
    feed = Feed()
    batch = [feed(event("b", T0 + i * 1_000)) for i in range(5)]
    end.end = 5
    await processor.process(batch)
    await processor.process(batch[2:])  # the log still ends after them: a rebalance, a restart
    assert value(metrics, "botwatch_duplicates_skipped_total") == 3
    end.end = None  # an end not fetched yet is no evidence either
    await processor.process(batch[:1])
    assert value(metrics, "botwatch_duplicates_skipped_total") == 4
    await processor.process([feed(event("b", T0 + W + 30_000))])
    assert outputs.windows[0]["count"] == 5


async def test_idle_close_skips_busy_partitions_and_closes_quiet_ones() -> None:
    clock = Clock()
    processor, _, outputs, _, _ = make(clock=clock)
    await processor.process([Feed(0)(event("b", T0)), Feed(1)(event("c", T0))])
    clock.now += 121_000  # past the idle time
    assert await processor.close_idle(busy={0, 1}) == 0
    assert outputs.windows == []
    clock.now += 121_000
    assert await processor.close_idle(busy={0}) == 1
    assert [w["bot_id"] for w in outputs.windows] == ["c"]


async def test_late_events_are_counted_and_reported_on_the_next_window() -> None:
    processor, _, outputs, sink, metrics = make()
    feed = Feed()
    await processor.process([feed(event("b", T0))])
    await processor.process([feed(event("b", T0 + W + 30_000))])
    assert [w["count"] for w in outputs.windows] == [1]
    await processor.process([feed(event("b", T0 + 5_000))])  # its window has closed
    assert value(metrics, "botwatch_late_events_total") == 1
    assert sink.events == 3  # late events are still indexed
    await processor.process([feed(event("b", T0 + 2 * W + 30_000))])
    assert [w["late_events_excluded"] for w in outputs.windows] == [0, 1]
    assert outputs.windows[1]["count"] == 1


@pytest.mark.parametrize(
    "timestamp",
    [
        rfc3339(T0 + 3_600_001),  # just past the default future skew of an hour
        "9999-12-31T23:30:00-01:00",  # valid, but year 10000 in UTC
        "0000-01-01T00:00:00+01:00",  # valid, but year 0 in UTC
    ],
)
async def test_an_event_time_out_of_range_is_indexed_but_never_windowed(timestamp: str) -> None:
    processor, table, outputs, sink, metrics = make()
    feed = Feed()
    odd = orjson.loads(event("b", T0, "error", status="failure", job_id="j"))
    odd["timestamp"] = timestamp
    await processor.process([feed(event("b", T0)), feed(orjson.dumps(odd))])
    assert sink.events == 2  # indexed
    assert [headers(x)["botwatch.dlq.stage"] for x in outputs.letters] == ["job_failure"]
    assert value(metrics, "botwatch_unwindowed_events_total") == 1
    # The watermark did not move: the window of T0 is still open, and a later event still
    # counts in it.
    await processor.process([feed(event("b", T0 + 10_000))])
    assert outputs.windows == []
    assert value(metrics, "botwatch_late_events_total") == 0
    await processor.process([feed(event("b", T0 + W + 30_000))])
    assert [w["count"] for w in outputs.windows] == [2]
    assert b"9999" not in b"".join(table.data.values())


@pytest.mark.parametrize("key", [None, b"", b"invoice-bot", b"B", "b\u00e9".encode()])
async def test_an_event_keyed_by_another_than_its_bot_is_indexed_and_dead_lettered(
    key: bytes | None,
) -> None:
    processor, _, outputs, sink, metrics = make()
    feed = Feed()
    failure = event("b", T0 + 1, "error", status="failure", job_id="j")
    await processor.process(
        [feed(event("b", T0)), feed(failure, key=key), feed(event("b", T0 + 2))]
    )
    assert sink.events == 3  # indexed
    assert value(metrics, "botwatch_miskeyed_events_total") == 1
    assert value(metrics, "botwatch_dead_letters_total", stage="validate") == 1
    letters = {headers(x)["botwatch.dlq.stage"]: x for x in outputs.letters}
    assert sorted(letters) == ["job_failure", "validate"]  # still a job failure, too
    letter = letters["validate"]
    assert (letter.key, letter.value) == (key, failure)  # the record as it was
    reason = headers(letter)["botwatch.dlq.reason"]
    assert reason.startswith(dlq.MISKEYED_PREFIX + "must be the event's bot_id 'b'")
    shown = "null" if key is None else repr(key.decode())
    assert f"got {shown};" in reason
    # Left out of the bot's window, and of its state: nothing else changed.
    await processor.process([feed(event("b", T0 + W + 30_000))])
    [window] = outputs.windows
    assert (window["count"], window["errors"], window["failures"]) == (2, 0, 0)
    assert value(metrics, "botwatch_late_events_total") == 0


async def test_a_re_keyed_replay_is_windowed_without_a_second_job_failure_letter() -> None:
    processor, _, outputs, _, _ = make()
    feed = Feed()
    failure = event("b", T0 + 1, "error", status="failure", job_id="j")
    first = feed(event("b", T0))
    replayed = feed(failure)._replace(headers=[(dlq.REPLAY_REKEYED, b"1")])
    await processor.process([first, replayed])
    assert outputs.letters == []  # copied as a job failure when it was first read
    await processor.process([feed(event("b", T0 + W + 30_000))])
    [window] = outputs.windows
    assert (window["count"], window["failures"]) == (2, 1)


def test_a_long_key_is_cut_in_the_reason() -> None:
    reason = dlq.miskeyed_reason(b"k" * 500, "bot-1")
    assert "got '" + "k" * 80 + "...'" in reason
    assert len(reason) < 400


async def test_the_future_skew_is_measured_from_the_worker_clock() -> None:
    clock = Clock()
    processor, _, _, _, metrics = make(clock=clock)
    feed = Feed()
    await processor.process([feed(event("b", T0 + 3_000_000))])  # 50 minutes ahead: counted
    assert value(metrics, "botwatch_unwindowed_events_total") == 0
    clock.now = T0 + 2 * 3_600_000  # two hours later, 3 h ahead is out of range again
    await processor.process([feed(event("b", T0 + 5 * 3_600_000))])
    assert value(metrics, "botwatch_unwindowed_events_total") == 1


async def test_an_unchanged_partition_entry_is_not_written_again() -> None:
    processor, table, *_ = make()
    feed = Feed()
    batch = [feed(event("b", T0)), feed(event("c", T0 + 1))]
    await processor.process(batch)
    writes = len(table.writes)
    await processor.process(batch)  # duplicates: nothing but the bots' entries changes
    assert table.writes[writes:] == [(0, "b|0|b"), (0, "b|0|c")]


@pytest.mark.parametrize("forget", [True, False])
async def test_open_windows_gauge_follows_forget_and_reload(forget: bool) -> None:
    table = DictTable()
    processor, _, _, _, metrics = make(table)
    feed = Feed()
    await processor.process([feed(event("b", T0)), feed(event("c", T0 + W))])
    assert value(metrics, "botwatch_open_windows") == 2
    if forget:
        processor.forget([0])
        assert value(metrics, "botwatch_open_windows") == 0
    await processor.process([feed(event("b", T0 + 2))])  # reloads b (and its window) if forgotten
    assert value(metrics, "botwatch_open_windows") == (1 if forget else 2)


def _stream_with_late_events() -> list[bytes]:
    """Two bots over five minutes of event time, some events arriving late."""
    values = []
    for i in range(300):
        ts = T0 + i * 1000
        values.append(event(f"bot-{i % 2}", ts, level="error" if i % 7 == 0 else "info"))
        if i % 13 == 12:  # 45 s behind: its window has closed once the watermark passed it
            values.append(event(f"bot-{i % 2}", ts - 45_000, message="late"))
    return values


@pytest.mark.parametrize("size", [1, 2, 7, 50, 1000])
async def test_published_windows_do_not_depend_on_batch_boundaries(size: int) -> None:
    """A replay after a crash cuts the records into other batches: same windows, same counts."""
    values = _stream_with_late_events()

    async def run(batch: int) -> dict[tuple[str, str], dict[str, Any]]:
        processor, _, outputs, _, _ = make()
        feed = Feed()
        records = [feed(v) for v in values]
        for start in range(0, len(records), batch):
            await processor.process(records[start : start + batch])
        return {(w["bot_id"], w["window_start"]): w for w in outputs.windows}

    whole = await run(len(values))
    assert sum(w["late_events_excluded"] for w in whole.values()) > 0
    assert await run(size) == whole


class GatedSink(DiscardSink):
    """Holds every ``write_events`` until released; can fail the next one."""

    def __init__(self) -> None:
        super().__init__()
        self.gates: list[asyncio.Event] = []
        self.fail_next = False

    async def write_events(self, records: list[SinkRecord]) -> SinkResult:
        gate = asyncio.Event()
        self.gates.append(gate)
        await gate.wait()
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("OpenSearch went away")
        return await super().write_events(records)


async def _until(predicate: Any) -> None:
    for _ in range(200):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


async def test_a_submitted_batch_is_routed_at_once_and_its_state_written_in_order() -> None:
    sink = GatedSink()
    processor, table, outputs, _, _ = make(sink=sink)
    feed = Feed()
    acked: list[str] = []
    first = await processor.submit(
        [feed(event("b", T0 + 1_000))], then=lambda: acked.append("first")
    )
    # Routed already: the next batch sees its effects, before anything was written.
    second = await processor.submit(
        [feed(event("b", T0 + W + 30_000))], then=lambda: acked.append("second")
    )
    await _until(lambda: len(sink.gates) == 2)
    assert table.writes == []
    sink.gates[1].set()  # the second batch's writes end first ...
    await _until(lambda: len(outputs.windows) == 1)
    assert table.writes == [] and acked == []  # ... but its state waits for the first's
    sink.gates[0].set()
    await asyncio.gather(first, second)
    assert acked == ["first", "second"]
    # Each batch wrote the state it had when it was routed, the first one first.
    assert [key for _, key in table.writes] == ["b|0|b", "p|0", "b|0|b", "p|0"]
    assert orjson.loads(table.data[(0, "b|0|b")])["last_offset"] == 1


async def test_a_batch_that_fails_while_routed_keeps_timers_from_saving_its_offsets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    processor, table, outputs, _, _ = make(clock=clock)
    feed = Feed()
    await processor.process([feed(event("b", T0))])
    saved = dict(table.data)

    def broken(batch: Any) -> list[dict[str, Any]]:
        raise RuntimeError("a bug after the offsets moved on")

    monkeypatch.setattr(processor, "_observe", broken)
    records = [feed(b"{not json"), feed(event("b", T0 + 1))]
    with pytest.raises(RuntimeError):
        await processor.process(records)
    clock.now += 121_000
    # A timer saving the cache now would record offsets 1 and 2 as processed: the redo
    # would take those records for repeats and send no dead letter for offset 1.
    assert await processor.close_idle() == 0
    assert table.data == saved
    monkeypatch.undo()
    processor.forget([0])
    await processor.process(records)
    assert _stages(outputs.letters) == [("1", "decode")]


async def test_a_failed_batch_fails_the_ones_after_it_without_writing_state() -> None:
    sink = GatedSink()
    processor, table, _, _, _ = make(sink=sink)
    feed = Feed()
    acked: list[int] = []
    records = [feed(event("b", T0 + 1_000)), feed(event("b", T0 + 2_000))]
    first = await processor.submit(records[:1], then=lambda: acked.append(1))
    second = await processor.submit(records[1:], then=lambda: acked.append(2))
    await _until(lambda: len(sink.gates) == 2)
    sink.fail_next = True
    sink.gates[0].set()
    sink.gates[1].set()
    results = await asyncio.gather(first, second, return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    assert acked == [] and table.writes == []
    # Timers write nothing from a cache ahead of the table ...
    assert await processor.close_idle() == 0
    assert table.writes == []
    # ... until the caller forgets those partitions and submits the batches again.
    processor.forget([0])
    sink.gates.clear()
    redo = asyncio.ensure_future(processor.process(records))
    await _until(lambda: len(sink.gates) == 1)
    sink.gates[0].set()
    await redo
    state = orjson.loads(table.data[(0, "b|0|b")])
    assert state["last_offset"] == 1


class RefusingOnceSink(RejectingSink):
    """Refuses the first ``write_events`` whole (a 401, say), after the letters went out."""

    def __init__(self) -> None:
        super().__init__()
        self.refuse = True

    async def write_events(self, records: list[SinkRecord]) -> SinkResult:
        await asyncio.sleep(0)  # the batch's other writes go out meanwhile
        if self.refuse:
            self.refuse = False
            raise PermissionError("401 Unauthorized")
        return await super().write_events(records)


async def test_a_batch_redone_after_a_failure_does_not_send_its_letters_to_kafka_again() -> None:
    sink = RefusingOnceSink()
    processor, table, outputs, _, metrics = make(sink=sink)
    feed = Feed()
    records = [
        feed(b"{not json"),
        feed(event("b", T0 + 1, "error", status="failure", job_id="j", message="reject me")),
    ]
    with pytest.raises(PermissionError):
        await processor.process(records)
    assert _stages(outputs.letters) == [("0", "decode"), ("1", "job_failure")]
    assert sink.dead_letters == 2
    processor.forget([0])  # how the worker redoes a failed batch
    await processor.process(records)
    # Kafka got each letter once, the sink's rejection of the job failure too; OpenSearch
    # was written again (the same _id).
    assert _stages(outputs.letters) == [("0", "decode"), ("1", "job_failure"), ("1", "sink")]
    assert sink.dead_letters == 5
    assert value(metrics, "botwatch_dead_letters_total", stage="decode") == 1
    assert value(metrics, "botwatch_dead_letters_total", stage="job_failure") == 1
    assert json_state(table)["last_offset"] == 1
    # Once the state says so, the set of letters sent is empty again.
    assert processor._letters_sent == set()
    await processor.process(records)  # read again: the state rule
    assert len(outputs.letters) == 3


async def test_a_release_forgets_which_letters_of_a_failed_batch_were_sent() -> None:
    sink = RefusingOnceSink()
    processor, _, outputs, _, _ = make(sink=sink)
    feed = Feed()
    records = [feed(b"{not json"), feed(event("b", T0))]
    with pytest.raises(PermissionError):
        await processor.process(records)
    # The partition went to another worker and came back before anyone redid the batch:
    # nothing here says its letters were sent, so they are sent again (at least once).
    await processor.release([0])
    await processor.process(records)
    assert _stages(outputs.letters) == [("0", "decode"), ("0", "decode")]


async def test_letters_of_a_failed_batch_do_not_hide_those_of_a_log_made_again() -> None:
    end = LogEnd()
    sink = RefusingOnceSink()
    sink.refuse = False
    processor, _, outputs, _, _ = make(sink=sink, log_end=end)
    old = Feed()
    end.end = 5
    await processor.process([old(event("b", T0 + i)) for i in range(3)])
    sink.refuse = True
    with pytest.raises(PermissionError):
        await processor.process([old(event("b", T0 + 3)), old(b"[old")])  # letter of offset 4
    processor.forget([0])
    new = Feed()  # the topic made again, shorter than offset 2 processed: rebased
    end.end = 2
    await processor.process([new(event("b", T0 + 10)), new(event("b", T0 + 11))])
    end.end = 5
    await processor.process([new(event("b", T0 + 12)), new(event("b", T0 + 13)), new(b"[new")])
    assert [x.value for x in outputs.letters] == [b"[old", b"[new"]


def json_state(table: DictTable) -> dict[str, Any]:
    state: dict[str, Any] = orjson.loads(table.data[(0, "b|0|b")])
    return state


async def test_a_batch_whose_partition_is_revoked_while_it_waits_is_dropped_unrouted() -> None:
    sink = GatedSink()
    processor, table, outputs, _, _ = make(sink=sink)
    feed = Feed()
    assigned = {0}
    first = await processor.submit([feed(event("b", T0))], owned=lambda: 0 in assigned)
    assert first is not None
    await _until(lambda: len(sink.gates) == 1)

    async def revoke() -> None:  # what the worker does on a rebalance
        assigned.discard(0)
        await processor.release([0])

    revoking = asyncio.ensure_future(revoke())
    # Routed only once the revocation let go of the lock: by then the partition is gone.
    second = asyncio.ensure_future(
        processor.submit([feed(event("b", T0 + 1_000))], owned=lambda: 0 in assigned)
    )
    await asyncio.sleep(0)
    sink.gates[0].set()
    await asyncio.gather(first, revoking)
    assert await second is None
    assert len(sink.gates) == 1  # the second batch reached no sink
    assert [key for _, key in table.writes] == ["b|0|b", "p|0"]  # the first batch's only
    assert processor.last_offsets() == {}  # nothing of partition 0 stays cached
    assert await processor.close_idle() == 0
    assert outputs.windows == []


async def test_a_bot_quiet_past_the_retirement_time_is_forgotten_then_starts_afresh() -> None:
    clock = Clock()
    processor, table, outputs, _, metrics = make(clock=clock, retire_after_s=3600.0)
    feed = Feed()
    await processor.process([feed(event("gone", T0 + 1_000)), feed(event("gone", T0 + 2_000))])
    # "stays" keeps sending; its event an hour later closes gone's window [T0, T0 + 1 min).
    await processor.process([feed(event("stays", T0 + 3_600_000))])
    assert [w["bot_id"] for w in outputs.windows] == ["gone"]
    committed = {0: feed.offset}  # every record read so far is committed
    clock.now = T0 + W + 3_600_000 - 1  # one ms short of an hour since gone's window ended
    assert await processor.retire_quiet(committed) == 0
    clock.now += 1
    assert await processor.retire_quiet(committed) == 1
    assert (0, "b|0|gone") not in table.data and (0, "b|0|stays") in table.data
    assert value(metrics, "botwatch_bots_retired_total") == 1
    # Back later: counted from scratch, in its own window, once.
    clock.now = T0 + 7_200_000
    await processor.process([feed(event("gone", T0 + 7_200_000))])
    await processor.process([feed(event("stays", T0 + 7_200_000 + 2 * W))])
    back = [w for w in outputs.windows if w["bot_id"] == "gone"][-1]
    assert (back["window_start"], back["count"]) == (rfc3339(T0 + 7_200_000), 1)


async def test_a_bot_quiet_since_before_a_restart_is_retired_with_no_record_of_it() -> None:
    """Only the bots a record brought into the cache were judged: one that went quiet before
    the worker restarted stayed in the table (and the changelog) for good."""
    clock = Clock()
    table = DictTable()
    processor, *_ = make(table=table, clock=clock, retire_after_s=3600.0)
    feed = Feed()
    await processor.process([feed(event("gone", T0 + 1_000)), feed(event("back", T0 + 2_000))])
    await processor.process([feed(event("stays", T0 + 10 * W))])  # closes both windows
    restarted, _, _, _, metrics = make(table=table, clock=clock, retire_after_s=3600.0)
    restarted.adopt([0])
    clock.now = T0 + W + 3_600_000 - 1  # a ms short of an hour since their windows ended
    assert await restarted.retire_quiet({0: feed.offset}) == 0
    await restarted.process([feed(event("back", T0 + 3_600_000))])  # sends again meanwhile
    clock.now += 1
    assert await restarted.retire_quiet({0: feed.offset}) == 1
    assert (0, "b|0|gone") not in table.data
    assert (0, "b|0|back") in table.data and (0, "b|0|stays") in table.data
    assert value(metrics, "botwatch_bots_retired_total") == 1


async def test_bots_not_cached_are_judged_a_bounded_number_per_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(processor_module, "DORMANT_PER_CHECK", 2)
    clock = Clock()
    table = DictTable()
    processor, *_ = make(table=table, clock=clock, retire_after_s=3600.0)
    feed = Feed()
    await processor.process([feed(event(f"gone-{i}", T0 + i)) for i in range(5)])
    await processor.process([feed(event("stays", T0 + 10 * W))])
    restarted, *_ = make(table=table, clock=clock, retire_after_s=3600.0)
    restarted.adopt([0])
    clock.now = T0 + W + 3_600_000
    retired = [await restarted.retire_quiet({0: feed.offset}) for _ in range(4)]
    assert retired == [2, 2, 1, 0]


async def test_a_bot_with_an_open_window_or_an_uncommitted_record_is_not_retired() -> None:
    clock = Clock(T0 + 10 * 3_600_000)
    processor, table, *_ = make(clock=clock, retire_after_s=3600.0)
    feed = Feed()
    await processor.process([feed(event("open", T0 + 1_000))])  # its window never closes
    assert await processor.retire_quiet({0: feed.offset}) == 0
    await processor.process([feed(event("open", T0 + 3 * W))])  # closes [T0, T0 + 1 min)
    assert await processor.retire_quiet({0: feed.offset}) == 0  # a window is open again
    await processor.process([feed(event("other", T0 + 10 * W))])  # closes open's last window
    assert await processor.retire_quiet({0: 1}) == 0  # open's last record is not committed
    assert await processor.retire_quiet({}) == 0  # nothing known committed
    assert await processor.retire_quiet({0: feed.offset}) == 1
    assert (0, "b|0|open") not in table.data


async def test_an_entry_that_does_not_say_when_its_bot_went_quiet_starts_the_clock() -> None:
    clock = Clock(T0 + 10 * 3_600_000)
    table = DictTable()
    legacy = {"bot_id": "old", "window_ms": W, "last_offset": 4, "late_pending": 0,
              "late_total": 0, "windows": {}}  # fmt: skip
    table.data[(0, "b|0|old")] = orjson.dumps(legacy)
    processor, *_ = make(table=table, clock=clock, retire_after_s=3600.0)
    processor.adopt([0])
    await processor.process([Feed()(event("old", T0 + 9 * 3_600_000))])  # offset 0: a duplicate
    assert await processor.retire_quiet({0: 5}) == 0
    assert orjson.loads(table.data[(0, "b|0|old")])["seen_until"] == clock.now
    clock.now += 3_600_000
    assert await processor.retire_quiet({0: 5}) == 1


async def test_retirement_is_off_at_zero() -> None:
    clock = Clock(T0 + 100 * 86_400_000)
    processor, table, *_ = make(clock=clock, retire_after_s=0)
    feed = Feed()
    await processor.process([feed(event("a", T0)), feed(event("b", T0 + 5 * W))])
    assert await processor.retire_quiet({0: feed.offset}) == 0
    assert (0, "b|0|a") in table.data


async def test_a_partition_behind_judges_quiet_by_its_own_event_time() -> None:
    clock = Clock(T0 + 100 * 3_600_000)  # the wall clock is far ahead of the backlog
    processor, table, *_ = make(clock=clock, retire_after_s=3600.0)
    feed = Feed()
    await processor.process([feed(event("a", T0)), feed(event("b", T0 + 30 * W))])
    assert await processor.retire_quiet({0: feed.offset}, behind={0}) == 0  # 29 min of quiet
    await processor.process([feed(event("b", T0 + W + 3_600_000))])
    assert await processor.retire_quiet({0: feed.offset}, behind={0}) == 1  # an hour of it
    assert (0, "b|0|a") not in table.data


async def test_status_gives_times_as_text_and_none_before_any_event() -> None:
    processor, *_ = make()
    processor.adopt([1])  # loaded, no event yet
    await processor.process([Feed()(event("b", T0 + 45_000))])
    status = processor.status()
    assert status["1"]["watermark"] is None and status["1"]["watermark_ms"] is None
    assert status["1"]["max_event"] is None and status["1"]["max_event_ms"] is None
    assert status["0"]["max_event"] == "2026-11-23T10:00:45Z"
    assert status["0"]["watermark_ms"] == T0 + 15_000  # 30 s of lateness
    assert status["0"]["watermark"] == "2026-11-23T10:00:15Z"
