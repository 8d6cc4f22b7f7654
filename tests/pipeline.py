"""A worker run judged by the generator's ground truth: shared by the integration tests.

A pipeline is a dict made by the ``pipeline`` fixture: ``env`` (the botwatch settings of
the run: its own topics, consumer group and index prefix), ``topics``, ``dir`` and
``settings``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from support import TopicFactory, WorkerProcess, headers_of, read_topic

from botwatch.settings import Settings
from schemas import decode_event

PARTITIONS = 4
GENERATE = [
    "--bots", "6", "--rate", "100", "--no-pacing", "--error-rate", "0.05",
    "--failure-rate", "0.1", "--malformed", "0.02", "--late", "0.01",
]  # fmt: skip


def worker(pipeline: dict[str, Any], name: str, *args: str) -> WorkerProcess:
    base = pipeline["dir"]
    log = base / f"worker-{name}.log"
    return WorkerProcess(pipeline["env"], base / f"state-{name}", log, args=list(args))


def generate(
    pipeline: dict[str, Any],
    events: int,
    *,
    seed: int = 11,
    start: str | None = None,
    bots: int | None = None,
) -> dict[str, Any]:
    """``botwatch generate`` into the events topic; its truth. ``start``: the first event
    time (default: now); ``bots``: how many bots (default 6)."""
    truth = pipeline["dir"] / f"truth-{seed}.json"
    starting = ["--start", start] if start else []
    if bots is not None:
        starting += ["--bots", str(bots)]  # the last --bots counts
    done = subprocess.run(
        [sys.executable, "-m", "botwatch", "generate", "--topic", pipeline["topics"]["events"],
         "--events", str(events), "--truth", str(truth), *GENERATE, "--seed", str(seed),
         *starting],
        env={**pipeline["env"]}, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(truth.read_text())
    return result


def truth_windows(truth: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (bot, w["window_start"]): w
        for bot, windows in truth["windows"].items()
        for w in windows.values()
    }


def collect_stats(
    pipeline: dict[str, Any], expected: int, timeout: float = 180
) -> dict[tuple[str, str], dict[str, Any]]:
    """Distinct closed windows on the stats topic; duplicates (a replay) must be identical."""
    deadline = time.monotonic() + timeout
    while True:
        windows: dict[tuple[str, str], dict[str, Any]] = {}
        for envelope in read_topic(
            pipeline["settings"].kafka_bootstrap, pipeline["topics"]["stats"]
        ):
            record = json.loads(envelope["payload"])
            key = (record["bot_id"], record["window_start"])
            assert windows.setdefault(key, record) == record, f"two different records for {key}"
        if len(windows) >= expected or time.monotonic() > deadline:
            return windows
        time.sleep(1)


def assert_stats_match(truth: dict[str, Any], stats: dict[tuple[str, str], dict[str, Any]]) -> None:
    expected = truth_windows(truth)
    assert sorted(stats) == sorted(expected)
    for key, want in expected.items():
        got = stats[key]
        for field in ("count", "errors", "successes", "failures", "retries", "levels"):
            assert got[field] == want[field], (key, field, got[field], want[field])
        gd, wd = got["duration_ms"], want["duration_ms"]
        for field in ("count", "sum", "min", "max"):
            assert gd[field] == pytest.approx(wd[field]), (key, field)
        for q in ("p50", "p95", "p99"):
            if wd["count"]:
                assert abs(gd[q] - wd[q]) <= 0.01 * wd[q], (key, q, gd[q], wd[q])
    late = sum(w["late_events_excluded"] for w in stats.values())
    assert late == truth["counts"]["late"]


def assert_dead_letters_match(
    pipeline: dict[str, Any], truth: dict[str, Any], *, once: bool = False
) -> None:
    """Every malformed record of the truth, and no valid one but job failures, is in the
    dead-letter topic with its stage and field path. ``once``: no record has two letters of
    one stage (a run where no worker was killed between a batch's letters and its state
    write)."""
    malformed = {(m["partition"], m["offset"]): m for m in truth["malformed"]}
    seen: dict[tuple[int, int], dict[str, str]] = {}
    letters: set[tuple[tuple[int, int], str]] = set()
    for envelope in read_topic(pipeline["settings"].kafka_bootstrap, pipeline["topics"]["dlq"]):
        headers = headers_of(envelope)
        origin = (
            int(headers["botwatch.dlq.original.partition"]),
            int(headers["botwatch.dlq.original.offset"]),
        )
        stage = headers["botwatch.dlq.stage"]
        assert not (once and (origin, stage) in letters), f"two {stage} letters of {origin}"
        letters.add((origin, stage))
        if headers["botwatch.dlq.stage"] == "job_failure":
            event = decode_event(envelope["payload"].encode("utf-8", "surrogateescape"))
            assert event["status"] == "failure"
            assert origin not in malformed
            continue
        seen[origin] = headers
    assert sorted(seen) == sorted(malformed)
    for origin, m in malformed.items():
        headers = seen[origin]
        assert headers["botwatch.dlq.stage"] == m["stage"], (m, headers)
        assert headers["botwatch.dlq.reason"].startswith(f"{m['path']}:" if m["path"] else ""), (
            m,
            headers,
        )
        assert headers["botwatch.dlq.original.topic"] == pipeline["topics"]["events"]
        assert headers["botwatch.dlq.replay_count"] == "0"


def make_pipeline(settings: Settings, make_topic: TopicFactory, tmp_path: Path) -> dict[str, Any]:
    topics = {
        name: make_topic(name, partitions=PARTITIONS)
        for name in ("events", "dlq", "stats", "alerts")
    }
    topics["silences"] = make_topic("silences", partitions=1)
    env = {
        "BOTWATCH_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "BOTWATCH_OPENSEARCH_URL": settings.opensearch_url,
        "BOTWATCH_APP_ID": make_topic.app_id(),
        "BOTWATCH_INDEX_PREFIX": f"botwatch-test-{uuid.uuid4().hex[:10]}",
        "BOTWATCH_EVENTS_TOPIC": topics["events"],
        "BOTWATCH_DLQ_TOPIC": topics["dlq"],
        "BOTWATCH_STATS_TOPIC": topics["stats"],
        "BOTWATCH_ALERTS_TOPIC": topics["alerts"],
        "BOTWATCH_SILENCES_TOPIC": topics["silences"],
        "BOTWATCH_PARTITIONS": str(PARTITIONS),
        "BOTWATCH_IDLE_CLOSE_S": "4",
        "BOTWATCH_SESSION_TIMEOUT_S": "8",
    }
    return {"env": env, "topics": topics, "dir": tmp_path, "settings": settings}
