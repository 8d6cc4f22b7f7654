"""`botwatch top` on the real broker: window records on a stats topic, shown per bot."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
import time
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from click.testing import CliRunner, Result
from support import BOTWATCH

from botwatch.cli import main
from botwatch.settings import Settings

HOUR_MS = 3_600_000


def window(bot: str, start: str, count: int, errors: int, p95: float | None) -> bytes:
    return orjson.dumps(
        {
            "bot_id": bot,
            "window_start": f"2026-12-07T{start}:00Z",
            "window_end": "",
            "window_size_s": 60,
            "count": count,
            "errors": errors,
            "successes": 8,
            "failures": 2,
            "retries": 3,
            "error_rate": errors / count,
            "failure_rate": 0.2,
            "duration_ms": {"count": 5, "p50": 100.0, "p95": p95, "p99": p95},
            "late_events_excluded": 1,
            "schema_version": 1,
        }
    )


def publish(bootstrap: str, topic: str, records: list[tuple[bytes, int]]) -> None:
    """``(value, Kafka timestamp)`` pairs, keyed by nothing (the view goes by the value)."""

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            for value, stamp in records:
                await producer.send_and_wait(topic, value, timestamp_ms=stamp)
        finally:
            await producer.stop()

    asyncio.run(send())


def top(stack: Settings, topic: str, *args: str) -> Result:
    env = {"BOTWATCH_KAFKA_BOOTSTRAP": stack.kafka_bootstrap, "BOTWATCH_STATS_TOPIC": topic}
    return CliRunner().invoke(main, ["top", "--once", *args], env=env, catch_exceptions=False)


def test_top_shows_each_bots_newest_window_since_the_given_time(
    stack: Settings, make_topic: Any
) -> None:
    topic = make_topic("stats", partitions=3)
    now = int(time.time() * 1000)
    publish(
        stack.kafka_bootstrap,
        topic,
        [
            (window("invoice-bot", "09:58", 500, 400, 900.0), now - 2 * HOUR_MS),  # too old
            (window("invoice-bot", "10:00", 200, 20, 1500.0), now - 60_000),
            (window("invoice-bot", "10:01", 100, 5, 1200.0), now - 1000),
            (window("crawler", "10:01", 50, 25, None), now - 1000),
            (window("mailer", "10:01", 1000, 0, 80.0), now - 1000),
            (b"not a window", now - 1000),
        ],
    )
    result = top(stack, topic, "--since", "1h")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"botwatch top: windows published in the last 1h on {topic}"
    assert lines[1].split()[:3] == ["BOT", "WINDOW", "(UTC)"]
    rows = [line.split() for line in lines[2:5]]
    # By the newest window's error rate: crawler 50%, invoice-bot 5%, mailer 0%.
    assert [row[0] for row in rows] == ["crawler", "invoice-bot", "mailer"]
    # Its newest window, then its totals since 1h: 25 errors in 300 events (the window
    # published 2 h ago is left out).
    assert rows[1] == [
        *["invoice-bot", "2026-12-07", "10:01", "100", "5.0%", "20.0%", "3"],
        *["100", "1,200", "1,200", "1", "300", "8.3%"],
    ]
    assert rows[0][7:10] == ["100", "-", "-"]  # crawler: no p95 in its window
    assert lines[5] == f"1 record(s) on {topic} are not window records: left out"

    by_events = top(stack, topic, "--since", "1h", "--sort", "events", "--limit", "1")
    assert [line.split()[0] for line in by_events.output.splitlines()[2:3]] == ["mailer"]
    assert "... and 2 more bots (--limit)" in by_events.output


def test_top_names_a_missing_stats_topic_and_how_to_fix_it(stack: Settings) -> None:
    result = top(stack, "botwatch-test-no-such-stats-topic")
    assert result.exit_code == 1
    assert "the stats topic 'botwatch-test-no-such-stats-topic' does not exist" in result.output
    assert "BOTWATCH_STATS_TOPIC" in result.output


def test_top_live_draws_windows_as_they_are_published_and_quits_on_ctrl_c(
    stack: Settings, make_topic: Any
) -> None:
    topic = make_topic("stats", partitions=2)
    now = int(time.time() * 1000)
    publish(stack.kafka_bootstrap, topic, [(window("early-bot", "10:00", 10, 1, 5.0), now)])
    env = {**os.environ, "BOTWATCH_KAFKA_BOOTSTRAP": stack.kafka_bootstrap}
    env["BOTWATCH_STATS_TOPIC"] = topic
    proc = subprocess.Popen(
        [*BOTWATCH, "top", "--since", "10m", "--interval", "0.2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.extend(line.decode() for line in proc.stdout), daemon=True
    )
    reader.start()

    def wait_for(text: str) -> None:
        deadline = time.monotonic() + 60
        while not any(text in line for line in lines):
            assert proc.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, f"no {text!r} in:\n" + "".join(lines)
            time.sleep(0.05)

    try:
        wait_for("early-bot")  # started, caught up, drawn
        publish(stack.kafka_bootstrap, topic, [(window("later-bot", "10:01", 10, 2, 5.0), now)])
        wait_for("later-bot")
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=10)
    text = "".join(lines)
    assert proc.returncode == 0, text
    assert "Traceback" not in text
    draws = text.split("botwatch top: ")[1:]
    assert "later-bot" not in draws[0]  # the first draw came before it was published
    # (The last draw may be cut short by the signal.)
    assert any("later-bot" in draw and "Ctrl-C to quit" in draw for draw in draws)
