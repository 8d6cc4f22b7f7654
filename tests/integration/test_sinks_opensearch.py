"""The OpenSearch sink against the real node: templates, idempotent writes, rejections,
redaction, retention, outages (through a local proxy; the shared node is never stopped)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from support import (
    BOTWATCH,
    FlakyProxy,
    delete_topics,
    free_port,
    put_breaking_template,
    put_overriding_template,
)

from botwatch.settings import Settings
from schemas import event_index_mappings, timestamp_ms, validate_event
from schemas.sink import SinkRecord
from sinks.config import SinkConfig
from sinks.documents import DeadLetterDoc
from sinks.indices import FAMILIES
from sinks.opensearch import PING_IDLE_S, OpenSearchSink, SinkStoppedError
from sinks.retention import run_retention
from sinks.templates import dlq_mappings, install_templates, update_mappings


@pytest.fixture
def prefix(index_prefix: str) -> str:
    return index_prefix


def make_event(n: int, **fields: Any) -> dict[str, Any]:
    event = {
        "event_id": f"ev-{uuid.uuid4().hex}-{n}",
        "timestamp": "2026-11-23T10:00:00.000Z",
        "bot_id": "invoice-bot",
        "level": "info",
        "message": f"processed invoice {n}",
        "schema_version": 1,
        **fields,
    }
    validate_event(event)
    return event


def as_record(event: dict[str, Any], offset: int = 0) -> SinkRecord:
    """``event`` in a record sent when it happened (its day is its index's)."""
    sent = timestamp_ms(event["timestamp"])
    return SinkRecord(orjson.dumps(event), event, "botwatch.events", 0, offset, sent, None, [])


def count(opensearch: Any, index: str, query: dict[str, Any] | None = None) -> int:
    opensearch.indices.refresh(index=index)
    body = {"query": query or {"match_all": {}}}
    found: int = opensearch.count(index=index, body=body)["count"]
    return found


def fast_retry_config(url: str, prefix: str, **overrides: Any) -> SinkConfig:
    """A sink that retries and trips its breaker within a fraction of a second."""
    settings: dict[str, Any] = {
        "retry_base_s": 0.01,
        "retry_cap_s": 0.05,
        "breaker_failures": 2,
        "breaker_open_s": 0.1,
        **overrides,
    }
    return SinkConfig(opensearch_url=url, index_prefix=prefix, **settings)


@contextlib.asynccontextmanager
async def behind_proxy(
    stack: Settings, prefix: str, **overrides: Any
) -> AsyncIterator[tuple[OpenSearchSink, FlakyProxy]]:
    """A started fast-retry sink writing to the real node through a ``FlakyProxy``."""
    proxy = FlakyProxy(stack.opensearch_url)
    await proxy.start()
    sink = OpenSearchSink(fast_retry_config(f"http://127.0.0.1:{proxy.port}", prefix, **overrides))
    try:
        await sink.start()
        yield sink, proxy
    finally:
        await sink.stop()
        await proxy.stop()


@pytest.fixture  # its aiohttp session lives in the session's loop, like the tests using it
async def sink(prefix: str, stack: Settings) -> AsyncIterator[OpenSearchSink]:
    config = SinkConfig(opensearch_url=stack.opensearch_url, index_prefix=prefix)
    async with OpenSearchSink(config) as s:
        yield s


def test_templates_are_installed_idempotently(opensearch: Any, prefix: str) -> None:
    config = SinkConfig(index_prefix=prefix)
    assert install_templates(opensearch, config) == install_templates(opensearch, config)
    got = opensearch.indices.get_index_template(name=f"{prefix}-*")["index_templates"]
    assert {t["name"] for t in got} == {
        f"{prefix}-{f}" for f in ("events", "stats", "dlq", "alerts")
    }


@pytest.mark.parametrize("interval", ["500ms", "30s", "-1"])
def test_a_new_index_takes_the_configured_refresh_interval(
    opensearch: Any, prefix: str, interval: str
) -> None:
    install_templates(opensearch, SinkConfig(index_prefix=prefix, index_refresh_interval=interval))
    for family in ("events", "events-errors", "stats", "dlq", "alerts"):
        index = f"{prefix}-{family}-2026.11.23"
        opensearch.indices.create(index=index)
        got = opensearch.indices.get_settings(index=index)[index]["settings"]["index"]
        assert got["refresh_interval"] == interval, family
        opensearch.indices.delete(index=index)


@pytest.mark.asyncio(loop_scope="session")
async def test_events_are_searchable_and_a_rewrite_creates_no_duplicate(
    opensearch: Any, sink: OpenSearchSink, prefix: str
) -> None:
    records = [
        as_record(make_event(n, level="error" if n % 4 == 0 else "info"), n) for n in range(40)
    ]
    assert (await sink.write_events(records)).rejected == []
    assert count(opensearch, f"{prefix}-events-*") == 40
    assert count(opensearch, f"{prefix}-events-errors-*") == 10
    assert count(opensearch, f"{prefix}-events-*", {"match_phrase": {"message": "invoice 7"}}) == 1

    assert (await sink.write_events(records)).rejected == []
    assert count(opensearch, f"{prefix}-events-*") == 40
    assert sink.metrics.duplicates._value.get() == 40

    mappings = opensearch.indices.get_mapping(index=f"{prefix}-events-2026.11.23")
    got = mappings[f"{prefix}-events-2026.11.23"]["mappings"]
    assert got["dynamic"] == "strict"
    assert set(got["properties"]) == set(event_index_mappings()["properties"])
    assert got["properties"]["meta"] == {"type": "flat_object"}


@pytest.mark.asyncio(loop_scope="session")
async def test_stats_alerts_and_dead_letters_are_written_once(
    opensearch: Any, sink: OpenSearchSink, prefix: str
) -> None:
    window = {
        "bot_id": "invoice-bot",
        "window_start": "2026-11-23T10:00:00Z",
        "window_end": "2026-11-23T10:01:00Z",
        "window_size_s": 60,
        "count": 120,
        "errors": 3,
        "error_rate": 0.025,
        "levels": {"info": 117, "error": 3},
        "duration_ms": {"count": 2, "sum": 3.0, "p99": 2.0},
        "schema_version": 1,
    }
    await sink.write_stats([window])
    await sink.write_stats([window])
    assert count(opensearch, f"{prefix}-stats-*") == 1
    alert = {
        "rule": "error_rate",
        "bot_id": "invoice-bot",
        "severity": "page",
        "state": "firing",
        "value": 0.3,
        "threshold": 0.1,
        "window": "5m",
        "starts_at": "2026-11-23T10:05:00Z",
        "fingerprint": "abc123",
        "labels": {"team": "ops"},
        "annotations": {"summary": "x"},
    }
    await sink.write_alerts([alert])
    await sink.write_alerts([{**alert, "state": "resolved", "ends_at": "2026-11-23T10:09:00Z"}])
    assert count(opensearch, f"{prefix}-alerts-*") == 1
    assert count(opensearch, f"{prefix}-alerts-*", {"term": {"state": "resolved"}}) == 1
    letter = DeadLetterDoc(
        b"invoice-bot",
        b'{"message": "oops", "meta": {"token": "T0KEN-9"}}',
        "validate",
        "unknown field x",
        "botwatch.events",
        0,
        12,
        1_763_892_000_000,
        "2026-11-23T10:00:00.000Z",
    )
    await sink.write_dead_letters([letter, letter])
    assert count(opensearch, f"{prefix}-dlq-*") == 1
    assert count(opensearch, f"{prefix}-dlq-*", {"query_string": {"query": "*T0KEN*"}}) == 0
    assert count(opensearch, f"{prefix}-dlq-*", {"match": {"reason": "unknown"}}) == 1


@pytest.mark.asyncio(loop_scope="session")
async def test_a_dead_letter_dated_outside_retention_is_indexed_today(
    opensearch: Any, sink: OpenSearchSink, prefix: str
) -> None:
    """The first failure's time is a header a producer may send: a date the sweep would
    never reach (or reach at once) does not make an index of its own."""
    now = datetime.now(UTC)
    within = now - timedelta(days=10)
    stamps = ["9999-12-31T00:00:00.000Z", within.strftime("%Y-%m-%dT%H:%M:%S.000Z")]
    await sink.write_dead_letters(
        [DeadLetterDoc(None, b"x", "decode", "r", "t", 0, n, 0, s) for n, s in enumerate(stamps)]
    )
    after = datetime.now(UTC)  # the write may have crossed midnight
    indices = set(opensearch.indices.get(index=f"{prefix}-dlq-*"))
    today = indices - {f"{prefix}-dlq-{within.strftime('%Y.%m.%d')}"}
    assert len(indices) == 2 and len(today) == 1
    assert today <= {f"{prefix}-dlq-{day.strftime('%Y.%m.%d')}" for day in (now, after)}


@pytest.mark.asyncio(loop_scope="session")
async def test_an_index_made_before_a_field_was_added_takes_it_when_the_sink_starts(
    opensearch: Any, prefix: str, stack: Settings
) -> None:
    """Today's dead-letter index, made by an older botwatch without ``bot_id`` (strict),
    refused every dead letter holding it until tomorrow's index. An older index that is
    read-only (a flood-stage block) refuses the update for the whole pattern: today's is
    updated alone, and nothing waits for it."""
    old = dlq_mappings()
    del old["properties"]["bot_id"]
    now = datetime.now(UTC)
    today = f"{prefix}-dlq-{now.strftime('%Y.%m.%d')}"
    blocked = f"{prefix}-dlq-2026.11.23"
    for index in (today, blocked):
        opensearch.indices.create(index=index, body={"mappings": old})
    opensearch.indices.put_settings(index=blocked, body={"index.blocks.read_only": True})
    try:
        raw = b'{"bot_id": "invoice-bot", "message": "m"}'
        stamp = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        letter = DeadLetterDoc(b"invoice-bot", raw, "validate", "level: is required", "t", 0, 3, 0,
                               stamp)  # fmt: skip
        config = SinkConfig(opensearch_url=stack.opensearch_url, index_prefix=prefix)
        async with OpenSearchSink(config) as sink:
            await asyncio.wait_for(sink.write_dead_letters([letter]), 30)
        [doc] = [hit["_source"] for hit in _hits(opensearch, today)]
        assert doc["bot_id"] == "invoice-bot" and "indexed without" not in doc["reason"]
        assert count(opensearch, today, {"term": {"bot_id": "invoice-bot"}}) == 1
        # setup names the index pattern it could not update, and goes on.
        [problem] = update_mappings(opensearch, config)
        assert problem.startswith(f"{prefix}-dlq-*: ")
    finally:
        opensearch.indices.put_settings(index=blocked, body={"index.blocks.read_only": False})


@pytest.mark.asyncio(loop_scope="session")
async def test_a_dead_letter_with_an_immense_key_or_deep_nesting_is_indexed_whole(
    opensearch: Any, sink: OpenSearchSink, prefix: str
) -> None:
    """flat_object indexes "path=value" as one term: a 40,000-character key (or a path of
    many long keys) made the node refuse the whole document (Lucene's 32,766-byte limit)."""
    deep: dict[str, Any] = {"leaf": "bottom"}
    for _ in range(60):  # a path of 60 keys of 600 bytes each
        deep = {"\U0001f600" * 150: deep}
    raw = orjson.dumps({"bot_id": "b", "meta": {"x" * 40_000: 1, "deep": deep}})
    letter = DeadLetterDoc(b"b", raw, "validate", "meta: too large", "t", 0, 1, 0, "")
    await sink.write_dead_letters([letter])
    [doc] = [hit["_source"] for hit in _hits(opensearch, f"{prefix}-dlq-*")]
    assert doc["value"] == raw.decode()
    assert "event" in doc
    assert "indexed without" not in doc["reason"]


@pytest.mark.asyncio(loop_scope="session")
async def test_a_dead_letter_the_node_refuses_whole_is_indexed_without_its_copies(
    opensearch: Any, sink: OpenSearchSink, prefix: str
) -> None:
    """A template changed by hand refuses the structured copy: the record stays searchable
    as text, and its reason says what was left out and why."""
    mappings = dlq_mappings()
    mappings["properties"]["event"] = {"type": "long"}
    put_overriding_template(opensearch, f"{prefix}-breaking-dlq", f"{prefix}-dlq-*", mappings)
    raw = b'{"bot_id": "b", "message": "needle-7741"}'
    letter = DeadLetterDoc(b"b", raw, "validate", "level: missing", "t", 0, 2, 0, "")
    await sink.write_dead_letters([letter])
    [doc] = [hit["_source"] for hit in _hits(opensearch, f"{prefix}-dlq-*")]
    assert "event" not in doc
    assert doc["value"] == raw.decode()
    assert doc["reason"].startswith("level: missing [indexed without its event, headers, bot_id")
    assert "mapper_parsing_exception" in doc["reason"]
    assert count(opensearch, f"{prefix}-dlq-*", {"match": {"value": "needle-7741"}}) == 1


def _hits(opensearch: Any, index: str) -> list[dict[str, Any]]:
    opensearch.indices.refresh(index=index)
    hits: list[dict[str, Any]] = opensearch.search(index=index, body={"size": 100})["hits"]["hits"]
    return hits


@pytest.mark.asyncio(loop_scope="session")
async def test_a_record_that_breaks_the_mapping_comes_back_rejected(
    opensearch: Any, sink: OpenSearchSink, prefix: str
) -> None:
    put_breaking_template(opensearch, prefix)
    good, bad = make_event(1, host="12"), make_event(2, host="web-1")
    result = await sink.write_events([as_record(good), as_record(bad, 1)])
    assert [r.record.event["event_id"] for r in result.rejected] == [bad["event_id"]]
    reason = result.rejected[0].reason
    assert "mapper_parsing_exception" in reason and "[host]" in reason
    # Which index: a template fixed since does not change the mapping of this one.
    (index,) = opensearch.indices.get(index=f"{prefix}-events-*")
    assert reason.endswith(f"(index {index})"), reason
    assert count(opensearch, f"{prefix}-events-*") == 1


@pytest.mark.asyncio(loop_scope="session")
async def test_secrets_never_reach_the_index(
    opensearch: Any, sink: OpenSearchSink, prefix: str
) -> None:
    secrets = [f"S3CR3T{n}{uuid.uuid4().hex[:8]}" for n in range(15)]
    event = make_event(
        1,
        level="error",
        message=f"login as bob password={secrets[0]} via https://bob:{secrets[1]}@db.local/x"
        f" then https://{secrets[7]}@github.com/o/r",
        error={
            "type": "AuthError",
            "message": f"Authorization: Bearer {secrets[2]}",
            "stack": f"line 1\ncurl -H 'X-Api-Key: {secrets[3]}'\nline 3",
        },
        meta={
            "password": secrets[4],
            "deep": {"list": [{"Refresh-Token": secrets[5]}]},
            "db": {"url": f"postgres://app:{secrets[6]}@db:5432/x"},
            "aws": {"accessKey": secrets[8], "api.key": [secrets[9]]},
            "plain": "visible-value",
            # flat_object indexes key paths too: a key is free text.
            f"https://svc:{secrets[12]}@api.local/v1": "endpoint",
        },
        host=f"https://agent:{secrets[13]}@proxy.local",
        job_id=f"deploy Bearer {secrets[14]}",
    )
    assert (await sink.write_events([as_record(event)])).rejected == []
    # A dead letter that is not JSON, its secrets behind escapes, is indexed redacted.
    broken = (
        f'{{"meta":{{"pass\\u0077ord":"{secrets[10]}"}},'
        f'"message":"https:\\/\\/u:{secrets[11]}@h" cut'
    ).encode()
    letter = DeadLetterDoc(b"b", broken, "decode", "unexpected end", "t", 0, 1, 0, "")
    await sink.write_dead_letters([letter])
    assert count(opensearch, f"{prefix}-dlq-*") == 1
    index = f"{prefix}-*"
    assert count(opensearch, f"{prefix}-events-*") == 1
    assert count(opensearch, index, {"match": {"meta": "visible-value"}}) == 1
    for secret in secrets:
        assert count(opensearch, index, {"query_string": {"query": f"*{secret}*"}}) == 0
        assert count(opensearch, index, {"multi_match": {"query": secret, "fields": ["*"]}}) == 0
        source = opensearch.search(index=index, body={"query": {"match_all": {}}})
        assert secret not in orjson.dumps(source).decode()


@pytest.mark.asyncio(loop_scope="session")
async def test_events_at_the_edges_of_the_timestamp_range_are_indexed(
    opensearch: Any, sink: OpenSearchSink, prefix: str
) -> None:
    # Valid by the contract, but years 10000 and 0 in UTC: sent now, they are filed under
    # today (no retention would keep them by their own day), and OpenSearch's date field
    # takes both.
    edges = ["9999-12-31T23:30:00-01:00", "0000-01-01T00:00:00+01:00"]
    now = int(time.time() * 1000)
    records = [
        as_record(make_event(n, timestamp=t), n)._replace(timestamp_ms=now)
        for n, t in enumerate(edges)
    ]
    assert (await sink.write_events(records)).rejected == []
    indices = sorted(opensearch.indices.get(index=f"{prefix}-events-*"))
    today = datetime.fromtimestamp(now / 1000, UTC).strftime("%Y.%m.%d")
    assert indices == [f"{prefix}-events-{today}"]
    assert count(opensearch, f"{prefix}-events-*") == 2
    stored = opensearch.search(index=f"{prefix}-events-*", body={"sort": ["timestamp"]})
    assert [h["_source"]["timestamp"] for h in stored["hits"]["hits"]] == edges[::-1]


def test_retention_deletes_exactly_the_old_indices(opensearch: Any, prefix: str) -> None:
    today = datetime.now(UTC).date()

    def name(family: str, days_ago: int) -> str:
        return f"{prefix}-{family}-{(today - timedelta(days=days_ago)).strftime('%Y.%m.%d')}"

    old = [
        name("events", 91),
        name("events-errors", 366),
        name("stats", 401),
        name("dlq", 31),
        name("alerts", 401),
    ]
    young = [
        name("events", 89),
        name("events-errors", 91),
        name("stats", 30),
        name("dlq", 29),
        name("alerts", 0),
        f"{prefix}-unrelated-2001.01.01",
    ]
    for index in old + young:
        opensearch.indices.create(index=index, body={"settings": {"number_of_replicas": 0}})
    config = SinkConfig(index_prefix=prefix)

    planned = run_retention(opensearch, config, dry_run=True)
    assert sorted(e.index for e in planned) == sorted(old)
    assert all(opensearch.indices.exists(index=i) for i in old)

    deleted = run_retention(opensearch, config, dry_run=False, today=today)
    assert sorted(e.index for e in deleted) == sorted(old)
    assert not any(opensearch.indices.exists(index=i) for i in old)
    assert all(opensearch.indices.exists(index=i) for i in young)
    assert {e.family for e in deleted} == set(FAMILIES)


def test_setup_command_is_idempotent(opensearch: Any, prefix: str, stack: Settings) -> None:
    tag = prefix.removeprefix("botwatch-test-")
    topics = {
        f"BOTWATCH_{k.upper()}_TOPIC": f"botwatch-test.{tag}.{k}"
        for k in ("events", "dlq", "stats", "alerts")
    }
    env = {
        **os.environ,
        **topics,
        "BOTWATCH_INDEX_PREFIX": prefix,
        "BOTWATCH_PARTITIONS": "1",
        # Its own app id: the default one's state table may have another partition count.
        "BOTWATCH_APP_ID": f"botwatch-test-{tag}-app",
    }
    try:
        first = subprocess.run(
            [*BOTWATCH, "setup"], check=False, env=env, capture_output=True, text=True, timeout=120
        )
        assert first.returncode == 0, first.stderr
        second = subprocess.run(
            [*BOTWATCH, "setup"], check=False, env=env, capture_output=True, text=True, timeout=120
        )
        assert second.returncode == 0, second.stderr
    finally:
        asyncio.run(delete_topics(stack.kafka_bootstrap, list(topics.values())))
    for topic in topics.values():
        assert f"topic created {topic}" in first.stdout
        assert f"topic exists:  {topic}" in second.stdout
    for out in (first.stdout, second.stdout):
        assert out.count("index template installed") == 4
        assert "ISM plugin is not installed" in out
    got = opensearch.indices.get_index_template(name=f"{prefix}-*")["index_templates"]
    assert len(got) == 4


async def test_unreachable_node_turns_health_false_and_stop_releases_the_write(
    prefix: str,
) -> None:
    config = fast_retry_config(f"http://127.0.0.1:{free_port()}", prefix)
    sink = OpenSearchSink(config)
    await sink.start()
    write = asyncio.create_task(sink.write_events([as_record(make_event(1))]))
    while sink.health()[0]:
        await asyncio.sleep(0.02)
    healthy, reason = sink.health()
    assert not healthy
    assert f"OpenSearch at {config.opensearch_url} unreachable: circuit" in reason
    assert "last error" in reason
    assert not write.done()
    await sink.stop()
    with pytest.raises(SinkStoppedError):
        await write


async def test_an_idle_sink_pings_and_reports_the_node_down_and_back(
    stack: Settings, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Health came only from writes: a worker with nothing to write said "circuit closed"
    against a node that was down. The log says when the outage began and ended, once each
    (it said nothing: only /ready did)."""
    caplog.set_level(logging.WARNING, logger="sinks.opensearch")
    now = [1_000.0]
    proxy = FlakyProxy(stack.opensearch_url)
    await proxy.start()
    config = fast_retry_config(
        f"http://127.0.0.1:{proxy.port}", prefix, breaker_open_s=30.0, retention_sweep_s=0
    )
    sink = OpenSearchSink(config, clock=lambda: now[0])
    await sink.start()
    try:
        proxy.down = "503"
        await sink.ping()
        assert proxy.refused == 1
        await sink.ping()  # within PING_IDLE_S of the last request: not asked again
        assert proxy.refused == 1
        now[0] += PING_IDLE_S
        await sink.ping()
        healthy, reason = sink.health()
        assert not healthy
        assert "unreachable: circuit open" in reason
        assert "HTTP 503" in reason
        proxy.down = None
        now[0] += PING_IDLE_S
        await sink.ping()  # the circuit is open: no request until it is half-open
        assert not sink.health()[0]
        now[0] += config.breaker_open_s
        await sink.ping()  # the half-open probe: the node answers
        assert sink.health() == (True, f"OpenSearch at {config.opensearch_url}: circuit closed")
        said = [r.getMessage() for r in caplog.records if r.name == "sinks.opensearch"]
        assert len(said) == 2, said
        assert said[0].startswith(
            f"OpenSearch at {config.opensearch_url} unreachable (HTTP 503): circuit open. "
        )
        assert said[1].startswith(
            f"OpenSearch at {config.opensearch_url} answers again: circuit closed after "
        )
        await sink.write_events([as_record(make_event(1))])
        now[0] += PING_IDLE_S - 1
        refused = proxy.refused
        proxy.down = "503"
        await sink.ping()  # a write went out lately: it is the news
        assert proxy.refused == refused
    finally:
        await sink.stop()
        await proxy.stop()


@pytest.mark.parametrize("mode", ["503", "drop"])
async def test_outage_then_recovery_loses_and_duplicates_nothing(
    opensearch: Any, prefix: str, stack: Settings, mode: str
) -> None:
    async with behind_proxy(stack, prefix) as (sink, proxy):
        first = [as_record(make_event(n), n) for n in range(20)]
        assert (await sink.write_events(first)).rejected == []
        proxy.down = mode
        second = [as_record(make_event(n), n) for n in range(20, 50)]
        write = asyncio.create_task(sink.write_events(second + first[:5]))
        while sink.health()[0]:
            await asyncio.sleep(0.02)
        assert "unreachable: circuit" in sink.health()[1]
        refused = proxy.refused
        while proxy.refused < refused + 2:  # it keeps probing while the outage lasts
            await asyncio.sleep(0.02)
        assert not write.done()
        proxy.down = None
        result = await write
        assert result.rejected == []
        assert sink.health()[0]
    assert count(opensearch, f"{prefix}-events-*") == 50
    ids = {r.event["event_id"] for r in first + second}
    found = opensearch.search(index=f"{prefix}-events-*", body={"size": 100, "_source": False})
    assert {hit["_id"] for hit in found["hits"]["hits"]} == ids


# OpenSearch's default http.max_content_length (the stack keeps it): a larger body is
# refused with 413 before it is parsed.
NODE_MAX_CONTENT = 100 * 1024 * 1024


async def test_a_request_above_the_nodes_content_limit_is_split_and_written(
    opensearch: Any, prefix: str, stack: Settings
) -> None:
    # 105 events of 1 MiB each (the host, stored but not indexed): one request of ~105 MiB.
    config = SinkConfig(
        opensearch_url=stack.opensearch_url,
        index_prefix=prefix,
        bulk_max_bytes=4 * NODE_MAX_CONTENT,
        bulk_concurrency=1,
    )
    host = "h" * (1024 * 1024)
    records = [as_record(make_event(n, host=host), n) for n in range(105)]
    async with OpenSearchSink(config) as sink:
        assert (await sink.write_events(records)).rejected == []
        assert sink.max_request_bytes < NODE_MAX_CONTENT
        assert sink.metrics.max_request_bytes._value.get() == sink.max_request_bytes
        assert sink.health()[0]
        # The smaller size is kept: the same write again needs no 413 (all duplicates now).
        shrunk = sink.max_request_bytes
        assert (await sink.write_events(records)).rejected == []
        assert sink.max_request_bytes == shrunk
    assert count(opensearch, f"{prefix}-events-*") == 105


async def test_a_size_lowered_by_a_proxys_limit_grows_back_once_the_limit_is_raised(
    opensearch: Any, prefix: str, stack: Settings
) -> None:
    """A proxy in front of the node refuses bodies above 64 KiB (413), then its limit is
    lifted; ten minutes later (a clock of the test's own) the sink tries twice the size."""
    now = [1000.0]
    proxy = FlakyProxy(stack.opensearch_url)
    await proxy.start()
    proxy.max_body = 64 * 1024
    config = SinkConfig(
        opensearch_url=f"http://127.0.0.1:{proxy.port}",
        index_prefix=prefix,
        bulk_max_bytes=1024 * 1024,
        bulk_concurrency=1,
        retention_sweep_s=0,
    )
    records = [as_record(make_event(n, host="h" * 4000), n) for n in range(60)]  # ~250 KB
    sink = OpenSearchSink(config, clock=lambda: now[0])
    try:
        await sink.start()
        assert (await sink.write_events(records[:30])).rejected == []
        lowered = sink.max_request_bytes
        assert lowered <= 64 * 1024
        proxy.max_body = None  # the proxy's limit is raised
        now[0] += 599
        assert (await sink.write_events(records[30:40])).rejected == []
        assert sink.max_request_bytes == lowered  # not yet
        now[0] += 1
        assert (await sink.write_events(records[40:])).rejected == []
        assert sink.max_request_bytes == 2 * lowered
        assert sink.metrics.registry.get_sample_value("botwatch_sink_max_request_bytes") == (
            2 * lowered
        )
        for _ in range(8):  # doubling each time, up to BOTWATCH_BULK_MAX_BYTES and no further
            now[0] += 600
            assert (await sink.write_events(records[:1])).rejected == []
        assert sink.max_request_bytes == config.bulk_max_bytes
    finally:
        await sink.stop()
        await proxy.stop()
    assert count(opensearch, f"{prefix}-events-*") == 60


async def test_a_document_above_the_nodes_content_limit_is_rejected_alone(
    opensearch: Any, prefix: str, stack: Settings
) -> None:
    # A limit far above the document's size: a rejected document alone must not lower it.
    limit = 4 * NODE_MAX_CONTENT
    config = SinkConfig(
        opensearch_url=stack.opensearch_url, index_prefix=prefix, bulk_max_bytes=limit
    )
    big = make_event(0, host="h" * (NODE_MAX_CONTENT + 1024))
    async with OpenSearchSink(config) as sink:
        result = await sink.write_events([as_record(big)])
        [rejected] = result.rejected
        assert "HTTP 413" in rejected.reason and "http.max_content_length" in rejected.reason
        assert sink.max_request_bytes == limit
        # Beside other documents: those are written, the big one is rejected again.
        small = [make_event(n) for n in range(1, 4)]
        records = [as_record(e, n) for n, e in enumerate([small[0], big, *small[1:]])]
        result = await sink.write_events(records)
        assert [r.record.event["event_id"] for r in result.rejected] == [big["event_id"]]
    assert count(opensearch, f"{prefix}-events-*") == 3


async def test_a_probe_cancelled_mid_request_does_not_hold_the_circuit(
    opensearch: Any, prefix: str, stack: Settings
) -> None:
    one_failure = {"breaker_failures": 1, "retention_sweep_s": 0}  # no sweep talks to it
    async with behind_proxy(stack, prefix, **one_failure) as (sink, proxy):
        proxy.down = "503"
        write = asyncio.create_task(sink.write_events([as_record(make_event(1))]))
        while sink.health()[0]:  # one failure opens the circuit
            await asyncio.sleep(0.01)
        refused = proxy.refused
        proxy.down = "hang"
        while proxy.refused < refused + 1:  # a probe is in flight, answered by nothing
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        assert proxy.down == "hang" and not write.done()
        write.cancel()  # as a stop or a rebalance does
        with pytest.raises(asyncio.CancelledError):
            await write
        proxy.down = None
        result = await asyncio.wait_for(sink.write_events([as_record(make_event(2))]), 10)
        assert result.rejected == []
        assert sink.health()[0]
    assert count(opensearch, f"{prefix}-events-*") == 1


async def test_documents_refused_by_the_flood_stage_block_wait_and_health_names_why(
    opensearch: Any, prefix: str, stack: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """The node's own block, as a full disk sets it: every document answered 429."""
    config = fast_retry_config(stack.opensearch_url, prefix, retention_sweep_s=0)
    indices = f"{prefix}-events-*"
    block = "index.blocks.read_only_allow_delete"
    refused = "botwatch_sink_refused_documents"
    async with OpenSearchSink(config) as sink:
        first = [as_record(make_event(n), n) for n in range(5)]
        assert (await sink.write_events(first)).rejected == []
        opensearch.indices.put_settings(index=indices, body={block: True})
        try:
            second = [as_record(make_event(n), n) for n in range(5, 30)]
            write = asyncio.create_task(sink.write_events(second + first[:2]))
            async with asyncio.timeout(30):
                while sink.health()[0]:
                    await asyncio.sleep(0.02)
            reason = sink.health()[1]
            assert f"OpenSearch at {stack.opensearch_url.rstrip('/')} refuses writes: " in reason
            assert "27 document(s) retried since" in reason
            assert "flood-stage watermark" in reason  # OpenSearch's own words
            assert "Free disk space on the node" in reason  # and what to do
            assert sink.metrics.registry.get_sample_value(refused) == 27
            assert not write.done()
            assert [r.message for r in caplog.records if "refuses writes" in r.message] == [reason]
        finally:
            opensearch.indices.put_settings(index=indices, body={block: None})
        result = await asyncio.wait_for(write, 30)
        assert result.rejected == []
        assert sink.health() == (True, f"OpenSearch at {sink.url}: circuit closed")
        assert sink.metrics.registry.get_sample_value(refused) == 0
        assert any("took the 27 refused document(s)" in r.message for r in caplog.records)
    assert count(opensearch, indices) == 30


@pytest.mark.asyncio(loop_scope="session")
async def test_an_event_for_a_closed_index_is_rejected_naming_the_index(
    opensearch: Any, prefix: str, sink: OpenSearchSink
) -> None:
    """Closed by an operator: the event becomes a dead letter; the pipeline does not stall."""
    assert (await sink.write_events([as_record(make_event(1), 1)])).rejected == []
    closed = f"{prefix}-events-2026.11.23"
    opensearch.indices.close(index=closed)
    [rejected] = (await sink.write_events([as_record(make_event(2), 2)])).rejected
    assert rejected.reason == (
        f"OpenSearch rejected the event: index_closed_exception: closed (index {closed})"
    )
    assert sink.health()[0]


async def test_a_red_index_is_named_while_the_other_documents_are_written(
    opensearch: Any, prefix: str, stack: Settings
) -> None:
    """The info events' daily index has no node to hold its primary: OpenSearch answers
    them 503 after the shard wait, the error events' index takes its own at once."""
    red = f"{prefix}-events-2026.11.23"  # make_event's day; error events go elsewhere
    no_node = "index.routing.allocation.include._name"
    install_templates(opensearch, SinkConfig(index_prefix=prefix))
    opensearch.indices.create(
        index=red, body={"settings": {no_node: "no-such-node"}}, wait_for_active_shards=0
    )
    config = fast_retry_config(stack.opensearch_url, prefix, bulk_shard_wait_s=0.5)
    async with OpenSearchSink(config) as sink:
        records = [as_record(make_event(1), 1), as_record(make_event(2, level="error"), 2)]
        write = asyncio.create_task(sink.write_events(records))
        try:
            async with asyncio.timeout(30):
                while sink.health()[0]:
                    await asyncio.sleep(0.05)
            reason = sink.health()[1]
            assert "refuses writes: 1 document(s)" in reason
            assert f"unavailable_shards_exception: [{red}][0] primary shard is not active" in reason
            assert "GET _cluster/allocation/explain" in reason
            assert count(opensearch, f"{prefix}-events-errors-*") == 1  # written meanwhile
        finally:
            opensearch.indices.put_settings(index=red, body={no_node: None})
        assert (await asyncio.wait_for(write, 60)).rejected == []
        assert sink.health()[0]
    assert count(opensearch, f"{prefix}-events-*") == 2


@pytest.mark.asyncio(loop_scope="session")
async def test_a_running_sink_sweeps_expired_indices(
    opensearch: Any, prefix: str, stack: Settings
) -> None:
    today = datetime.now(UTC).date()
    old = f"{prefix}-dlq-{(today - timedelta(days=40)).strftime('%Y.%m.%d')}"
    young = f"{prefix}-dlq-{(today - timedelta(days=2)).strftime('%Y.%m.%d')}"
    for name in (old, young):
        opensearch.indices.create(index=name, body={"settings": {"number_of_replicas": 0}})
    config = SinkConfig(
        opensearch_url=stack.opensearch_url, index_prefix=prefix, retention_sweep_s=3600
    )
    sink = OpenSearchSink(config)
    await sink.start()
    try:
        for _ in range(100):
            if sink.sweeper.swept:
                break
            await asyncio.sleep(0.1)
    finally:
        await sink.stop()
    assert sink.sweeper.swept == [old]
    assert not opensearch.indices.exists(index=old)
    assert opensearch.indices.exists(index=young)
