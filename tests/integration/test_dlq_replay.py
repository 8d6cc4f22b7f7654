"""`botwatch dlq replay` against the real broker, on dead letters written by the test.

No worker: the dead letters are made with the worker's own header function, and replays go
``--to`` a topic of the test, so every record sent can be counted.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from click.testing import CliRunner, Result
from support import headers_of, read_topic

from botwatch.cli import main
from botwatch.settings import Settings
from streams import dlq
from streams.deadletters.kafka import PARTITIONER

BOTWATCH = [sys.executable, "-m", "botwatch"]


def write_letters(
    bootstrap: str,
    topic: str,
    n: int,
    *,
    replays: int = 0,
    stage: dlq.DlqStage = "validate",
    padding: dict[int, int] | None = None,
) -> None:
    """``n`` dead letters; ``padding``: letter number -> bytes of padding in its value."""

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
        await producer.start()
        try:
            futures = []
            for i in range(n):
                own = [(dlq.REPLAY_COUNT, str(replays).encode())] if replays else []
                headers = dlq.dlq_headers(
                    stage, f"field_{i % 3}: broken, got {i}", None,
                    original_topic="botwatch-test.nowhere", partition=0, offset=i,
                    timestamp_ms=1_700_000_000_000, original_headers=own,
                    now=datetime.now(UTC),
                )  # fmt: skip
                pad = "x" * (padding or {}).get(i, 0)
                value = orjson.dumps({"event_id": f"e-{replays}-{i}", "n": i, "pad": pad})
                key = f"bot-{i % 5}".encode()
                futures.append(await producer.send(topic, value, key=key, headers=headers))
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    asyncio.run(send())


def end_offsets(bootstrap: str, topics: list[str]) -> dict[str, int]:
    async def ends() -> dict[str, int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
        await consumer.start()
        try:
            out = {}
            for topic in topics:
                tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
                if not tps:
                    await consumer.topics()
                    parts = (await consumer._client.fetch_all_metadata()).partitions_for_topic(
                        topic
                    )
                    tps = [TopicPartition(topic, p) for p in parts]
                out[topic] = sum((await consumer.end_offsets(tps)).values())
            return out
        finally:
            await consumer.stop()

    return asyncio.run(ends())


def groups(bootstrap: str) -> set[str]:
    async def listed() -> set[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            return {g[0] for g in await admin.list_consumer_groups()}
        finally:
            await admin.close()

    return asyncio.run(listed())


@pytest.fixture
def env(stack: Settings, make_topic: Any) -> dict[str, str]:
    return {
        "BOTWATCH_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
        "BOTWATCH_DLQ_TOPIC": make_topic("dlq", partitions=2),
    }


def dlq_cli(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, ["dlq", *args], env=env, catch_exceptions=False)


def sources(bootstrap: str, topic: str) -> Counter[str]:
    return Counter(
        headers_of(e)["botwatch.dlq.replay.source"] for e in read_topic(bootstrap, topic)
    )


def test_a_killed_replay_restarted_sends_every_record_once(
    env: dict[str, str], make_topic: Any, tmp_path: Any
) -> None:
    bootstrap, letters = env["BOTWATCH_KAFKA_BOOTSTRAP"], env["BOTWATCH_DLQ_TOPIC"]
    target = make_topic("target", partitions=3)
    write_letters(bootstrap, letters, 3000)
    args = [*BOTWATCH, "dlq", "replay", "--to", target, "--rate", "1500/s", "--yes"]
    proc_env = {**os.environ, **env}
    log = tmp_path / "replay.log"
    with log.open("wb") as out:
        first = subprocess.Popen(args, env=proc_env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while end_offsets(bootstrap, [target])[target] < 1000 and time.monotonic() < deadline:
        assert first.poll() is None, log.read_text()
        time.sleep(0.1)
    first.kill()
    first.wait(timeout=30)
    halfway = end_offsets(bootstrap, [target])[target]
    assert 1000 <= halfway < 3000, log.read_text()

    done = subprocess.run(
        args, env=proc_env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    sent = sources(bootstrap, target)
    assert len(sent) == 3000
    assert set(sent.values()) == {1}, [s for s, n in sent.items() if n > 1][:5]
    assert sum(sent.values()) == 3000
    # A third run finds nothing left to send.
    again = subprocess.run(
        args, env=proc_env, capture_output=True, text=True, timeout=60, check=False
    )
    assert again.returncode == 0
    assert "nothing to replay" in again.stdout
    assert end_offsets(bootstrap, [target])[target] == 3000


def test_a_failure_whose_letter_was_written_twice_is_sent_once(
    env: dict[str, str], make_topic: Any
) -> None:
    """A batch redone after a crash writes its dead letters again: same record, same stage.
    Replaying both would count the event twice in its window."""
    bootstrap, letters = env["BOTWATCH_KAFKA_BOOTSTRAP"], env["BOTWATCH_DLQ_TOPIC"]
    target = make_topic("target")
    write_letters(bootstrap, letters, 20)
    write_letters(bootstrap, letters, 20)  # the same 20 failures again
    done = dlq_cli(env, "replay", "--to", target, "--yes")
    assert done.exit_code == 0, done.output
    assert f"sent 20 (20 to {target}) in " in done.output
    assert "not sent: 20 copies of a failure" in done.output
    replayed = read_topic(bootstrap, target)
    origins = Counter(headers_of(e)["botwatch.dlq.replay.origin"] for e in replayed)
    assert len(origins) == 20 and set(origins.values()) == {1}
    assert "botwatch-test.nowhere:0:7:validate:0" in origins


def test_a_record_too_large_for_the_target_is_named_and_skipped_by_replay_and_import(
    env: dict[str, str], make_topic: Any, tmp_path: Any
) -> None:
    """One letter over the target's max.message.bytes stopped every run of the replay at the
    same place, with a traceback; the others in its batch are sent."""
    bootstrap, letters = env["BOTWATCH_KAFKA_BOOTSTRAP"], env["BOTWATCH_DLQ_TOPIC"]
    target = make_topic("target", config={"max.message.bytes": "20000"})
    write_letters(bootstrap, letters, 30, padding={7: 30_000})
    big = next(
        f"{letters}:{e['partition']}:{e['offset']}"
        for e in read_topic(bootstrap, letters)
        if len(e["payload"]) > 30_000
    )
    done = dlq_cli(env, "replay", "--to", target, "--yes")
    assert done.exit_code == 2, done.output
    assert "sent 29" in done.output and "skipped: 1 (1 too large for" in done.output
    assert f"not sent: 1 record(s) too large for {target} ({big}): raise" in done.output
    assert "`dlq import` (this replay has moved past them)" in done.output
    assert len(sources(bootstrap, target)) == 29
    again = dlq_cli(env, "replay", "--to", target, "--yes")
    assert again.exit_code == 0 and "nothing to replay" in again.output, again.output

    exported = tmp_path / "all.jsonl"
    assert dlq_cli(env, "export", "--out", str(exported)).exit_code == 0
    imported = dlq_cli(env, "import", str(exported), "--to", target, "--yes")
    assert imported.exit_code == 2, imported.output
    assert f"sent 29 record(s) to {target}" in imported.output
    assert f"not sent: 1 record(s) too large for {target} ({big}): raise" in imported.output
    assert end_offsets(bootstrap, [target])[target] == 58


def test_rate_limit_and_max_and_resume(env: dict[str, str], make_topic: Any) -> None:
    bootstrap, letters = env["BOTWATCH_KAFKA_BOOTSTRAP"], env["BOTWATCH_DLQ_TOPIC"]
    target = make_topic("target")
    write_letters(bootstrap, letters, 600)
    started = time.monotonic()
    first = dlq_cli(env, "replay", "--to", target, "--rate", "400/s", "--max", "400")
    took = time.monotonic() - started
    assert first.exit_code == 3, first.output
    assert "sent 400" in first.output and "run the same command again" in first.output
    assert took >= 0.9  # 400 at 400/s, with at most a small burst up front
    rest = dlq_cli(env, "replay", "--to", target, "--rate", "400/s", "--max", "400")
    assert rest.exit_code == 0, rest.output
    assert "sent 200" in rest.output
    assert set(sources(bootstrap, target).values()) == {1}
    assert end_offsets(bootstrap, [target])[target] == 600


def test_a_replay_since_a_time_ago_continues_with_the_window_it_began(
    env: dict[str, str], make_topic: Any
) -> None:
    """``--since 8s --max 4`` run again later re-read its window as a later one: the letters
    the first run had yet to send were no longer selected, and it said nothing was left."""
    bootstrap, letters = env["BOTWATCH_KAFKA_BOOTSTRAP"], env["BOTWATCH_DLQ_TOPIC"]
    target = make_topic("target")
    written = time.monotonic()
    write_letters(bootstrap, letters, 10)
    args = ["replay", "--to", target, "--since", "8s", "--max", "4", "--yes"]
    first = dlq_cli(env, *args)
    assert first.exit_code == 3, first.output
    assert "run the same command again" in first.output
    time.sleep(max(0.0, written + 9 - time.monotonic()))  # every letter is older than 8s now
    rest = dlq_cli(env, *args[:-3], "--yes")
    assert rest.exit_code == 0, rest.output
    assert "sent 6" in rest.output
    assert set(sources(bootstrap, target).values()) == {1}
    assert end_offsets(bootstrap, [target])[target] == 10


def test_dry_run_changes_nothing_and_the_loop_guard_quarantines(
    env: dict[str, str], make_topic: Any
) -> None:
    bootstrap, letters = env["BOTWATCH_KAFKA_BOOTSTRAP"], env["BOTWATCH_DLQ_TOPIC"]
    target = make_topic("target")
    write_letters(bootstrap, letters, 30)
    write_letters(bootstrap, letters, 10, replays=3)
    write_letters(bootstrap, letters, 5, stage="job_failure")
    before = end_offsets(bootstrap, [letters, target])
    known = groups(bootstrap)
    # JSON lines on stdout; that there are more, on stderr.
    listed = dlq_cli(env, "list", "--json", "--limit", "5")
    assert [orjson.loads(line)["stage"] for line in listed.stdout.splitlines()] == [
        "job_failure"
    ] * 5
    assert listed.stderr.strip() == "(5 newest of 45; --limit N shows more)"

    dry = dlq_cli(env, "replay", "--to", target, "--dry-run")
    assert dry.exit_code == 2, dry.output  # the quarantined ones will not be sent
    assert "dry run: nothing is sent" in dry.output
    assert f"would send 35 to {target}" in dry.output  # job failures too: --to given
    assert "send 35, quarantine 10, skip 0" in dry.output
    assert "by stage:" in dry.output and "by reason:" in dry.output
    assert end_offsets(bootstrap, [letters, target]) == before
    assert groups(bootstrap) == known

    jobs = dlq_cli(env, "replay", "--stage", "job_failure", "--dry-run")
    assert "skip 5: a job_failure is an event the worker already processed" in jobs.output
    nowhere = dlq_cli(env, "replay", "--dry-run")  # the original topic is gone
    assert (
        "target topic 'botwatch-test.nowhere' does not exist (the original topic of 30 "
        "selected dead letter(s))"
    ) in nowhere.output
    assert "or leave those letters out (--stage, --bot" in nowhere.output
    # Not counted first (--yes), the targets the letters name are still checked before
    # anything is sent or committed.
    uncounted = dlq_cli(env, "replay", "--yes")
    assert uncounted.exit_code == 1, uncounted.output
    assert "target topic 'botwatch-test.nowhere' does not exist" in uncounted.output
    assert end_offsets(bootstrap, [letters, target]) == before
    assert groups(bootstrap) == known
    # Decided while sending: job failures without --to are skipped, and said why.
    skipped = dlq_cli(env, "replay", "--stage", "job_failure", "--yes")
    assert skipped.exit_code == 2, skipped.output
    assert "skipped: 5 (5 a job_failure is an event the worker already processed" in skipped.output
    nobody = dlq_cli(env, "replay", "--to", target, "--bot", "nobody", "--yes")
    assert nobody.exit_code == 0 and "nothing to replay (bot nobody)" in nobody.output

    real = dlq_cli(env, "replay", "--to", target, "--yes")
    assert real.exit_code == 2, real.output
    assert "sent 35" in real.output and "quarantined: 10" in real.output
    sent = read_topic(bootstrap, target)
    assert len(sent) == 35
    counts = Counter(headers_of(e)["botwatch.dlq.replay_count"] for e in sent)
    assert counts == {"1": 35}


def test_bad_input_gets_clear_errors(env: dict[str, str], make_topic: Any) -> None:
    write_letters(env["BOTWATCH_KAFKA_BOOTSTRAP"], env["BOTWATCH_DLQ_TOPIC"], 3)
    cases = [
        (["list", "--stage", "validation"], "unknown stage 'validation'"),
        (["list", "--since", "1h", "--until", "2h"], "is not before --until"),
        (["list", "--reason", "(("], "is not a regular expression"),
        (["replay", "--to", "botwatch-test.no-such-topic", "--yes"], "does not exist"),
        (["replay", "--to", env["BOTWATCH_DLQ_TOPIC"]], "dead-letter topic itself"),
        (["replay", "--rate", "fast"], "--rate 'fast' is not a rate"),
        (["show", "1:999999"], "no dead letter at 1:999999"),
    ]
    for args, message in cases:
        result = dlq_cli(env, *args)
        assert result.exit_code == 1, (args, result.output)
        assert message in result.output, (args, result.output)
        assert "fix:" in result.output, (args, result.output)
    down = dlq_cli({**env, "BOTWATCH_KAFKA_BOOTSTRAP": "127.0.0.1:9"}, "list")
    assert down.exit_code == 1
    assert "127.0.0.1:9 is not reachable" in down.output and "botwatch stack up" in down.output
    missing = dlq_cli({**env, "BOTWATCH_DLQ_TOPIC": "botwatch-test.no-dlq"}, "list")
    assert "dead-letter topic 'botwatch-test.no-dlq' does not exist" in missing.output
    many = dlq_cli({**env, "BOTWATCH_DLQ_CONFIRM_ABOVE": "2"}, "replay",
                   "--to", make_topic("target"))  # fmt: skip
    assert many.exit_code == 1 and "pass --yes" in many.output


def test_a_replay_to_the_events_topic_keeps_each_record_on_its_partition(
    env: dict[str, str], make_topic: Any, tmp_path: Any
) -> None:
    """A bot's events keyed by a producer whose partitioner is not Kafka's default (kcat,
    librdkafka) sit on another partition than the default partitioner picks for the key:
    a replay placed by the default one opened a second window of the bot, and the two
    windows' stats documents, of one ``_id``, overwrote each other. A letter re-keyed by
    its bot has no partition of its own to go back to: the default partitioner places it."""
    bootstrap, letters = env["BOTWATCH_KAFKA_BOOTSTRAP"], env["BOTWATCH_DLQ_TOPIC"]
    events = make_topic("events", partitions=6)
    parts = list(range(6))
    keys = [f"bot-{i}".encode() for i in range(8)]
    elsewhere = {key: (PARTITIONER(key, parts, parts) + 1) % 6 for key in keys}

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            now = datetime.now(UTC)
            for n, key in enumerate(keys):
                headers = dlq.dlq_headers(
                    "validate", "duration_ms: must be a finite number >= 0, got -3", None,
                    original_topic=events, partition=elsewhere[key], offset=n,
                    timestamp_ms=1_700_000_000_000, original_headers=[], now=now,
                )  # fmt: skip
                value = orjson.dumps({"event_id": f"e-{n}", "bot_id": key.decode()})
                await producer.send_and_wait(letters, value, key=key, headers=headers)
            miskeyed = dlq.dlq_headers(
                "validate", dlq.miskeyed_reason(b"shipper-1", "bot-9"), None,
                original_topic=events, partition=elsewhere[keys[0]], offset=99,
                timestamp_ms=1_700_000_000_000, original_headers=[], now=now,
            )  # fmt: skip
            value = orjson.dumps({"event_id": "e-99", "bot_id": "bot-9"})
            await producer.send_and_wait(letters, value, key=b"shipper-1", headers=miskeyed)
        finally:
            await producer.stop()

    asyncio.run(send())
    done = dlq_cli(env, "replay", "--yes")
    assert done.exit_code == 0, done.output
    expected = {
        **{key.decode(): elsewhere[key] for key in keys},
        "bot-9": PARTITIONER(b"bot-9", parts, parts),
    }
    placed = {r["key"]: r["partition"] for r in read_topic(bootstrap, events)}
    assert placed == expected
    # The same letters exported and imported again land where the replay put them.
    exported = tmp_path / "letters.jsonl"
    assert dlq_cli(env, "export", "--out", str(exported)).exit_code == 0
    imported = dlq_cli(env, "import", str(exported), "--yes")
    assert imported.exit_code == 0, imported.output
    records = read_topic(bootstrap, events)
    assert len(records) == 2 * len(expected)
    assert {(r["key"], r["partition"]) for r in records} == set(expected.items())
