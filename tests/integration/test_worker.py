"""The worker against the real broker, judged by the generator's ground truth.

Each test gets its own topics and consumer group, runs `botwatch generate --truth` into
the events topic and `botwatch worker` (one or two processes) over it, then reads the stats
and dead-letter topics back with kcat and compares them with the truth.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from pipeline import (
    PARTITIONS,
    assert_dead_letters_match,
    assert_stats_match,
    collect_stats,
    generate,
    make_pipeline,
    truth_windows,
)
from pipeline import worker as pipeline_worker
from support import (
    BOTWATCH,
    TopicFactory,
    WorkerProcess,
    create_topics,
    create_when_deleted,
    delete_topics,
    last_values,
    read_topic,
)

from botwatch.settings import Settings
from streams.app import changelog_topic
from streams.deadletters.kafka import consumer
from streams.state_offsets import read_persisted


@pytest.fixture
def pipeline(stack: Settings, make_topic: Any, tmp_path: Path) -> dict[str, Any]:
    return make_pipeline(stack, make_topic, tmp_path)


def worker(pipeline: dict[str, Any], name: str) -> WorkerProcess:
    """The stream logic alone: the sink is discarded (the OpenSearch side has its own tests)."""
    return pipeline_worker(pipeline, name, "--sink", "discard")


def test_windows_and_dead_letters_match_the_truth(pipeline: dict[str, Any]) -> None:
    w = worker(pipeline, "a").start()
    try:
        w.wait_ready()
        truth = generate(pipeline, 30_000)
        stats = collect_stats(pipeline, len(truth_windows(truth)))
        assert_stats_match(truth, stats)
        assert_dead_letters_match(pipeline, truth, once=True)
        assert w.metric("botwatch_records_in_total") == truth["counts"]["records"]
        assert w.metric("botwatch_late_events_total") == truth["counts"]["late"]
        assert w.get("/health")[0] == 200
        # One series per counter: no ``_created`` twin of each (prometheus_client's default).
        assert b"_created" not in w.get("/metrics")[1]
        status = json.loads(w.get("/status")[1])
        assert all(p["watermark"] for p in status["partitions"].values())
    finally:
        assert w.stop() == 0, w.tail()


def test_kill_9_twice_mid_stream_changes_nothing(pipeline: dict[str, Any]) -> None:
    truth = generate(pipeline, 60_000)
    for round_ in range(2):
        w = worker(pipeline, "a").start()
        w.wait_ready()
        deadline = time.monotonic() + 120
        while (
            w.metric("botwatch_records_in_total") < 8_000 * (round_ + 1) / 2
            and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        w.kill()
    w = worker(pipeline, "a").start()
    try:
        w.wait_ready()
        stats = collect_stats(pipeline, len(truth_windows(truth)))
        assert_stats_match(truth, stats)
        assert_dead_letters_match(pipeline, truth)
    finally:
        w.stop()


def test_two_workers_one_stopped_mid_run(pipeline: dict[str, Any]) -> None:
    a = worker(pipeline, "a").start()
    b = worker(pipeline, "b").start()
    try:
        a.wait_ready()
        b.wait_ready()
        # Generated while the workers read, so that the stop falls early in the stream,
        # with windows open on every partition of the worker that stops.
        with ThreadPoolExecutor(1) as pool:
            generating = pool.submit(generate, pipeline, 60_000)
            deadline = time.monotonic() + 120
            while a.metric("botwatch_records_in_total") < 3_000 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert a.stop() == 0, a.tail()
            truth = generating.result()
        stats = collect_stats(pipeline, len(truth_windows(truth)))
        assert_stats_match(truth, stats)
        assert_dead_letters_match(pipeline, truth, once=True)
    finally:
        a.stop()
        b.stop()


async def _rewind_group(bootstrap: str, group: str, topic: str) -> None:
    """Commit offset 0 on every partition of ``topic`` for the (empty) consumer group."""
    # The tools' consumer does not auto commit: stopping would commit the positions its
    # fetcher had looked up (the offsets committed before), over the rewind.
    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    async with consumer(bootstrap, group) as c:
        c.assign(partitions)
        await c.commit(dict.fromkeys(partitions, 0))
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    assert {
        tp: meta.offset for tp, meta in committed.items() if tp.topic == topic
    } == dict.fromkeys(partitions, 0)


def test_records_read_again_after_their_offsets_were_lost_are_not_dead_lettered_twice(
    pipeline: dict[str, Any],
) -> None:
    """Offsets committed less far than the state says was processed (a crash before the
    commit; here the group rewound to 0): the records read again change no window and send
    no second dead letter, which a replay of the dead-letter topic would count twice."""
    bootstrap = pipeline["settings"].kafka_bootstrap
    truth = generate(pipeline, 4_000)
    records = truth["counts"]["records"]
    w = worker(pipeline, "a").start()
    try:
        w.wait_ready()
        assert_stats_match(truth, collect_stats(pipeline, len(truth_windows(truth))))
    finally:
        assert w.stop() == 0, w.tail()
    letters = read_topic(bootstrap, pipeline["topics"]["dlq"])
    assert letters, "the seeded run has malformed records and job failures"
    windows = read_topic(bootstrap, pipeline["topics"]["stats"])
    asyncio.run(
        _rewind_group(bootstrap, pipeline["env"]["BOTWATCH_APP_ID"], pipeline["topics"]["events"])
    )
    w = worker(pipeline, "a").start()
    try:
        w.wait_ready()
        w.wait_metric("botwatch_records_in_total", records)
        assert w.metric("botwatch_records_in_total") == records, "read again from offset 0"
        assert w.metric("botwatch_repeated_dead_letters_skipped_total") == len(letters)
        assert len(read_topic(bootstrap, pipeline["topics"]["dlq"])) == len(letters)
        assert len(read_topic(bootstrap, pipeline["topics"]["stats"])) == len(windows)
        assert_dead_letters_match(pipeline, truth, once=True)
    finally:
        assert w.stop() == 0, w.tail()


def test_a_broker_outage_turns_ready_to_503_and_the_worker_carries_on_after_it(
    stack: Settings, private_kafka: Any, tmp_path: Path
) -> None:
    """A broker of the test's own is stopped under a running worker and started again."""

    settings = dataclasses.replace(stack, kafka_bootstrap=private_kafka.bootstrap)
    # The broker goes with the test: nothing of it needs deleting.
    run = make_pipeline(settings, TopicFactory(private_kafka.bootstrap), tmp_path)
    w = worker(run, "a").start()
    try:
        w.wait_ready()
        before = generate(run, 20_000, seed=5, start="2026-11-23T10:00:00Z")
        w.wait_metric("botwatch_records_in_total", 20_000)
        assert w.metric("botwatch_kafka_up") == 1

        broker_away(private_kafka, w)
        private_kafka.start()

        after = generate(run, 20_000, seed=6, start="2026-11-23T10:05:00Z")
        w.wait_metric("botwatch_records_in_total", 40_000, timeout=120)
        w.wait_ready()
        assert w.metric("botwatch_kafka_up") == 1
        truth = merged(before, after)
        stats = collect_stats(run, len(truth_windows(truth)))
        # Stopped while the broker is away, it still exits at once (it used to sit out
        # faust's 60 s shutdown timeout).
        broker_away(private_kafka, w)
        began = time.monotonic()
        assert w.stop() == 0, w.tail()
        assert time.monotonic() - began < 30, w.tail()
    finally:
        assert w.stop() == 0, w.tail()
    assert_stats_match(truth, stats)
    # aiokafka's lines about the outage were throttled, not thousands of them.
    log = w.log.read_text(errors="replace")
    assert log.count("Unable connect to node") <= 10, w.tail()


def broker_away(broker: Any, w: WorkerProcess) -> None:
    """Stop ``broker``; the worker's /ready turns 503 and names it."""
    broker.stop(grace_s=10)
    body = w.wait_unready()
    assert f"Kafka at {broker.bootstrap} unreachable since".encode() in body
    assert w.metric("botwatch_kafka_up") == 0


def merged(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """The truth of two runs whose windows do not overlap."""
    windows: dict[str, dict[str, Any]] = {}
    for truth in (first, second):
        for bot, found in truth["windows"].items():
            overlap = windows.setdefault(bot, {}).keys() & found.keys()
            assert not overlap, overlap
            windows[bot].update(found)
    late = first["counts"]["late"] + second["counts"]["late"]
    return {"windows": windows, "counts": {"late": late}}


def _unready_saying(w: WorkerProcess, text: bytes, timeout: float = 30) -> bytes:
    """The first 503 body holding ``text`` (or the last one, at the deadline): a topic
    deleted or grown also makes the group rebalance, and 503 says that first."""
    deadline = time.monotonic() + timeout
    while text not in (body := w.wait_unready()) and time.monotonic() < deadline:
        time.sleep(0.2)
    return body


def refused(pipeline: dict[str, Any], command: str, partitions: int) -> str:
    """``botwatch COMMAND`` run with BOTWATCH_PARTITIONS=partitions: its error, once refused."""
    env = {**pipeline["env"], "BOTWATCH_PARTITIONS": str(partitions)}
    args = [command] if command == "setup" else [command, "--sink", "discard"]
    done = subprocess.run(
        [*BOTWATCH, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode != 0, done.stdout + done.stderr
    return done.stderr


def test_another_partition_count_than_the_events_topics_is_refused_at_start(
    pipeline: dict[str, Any],
) -> None:
    events = pipeline["topics"]["events"]
    for command in ("worker", "setup"):
        error = refused(pipeline, command, PARTITIONS - 1)
        assert f"topic {events} has {PARTITIONS} partitions, BOTWATCH_PARTITIONS is " in error
        assert "fix: set BOTWATCH_PARTITIONS to the events topic's partition count" in error


def test_a_state_table_made_with_another_partition_count_is_refused_at_start(
    pipeline: dict[str, Any],
) -> None:
    """A worker of this app id ran with another count: its changelog has that many."""
    changelog = changelog_topic(pipeline["env"]["BOTWATCH_APP_ID"])
    bootstrap = pipeline["settings"].kafka_bootstrap
    asyncio.run(create_topics(bootstrap, [changelog], PARTITIONS + 2))  # goes with the app id
    error = refused(pipeline, "worker", PARTITIONS)
    assert f"topic {changelog} has {PARTITIONS + 2} partitions" in error


def test_partitions_added_while_the_worker_runs_turn_ready_to_503_naming_them(
    pipeline: dict[str, Any],
) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewPartitions

    async def add_partitions(topic: str, total: int) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=pipeline["settings"].kafka_bootstrap)
        await admin.start()
        try:
            await admin.create_partitions({topic: NewPartitions(total_count=total)})
        finally:
            await admin.close()

    events = pipeline["topics"]["events"]
    w = worker(pipeline, "a").start()
    try:
        w.wait_ready()
        assert w.metric("botwatch_events_partitions_unread") == 0
        asyncio.run(add_partitions(events, PARTITIONS + 2))
        said = (
            f"the events topic {events} has {PARTITIONS + 2} partitions and the worker reads "
            f"{PARTITIONS} (BOTWATCH_PARTITIONS): records of partitions {PARTITIONS}.."
            f"{PARTITIONS + 1} are never read"
        ).encode()
        assert said in _unready_saying(w, said)
        w.wait_metric("botwatch_events_partitions_unread", 2, timeout=15)
        assert w.metric("botwatch_events_partitions_unread") == 2
    finally:
        assert w.stop() == 0, w.tail()
    assert w.log.read_text().count("are never read") == 1, w.tail()  # logged once


def test_an_events_topic_made_again_under_the_worker_is_read_as_new_events(
    pipeline: dict[str, Any],
) -> None:
    """Deleted: /ready says so. Made again: read within seconds, its records (numbered from 0
    again) counted in their windows as new events, not taken for repeats of the old topic's
    records at the same offsets."""
    bootstrap = pipeline["settings"].kafka_bootstrap
    events = pipeline["topics"]["events"]
    now = datetime.now(UTC).replace(microsecond=0)
    w = worker(pipeline, "a").start()
    try:
        w.wait_ready()
        old = generate(pipeline, 4_000, seed=11, start=_rfc3339(now - timedelta(minutes=10)))
        w.wait_metric("botwatch_records_in_total", 4_000)
        asyncio.run(delete_topics(bootstrap, [events]))
        missing = f"the events topic {events} does not exist on Kafka at".encode()
        body = _unready_saying(w, missing)
        assert missing in body
        assert b"made again is read from its start" in body
        _create_again(bootstrap, events)
        w.wait_ready()
        # Fewer records than before, on every partition: the worker tells a log made again
        # from records read again by its end (see the README's "Partitions").
        new = generate(pipeline, 500, seed=12, start=_rfc3339(now - timedelta(minutes=5)))
        w.wait_metric("botwatch_records_in_total", 4_500)
        expected = truth_windows(new)
        stats = collect_stats(pipeline, len(truth_windows(old)) + len(expected))
        for key, want in expected.items():
            for field in ("count", "errors", "successes", "failures"):
                assert stats[key][field] == want[field], (key, field)
        assert w.metric("botwatch_duplicates_skipped_total") == 0
    finally:
        assert w.stop() == 0, w.tail()


@pytest.mark.parametrize("gone", ["dlq", "changelog"])
def test_a_topic_the_worker_writes_to_deleted_under_it_is_made_again_and_nothing_is_lost(
    pipeline: dict[str, Any], gone: str
) -> None:
    """A deleted dead-letter topic (or state changelog) held every batch, with /ready 200:
    now /ready names it, the worker makes it again, and every record is processed."""
    bootstrap = pipeline["settings"].kafka_bootstrap
    if gone == "changelog":
        topic = changelog_topic(pipeline["env"]["BOTWATCH_APP_ID"])
    else:
        topic = pipeline["topics"][gone]
    w = worker(pipeline, "a").start()
    try:
        w.wait_ready()
        asyncio.run(delete_topics(bootstrap, [topic]))
        missing = f"the topic(s) {topic} do not exist on Kafka at".encode()
        assert missing in _unready_saying(w, missing)
        truth = generate(pipeline, 3_000)
        w.wait_ready()
        w.wait_metric("botwatch_records_in_total", 3_000)
        stats = collect_stats(pipeline, len(truth_windows(truth)))
        assert_stats_match(truth, stats)
        assert_dead_letters_match(pipeline, truth)
        assert f"topic {topic} was deleted while the worker ran; made it again" in w.tail(200)
    finally:
        assert w.stop() == 0, w.tail()


def test_a_changelog_deleted_under_the_worker_gets_the_whole_state_again(
    pipeline: dict[str, Any],
) -> None:
    """Every bot was last written before the changelog was deleted: the changelog made
    again would hold none of them, and a worker recovering from it (a rebalance, an empty
    state directory) would start every bot afresh. The worker itself must outlive the
    rebalance that follows (faust's recovery refused its store's old offsets)."""
    bootstrap = pipeline["settings"].kafka_bootstrap
    changelog = changelog_topic(pipeline["env"]["BOTWATCH_APP_ID"])
    w = worker(pipeline, "a").start()
    try:
        truth = _closed_windows_of_a_run(pipeline, w)
        asyncio.run(delete_topics(bootstrap, [changelog]))
        w.wait_unready()
        w.wait_ready()
        deadline = time.monotonic() + 30
        while "to the state changelog again" not in w.tail(200) and time.monotonic() < deadline:
            time.sleep(0.5)
        held = _held_keys(bootstrap, changelog)
        assert {f"p|{p}" for p in range(PARTITIONS)} <= held
        assert {key.split("|", 2)[2] for key in held if key.startswith("b|")} == set(
            truth["windows"]
        )
        # The group rebalances once the consumer's metadata (10 s old at most) shows the
        # topic back; faust's recovery then refused the old offsets and the worker crashed.
        for _ in range(40):
            assert w.proc is not None and w.proc.poll() is None, w.tail()
            time.sleep(0.5)
        w.wait_ready()
        more = generate(pipeline, 500, seed=12)
        w.wait_metric("botwatch_records_in_total", 2_000 + more["counts"]["records"])
        assert w.metric("botwatch_records_in_total") == 2_000 + more["counts"]["records"]
    finally:
        assert w.stop() == 0, w.tail()


def test_a_changelog_made_again_before_the_worker_saw_it_missing_gets_the_state_again(
    pipeline: dict[str, Any],
) -> None:
    """Another worker (here: the test, while this one is frozen) made the deleted changelog
    again before this one's probe saw it missing, and no bot writes again: nothing this
    worker saves lands on the new log to show it was made again. The periodic comparison
    of the log's end with the store's offsets finds it."""
    bootstrap = pipeline["settings"].kafka_bootstrap
    changelog = changelog_topic(pipeline["env"]["BOTWATCH_APP_ID"])
    w = worker(pipeline, "a").start()
    try:
        truth = _closed_windows_of_a_run(pipeline, w)
        assert w.proc is not None
        w.proc.send_signal(signal.SIGSTOP)
        try:
            asyncio.run(delete_topics(bootstrap, [changelog]))
            _create_again(bootstrap, changelog)
        finally:
            w.proc.send_signal(signal.SIGCONT)
        deadline = time.monotonic() + 30
        while "end before the offsets" not in w.tail(200) and time.monotonic() < deadline:
            time.sleep(0.5)
        held = _held_keys(bootstrap, changelog)
        assert {f"p|{p}" for p in range(PARTITIONS)} <= held, w.tail()
        bots = {key.split("|", 2)[2] for key in held if key.startswith("b|")}
        assert bots == set(truth["windows"])
        assert "was deleted while the worker ran" not in w.tail(200)  # the probe never saw it
        more = generate(pipeline, 300, seed=12)
        w.wait_metric("botwatch_records_in_total", 2_000 + more["counts"]["records"])
    finally:
        assert w.stop() == 0, w.tail()


def test_a_worker_stopped_while_its_changelog_was_deleted_starts_and_writes_its_state_again(
    pipeline: dict[str, Any],
) -> None:
    """Its state directory holds offsets past the new changelog's end: faust's recovery
    refused them (``ConsistencyError``) and the worker exited at every start."""
    bootstrap = pipeline["settings"].kafka_bootstrap
    changelog = changelog_topic(pipeline["env"]["BOTWATCH_APP_ID"])
    w = worker(pipeline, "a").start()
    try:
        truth = _closed_windows_of_a_run(pipeline, w)
    finally:
        assert w.stop() == 0, w.tail()
    asyncio.run(delete_topics(bootstrap, [changelog]))
    w = worker(pipeline, "a").start()
    try:
        w.wait_ready()
        assert "deleted and made again (or lost records) while the worker was stopped" in w.tail()
        more = generate(pipeline, 300, seed=12, bots=1)  # one bot of the six writes again
        w.wait_metric("botwatch_records_in_total", more["counts"]["records"])
        assert w.metric("botwatch_records_in_total") == more["counts"]["records"]
        # The others' state too, although nothing of theirs was written since.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            held = _held_keys(bootstrap, changelog)
            bots = {key.split("|", 2)[2] for key in held if key.startswith("b|")}
            if bots == set(truth["windows"]):
                break
            time.sleep(0.5)
        assert bots == set(truth["windows"]), sorted(held)
        assert {f"p|{p}" for p in range(PARTITIONS)} <= held
        assert len(more["windows"]) == 1
    finally:
        assert w.stop() == 0, w.tail()


def _closed_windows_of_a_run(pipeline: dict[str, Any], w: WorkerProcess) -> dict[str, Any]:
    """Generate into the running worker until every window closed (each bot's state was
    last written then); the run's truth."""
    w.wait_ready()
    truth = generate(pipeline, 2_000)
    collect_stats(pipeline, len(truth_windows(truth)))
    return truth


def _held_keys(bootstrap: str, topic: str) -> set[str]:
    """Keys whose last record in ``topic`` is not a tombstone (what recovery would load)."""
    last = last_values(read_topic(bootstrap, topic))
    return {key for key, value in last.items() if value is not None}


def test_records_kafka_deleted_before_the_worker_read_them_are_counted_and_logged(
    pipeline: dict[str, Any],
) -> None:
    """aiokafka moves a consumer whose offset fell out of the log to its start and says so at
    INFO level only: records deleted by retention while no worker read them were lost in
    silence."""
    bootstrap = pipeline["settings"].kafka_bootstrap
    events = pipeline["topics"]["events"]
    w = worker(pipeline, "a").start()
    try:
        w.wait_ready()
        generate(pipeline, 1_000, seed=11)
        w.wait_metric("botwatch_records_in_total", 1_000)
    finally:
        assert w.stop() == 0, w.tail()  # commits what it processed
    read = asyncio.run(_end_offsets(bootstrap, events))
    generate(pipeline, 2_000, seed=12)
    ends = asyncio.run(_end_offsets(bootstrap, events))
    # The first 100 unread records of each partition go, as retention would take them.
    cut = {p: min(read[p] + 100, ends[p]) for p in ends}
    asyncio.run(_delete_records(bootstrap, events, cut))
    lost = sum(cut[p] - read[p] for p in ends)
    assert lost > 0
    w = worker(pipeline, "b").start()  # its state recovered from the changelog
    try:
        w.wait_ready()
        w.wait_metric("botwatch_records_in_total", 2_000 - lost)
        w.wait_metric("botwatch_records_expired_unread_total", lost)
        assert w.metric("botwatch_records_expired_unread_total") == lost
        # Every record left was read (some twice: a consumer moved to the log's start can be
        # sought back to its old committed offset and moved again; the windows skip repeats).
        assert w.metric("botwatch_records_in_total") >= 2_000 - lost
        assert "were deleted by Kafka before this worker read them" in w.tail(100)
    finally:
        assert w.stop() == 0, w.tail()


async def _end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        return {tp.partition: offset for tp, offset in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()


async def _delete_records(bootstrap: str, topic: str, before: dict[int, int]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_records(
            {TopicPartition(topic, p): RecordsToDelete(offset) for p, offset in before.items()}
        )
    finally:
        await admin.close()


def _rfc3339(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _create_again(bootstrap: str, topic: str) -> None:
    asyncio.run(create_when_deleted(bootstrap, topic, PARTITIONS))


def test_the_state_directory_records_how_far_the_changelog_is_applied(
    pipeline: dict[str, Any],
) -> None:
    """Each partition's RocksDB keeps the offset of the last changelog record it holds, so
    that a restart recovers only what came after (faust reads it as the store's persisted
    offset). Kept after every table write, and equal to the changelog's end after a stop.
    3,000 bots: a batch writes each partition's entries in several record batches."""
    bootstrap = pipeline["settings"].kafka_bootstrap
    w = worker(pipeline, "a").start()
    try:
        w.wait_ready()
        generate(pipeline, 6_000, bots=3_000)
        w.wait_metric("botwatch_records_in_total", 6_000)
        assert w.metric("botwatch_records_in_total") == 6_000
    finally:
        assert w.stop() == 0, w.tail()
    changelog = changelog_topic(pipeline["env"]["BOTWATCH_APP_ID"])
    end = asyncio.run(_end_offsets(bootstrap, changelog))
    tables = next((pipeline["dir"] / "state-a").rglob("windows-0.db")).parent
    assert all(offset > 0 for offset in end.values()), end
    assert read_persisted(tables, "windows", PARTITIONS) == {p: e - 1 for p, e in end.items()}
    # A restart finds the store in step with the changelog, and leaves its offsets alone
    # (taken for a changelog made again, they would be forgotten and the state rewritten).
    w = worker(pipeline, "a").start()
    try:
        w.wait_ready()
    finally:
        assert w.stop() == 0, w.tail()
    assert "made again" not in w.tail(200)
    end = asyncio.run(_end_offsets(bootstrap, changelog))
    assert read_persisted(tables, "windows", PARTITIONS) == {p: e - 1 for p, e in end.items()}


async def _put_entry(bootstrap: str, topic: str, partition: int, key: bytes, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key, partition=partition)
    finally:
        await producer.stop()


def test_a_state_entry_that_cannot_be_loaded_stops_the_worker_saying_so(
    pipeline: dict[str, Any],
) -> None:
    """Before, the failure went to a task nobody awaited: the partitions were never read
    while /ready answered 200."""
    changelog = changelog_topic(pipeline["env"]["BOTWATCH_APP_ID"])
    bootstrap = pipeline["settings"].kafka_bootstrap
    asyncio.run(create_topics(bootstrap, [changelog], PARTITIONS))
    asyncio.run(_put_entry(bootstrap, changelog, 0, b"p|0", b"\x00 not a partition state"))
    w = worker(pipeline, "a").start()
    assert w.proc is not None
    try:
        code = w.proc.wait(timeout=120)
    finally:
        w.stop()
    assert code != 0
    assert "loading the recovered state of partitions" in w.log.read_text(errors="replace")


def _lag_partitions(w: WorkerProcess) -> set[int]:
    _, body = w.get("/metrics")
    prefix = 'botwatch_consumer_lag{partition="'
    return {
        int(line[len(prefix) :].split('"', 1)[0])
        for line in body.decode().splitlines()
        if line.startswith(prefix)
    }


def _assigned(w: WorkerProcess) -> set[int]:
    """Empty before its web endpoints are up."""
    try:
        return set(json.loads(w.get("/status")[1])["assigned_partitions"])
    except OSError:
        return set()


def test_a_worker_that_gives_partitions_away_stops_reporting_their_lag(
    pipeline: dict[str, Any],
) -> None:
    """Their last value was exported for good: summed over the group, or alerted on, wrong."""
    a = worker(pipeline, "a").start()
    b: WorkerProcess | None = None
    try:
        a.wait_ready()
        deadline = time.monotonic() + 60
        while _lag_partitions(a) != set(range(PARTITIONS)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _lag_partitions(a) == set(range(PARTITIONS))
        b = worker(pipeline, "b").start()
        b.wait_ready()
        deadline = time.monotonic() + 60
        while not (_assigned(b) and _assigned(a) == _lag_partitions(a)):
            assert time.monotonic() < deadline, (_assigned(a), _lag_partitions(a), a.tail())
            time.sleep(0.5)
        assert _assigned(a) | _assigned(b) == set(range(PARTITIONS))
        assert _lag_partitions(a) < set(range(PARTITIONS))
    finally:
        a.stop()
        if b is not None:
            b.stop()


def test_ready_is_503_while_a_rebalance_waits_for_a_dead_member(
    pipeline: dict[str, Any],
) -> None:
    """A new member's join waits for every member, a killed one up to its session timeout:
    meanwhile the survivor reads nothing, and /ready said 200 'consuming 0 partition(s)'."""
    pipeline["env"] = {**pipeline["env"], "BOTWATCH_SESSION_TIMEOUT_S": "10"}
    a = worker(pipeline, "a").start()
    b = worker(pipeline, "b").start()
    c: WorkerProcess | None = None
    try:
        a.wait_ready()
        b.wait_ready()
        deadline = time.monotonic() + 60
        while not (_assigned(a) and _assigned(b)):
            assert time.monotonic() < deadline, a.tail()
            time.sleep(0.5)
        b.kill()
        c = worker(pipeline, "c").start()
        answers: list[tuple[int, bytes]] = []
        deadline = time.monotonic() + 60
        while _assigned(a) | _assigned(c) != set(range(PARTITIONS)) or not answers:
            assert time.monotonic() < deadline, a.tail()
            answers.append(a.get("/ready"))
            time.sleep(0.2)
        assert any(code == 503 and b"rebalancing" in body for code, body in answers), answers[-3:]
        c.wait_ready()
        a.wait_ready()
    finally:
        a.stop()
        b.stop()
        if c is not None:
            c.stop()
