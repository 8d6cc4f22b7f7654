"""Generator -> Kafka -> worker -> OpenSearch, judged by the generator's ground truth.

What operators see must be complete: one event document per valid event (each event_id
once), one stats document per closed window matching the truth, one dead-letter document
per malformed record (plus the job-failure copies), and nothing duplicated by a restart.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from opensearchpy import helpers
from pipeline import (
    PARTITIONS,
    assert_dead_letters_match,
    collect_stats,
    generate,
    make_pipeline,
    truth_windows,
)
from pipeline import worker as pipeline_worker
from support import (
    BOTWATCH,
    ThreadedProxy,
    free_port,
    headers_of,
    put_breaking_template,
    read_topic,
)

from botwatch.settings import Settings
from sinks.config import SinkConfig
from sinks.templates import install_templates, template_bodies


@pytest.fixture
def pipeline(stack: Settings, make_topic: Any, tmp_path: Path, index_prefix: str) -> dict[str, Any]:
    run = make_pipeline(stack, make_topic, tmp_path)
    run["env"]["BOTWATCH_INDEX_PREFIX"] = index_prefix
    return run


def _count(opensearch: Any, index: str) -> int:
    opensearch.indices.refresh(index=index, allow_no_indices=True)
    return int(opensearch.count(index=index, allow_no_indices=True)["count"])


def _wait_count(opensearch: Any, index: str, at_least: int, timeout: float) -> None:
    """Wait until ``index`` counts ``at_least`` documents; return either way at the deadline
    (the test's own assertions then say what is missing)."""
    deadline = time.monotonic() + timeout
    while _count(opensearch, index) < at_least and time.monotonic() < deadline:
        time.sleep(0.5)


def _all(opensearch: Any, index: str) -> list[dict[str, Any]]:
    opensearch.indices.refresh(index=index)
    return list(helpers.scan(opensearch, index=index, query={"query": {"match_all": {}}}))


def test_everything_read_is_searchable_once(pipeline: dict[str, Any], opensearch: Any) -> None:
    prefix = pipeline["env"]["BOTWATCH_INDEX_PREFIX"]
    w = pipeline_worker(pipeline, "a").start()
    try:
        w.wait_ready()
        truth = generate(pipeline, 20_000)
        expected_windows = truth_windows(truth)
        collect_stats(pipeline, len(expected_windows))
        ready = w.get("/ready")
        assert ready[0] == 200 and b"OpenSearch" in ready[1], ready
    finally:
        assert w.stop() == 0, w.tail()

    events = _all(opensearch, f"{prefix}-events-*")
    ids = [doc["_id"] for doc in events]
    assert len(ids) == len(set(ids)) == truth["counts"]["valid"]
    assert set(ids) == set(truth["event_ids"])
    assert all(doc["_source"]["event_id"] == doc["_id"] for doc in events)
    errors = {doc["_id"] for doc in events if "-events-errors-" in doc["_index"]}
    assert errors == {
        doc["_id"] for doc in events if doc["_source"]["level"] in {"error", "critical"}
    }

    stats = {
        (doc["_source"]["bot_id"], doc["_source"]["window_start"]): doc["_source"]
        for doc in _all(opensearch, f"{prefix}-stats-*")
    }
    assert sorted(stats) == sorted(expected_windows)
    for key, want in expected_windows.items():
        for field in ("count", "errors", "successes", "failures", "retries"):
            assert stats[key][field] == want[field], (key, field)

    letters = _all(opensearch, f"{prefix}-dlq-*")
    malformed = [doc for doc in letters if doc["_source"]["stage"] != "job_failure"]
    assert len(malformed) == truth["counts"]["malformed"]
    # Dead letters chart by reason: a keyword of the reason without its particulars, far
    # fewer than the letters.
    by_class = opensearch.search(
        index=f"{prefix}-dlq-*",
        body={"size": 0, "aggs": {"c": {"terms": {"field": "reason_class", "size": 500}}}},
    )["aggregations"]["c"]["buckets"]
    assert sum(b["doc_count"] for b in by_class) == len(letters)
    assert len(by_class) < len(letters) / 5, by_class
    by_origin = {
        (doc["_source"]["original_partition"], doc["_source"]["original_offset"]): doc["_source"]
        for doc in malformed
    }
    for m in truth["malformed"]:
        assert by_origin[(m["partition"], m["offset"])]["stage"] == m["stage"]
    assert_dead_letters_match(pipeline, truth, once=True)


def test_opensearch_outage_backpressures_then_drains(
    pipeline: dict[str, Any], opensearch: Any
) -> None:
    """OpenSearch unreachable for 60 s: /ready is 503 naming it (before any record too), the
    backlog waits in Kafka, and everything arrives once when it is back."""
    prefix = pipeline["env"]["BOTWATCH_INDEX_PREFIX"]
    proxy = ThreadedProxy(pipeline["settings"].opensearch_url).start()
    pipeline["env"].update(
        {
            "BOTWATCH_OPENSEARCH_URL": proxy.url,
            "BOTWATCH_SINK_RETRY_CAP_S": "1",
            "BOTWATCH_SINK_BREAKER_FAILURES": "2",
            "BOTWATCH_SINK_BREAKER_OPEN_S": "1",
        }
    )
    w = pipeline_worker(pipeline, "a").start()
    try:
        w.wait_ready()
        proxy.set_down("drop")
        outage_started = time.monotonic()
        # Before any record: an idle worker's sink asks the node itself.
        assert b"OpenSearch at" in w.wait_unready()
        truth = generate(pipeline, 5_000)
        saw_503 = False
        while time.monotonic() - outage_started < 60:
            status, body = w.get("/ready")
            if status == 503 and b"OpenSearch" in body:
                saw_503 = True
            time.sleep(1)
        assert saw_503
        assert w.metric("botwatch_consumer_lag") > 0  # the backlog waits in Kafka
        proxy.set_down(None)
        deadline = time.monotonic() + 120
        while w.metric("botwatch_consumer_lag") > 0 and time.monotonic() < deadline:
            time.sleep(1)
        assert w.metric("botwatch_consumer_lag") == 0
        assert w.get("/ready")[0] == 200
    finally:
        assert w.stop() == 0, w.tail()
        proxy.stop()
    events = _all(opensearch, f"{prefix}-events-*")
    ids = [doc["_id"] for doc in events]
    assert len(ids) == len(set(ids)) == truth["counts"]["valid"]


def test_a_worker_stopped_while_opensearch_is_down_says_so_and_loses_nothing(
    pipeline: dict[str, Any], opensearch: Any
) -> None:
    """SIGTERM with batches waiting for the sink: the wait (up to 30 s) was silent. What it
    could not write is not committed, and a worker started later writes it."""
    prefix = pipeline["env"]["BOTWATCH_INDEX_PREFIX"]
    proxy = ThreadedProxy(pipeline["settings"].opensearch_url).start()
    pipeline["env"].update({"BOTWATCH_OPENSEARCH_URL": proxy.url, "BOTWATCH_SINK_RETRY_CAP_S": "1"})
    w = pipeline_worker(pipeline, "a").start()
    try:
        w.wait_ready()
        proxy.set_down("503")
        truth = generate(pipeline, 1_000)
        w.wait_metric("botwatch_sink_retries_total", 1)
    finally:
        assert w.stop() == 0, w.tail()
        proxy.stop()
    log = w.log.read_text(errors="replace")
    assert "stopping: waiting up to 30 s for " in log
    assert "shutting down with " in log and "not committing them" in log
    pipeline["env"]["BOTWATCH_OPENSEARCH_URL"] = pipeline["settings"].opensearch_url
    again = pipeline_worker(pipeline, "b").start()
    try:
        again.wait_ready()
        _wait_count(opensearch, f"{prefix}-events-*", truth["counts"]["valid"], 90)
    finally:
        assert again.stop() == 0, again.tail()
    ids = [doc["_id"] for doc in _all(opensearch, f"{prefix}-events-*")]
    assert len(ids) == len(set(ids)) == truth["counts"]["valid"]


def test_a_new_index_refused_for_the_shard_limit_holds_the_stream_instead_of_dead_lettering(
    pipeline: dict[str, Any], opensearch: Any
) -> None:
    """A 400 about the cluster (no room for another index's shards), not about the document:
    every event of a new day went to the dead-letter topic, with /ready 200."""
    prefix = pipeline["env"]["BOTWATCH_INDEX_PREFIX"]
    pipeline["env"].update(
        {"BOTWATCH_SINK_RETRY_CAP_S": "1", "BOTWATCH_SINK_BREAKER_FAILURES": "2"}
    )
    events_template = template_bodies(SinkConfig(index_prefix=prefix))[f"{prefix}-events"]
    too_big = {
        "index_patterns": events_template["index_patterns"],
        "priority": 500,
        "template": {
            **events_template["template"],
            "settings": {"number_of_shards": 1024, "number_of_replicas": 0},
        },
    }
    opensearch.indices.put_index_template(name=f"{prefix}-too-big", body=too_big)
    w = pipeline_worker(pipeline, "a").start()
    try:
        w.wait_ready()
        truth = generate(pipeline, 500)
        deadline = time.monotonic() + 60
        while b"maximum shards open" not in (body := w.get("/ready")[1]):
            assert time.monotonic() < deadline, (body, w.tail())
            time.sleep(0.5)
        assert w.get("/ready")[0] == 503
        assert b"cluster.max_shards_per_node" in body
        opensearch.indices.delete_index_template(name=f"{prefix}-too-big")
        w.wait_ready()
        _wait_count(opensearch, f"{prefix}-events-*", truth["counts"]["valid"], 60)
    finally:
        opensearch.indices.delete_index_template(name=f"{prefix}-too-big", ignore=404)
        assert w.stop() == 0, w.tail()
    assert _count(opensearch, f"{prefix}-events-*") == truth["counts"]["valid"]
    letters = _all(opensearch, f"{prefix}-dlq-*")
    assert not [d for d in letters if d["_source"]["stage"] == "sink"], letters[:2]


def test_a_batch_opensearch_refuses_for_good_turns_ready_to_503_and_is_redone_at_once(
    pipeline: dict[str, Any], opensearch: Any
) -> None:
    """A 401 (wrong credentials) fails the batch, not a retried request. The failed batch
    waited for the next records before anyone noticed: no log, no retry, /ready 200."""
    prefix = pipeline["env"]["BOTWATCH_INDEX_PREFIX"]
    proxy = ThreadedProxy(pipeline["settings"].opensearch_url).start()
    pipeline["env"]["BOTWATCH_OPENSEARCH_URL"] = proxy.url
    w = pipeline_worker(pipeline, "a").start()
    try:
        w.wait_ready()
        proxy.set_down("401")
        truth = generate(pipeline, 2_000)  # then nothing more
        body = w.wait_unready()
        assert b"fails and is retried" in body
        assert b"HTTP 401" in body
        assert b"OpenSearch refuses the credentials" in body
        proxy.set_down(None)
        w.wait_ready()
        w.wait_metric("botwatch_records_in_total", 2_000)
        assert w.metric("botwatch_records_in_total") == 2_000
    finally:
        assert w.stop() == 0, w.tail()
        proxy.stop()
    ids = [doc["_id"] for doc in _all(opensearch, f"{prefix}-events-*")]
    assert len(ids) == len(set(ids)) == truth["counts"]["valid"]
    # Each redo of the refused batches sent their dead letters to Kafka once, not each time.
    assert_dead_letters_match(pipeline, truth, once=True)


def _produce(
    bootstrap: str,
    topic: str,
    events: list[dict[str, Any]],
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    async def send() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", max_request_size=2 * 1024 * 1024
        )
        await producer.start()
        try:
            for event in events:
                await producer.send_and_wait(
                    topic, orjson.dumps(event), key=b"edge-bot", headers=headers
                )
        finally:
            await producer.stop()

    asyncio.run(send())


def _event(n: int, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": f"edge-{uuid.uuid4().hex}",
        "timestamp": "2026-11-23T10:00:00.000Z",
        "bot_id": "edge-bot",
        "level": "info",
        "message": f"edge case {n}",
        "schema_version": 1,
        **fields,
    }


def test_a_dead_letter_too_large_for_its_topic_is_cut_and_the_stream_goes_on(
    pipeline: dict[str, Any], opensearch: Any
) -> None:
    # The topics here are made with the broker's default limit (1,048,588 bytes a record
    # batch): the record fits the events topic, its dead letter (headers added) does not.
    prefix = pipeline["env"]["BOTWATCH_INDEX_PREFIX"]
    huge = _event(1, message="x" * 1_048_000)
    after = _event(2)
    _produce(pipeline["settings"].kafka_bootstrap, pipeline["topics"]["events"], [huge, after])

    w = pipeline_worker(pipeline, "a").start()
    try:
        w.wait_ready()
        w.wait_metric("botwatch_records_valid_total", 1)
        assert w.metric('botwatch_dead_letters_total{stage="validate"}') == 1
    finally:
        assert w.stop() == 0, w.tail()
    assert "refused 1 record(s) as too large" in w.tail()

    [letter] = read_topic(pipeline["settings"].kafka_bootstrap, pipeline["topics"]["dlq"])
    found = headers_of(letter)
    assert found["botwatch.dlq.stage"] == "validate"
    assert found["botwatch.dlq.original.offset"] == "0"
    # The topic's own limit, as the broker says it: the broker's default.
    assert "to fit the dead-letter topic's 1048588-byte records" in found["botwatch.dlq.truncated"]
    assert 1_000_000 < len(letter["payload"]) < len(orjson.dumps(huge))
    assert orjson.dumps(huge).startswith(letter["payload"].encode())
    assert [d["_id"] for d in _all(opensearch, f"{prefix}-events-*")] == [after["event_id"]]
    # Replayed, the cut copy would fail again as broken JSON, and its letter name the copy.
    replay = subprocess.run(
        [*BOTWATCH, "dlq", "replay", "--dry-run"], env={**os.environ, **pipeline["env"]},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert "skip 1: the letter was cut to fit the dead-letter topic" in replay.stdout, replay


def test_dead_letters_get_through_a_topic_made_with_a_limit_below_the_producers_batches(
    pipeline: dict[str, Any],
) -> None:
    """A dead-letter topic made elsewhere with a 20,000-byte limit refuses the worker's
    batches of small letters (up to 256 KiB each): each letter is then sent alone. Before,
    the burst was refused whole on every try, and the batch was redone for ever. A letter
    over the limit is cut to it (before: to the broker's default, refused again for ever)."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    bootstrap = pipeline["settings"].kafka_bootstrap
    dlq = pipeline["topics"]["dlq"]

    async def limit() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            config = {"max.message.bytes": "20000"}
            await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, dlq, config)])
        finally:
            await admin.close()

    asyncio.run(limit())
    # Not events (no bot_id, no timestamp...): 100 dead letters of ~1.5 kB, one key, and
    # one of 50 kB.
    _produce(bootstrap, pipeline["topics"]["events"], [{"note": "x" * 900}] * 100)
    _produce(bootstrap, pipeline["topics"]["events"], [{"note": "y" * 50_000}])
    w = pipeline_worker(pipeline, "a", "--sink", "discard").start()
    try:
        w.wait_ready()
        w.wait_metric("botwatch_dead_letters_total", 101)
        assert w.metric("botwatch_dead_letters_total") == 101, w.tail()
    finally:
        assert w.stop() == 0, w.tail()
    assert "as too large; sending them again one by one, each cut to 20000 bytes" in w.tail()
    letters = read_topic(bootstrap, dlq)
    offsets = sorted(int(headers_of(r)["botwatch.dlq.original.offset"]) for r in letters)
    assert offsets == list(range(101))
    [cut] = [headers_of(r) for r in letters if "botwatch.dlq.truncated" in headers_of(r)]
    assert cut["botwatch.dlq.original.offset"] == "100"
    assert "to fit the dead-letter topic's 20000-byte records" in cut["botwatch.dlq.truncated"]


def test_a_record_with_a_replay_count_that_is_no_count_is_dead_lettered_and_the_stream_goes_on(
    pipeline: dict[str, Any], opensearch: Any
) -> None:
    """A producer's ``botwatch.dlq.replay_count: abc`` header on a record that fails
    validation stopped every batch: the sink could not read the letter's count back."""
    prefix = pipeline["env"]["BOTWATCH_INDEX_PREFIX"]
    bootstrap, events = pipeline["settings"].kafka_bootstrap, pipeline["topics"]["events"]
    bad = _event(1, duration_ms=-3)
    _produce(bootstrap, events, [bad], headers=[("botwatch.dlq.replay_count", b"abc")])
    fine = _event(2)
    _produce(bootstrap, events, [fine])
    w = pipeline_worker(pipeline, "a").start()
    try:
        w.wait_ready()
        w.wait_metric("botwatch_records_in_total", 2)
    finally:
        assert w.stop() == 0, w.tail()
    assert [d["_id"] for d in _all(opensearch, f"{prefix}-events-*")] == [fine["event_id"]]
    (letter,) = _all(opensearch, f"{prefix}-dlq-*")
    assert (letter["_source"]["stage"], letter["_source"]["replay_count"]) == ("validate", 0)
    (record,) = read_topic(bootstrap, pipeline["topics"]["dlq"])
    assert headers_of(record)["botwatch.dlq.replay_count"] == "0"


def test_rejected_documents_dead_letter_and_secrets_never_reach_an_index(
    pipeline: dict[str, Any], opensearch: Any
) -> None:
    prefix = pipeline["env"]["BOTWATCH_INDEX_PREFIX"]
    put_breaking_template(opensearch, prefix)
    secrets = [f"S3CR3T{n}{uuid.uuid4().hex[:8]}" for n in range(7)]
    fine = _event(
        1,
        message=f"token={secrets[0]} and https://bob:{secrets[1]}@db.local/",
        meta={"deep": {"api_key": secrets[2]}, "list": [{"Authorization": secrets[3]}]},
    )
    broken = _event(2, host="web-1")
    # Secrets where the contract has no field: dead-lettered, and the reason says what the
    # field held (the dead-letter topic keeps it; the index must not).
    misplaced = [
        _event(3, password=secrets[4]),
        _event(4, error={"type": "E", "api_key": secrets[5]}),
        _event(5, **{"X-Auth-Token": [secrets[6]]}),
    ]
    records = [fine, broken, *misplaced]
    _produce(pipeline["settings"].kafka_bootstrap, pipeline["topics"]["events"], records)

    w = pipeline_worker(pipeline, "a").start()
    try:
        w.wait_ready()
        w.wait_metric("botwatch_records_in_total", len(records))
    finally:
        assert w.stop() == 0, w.tail()

    letters = {
        int(h["botwatch.dlq.original.offset"]): h
        for h in map(
            headers_of,
            read_topic(pipeline["settings"].kafka_bootstrap, pipeline["topics"]["dlq"]),
        )
    }
    stages = {offset: h["botwatch.dlq.stage"] for offset, h in letters.items()}
    assert stages == {1: "sink", 2: "validate", 3: "validate", 4: "validate"}
    assert "mapper_parsing_exception" in letters[1]["botwatch.dlq.reason"]
    assert secrets[4] in letters[2]["botwatch.dlq.reason"]  # the topic is an operator's tool
    assert [d["_id"] for d in _all(opensearch, f"{prefix}-events-*")] == [fine["event_id"]]
    indexed = _all(opensearch, f"{prefix}-dlq-*")
    assert sorted(d["_source"]["stage"] for d in indexed) == ["sink", *["validate"] * 3]
    everything = orjson.dumps(_all(opensearch, f"{prefix}-*")).decode()
    for secret in secrets:
        assert secret not in everything
        hits = opensearch.count(
            index=f"{prefix}-*", body={"query": {"query_string": {"query": f"*{secret}*"}}}
        )
        assert hits["count"] == 0


def test_the_demo_runs_the_whole_pipeline_and_reports_only_its_own_run(
    pipeline: dict[str, Any], opensearch: Any
) -> None:
    """The README's main command, with this test's topics, indices, group and port, run
    twice. Each summary lists the windows and alerts of its own run only: the bots have the
    same names every run, and an old window of bot-000 (with no durations: no p95) waits in
    the stats index."""
    env = {
        **os.environ,  # as a user's shell: where the stack lives
        **pipeline["env"],
        "BOTWATCH_WEB_PORT": str(free_port()),
        "BOTWATCH_STATE_DIR": str(pipeline["dir"] / "demo-state"),
    }
    prefix = env["BOTWATCH_INDEX_PREFIX"]
    old = {"bot_id": "bot-000", "window_start": "2026-01-01T00:00:00Z", "count": 7,
           "error_rate": 0.0, "duration_ms": {"p95": None}}  # fmt: skip
    install_templates(opensearch, SinkConfig(index_prefix=prefix))  # as the demo's setup does
    opensearch.index(index=f"{prefix}-stats-2026.01.01", body=old, refresh=True)
    runs = []
    for seed in ("7", "8"):
        began = time.time()
        done = subprocess.run(
            [*BOTWATCH, "demo", "--duration", "6", "--bots", "3", "--rate", "200",
             "--seed", seed, "--keep-files"],
            env=env, capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        runs.append((began, done.stdout + done.stderr))  # the generator reports on stderr
    url = pipeline["settings"].opensearch_url.rstrip("/")
    valid = 0
    for began, out in runs:
        truth_path = re.search(r"truth in (\S+)", out)
        assert truth_path is not None, out
        truth = orjson.loads(Path(truth_path.group(1)).read_bytes())
        assert f"the run's files: {Path(truth_path.group(1)).parent}" in out  # --keep-files
        shutil.rmtree(Path(truth_path.group(1)).parent)
        counts = truth["counts"]
        valid += counts["valid"]
        assert f"events sent:        {counts['records']:,} ({counts['valid']:,} valid, " in out
        assert f"processed:          {counts['records']:,} records" in out
        indexed = f"indexed:            {counts['valid']:,} event documents in {prefix}-events-*"
        assert indexed in out
        rows = re.findall(r"^  (bot-\d{3}) +(\S+Z) +(\d+) ", out, re.MULTILINE)
        assert rows, out
        first_minute = time.strftime("%Y-%m-%dT%H:%M:00Z", time.gmtime(began - began % 60))
        assert all(start >= first_minute for _, start, _ in rows), (first_minute, out)
        assert f"curl -s '{url}/{prefix}-events-*" in out
        # The demo's own rule fires on its incident (bot-002 errs on half its events for a
        # quarter of the run): every window split leaves one of its windows above 10%.
        fired = re.findall(r"^  (bot-\d{3}) +demo-error-rate +warning +(\S+Z) ", out, re.MULTILINE)
        assert "bot-002" in {bot for bot, _ in fired}, out
        assert all(start >= first_minute for _, start in fired), (first_minute, out)
    assert len(_all(opensearch, f"{prefix}-events-*")) == valid  # both runs, each event once
    # Every example query the summary prints answers, and finds something.
    queries = re.findall(r"curl -s '([^']+)'", runs[-1][1])
    assert len(queries) == 5, runs[-1][1]
    for query in queries:
        with urllib.request.urlopen(query, timeout=30) as answer:
            body = answer.read().decode()
        assert prefix in body, (query, body[:500])
        if "_search" in query:
            assert orjson.loads(body)["hits"]["total"]["value"] > 0, (query, body[:500])


def test_a_demo_starts_its_group_past_what_an_earlier_one_left(
    pipeline: dict[str, Any],
) -> None:
    """An interrupted demo left records in its topic: the next run's worker read them too,
    and counted them as its own run's (the summary's "processed", and when it was done)."""
    from botwatch.commands.demo import _skip_leftovers
    from streams.topics import committed_offsets

    bootstrap, events = pipeline["settings"].kafka_bootstrap, pipeline["topics"]["events"]
    _produce(bootstrap, events, [_event(n) for n in range(7)])  # one key: one partition
    config = Settings.load(environ=pipeline["env"]).streams
    asyncio.run(_skip_leftovers(bootstrap, config))
    every = list(range(PARTITIONS))
    done = asyncio.run(committed_offsets(bootstrap, config.app_id, events, every))
    assert sum(done.values()) == 7 and len(done) == PARTITIONS
