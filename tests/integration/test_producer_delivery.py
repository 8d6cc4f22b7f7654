"""Every API of the SDK against the real broker: N events in, the same N event_ids out, once."""

import asyncio
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from support import create_topics, read_events

from botwatch.settings import Settings
from producers import AsyncBotLogger, BotLogger, BotwatchHandler, ProducerConfig
from producers.stats import BotwatchWarning

N = 500


def assert_exactly_once(rows: list[tuple[str, dict[str, Any]]], sent_ids: list[str]) -> None:
    got = [event["event_id"] for _, event in rows]
    assert len(got) == len(set(got)), "duplicates"
    assert sorted(got) == sorted(sent_ids)


def config_for(topic: str, tmp_path: Path, bootstrap: str) -> ProducerConfig:
    return ProducerConfig(bootstrap=bootstrap, topic=topic, spool_dir=tmp_path / "spool")


def test_sync_bot_logger(stack: Settings, make_topic: Any, tmp_path: Path) -> None:
    topic = make_topic("sdk-sync", partitions=3)
    with BotLogger("sync-bot", config=config_for(topic, tmp_path, stack.kafka_bootstrap)) as bot:
        for i in range(N):
            bot.info("event", i=i)
        assert bot.flush(30)
        assert bot.stats()["sent"] == N
    rows = read_events(stack.kafka_bootstrap, topic)
    assert len(rows) == N
    assert {key for key, _ in rows} == {"sync-bot"}
    # One key, one partition: the order of emission is kept.
    assert [event["meta"]["i"] for _, event in rows] == list(range(N))
    ids = [event["event_id"] for _, event in rows]
    assert ids == sorted(ids)
    assert_exactly_once(rows, ids)


def test_async_bot_logger(stack: Settings, make_topic: Any, tmp_path: Path) -> None:
    topic = make_topic("sdk-async", partitions=3)

    async def run() -> None:
        config = config_for(topic, tmp_path, stack.kafka_bootstrap)
        async with AsyncBotLogger("async-bot", config=config) as bot:
            for i in range(N):
                await bot.info("event", i=i)
            assert await bot.flush(30)

    asyncio.run(run())
    rows = read_events(stack.kafka_bootstrap, topic)
    assert [event["meta"]["i"] for _, event in rows] == list(range(N))
    assert_exactly_once(rows, [event["event_id"] for _, event in rows])


def test_a_missing_topic_keeps_events_in_the_spool_and_says_so_once(
    stack: Settings, make_topic: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The first event went into a send that waited for the metadata of a topic that does
    not exist, and was lost at close with ``flush`` saying all was delivered; aiokafka
    meanwhile warned ten times a second in the bot's output."""
    topic = make_topic("sdk-late")
    missing = f"{topic}-not-yet"
    config = config_for(missing, tmp_path, stack.kafka_bootstrap)
    with (
        pytest.warns(BotwatchWarning, match=f"the topic {missing} does not exist") as warned,
        caplog.at_level(logging.WARNING, logger="aiokafka"),
    ):
        bot = BotLogger("late-bot", config=config)
        bot.info("only event")
        time.sleep(1.0)
        assert bot.flush(1) is False
        bot.close()
    assert sum("does not exist" in str(w.message) for w in warned) == 1
    assert bot.stats()["spooled"] == 1
    assert not [r for r in caplog.records if missing in r.getMessage()]
    # The topic made: the next run sends what the spool kept.
    asyncio.run(create_topics(stack.kafka_bootstrap, [missing], 1))
    make_topic.created.append(missing)
    with BotLogger("late-bot", config=config) as bot:
        bot.info("second event")
        assert bot.flush(30)
    rows = read_events(stack.kafka_bootstrap, missing)
    assert [event["message"] for _, event in rows] == ["only event", "second event"]


def test_logging_handler(stack: Settings, make_topic: Any, tmp_path: Path) -> None:
    topic = make_topic("sdk-handler")
    config = config_for(topic, tmp_path, stack.kafka_bootstrap)
    handler = BotwatchHandler("handler-bot", config=config)
    log = logging.getLogger(f"bot.{topic}")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    try:
        for i in range(N):
            log.info("row %d", i, extra={"i": i})
        log.error("done", extra={"status": "failure"})
    finally:
        log.removeHandler(handler)
        handler.close()
    rows = read_events(stack.kafka_bootstrap, topic)
    assert len(rows) == N + 1
    assert [event["message"] for _, event in rows[:3]] == ["row 0", "row 1", "row 2"]
    assert rows[-1][1]["level"] == "error"
    assert rows[-1][1]["status"] == "failure"
    assert rows[0][1]["meta"] == {"logger": log.name, "i": 0}
    assert_exactly_once(rows, [event["event_id"] for _, event in rows])


def emit(*args: str, bootstrap: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "botwatch", "--kafka-bootstrap", bootstrap, "emit", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_emit_command(stack: Settings, make_topic: Any) -> None:
    topic = make_topic("sdk-emit")
    for i in range(5):
        result = emit(
            "--bot", "shell-bot", "--level", "info", "--message", f"run {i}", "--status",
            "success", "--job", "nightly", "--duration-ms", "12.5", "--retry-count", "1",
            "--meta", f"i={i}", "--meta", "host=db-1", "--topic", topic,
            bootstrap=stack.kafka_bootstrap,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
    rows = read_events(stack.kafka_bootstrap, topic)
    assert [event["meta"] for _, event in rows] == [{"i": i, "host": "db-1"} for i in range(5)]
    first = rows[0][1]
    assert (first["status"], first["job_id"], first["duration_ms"], first["retry_count"]) == (
        "success",
        "nightly",
        12.5,
        1,
    )
    assert {key for key, _ in rows} == {"shell-bot"}


TWICE = ["--meta", "a=1", "--meta", "a=2"]


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--bot", "bad bot", "--level", "info", "--message", "m"], "bot_id"),
        (["--bot", "b", "--level", "info", "--message", "m", "--duration-ms", "-3"], "duration_ms"),
        (["--bot", "b", "--level", "info", "--message", "m", "--retry-count", "-1"], "retry_count"),
        (["--bot", "b", "--level", "info", "--message", "m", "--status", "bogus"], "--status"),
        (["--bot", "b", "--level", "loud", "--message", "m"], "--level"),
        ([*["--bot", "b", "--level", "info", "--message", "m"], *TWICE], "'a' is given twice"),
    ],
)
def test_emit_invalid_input_exits_2(args: list[str], field: str) -> None:
    result = emit(*args, bootstrap="127.0.0.1:1")  # rejected before any connection
    assert result.returncode == 2
    assert field in result.stderr


def test_emit_unreachable_broker_exits_1() -> None:
    result = emit(
        "--bot", "b", "--level", "info", "--message", "m", "--timeout", "3",
        bootstrap="127.0.0.1:1",
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot reach Kafka at 127.0.0.1:1"), result.stderr
    assert "botwatch stack status" in result.stderr


def test_emit_with_a_bootstrap_that_is_no_address_says_so_and_exits_1() -> None:
    result = emit("--bot", "b", "--level", "info", "--message", "m", bootstrap="localhost:abc")
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith(
        "error: BOTWATCH_KAFKA_BOOTSTRAP='localhost:abc' is not host:port"
    ), result.stderr
    assert "Traceback" not in result.stderr


def test_emit_missing_topic_exits_1(stack: Settings) -> None:
    result = emit(
        "--bot", "b", "--level", "info", "--message", "m", "--topic", "botwatch-test.no-such-topic",
        bootstrap=stack.kafka_bootstrap,
    )  # fmt: skip
    assert result.returncode == 1
    assert "does not exist" in result.stderr
