"""BotLogger, jobs, the logging handler and the sender, over an in-memory fake transport."""

import asyncio
import logging
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError

from producers import AsyncBotLogger, BotLogger, BotwatchHandler, BotwatchWarning, ProducerConfig
from producers.events import EventFactory
from producers.handler import level_name
from producers.producer import SyncProducer
from producers.spool import Record, Spool
from schemas import decode_event


class FakeKafka:
    """A broker in memory: records it acknowledged, and a switch to make it unreachable."""

    def __init__(self) -> None:
        self.up = True
        self.records: list[tuple[str, bytes, dict[str, Any]]] = []
        # Topics that exist (None: any); a send to another one times out, as aiokafka's does.
        self.topics: set[str] | None = None

    def transport(self, config: ProducerConfig) -> "FakeTransport":
        return FakeTransport(self)

    def events(self) -> list[dict[str, Any]]:
        return [event for _, _, event in self.records]


class FakeTransport:
    def __init__(self, kafka: FakeKafka) -> None:
        self.kafka = kafka

    async def start(self) -> None:
        if not self.kafka.up:
            raise KafkaConnectionError("down")

    async def send(self, topic: str, key: bytes, value: bytes) -> "asyncio.Future[Any]":
        if not self.kafka.up or (self.kafka.topics is not None and topic not in self.kafka.topics):
            raise KafkaTimeoutError()
        self.kafka.records.append((topic, key, decode_event(value)))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    async def stop(self, timeout: float) -> None:
        return None


@pytest.fixture
def kafka() -> FakeKafka:
    return FakeKafka()


@pytest.fixture
def config(tmp_path: Path) -> ProducerConfig:
    return ProducerConfig(topic="events", spool_dir=tmp_path / "spool", delivery_timeout_ms=500)


@pytest.fixture
def bot(kafka: FakeKafka, config: ProducerConfig) -> Iterator[BotLogger]:
    producer = SyncProducer(config, spool_name="bot", transport_factory=kafka.transport)
    logger = BotLogger("invoice-bot", producer=producer)
    yield logger
    producer.close(timeout=2)


def test_levels_and_meta(bot: BotLogger, kafka: FakeKafka) -> None:
    bot.debug("d")
    bot.info("i", invoice=42)
    bot.warning("w")
    bot.error("e")
    bot.critical("c")
    bot.heartbeat()
    assert bot.flush(5)
    events = kafka.events()
    assert [e["level"] for e in events] == ["debug", "info", "warning", "error", "critical", "info"]
    assert events[1]["meta"] == {"invoice": 42}
    assert events[-1]["status"] == "heartbeat"
    assert {key for _, key, _ in kafka.records} == {b"invoice-bot"}
    assert bot.stats()["sent"] == 6


def test_job_success_with_retries(bot: BotLogger, kafka: FakeKafka) -> None:
    with bot.job("job-17", queue="a") as job:
        job.retry()
        job.retry("second try", attempt=2)
        job.info("working")
    assert bot.flush(5)
    events = kafka.events()
    assert [e.get("status") for e in events] == ["started", "retry", "retry", None, "success"]
    assert all(e["job_id"] == "job-17" for e in events)
    assert [e.get("retry_count") for e in events[1:3]] == [1, 2]
    assert events[2]["message"] == "second try"
    assert events[2]["meta"] == {"queue": "a", "attempt": 2}
    assert events[-1]["retry_count"] == 2
    assert events[-1]["duration_ms"] >= 0
    assert events[-1]["level"] == "info"


def test_job_failure_records_the_error_and_reraises(bot: BotLogger, kafka: FakeKafka) -> None:
    with pytest.raises(ZeroDivisionError), bot.job("job-18"):
        1 / 0  # noqa: B018
    assert bot.flush(5)
    last = kafka.events()[-1]
    assert last["status"] == "failure"
    assert last["level"] == "error"
    assert last["error"]["type"] == "ZeroDivisionError"
    assert last["error"]["message"] == "division by zero"
    assert "1 / 0" in last["error"]["stack"]
    assert last["retry_count"] == 0


@pytest.mark.parametrize(("code", "status"), [(None, "success"), (0, "success"), (3, "failure"),
                                              ("bye", "failure")])  # fmt: skip
def test_a_program_exiting_inside_a_job_ends_it_by_its_exit_code(
    bot: BotLogger, kafka: FakeKafka, code: object, status: str
) -> None:
    with pytest.raises(SystemExit), bot.job("job-19"):
        sys.exit(code)
    assert bot.flush(5)
    last = kafka.events()[-1]
    assert (last["status"], last["level"] == "error", "error" in last) == (
        status, status == "failure", status == "failure"
    )  # fmt: skip


def test_job_decorator_on_sync_and_async_functions(bot: BotLogger, kafka: FakeKafka) -> None:
    @bot.job("nightly")
    def nightly(x: int) -> int:
        return x * 2

    @bot.job("async-nightly")
    async def async_nightly(x: int) -> int:
        await asyncio.sleep(0)
        return x * 3

    assert nightly(2) == 4
    assert nightly(3) == 6
    assert asyncio.run(async_nightly(2)) == 6
    assert bot.flush(5)
    statuses = [(e["job_id"], e["status"]) for e in kafka.events()]
    assert statuses == [
        ("nightly", "started"),
        ("nightly", "success"),
        ("nightly", "started"),
        ("nightly", "success"),
        ("async-nightly", "started"),
        ("async-nightly", "success"),
    ]


def test_invalid_values_raise_at_the_call_site(bot: BotLogger) -> None:
    with pytest.raises(ValueError, match=r"^duration_ms: "):
        bot.log("info", "m", duration_ms="abc")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^retry_count: "):
        bot.log("info", "m", retry_count=-1)
    with pytest.raises(ValueError, match=r"^status: "):
        bot.log("info", "m", status="bogus")
    with pytest.raises(ValueError, match=r"^level: "):
        bot.log("loud", "m")
    with pytest.raises(ValueError, match=r"^bot_id: "):
        BotLogger("not a bot id", producer=bot.producer)


def test_a_bootstrap_that_is_no_address_is_named_as_such_not_as_an_outage(
    config: ProducerConfig,
) -> None:
    producer = SyncProducer(replace(config, bootstrap="localhost:abc"), spool_name="bot")
    with pytest.warns(BotwatchWarning, match=r"BOTWATCH_KAFKA_BOOTSTRAP='localhost:abc' is not"):
        bot = BotLogger("invoice-bot", producer=producer)
        bot.info("m")
        deadline = time.monotonic() + 5
        while not bot.stats()["failed_sends"] and time.monotonic() < deadline:
            time.sleep(0.01)
    producer.close(timeout=0.5)
    assert bot.stats()["spool_records"] == 1  # kept, not dropped


def test_broker_down_spools_in_order_then_sends_once(
    kafka: FakeKafka, config: ProducerConfig
) -> None:
    kafka.up = False
    producer = SyncProducer(config, spool_name="bot", transport_factory=kafka.transport)
    with pytest.warns(BotwatchWarning, match="cannot reach Kafka"):
        bot = BotLogger("invoice-bot", producer=producer)
        for i in range(50):
            bot.info("m", i=i)
        deadline = time.monotonic() + 5
        while bot.stats()["spooled"] < 50 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert bot.stats()["spool_records"] == 50
    kafka.up = True
    for i in range(50, 60):
        bot.info("m", i=i)
    assert bot.flush(10)
    assert [e["meta"]["i"] for e in kafka.events()] == list(range(60))
    stats = bot.stats()
    assert (stats["sent"], stats["spool_records"], stats["spool_bytes"]) == (60, 0, 0)
    producer.close(timeout=2)


def test_spool_read_first_at_next_start(kafka: FakeKafka, config: ProducerConfig) -> None:
    kafka.up = False
    first = SyncProducer(config, spool_name="bot", transport_factory=kafka.transport)
    with pytest.warns(BotwatchWarning):
        bot = BotLogger("invoice-bot", producer=first)
        for i in range(5):
            bot.info("m", i=i)
        first.close(timeout=0.5)
    assert kafka.records == []
    kafka.up = True
    second = SyncProducer(config, spool_name="bot", transport_factory=kafka.transport)
    bot = BotLogger("invoice-bot", producer=second)
    bot.info("m", i=5)
    assert bot.flush(5)
    assert [e["meta"]["i"] for e in kafka.events()] == list(range(6))
    second.close(timeout=1)


def test_events_spooled_for_a_topic_that_does_not_exist_go_to_the_one_configured_now(
    kafka: FakeKafka, config: ProducerConfig
) -> None:
    """Spooled under a mistyped topic (the bot could not start its producer), the events
    held back every later run's, as each drain sent them to that topic again."""
    kafka.up, kafka.topics = False, {"events"}
    typo = SyncProducer(
        replace(config, topic="evnets"), spool_name="bot", transport_factory=kafka.transport
    )
    with pytest.warns(BotwatchWarning):
        bot = BotLogger("invoice-bot", producer=typo)
        for i in range(3):
            bot.info("m", i=i)
        typo.close(timeout=0.5)
    kafka.up = True
    fixed = SyncProducer(config, spool_name="bot", transport_factory=kafka.transport)
    bot = BotLogger("invoice-bot", producer=fixed)
    bot.info("m", i=3)
    assert bot.flush(5)
    assert [(topic, e["meta"]["i"]) for topic, _, e in kafka.records] == [
        ("events", i) for i in range(4)
    ]
    fixed.close(timeout=1)


def test_events_left_in_another_slot_by_an_overlapping_run_are_sent_by_a_later_one(
    kafka: FakeKafka, config: ProducerConfig
) -> None:
    """A run beside another run of the bot spools into slot ``.1``; later runs alone took
    slot 0 only, and those events were never sent."""
    factory = EventFactory("invoice-bot")
    left = Spool(config.spool_dir / "bot.1", config.spool_max_bytes)
    left.open()
    left.append([Record("events", factory.key, factory.build("info", f"left {n}")) for n in "012"])
    left.close()
    producer = SyncProducer(config, spool_name="bot", transport_factory=kafka.transport)
    bot = BotLogger("invoice-bot", producer=producer)
    bot.info("new")
    assert bot.flush(5)
    assert [e["message"] for e in kafka.events()] == ["left 0", "left 1", "left 2", "new"]
    producer.close(timeout=1)


def test_a_slot_that_cannot_be_opened_does_not_turn_spooling_off(
    kafka: FakeKafka, config: ProducerConfig
) -> None:
    """Looking for events left in later slots, one that cannot be opened (not a directory,
    not ours) is passed over: the free slot 0, held meanwhile, still spools."""
    config.spool_dir.mkdir(parents=True)
    (config.spool_dir / "bot.2").write_text("not a spool")
    kafka.up = False
    producer = SyncProducer(config, spool_name="bot", transport_factory=kafka.transport)
    with pytest.warns(BotwatchWarning, match="cannot reach Kafka"):
        bot = BotLogger("invoice-bot", producer=producer)
        bot.info("m")
        deadline = time.monotonic() + 5
        while not bot.stats()["spool_records"] and time.monotonic() < deadline:
            time.sleep(0.01)
    assert bot.stats()["spool_records"] == 1
    producer.close(timeout=0.5)


def test_spool_full_rejects_and_counts(kafka: FakeKafka, config: ProducerConfig) -> None:
    kafka.up = False
    small = replace(config, spool_max_bytes=2000)
    producer = SyncProducer(small, spool_name="bot", transport_factory=kafka.transport)
    with pytest.warns(BotwatchWarning, match="is full"):
        bot = BotLogger("invoice-bot", producer=producer)
        for i in range(40):
            bot.info("m", i=i)
        deadline = time.monotonic() + 5
        while bot.stats()["spooled"] + bot.stats()["dropped_spool_full"] < 40:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    stats = bot.stats()
    assert stats["spooled"] > 0
    assert stats["dropped_spool_full"] == 40 - stats["spooled"]
    assert stats["spool_bytes"] <= 2000
    kafka.up = True
    assert bot.flush(5)
    assert [e["meta"]["i"] for e in kafka.events()] == list(range(stats["spooled"]))
    producer.close(timeout=1)


def test_full_queue_drops_after_the_bound_and_counts(
    kafka: FakeKafka, config: ProducerConfig
) -> None:
    tiny = replace(config, queue_max_events=3, emit_block_ms=20)
    producer = SyncProducer(tiny, spool_name="bot", transport_factory=kafka.transport)
    bot = BotLogger("invoice-bot", producer=producer)  # started, but its loop is held below
    assert producer._loop is not None
    producer._loop.call_soon_threadsafe(time.sleep, 0.5)
    time.sleep(0.05)
    with pytest.warns(BotwatchWarning, match="queue full"):
        results = [bot.info("m", i=i) for i in range(5)]
    assert results == [True, True, True, False, False]
    assert bot.stats()["dropped_queue_full"] == 2
    assert bot.flush(5)
    assert [e["meta"]["i"] for e in kafka.events()] == [0, 1, 2]
    producer.close(timeout=1)


def test_after_close_events_are_counted_not_raised(bot: BotLogger) -> None:
    bot.producer.close(timeout=1)
    with pytest.warns(BotwatchWarning, match="after close"):
        results = [bot.info("late") for _ in range(3)]
    assert results == [False, False, False]
    assert bot.stats()["dropped_closed"] == 3


async def test_async_logger_and_job(kafka: FakeKafka, config: ProducerConfig) -> None:
    from producers import AsyncProducer

    producer = AsyncProducer(config, spool_name="abot", transport_factory=kafka.transport)
    async with AsyncBotLogger("async-bot", producer=producer) as bot:
        await bot.info("hello", n=1)
        async with bot.job("j1") as job:
            await job.retry()

        @bot.job("j2")
        async def work() -> str:
            return "done"

        assert await work() == "done"
        assert await bot.flush(5)
    await producer.close()
    statuses = [(e.get("job_id"), e.get("status")) for e in kafka.events()]
    assert statuses == [
        (None, None),
        ("j1", "started"),
        ("j1", "retry"),
        ("j1", "success"),
        ("j2", "started"),
        ("j2", "success"),
    ]


@pytest.mark.parametrize(
    ("levelno", "name"),
    [
        (logging.DEBUG, "debug"),
        (5, "debug"),
        (logging.INFO, "info"),
        (logging.WARNING, "warning"),
        (logging.ERROR, "error"),
        (logging.CRITICAL, "critical"),
        (60, "critical"),
    ],
)
def test_level_mapping(levelno: int, name: str) -> None:
    assert level_name(levelno) == name


def test_handler_keeps_the_fields_extra_gives_right_beside_one_it_gives_wrong(
    bot: BotLogger, kafka: FakeKafka
) -> None:
    handler = BotwatchHandler(bot)
    extra = {"job_id": "j1", "retry_count": "x", "error": "timeout"}
    handler.handle(logging.makeLogRecord({"name": "app", "msg": "m", "levelno": 20, **extra}))
    assert bot.flush(5)
    [event] = kafka.events()
    assert event["job_id"] == "j1"
    assert event["meta"] == {"logger": "app", "retry_count": "x", "error": "timeout"}


def test_handler_maps_records(bot: BotLogger, kafka: FakeKafka) -> None:
    handler = BotwatchHandler(bot)
    log = logging.getLogger("test.handler.bot")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    log.addHandler(handler)
    try:
        log.debug("hello %s", "world", extra={"invoice": 42, "job_id": "job-1"})
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            log.exception("failed")
        log.warning("bad field", extra={"retry_count": "x"})
        logging.getLogger("aiokafka.test").error("not published")
    finally:
        log.removeHandler(handler)
    assert bot.flush(5)
    first, second, third = kafka.events()
    assert first["level"] == "debug"
    assert first["message"] == "hello world"
    assert first["job_id"] == "job-1"
    assert first["meta"] == {"logger": "test.handler.bot", "invoice": 42}
    assert second["level"] == "error"
    assert second["error"]["type"] == "RuntimeError"
    assert "boom" in second["error"]["stack"]
    assert third["meta"] == {"logger": "test.handler.bot", "retry_count": "x"}
    assert "retry_count" not in third


def test_the_handler_leaves_out_its_own_machinery_only(bot: BotLogger, kafka: FakeKafka) -> None:
    """A bot's own ``kafka_sync`` or ``producers_of_reports`` logger was left out too."""
    handler = BotwatchHandler(bot)
    names = ["invoices", "kafka_sync", "kafkaesque.bot", "producers_of_reports",
             "asyncio_crawler", "kafka", "kafka.conn", "aiokafka.consumer", "producers.engine",
             "asyncio"]  # fmt: skip
    for name in names:
        handler.handle(logging.LogRecord(name, logging.INFO, __file__, 1, name, None, None))
    assert bot.flush(5)
    assert [e["meta"]["logger"] for e in kafka.events()] == names[:5]


def test_spooled_records_are_plain_json(kafka: FakeKafka, config: ProducerConfig) -> None:
    kafka.up = False
    producer = SyncProducer(config, spool_name="bot", transport_factory=kafka.transport)
    with pytest.warns(BotwatchWarning):
        BotLogger("invoice-bot", producer=producer).info("kept")
        producer.close(timeout=0.5)
    segment = next((config.spool_dir / "bot").glob("*.seg"))
    assert b'"message":"kept"' in segment.read_bytes()
    assert orjson.loads(segment.read_bytes()[12 + len(b"events") + len(b"invoice-bot") :])


def test_an_async_logger_never_closed_says_at_exit_what_it_did_not_send(
    kafka: FakeKafka, config: ProducerConfig
) -> None:
    """Its event loop ended with the events still in memory, and nothing was said."""
    from producers import AsyncProducer

    producer = AsyncProducer(config, spool_name="abot", transport_factory=kafka.transport)

    async def forgets_to_close() -> None:
        bot = AsyncBotLogger("async-bot", producer=producer)
        for i in range(3):
            await bot.info("m", i=i)

    asyncio.run(forgets_to_close())
    with pytest.warns(BotwatchWarning, match=r"never closed: 3 event\(s\) it held in memory"):
        producer._warn_unclosed()  # what atexit runs

    closed = AsyncProducer(config, spool_name="abot2", transport_factory=kafka.transport)

    async def closes() -> None:
        async with AsyncBotLogger("async-bot", producer=closed) as bot:
            await bot.info("m")
        await closed.close()  # given to the logger, so the caller's to close

    asyncio.run(closes())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        closed._warn_unclosed()


def test_a_forked_child_says_it_cannot_send_and_exits_without_waiting(
    kafka: FakeKafka, config: ProducerConfig
) -> None:
    """A child forked from a bot used the parent's logger: ``info()`` said True, nothing was
    sent (the sending thread stayed in the parent), and its exit waited on that thread."""
    producer = SyncProducer(config, spool_name="bot", transport_factory=kafka.transport)
    bot = BotLogger("invoice-bot", producer=producer)
    bot.info("parent 0")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe, then leave without pytest's cleanup
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                sent = bot.info("child")
                flushed = bot.flush(5)
                producer.close()
            # Marked forked from the parent: flush and close return at once, not waiting
            # for a thread that is not there (no timing here: a unit test holds none).
            report = {"sent": sent, "flushed": flushed, "forked_from": producer._forked_from,
                      "warnings": [str(w.message) for w in caught]}  # fmt: skip
            os.write(write_end, orjson.dumps(report))
        finally:
            os._exit(0)
    os.close(write_end)
    data = b""
    while chunk := os.read(read_end, 65536):
        data += chunk
    os.close(read_end)
    os.waitpid(pid, 0)
    report = orjson.loads(data)
    assert (report["sent"], report["flushed"]) == (False, False)
    assert report["forked_from"] == os.getpid()
    assert any("before it forked" in message for message in report["warnings"]), report
    bot.info("parent 1")
    assert bot.flush(5)
    assert [e["message"] for e in kafka.events()] == ["parent 0", "parent 1"]
    producer.close(timeout=1)


def test_warnings_made_errors_reach_neither_the_bot_nor_the_sender(
    kafka: FakeKafka, config: ProducerConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    """Under -W error (or pytest's filterwarnings = error) a warning raises: the sender's
    first one ended its task for the life of the process, and one in the bot's own call
    (an event after close) raised into the bot."""
    kafka.topics = set()  # every send fails: the sender warns, and goes on
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        producer = SyncProducer(config, spool_name="bot", transport_factory=kafka.transport)
        bot = BotLogger("invoice-bot", producer=producer)
        assert bot.info("while the topic is missing")
        time.sleep(1.5)
        kafka.topics = None  # the topic is made: the sender, still alive, delivers
        assert bot.flush(10)
        producer.close(timeout=2)
        assert bot.info("after close") is False
    assert [e["message"] for e in kafka.events()] == ["while the topic is missing"]
    said = capsys.readouterr().err  # where Python shows a warning
    assert "BotwatchWarning: botwatch: event emitted after close() was dropped" in said


def test_importing_the_sdk_loads_the_codec_its_first_connection_needs() -> None:
    """The sender thread's first getaddrinfo imported the idna codec lazily: a process that
    forked meanwhile left its child holding the import lock, and the child's own
    BotLogger hung on its first connection."""
    check = "import sys, producers; print('encodings.idna' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                          timeout=60, check=True)  # fmt: skip
    assert done.stdout.strip() == "True"


def test_an_exception_whose_str_raises_leaves_a_job_as_itself(
    bot: BotLogger, kafka: FakeKafka
) -> None:
    class Weird(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no text")

    with pytest.raises(Weird), bot.job("j-weird"):
        raise Weird
    assert bot.flush(5)
    failed = kafka.events()[-1]
    assert failed["status"] == "failure" and failed["error"]["type"].endswith("Weird")
    assert failed["error"]["message"] == "<str() failed: RuntimeError>"


def test_contract_fields_among_meta_keywords_are_those_fields(
    bot: BotLogger, kafka: FakeKafka
) -> None:
    """``bot.info("done", duration_ms=...)`` put the duration in meta, where neither the
    window's percentiles nor its failure rate see it; logging's ``extra`` mapped them."""
    bot.info("done", duration_ms=120.5, job_id="j-1", status="success", retry_count=2, n=1)
    bot.error("failed", error={"type": "Timeout", "message": "slow"})
    with bot.job("j-2") as job:
        job.info("step", job_id="other", duration_ms=3)  # the job's own id wins
    # A value the field does not take stays meta: an HTTP status, an error as text.
    bot.info("fetched", status=200, error="timeout", duration_ms=-1, job_id=42)
    assert bot.flush(5)
    done, failed, _, step, _, fetched = kafka.events()
    assert fetched["meta"] == {"status": 200, "error": "timeout", "duration_ms": -1, "job_id": 42}
    assert not {"status", "error", "duration_ms", "job_id"} & fetched.keys()
    assert (done["duration_ms"], done["job_id"], done["status"], done["retry_count"]) == (
        120.5, "j-1", "success", 2,
    )  # fmt: skip
    assert done["meta"] == {"n": 1}
    assert failed["error"] == {"type": "Timeout", "message": "slow"} and "meta" not in failed
    assert (step["job_id"], step["duration_ms"], step["meta"]) == ("j-2", 3, {"job_id": "other"})
