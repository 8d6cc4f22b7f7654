"""Resending spooled events of unknown outcome: what a check looks for, what it drops, and the
sender around it, over fakes (no broker)."""

import asyncio
import time
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, TopicAuthorizationFailedError
from aiokafka.partitioner import DefaultPartitioner

from producers import BotwatchWarning, ProducerConfig
from producers.engine import Engine
from producers.ids import Uuid7, uuid7
from producers.resend import (
    LOOKBACK_SLACK_MS,
    Target,
    Verdict,
    event_id_of,
    partition_for,
    plan,
    read_back,
    start_offset,
    targets,
    to_check,
    uuid7_ms,
)
from producers.spool import Record


def event(i: int, event_id: str | None = None) -> bytes:
    return orjson.dumps({"event_id": event_id or uuid7(), "bot_id": "bot", "i": i})


def rec(i: int, *, unknown: bool = False, key: bytes = b"bot", topic: str = "t") -> Record:
    return Record(topic, key, event(i, f"id-{i}"), unknown)


# -- the pure decisions ----------------------------------------------------------------


def test_event_id_of() -> None:
    assert event_id_of(b'{"event_id":"abc","x":1}') == "abc"
    assert event_id_of(b"not json") is None
    assert event_id_of(b"[1,2]") is None
    assert event_id_of(b'{"x":1}') is None
    assert event_id_of(b'{"event_id":""}') is None
    assert event_id_of(b'{"event_id":12}') is None


def test_uuid7_ms_reads_the_creation_time() -> None:
    event_id, ms = Uuid7().next(1_700_000_000_123_456_789)
    assert uuid7_ms(event_id) == ms == 1_700_000_000_123
    assert uuid7_ms("6ba7b810-9dad-41d1-80b4-00c04fd430c8") is None  # version 4
    assert uuid7_ms("id-1") is None
    assert uuid7_ms("z" * 32) is None


@pytest.mark.parametrize("key", [b"bot-0", b"bot-1", b"invoice-bot", b"", b"\xff" * 40])
@pytest.mark.parametrize("count", [1, 2, 3, 6, 12])
def test_partition_matches_aiokafkas_default_partitioner(key: bytes, count: int) -> None:
    partitions = list(range(count))
    assert partition_for(key, partitions) == DefaultPartitioner()(key, partitions, partitions)
    assert partition_for(key, list(reversed(partitions))) == partition_for(key, partitions)


def test_known_records_are_sent_without_a_check() -> None:
    assert plan([rec(0), rec(1)], None) == [False, False]
    assert to_check([rec(0), rec(1)]) == []


def test_unknown_head_needs_a_check_first() -> None:
    records = [rec(0, unknown=True), rec(1, unknown=True), rec(2)]
    assert plan(records, None) == []
    assert to_check(records) == records[:2]


def test_found_ones_are_dropped_the_others_sent_again() -> None:
    records = [rec(0, unknown=True), rec(1, unknown=True), rec(2, unknown=True), rec(3)]
    verdict = Verdict(frozenset({"id-0", "id-1", "id-2"}), frozenset({"id-0", "id-1"}))
    assert plan(records, verdict) == [True, True, False, False]
    nothing_found = Verdict(verdict.checked, frozenset())
    assert plan(records, nothing_found) == [False, False, False, False]


def test_an_unknown_record_the_check_did_not_cover_ends_the_prefix() -> None:
    records = [rec(0, unknown=True), rec(1, unknown=True), rec(2)]
    verdict = Verdict(frozenset({"id-0"}), frozenset({"id-0"}))
    assert plan(records, verdict) == [True]


def test_unknown_records_without_an_event_id_are_sent_again() -> None:
    opaque = Record("t", b"bot", b"plain text", True)
    assert plan([opaque, rec(1)], None) == [False, False]
    assert plan([opaque, rec(1, unknown=True)], None) == [False]
    assert to_check([opaque, opaque, rec(2)]) == []
    assert to_check([rec(0, unknown=True), opaque, rec(2, unknown=True)]) == [
        rec(0, unknown=True),
        rec(2, unknown=True),
    ]


def test_targets_group_by_partition_with_floors_and_times() -> None:
    first, ms = Uuid7().next(1_700_000_000_000_000_000)
    second, _ = Uuid7().next(1_700_000_005_000_000_000)
    key_a, key_b = b"bot-a", b"bot-b"
    parts = [0, 1, 2]
    records = [
        Record("t", key_a, event(0, first), True),
        Record("t", key_a, event(1, second), True),
        Record("t", key_b, event(2, "not-a-uuid7"), True),
        Record("t", key_b, b"opaque", True),
        Record("gone", key_a, event(3), True),  # topic without partitions: skipped
    ]
    floors = {("t", partition_for(key_a, parts)): 41}
    got = {(t.topic, t.partition): t for t in targets(records, {"t": parts}, floors)}
    a = got.pop(("t", partition_for(key_a, parts)))
    assert a.ids == {first, second}
    assert a.keys == {key_a}
    assert a.after == 41
    assert a.since_ms == ms - LOOKBACK_SLACK_MS
    if partition_for(key_b, parts) != partition_for(key_a, parts):
        b = got.pop(("t", partition_for(key_b, parts)))
        assert b.ids == {"not-a-uuid7"}
        assert (b.after, b.since_ms) == (None, None)
    assert got == {}


def target(after: int | None = None, since_ms: int | None = None) -> Target:
    return Target("t", 0, frozenset({"x"}), frozenset({b"bot"}), after, since_ms)


def test_start_offset_prefers_the_acknowledged_floor() -> None:
    assert start_offset(target(after=100), 0, 150, None, 1000) == 101
    assert start_offset(target(after=100, since_ms=5), 0, 150, 7, 1000) == 101
    assert start_offset(target(after=149), 0, 150, None, 1000) == 150  # nothing after it


def test_start_offset_by_time_when_no_floor_or_a_stale_one() -> None:
    assert start_offset(target(since_ms=5), 0, 150, 120, 1000) == 120
    assert start_offset(target(since_ms=5), 0, 150, None, 1000) == 150  # nothing that recent
    assert start_offset(target(after=500, since_ms=5), 0, 150, 120, 1000) == 120  # recreated


def test_start_offset_is_bounded() -> None:
    assert start_offset(target(), 0, 150, None, 1000) == 0
    assert start_offset(target(), 0, 5000, None, 1000) == 4000
    assert start_offset(target(after=10), 0, 5000, None, 1000) == 4000
    assert start_offset(target(after=10), 60, 5000, None, 10_000) == 60  # deleted by retention


# -- read_back over a fake consumer ------------------------------------------------------


class Message(NamedTuple):
    offset: int
    key: bytes
    value: bytes


class OffsetAndTimestamp(NamedTuple):
    offset: int
    timestamp: int


class FakeConsumer:
    """Partitions as lists of (key, value, timestamp) from ``base`` on; records each read."""

    def __init__(self, logs: dict[TopicPartition, list[tuple[bytes, bytes, int]]], base: int = 0):
        self.logs = logs
        self.base = base
        self.positions: dict[TopicPartition, int] = {}
        self.read: list[tuple[TopicPartition, int]] = []
        self.assigned: list[TopicPartition] = []

    def assign(self, tps: list[TopicPartition]) -> None:
        self.assigned = list(tps)
        self.positions = {tp: self.base for tp in tps}

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.base + len(self.logs.get(tp, [])) for tp in tps}

    async def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.base for tp in tps}

    async def offsets_for_times(self, ts: dict[TopicPartition, int]) -> dict[TopicPartition, Any]:
        out: dict[TopicPartition, Any] = {}
        for tp, wanted in ts.items():
            hits = [
                OffsetAndTimestamp(self.base + i, t)
                for i, (_, _, t) in enumerate(self.logs.get(tp, []))
                if t >= wanted
            ]
            out[tp] = hits[0] if hits else None
        return out

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset

    def pause(self, tp: TopicPartition) -> None:
        pass

    async def getmany(
        self, *tps: TopicPartition, timeout_ms: int, max_records: int
    ) -> dict[TopicPartition, list[Message]]:
        out = {}
        for tp in tps:
            log = self.logs.get(tp, [])
            start = self.positions[tp]
            chunk = log[start - self.base : start - self.base + 3]  # small fetches
            if chunk:
                out[tp] = [Message(start + i, k, v) for i, (k, v, _) in enumerate(chunk)]
                self.read += [(tp, m.offset) for m in out[tp]]
                self.positions[tp] = start + len(chunk)
        return out

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]


TP0 = TopicPartition("t", 0)


def log_of(items: list[tuple[bytes, str]], ts: int = 1000) -> list[tuple[bytes, bytes, int]]:
    return [(key, event(n, event_id), ts + n) for n, (key, event_id) in enumerate(items)]


async def test_read_back_reads_after_the_floor_and_matches_key_and_id() -> None:
    log = log_of(
        [(b"bot", "old")] * 5
        + [(b"other", "a"), (b"bot", "a"), (b"bot", "b"), (b"other", "zz"), (b"bot", "y")]
    )
    consumer = FakeConsumer({TP0: log})
    wanted = Target("t", 0, frozenset({"a", "b", "c", "zz"}), frozenset({b"bot"}), 4, None)
    assert await read_back(consumer, [wanted], 1000) == {"a", "b"}
    assert min(offset for _, offset in consumer.read) == 5
    assert max(offset for _, offset in consumer.read) == 9


async def test_read_back_stops_once_everything_is_found() -> None:
    log = log_of([(b"bot", "a")] + [(b"bot", f"later-{n}") for n in range(50)])
    consumer = FakeConsumer({TP0: log})
    wanted = Target("t", 0, frozenset({"a"}), frozenset({b"bot"}), None, None)
    assert await read_back(consumer, [wanted], 1000) == {"a"}
    assert len(consumer.read) < 10


async def test_read_back_by_time_and_bounded_in_records() -> None:
    log = log_of([(b"bot", f"e{n}") for n in range(40)], ts=1000)
    consumer = FakeConsumer({TP0: log}, base=100)
    by_time = Target("t", 0, frozenset({"e20", "e5"}), frozenset({b"bot"}), None, 1020)
    assert await read_back(consumer, [by_time], 1000) == {"e20"}  # e5 is older than asked
    assert min(offset for _, offset in consumer.read) == 120
    consumer = FakeConsumer({TP0: log}, base=100)
    no_hint = Target("t", 0, frozenset({"e5", "e35"}), frozenset({b"bot"}), None, None)
    assert await read_back(consumer, [no_hint], 10) == {"e35"}
    assert min(offset for _, offset in consumer.read) == 130


async def test_read_back_of_several_partitions_and_an_empty_one() -> None:
    tp1, tp2 = TopicPartition("t", 1), TopicPartition("t", 2)
    consumer = FakeConsumer({tp1: log_of([(b"k1", "x"), (b"k1", "y")]), tp2: []})
    wanted = [
        Target("t", 1, frozenset({"y"}), frozenset({b"k1"}), None, None),
        Target("t", 2, frozenset({"w"}), frozenset({b"k2"}), None, None),
    ]
    assert await read_back(consumer, wanted, 1000) == {"y"}
    assert await read_back(FakeConsumer({}), [], 1000) == set()


# -- the sender around it ------------------------------------------------------------------


class Meta(NamedTuple):
    topic: str
    partition: int
    offset: int


class LossyKafka:
    """A broker in memory whose acknowledgements can be lost.

    ``mode``: "up"; "lost_ack" (written, but the sender sees a timeout); "lost_request" (not
    written, the sender sees a lost connection); "hang" (written, never answered); "down".
    """

    def __init__(self) -> None:
        self.mode = "up"
        self.log: list[tuple[bytes, bytes]] = []
        self.check_errors: list[BaseException] = []
        self.mode_after_check: str | None = None
        self.checks: list[tuple[list[str], dict[tuple[str, int], int]]] = []

    def transport(self, config: ProducerConfig) -> "LossyTransport":
        return LossyTransport(self)

    def values(self) -> list[int]:
        return [orjson.loads(v)["i"] for _, v in self.log]


class LossyTransport:
    def __init__(self, kafka: LossyKafka) -> None:
        self.kafka = kafka

    async def start(self) -> None:
        if self.kafka.mode == "down":
            raise KafkaConnectionError("down")

    async def send(self, topic: str, key: bytes, value: bytes) -> "asyncio.Future[Any]":
        kafka = self.kafka
        if kafka.mode == "down":
            raise KafkaTimeoutError()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if kafka.mode in ("up", "lost_ack", "hang"):
            kafka.log.append((key, value))
        if kafka.mode == "up":
            future.set_result(Meta(topic, 0, len(kafka.log) - 1))
        elif kafka.mode == "lost_ack":
            future.set_exception(KafkaTimeoutError())
        elif kafka.mode == "lost_request":
            future.set_exception(KafkaConnectionError("connection lost"))
        return future

    async def stop(self, timeout: float) -> None:
        return None

    async def find_delivered(
        self, records: list[Record], floors: dict[tuple[str, int], int]
    ) -> set[str]:
        ids = [event_id_of(r.value) or "" for r in records]
        self.kafka.checks.append((ids, dict(floors)))
        if self.kafka.mode_after_check is not None:
            self.kafka.mode = self.kafka.mode_after_check
        if self.kafka.check_errors:
            raise self.kafka.check_errors.pop(0)
        on_broker = {event_id_of(v) for _, v in self.kafka.log}
        return {i for i in ids if i in on_broker}


@pytest.fixture
def kafka() -> LossyKafka:
    return LossyKafka()


@pytest.fixture
def config(tmp_path: Path) -> ProducerConfig:
    return ProducerConfig(topic="t", spool_dir=tmp_path / "spool", delivery_timeout_ms=500)


def engine_for(kafka: LossyKafka, config: ProducerConfig) -> Engine:
    return Engine(config, spool_name="bot", transport_factory=kafka.transport)


def offer(engine: Engine, numbers: range) -> None:
    for i in numbers:
        assert engine.offer(b"bot", event(i))


async def until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_written_but_unacknowledged_events_are_not_sent_twice(
    kafka: LossyKafka, config: ProducerConfig
) -> None:
    engine = engine_for(kafka, config)
    await engine.start()
    offer(engine, range(5))
    assert await engine.flush(5)
    kafka.mode = "lost_ack"
    with pytest.warns(BotwatchWarning, match="not taking events"):
        offer(engine, range(5, 10))
        await until(lambda: engine.stats.already_delivered == 5)
    kafka.mode = "up"
    offer(engine, range(10, 15))
    assert await engine.flush(5)
    await engine.close(1)
    assert kafka.values() == list(range(15))
    assert len(kafka.checks) == 1
    checked, floors = kafka.checks[0]
    assert len(checked) == 5
    assert floors == {("t", 0): 4}  # the last offset acknowledged before them
    stats = engine.stats.snapshot()
    assert (stats["sent"], stats["already_delivered"], stats["spooled"]) == (15, 5, 5)


async def test_unwritten_unacknowledged_events_are_sent_again_once(
    kafka: LossyKafka, config: ProducerConfig
) -> None:
    engine = engine_for(kafka, config)
    await engine.start()
    kafka.mode = "lost_request"
    with pytest.warns(BotwatchWarning):
        offer(engine, range(5))
        await until(lambda: len(kafka.checks) >= 1)
    kafka.mode = "up"
    offer(engine, range(5, 8))
    assert await engine.flush(10)
    await engine.close(1)
    assert kafka.values() == list(range(8))
    assert engine.stats.already_delivered == 0
    assert engine.stats.sent == 8


async def test_a_failed_check_keeps_them_spooled_and_is_retried(
    kafka: LossyKafka, config: ProducerConfig
) -> None:
    engine = engine_for(kafka, config)
    await engine.start()
    offer(engine, range(3))
    assert await engine.flush(5)
    kafka.check_errors = [KafkaConnectionError("broker gone again")]
    kafka.mode, kafka.mode_after_check = "lost_ack", "up"
    with pytest.warns(BotwatchWarning) as caught:
        offer(engine, range(3, 6))
        await until(lambda: len(kafka.checks) == 1)
        await asyncio.sleep(0.3)
        assert engine.snapshot()["spool_records"] == 3  # nothing dropped, nothing resent
        assert kafka.values() == list(range(6))
        assert await engine.flush(10)
    await engine.close(1)
    assert any("cannot read back" in str(w.message) for w in caught)
    assert len(kafka.checks) == 2
    assert kafka.values() == list(range(6))
    assert engine.stats.already_delivered == 3


async def test_a_refused_check_sends_them_again_with_a_warning(
    kafka: LossyKafka, config: ProducerConfig
) -> None:
    engine = engine_for(kafka, config)
    await engine.start()
    kafka.check_errors = [TopicAuthorizationFailedError()]
    kafka.mode, kafka.mode_after_check = "lost_ack", "up"
    with pytest.warns(BotwatchWarning) as caught:
        offer(engine, range(2))
        assert await engine.flush(10)
    await engine.close(1)
    assert any("may arrive twice" in str(w.message) for w in caught)
    assert kafka.values() == [0, 1, 0, 1]  # the old at-least-once behaviour, and said so
    assert engine.stats.already_delivered == 0


async def test_events_in_flight_at_close_are_checked_at_the_next_start(
    kafka: LossyKafka, config: ProducerConfig
) -> None:
    first = engine_for(kafka, config)
    await first.start()
    kafka.mode = "hang"
    offer(first, range(4))
    await until(lambda: len(kafka.log) == 4)
    await first.close(0.2)
    kafka.mode = "up"
    second = engine_for(kafka, config)
    await second.start()
    offer(second, range(4, 6))
    assert await second.flush(5)
    await second.close(1)
    assert kafka.values() == list(range(6))
    assert second.stats.already_delivered == 4
    assert kafka.checks[0][1] == {}  # no acknowledged offset known after a restart: by time


async def test_events_never_handed_over_are_not_checked(
    kafka: LossyKafka, config: ProducerConfig
) -> None:
    kafka.mode = "down"
    engine = engine_for(kafka, config)
    with pytest.warns(BotwatchWarning, match="cannot reach Kafka"):
        await engine.start()
        offer(engine, range(3))
        await until(lambda: engine.snapshot()["spool_records"] == 3)
    kafka.mode = "up"
    assert await engine.flush(5)
    await engine.close(1)
    assert kafka.values() == [0, 1, 2]
    assert kafka.checks == []
