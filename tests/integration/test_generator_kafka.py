"""`botwatch generate` against the real broker: the topic holds exactly what the truth says."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
from support import read_topic

from botwatch.settings import Settings
from schemas import EventError, decode_event


def generate(settings: Settings, topic: str, truth: Path, *args: str) -> str:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "botwatch",
            "--kafka-bootstrap",
            settings.kafka_bootstrap,
            "generate",
            "--topic",
            topic,
            "--truth",
            str(truth),
            *args,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_topic_matches_the_truth(stack: Settings, make_topic: Any, tmp_path: Path) -> None:
    topic = make_topic("generate", partitions=3)
    truth_path = tmp_path / "truth.json"
    summary = generate(
        stack,
        topic,
        truth_path,
        *("--bots", "6", "--events", "4000", "--rate", "10", "--no-pacing"),
        *("--malformed", "0.05", "--late", "0.05", "--error-rate", "0.1"),
        *("--seed", "42", "--start", "2026-11-23T10:00:00Z"),
    )
    assert "sent 4,000 records" in summary
    truth = orjson.loads(truth_path.read_bytes())
    counts = truth["counts"]
    assert truth["complete"] is True
    assert counts["records"] == 4000
    assert counts["valid"] + counts["malformed"] == 4000
    assert counts["late"] > 0 and counts["malformed"] > 0

    records = read_topic(stack.kafka_bootstrap, topic)
    assert len(records) == counts["valid"] + counts["malformed"]
    by_place = {(r["partition"], r["offset"]): r for r in records}

    for bad in truth["malformed"]:
        record = by_place[(bad["partition"], bad["offset"])]
        assert record["key"] == bad["key"]
        raw = (record["payload"] or "").encode("utf-8", "surrogateescape")
        try:
            decode_event(raw)
        except EventError as exc:
            assert (exc.stage, exc.path) == (bad["stage"], bad["path"])
        else:
            raise AssertionError(f"malformed record {bad} was accepted")

    malformed_places = {(bad["partition"], bad["offset"]) for bad in truth["malformed"]}
    seen: list[str] = []
    bot_partition: dict[str, int] = {}
    for place, record in by_place.items():
        if place in malformed_places:
            continue
        event = decode_event(record["payload"].encode())
        assert event["bot_id"] == record["key"]
        seen.append(event["event_id"])
        # One bot, one partition: per-bot windows need no repartition.
        assert bot_partition.setdefault(record["key"], record["partition"]) == record["partition"]
    assert sorted(seen) == sorted(truth["event_ids"])
    assert len(set(seen)) == len(seen)

    on_time = sum(w["count"] for bot in truth["windows"].values() for w in bot.values())
    assert on_time == counts["on_time"] == counts["valid"] - counts["late"]


def test_unknown_topic_is_reported(stack: Settings, tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "botwatch",
            "--kafka-bootstrap",
            stack.kafka_bootstrap,
            "generate",
            "--topic",
            "botwatch-test.generate-missing-topic",
            "--events",
            "10",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 1
    assert "does not exist" in done.stderr


def test_interrupt_flushes_and_writes_the_truth_of_what_was_sent(
    stack: Settings, make_topic: Any, tmp_path: Path
) -> None:
    topic = make_topic("generate-stop", partitions=3)
    truth_path = tmp_path / "truth.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "botwatch",
            "--kafka-bootstrap",
            stack.kafka_bootstrap,
            "generate",
            *("--topic", topic, "--truth", str(truth_path), "--rate", "500"),
            *("--duration", "600", "--malformed", "0.05", "--seed", "5"),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Wait for the first record to land, then interrupt mid-run.
        subprocess.run(
            ["kcat", "-b", stack.kafka_bootstrap, "-C", "-t", topic, "-c", "1", "-q"],
            capture_output=True,
            check=True,
            timeout=60,
        )
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "interrupted after" in stderr
    truth = orjson.loads(truth_path.read_bytes())
    assert truth["complete"] is False
    records = read_topic(stack.kafka_bootstrap, topic)
    assert 0 < len(records) == truth["counts"]["records"] < 300_000
    assert len(truth["event_ids"]) == truth["counts"]["valid"]
