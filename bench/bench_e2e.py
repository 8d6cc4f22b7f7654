"""End to end: generated events into searchable OpenSearch documents, beside two other loaders.

    .venv/bin/python -m bench.bench_e2e [--events 100000] [--latency-s 45] [--markers 200]

One run, on the same Kafka broker and OpenSearch node:

1. **throughput**: a fresh 6-partition events topic is filled with ``--events`` generated
   records (1% malformed, 1% late, 5% failed jobs; event time spans minutes, so windows close),
   then the same valid events are indexed three ways, each into indices of its own prefix:

   - *raw ceiling*: the valid events' bytes, pre-serialized into NDJSON ``_bulk`` bodies
     before the clock starts, posted straight to the node by several concurrent aiohttp
     requests (no Kafka, no per-event work);
   - *botwatch*: ``botwatch worker --sink opensearch`` as a subprocess (own app id, topics,
     index prefix, state directory and web port), with validation, windows, stats records and
     dead-lettering on;
   - *naive*: what a user would write first: an aiokafka consumer (``getmany``, ``orjson.loads``,
     no validation) feeding opensearch-py's ``helpers.async_bulk`` with dicts, one batch at a
     time, offsets committed after each.

   Before any of them, raw rounds into throwaway indices warm the node up (``warm_up``: a
   node just started indexes at a fifth, then two thirds of its rate for its first half a
   million documents, and whichever variant ran first paid for it). Then ``--rounds``
   rounds run the three variants in turn; each variant's best round counts, and every
   round's rate is in the results. The first botwatch round is slow even on a warm node
   (15k against 28k events/s in the next one: the broker's side of the worker's path, its
   changelog, stats and dead-letter writes, is cold), which is why there are several.

   A watcher thread refreshes the variant's ``<prefix>-events-*`` indices and reads ``_count``
   every ``POLL_S``; a variant's rate runs from the first sample that saw a document to the
   first that saw all of them (start-up, group join and index creation are left out), and
   every variant pays for the same forced refreshes.

2. **latency**: a fresh worker, the generator PACED at half of botwatch's measured rate with
   event time = now, and ``--markers`` marker events produced with aiokafka at a known wall
   time between the generator's records (after a warm-up). A task searches the events
   indices for the pending markers' ids every ``SEARCH_EVERY_S``; a marker's latency is the
   time of the first search that found it minus the time it was handed to the producer.

The goals: botwatch >= 0.8x the raw ceiling and >= 1.5x the naive loader; p99 produce-to-
searchable latency <= 2 s at half the peak rate. Results go to ``bench/results/e2e.json``,
the chart to ``bench/results/e2e.png``. Every topic, index, template and consumer group made
here is deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from opensearchpy import AsyncOpenSearch, OpenSearch
from opensearchpy.helpers import async_bulk

from bench._harness import RESULTS, print_table, write_results
from bench.bench_worker import Topics, cpu_seconds, free_port, memory_mb, metric
from botwatch.settings import Settings
from botwatch.stack.manager import Stack
from producers.generator import LATE, VALID, Generator, GeneratorConfig, format_timestamp
from producers.loadgen import LoadOptions, send
from schemas import timestamp_ms
from sinks.bulk import BULK_PATH
from sinks.config import SinkConfig
from sinks.indices import Family, day_of_ms, event_family, family_pattern, index_name
from sinks.templates import install_templates, template_bodies

PARTITIONS = 6
START = "2026-11-23T10:00:00Z"
# Event-time rate of the throughput run: 100,000 records span 200 s of event time.
EVENT_RATE = 500.0
BOTS = 50
SEED = 7
RAW_BATCH = 5000
# Warm-up rounds of the raw loader (into throwaway indices): at least WARMUP_MIN_DOCS
# documents, then until two rounds in a row agree within WARMUP_AGREE. A node just started
# indexes its first 100,000 documents at a fifth of its rate and stays near two thirds of it
# for some 500,000 more (measured: 11k, 16k, 24k, 32k, 33k, 34k, 37k, then ~50k events/s);
# whichever variant ran on it first paid for its JIT.
WARMUP_MIN_DOCS = 800_000
WARMUP_ROUNDS_MAX = 16
WARMUP_AGREE = 0.05
RAW_CONCURRENCY = 4
NAIVE_BATCH = 2000
POLL_S = 0.25
SEARCH_EVERY_S = 0.1
WARMUP_S = 5.0
TIMEOUT_S = 600.0
GOAL_RAW = 0.8
GOAL_NAIVE = 1.5
GOAL_P99_S = 2.0


@dataclass
class Cleanup:
    """Everything this run made on the shared broker and node, deleted at the end."""

    topics: list[str] = field(default_factory=list)
    app_ids: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)


def new_prefix(cleanup: Cleanup) -> str:
    prefix = f"botwatch-bench-{uuid.uuid4().hex[:10]}"
    cleanup.prefixes.append(prefix)
    return prefix


def events_pattern(prefix: str) -> str:
    return family_pattern(prefix, "events")


async def create_topics(bootstrap: str, tag: str, cleanup: Cleanup) -> Topics:
    prefix = f"botwatch-bench.e2e-{tag}-{uuid.uuid4().hex[:8]}"
    topics = Topics(f"{prefix}.events", f"{prefix}.dlq", f"{prefix}.stats", f"{prefix}.alerts")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, PARTITIONS, 1) for name in topics.all()])
        cleanup.topics += topics.all()
    finally:
        await admin.close()
    return topics


def generator_config(start_ms: int, rate: float, late: float) -> GeneratorConfig:
    return GeneratorConfig(
        start_ms=start_ms,
        bots=BOTS,
        rate=rate,
        error_rate=0.02,
        failure_rate=0.05,
        malformed=0.01,
        late=late,
        seed=SEED,
    )


# --- the count watcher -------------------------------------------------------------------


class StackCpu:
    """CPU seconds of the local stack's processes (OpenSearch, Kafka), when they run here.

    Every process of the benchmark shares the machine's cores: what the node and the broker
    spend per document bounds what is left for the worker."""

    def __init__(self) -> None:
        self.pids: dict[str, int] = {}

    def find(self, settings: Settings) -> None:
        stack = Stack(settings.stack_config())
        for name in ("opensearch", "kafka"):
            pid = stack.node(name).running_pid()
            if pid is not None:
                self.pids[name] = pid

    def __call__(self) -> dict[str, float]:
        out = {}
        for name, pid in self.pids.items():
            with contextlib.suppress(OSError):
                out[name] = cpu_seconds(pid)
        return out


STACK_CPU = StackCpu()


class CountWatcher(threading.Thread):
    """Refreshes ``pattern`` and reads its ``_count`` every POLL_S until it reaches the target.

    ``probe`` (CPU seconds of the processes taking part, by name) is read with every sample;
    the result has its change over the measured span. The target may be set later (the naive
    loader knows how many documents it wrote only at its end)."""

    def __init__(
        self,
        url: str,
        pattern: str,
        target: int | None,
        probe: Callable[[], dict[str, float]] | None = None,
    ) -> None:
        super().__init__(daemon=True)
        self.client = OpenSearch(hosts=[url], timeout=60)
        self.pattern = pattern
        self.target = target
        self.probe = probe
        # (perf_counter, count, probe)
        self.samples: list[tuple[float, int, dict[str, float]]] = []
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            deadline = time.monotonic() + TIMEOUT_S
            while not self.stop.is_set() and time.monotonic() < deadline:
                self.client.indices.refresh(index=self.pattern, allow_no_indices=True)
                count = int(self.client.count(index=self.pattern)["count"])
                now = time.perf_counter()
                self.samples.append((now, count, self.probe() if self.probe else {}))
                target = self.target
                if target is not None and count >= target:
                    return
                self.stop.wait(POLL_S)
        except BaseException as exc:
            self.error = exc
        finally:
            self.client.close()

    def result(self, timeout: float = TIMEOUT_S) -> dict[str, Any]:
        self.join(timeout)
        if self.error is not None:
            raise self.error
        target = self.target
        last = self.samples[-1] if self.samples else (0.0, 0, {})
        if target is None or last[1] < target:
            raise RuntimeError(f"{self.pattern}: {last[1]} documents, expected {target}")
        first = next(s for s in self.samples if s[1] > 0)
        t0, c0, p0 = first
        t1, c1, p1 = next(s for s in self.samples if s[1] >= target)
        seconds = t1 - t0
        return {
            "documents": c1,
            "measured_documents": c1 - c0,
            "seconds": seconds,
            "events_per_s": (c1 - c0) / seconds if seconds > 0 else float("nan"),
            "first_seen_at": t0,
            "probe_delta": {name: p1[name] - p0[name] for name in p1},
        }


# --- the three throughput variants -------------------------------------------------------


class Doc(NamedTuple):
    family: Family
    day: str
    raw: bytes
    event_id: str


def valid_records(events: int) -> list[Doc]:
    """The valid events among the topic's records (the generator is deterministic)."""
    generator = Generator(generator_config(timestamp_ms(START), EVENT_RATE, late=0.01))
    return [
        Doc(event_family(r.level), day_of_ms(r.timestamp_ms), r.value, r.event_id)
        for r in generator.take(events)
        if r.kind in (VALID, LATE)
    ]


def raw_bodies(prefix: str, records: list[Doc]) -> list[bytes]:
    bodies = []
    for i in range(0, len(records), RAW_BATCH):
        lines = []
        for doc in records[i : i + RAW_BATCH]:
            index = index_name(prefix, doc.family, doc.day)
            action = {"create": {"_index": index, "_id": doc.event_id}}
            raw = doc.raw
            lines.append(orjson.dumps(action) + b"\n" + raw + b"\n")
        bodies.append(b"".join(lines))
    return bodies


async def post_bodies(url: str, bodies: list[bytes]) -> None:
    """``RAW_CONCURRENCY`` requests in flight, each taking the next body when it is done."""
    headers = {"Content-Type": "application/x-ndjson"}
    pending = list(reversed(bodies))
    connector = aiohttp.TCPConnector(limit=RAW_CONCURRENCY)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def lane() -> None:
            while pending:
                body = pending.pop()
                async with session.post(url + BULK_PATH, data=body, headers=headers) as resp:
                    answer = await resp.read()
                    if resp.status != 200 or b'"errors":false' not in answer[:200]:
                        raise RuntimeError(f"raw _bulk failed: {resp.status} {answer[:500]!r}")

        await asyncio.gather(*(lane() for _ in range(RAW_CONCURRENCY)))


def run_raw(url: str, records: list[Doc], cleanup: Cleanup) -> dict[str, Any]:
    prefix = new_prefix(cleanup)
    client = OpenSearch(hosts=[url], timeout=60)
    try:
        install_templates(client, SinkConfig(index_prefix=prefix))
    finally:
        client.close()
    bodies = raw_bodies(prefix, records)
    watcher = CountWatcher(url, events_pattern(prefix), len(records), probe=STACK_CPU)
    watcher.start()
    cpu0 = time.process_time()
    began = time.perf_counter()
    asyncio.run(post_bodies(url, bodies))
    sent_s = time.perf_counter() - began
    cpu = time.process_time() - cpu0
    result = watcher.result()
    del result["first_seen_at"]
    result["stack_cpu_s"] = result.pop("probe_delta")
    result.update(
        {
            "prefix": prefix,
            "batch": RAW_BATCH,
            "concurrency": RAW_CONCURRENCY,
            "requests_s": sent_s,
            "client_cpu_s": cpu,
        }
    )
    return result


def warm_up(url: str, records: list[Doc], cleanup: Cleanup) -> list[float]:
    """Raw-load rounds until the node is warm (see WARMUP_MIN_DOCS): the rates of the rounds."""
    rates: list[float] = []
    while len(rates) < WARMUP_ROUNDS_MAX:
        result = run_raw(url, records, cleanup)
        delete_indices(url, [result["prefix"]])
        rates.append(float(result["events_per_s"]))
        agree = len(rates) >= 2 and abs(rates[-1] - rates[-2]) <= WARMUP_AGREE * rates[-2]
        if agree and len(rates) * len(records) >= WARMUP_MIN_DOCS:
            break
    return rates


def best_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest round, with every round's rate under ``rounds``."""
    best = dict(max(runs, key=lambda r: float(r["events_per_s"])))
    best["rounds"] = [r["events_per_s"] for r in runs]
    return best


def worker_env(
    bootstrap: str, url: str, topics: Topics, prefix: str, workdir: Path, port: int
) -> tuple[dict[str, str], str]:
    app_id = f"botwatch-bench-{uuid.uuid4().hex[:10]}"
    env = {
        **os.environ,
        "BOTWATCH_KAFKA_BOOTSTRAP": bootstrap,
        "BOTWATCH_OPENSEARCH_URL": url,
        "BOTWATCH_APP_ID": app_id,
        "BOTWATCH_INDEX_PREFIX": prefix,
        "BOTWATCH_EVENTS_TOPIC": topics.events,
        "BOTWATCH_DLQ_TOPIC": topics.dlq,
        "BOTWATCH_STATS_TOPIC": topics.stats,
        "BOTWATCH_ALERTS_TOPIC": topics.alerts,
        "BOTWATCH_PARTITIONS": str(PARTITIONS),
        "BOTWATCH_STATE_DIR": str(workdir / f"state-{port}"),
        "BOTWATCH_WEB_PORT": str(port),
    }
    return env, app_id


class Worker:
    """``botwatch worker --sink opensearch`` in a subprocess."""

    def __init__(
        self, bootstrap: str, url: str, topics: Topics, prefix: str, workdir: Path, c: Cleanup
    ) -> None:
        self.port = free_port()
        env, app_id = worker_env(bootstrap, url, topics, prefix, workdir, self.port)
        c.app_ids.append(app_id)
        c.groups.append(app_id)
        self.log = workdir / f"worker-{self.port}.log"
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "botwatch", "worker", "--sink", "opensearch"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.started = time.perf_counter()

    def check(self) -> None:
        if self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{tail}")

    def cpu(self) -> float:
        try:
            return cpu_seconds(self.proc.pid)
        except OSError:
            return float("nan")

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check()
            if http_status(f"http://127.0.0.1:{self.port}/ready") == 200:
                return
            time.sleep(0.25)
        raise RuntimeError(f"worker not ready in {timeout} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return None


def run_botwatch(
    bootstrap: str, url: str, topics: Topics, valid: int, workdir: Path, cleanup: Cleanup
) -> dict[str, Any]:
    prefix = new_prefix(cleanup)
    worker = Worker(bootstrap, url, topics, prefix, workdir, cleanup)
    try:
        probe = lambda: {**STACK_CPU(), "worker": worker.cpu()}  # noqa: E731
        watcher = CountWatcher(url, events_pattern(prefix), valid, probe=probe)
        watcher.start()
        while watcher.is_alive():
            worker.check()
            watcher.join(1.0)
        result = watcher.result()
        memory = memory_mb(worker.proc.pid)
        cpu = result["probe_delta"].pop("worker")
        result["stack_cpu_s"] = result.pop("probe_delta")
        result.update(
            {
                "prefix": prefix,
                "startup_s": result.pop("first_seen_at") - worker.started,
                "worker_cpu_s": cpu,
                "worker_cpu_percent": 100 * cpu / result["seconds"],
                "peak_rss_mb": memory["VmHWM"],
                "records_in": metric(worker.port, "botwatch_records_in_total"),
                "dead_letters": metric_sum(worker.port, "botwatch_dead_letters_total"),
                "windows_closed": metric(worker.port, "botwatch_windows_closed_total"),
                "batches": metric(worker.port, "botwatch_batch_size_count"),
                "bulk_requests": metric_sum(worker.port, "botwatch_sink_bulk_seconds_count"),
                "docs_written": metric_sum(worker.port, "botwatch_sink_docs_written_total"),
            }
        )
        return result
    finally:
        worker.stop()


def metric_sum(port: int, name: str) -> float | None:
    """Sum of a labelled counter's samples."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            body = response.read().decode()
    except OSError:
        return None
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines() if line.startswith(name))


async def naive_loader(
    bootstrap: str, url: str, topic: str, records: int, prefix: str, group: str
) -> dict[str, Any]:
    """The loader a user writes first: decode, hand dicts to ``helpers.async_bulk``, commit."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    client = AsyncOpenSearch(hosts=[url], timeout=60)
    index = f"{prefix}-events-naive"
    read = ok = failed = skipped = 0
    await consumer.start()
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while read < records:
            if time.monotonic() > deadline:
                raise RuntimeError(f"naive loader read {read} of {records} records in time")
            batches = await consumer.getmany(timeout_ms=1000, max_records=NAIVE_BATCH)
            actions = []
            for messages in batches.values():
                read += len(messages)
                for message in messages:
                    try:
                        doc = orjson.loads(message.value)
                    except orjson.JSONDecodeError:
                        skipped += 1
                        continue
                    if not isinstance(doc, dict):
                        skipped += 1
                        continue
                    action = {"_op_type": "create", "_index": index, "_source": doc}
                    if isinstance(doc.get("event_id"), str) and doc["event_id"]:
                        action["_id"] = doc["event_id"]
                    actions.append(action)
            if actions:
                done, errors = await async_bulk(
                    client,
                    actions,
                    chunk_size=NAIVE_BATCH,
                    max_chunk_bytes=5 << 20,
                    raise_on_error=False,
                )
                ok += done
                failed += len(errors) if isinstance(errors, list) else int(errors)
            await consumer.commit()
    finally:
        await consumer.stop()
        await client.close()
    return {"records_read": read, "indexed": ok, "rejected": failed, "not_json": skipped}


def run_naive(
    bootstrap: str, url: str, topic: str, records: int, cleanup: Cleanup
) -> dict[str, Any]:
    prefix = new_prefix(cleanup)
    client = OpenSearch(hosts=[url], timeout=60)
    try:
        install_templates(client, SinkConfig(index_prefix=prefix))
    finally:
        client.close()
    group = f"botwatch-bench-naive-{uuid.uuid4().hex[:8]}"
    cleanup.groups.append(group)
    watcher = CountWatcher(url, events_pattern(prefix), None, probe=STACK_CPU)
    watcher.start()
    cpu0 = time.process_time()
    loaded = asyncio.run(naive_loader(bootstrap, url, topic, records, prefix, group))
    cpu = time.process_time() - cpu0
    # Only now is it known how many documents the loader wrote (no validation: some malformed
    # records are indexed too, others are rejected by the mappings).
    watcher.target = loaded["indexed"]
    result = watcher.result()
    del result["first_seen_at"]
    result["stack_cpu_s"] = result.pop("probe_delta")
    result.update({"prefix": prefix, "batch": NAIVE_BATCH, "client_cpu_s": cpu, **loaded})
    return result


# --- latency -----------------------------------------------------------------------------


def marker_event(n: int) -> tuple[bytes, bytes, str]:
    event_id = f"e2e-marker-{uuid.uuid4().hex}"
    bot = f"latency-marker-{n % PARTITIONS}"
    event = {
        "event_id": event_id,
        "timestamp": format_timestamp(int(time.time() * 1000)),
        "bot_id": bot,
        "level": "info",
        "message": f"latency marker {n}",
        "status": "heartbeat",
        "schema_version": 1,
    }
    return bot.encode(), orjson.dumps(event), event_id


async def send_markers(
    bootstrap: str, topic: str, count: int, every_s: float, produced: dict[str, float]
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await producer.start()
    try:
        await asyncio.sleep(WARMUP_S)
        for n in range(count):
            key, value, event_id = marker_event(n)
            produced[event_id] = time.time()
            await producer.send(topic, value, key=key)
            await asyncio.sleep(every_s)
        await producer.flush()
    finally:
        await producer.stop()


async def watch_markers(
    url: str,
    prefix: str,
    produced: dict[str, float],
    seen: dict[str, float],
    expected: int,
    done_sending: asyncio.Event,
) -> None:
    search = f"{url}/{events_pattern(prefix)}/_search"
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession() as session:
        deadline: float | None = None
        while len(seen) < expected:
            if done_sending.is_set() and deadline is None:
                deadline = time.monotonic() + 60
            if deadline is not None and time.monotonic() > deadline:
                break
            pending = [i for i in produced if i not in seen]
            if pending:
                query = {"query": {"ids": {"values": pending}}, "_source": False}
                body = orjson.dumps({**query, "size": len(pending)})
                async with session.post(search, data=body, headers=headers) as resp:
                    answer = orjson.loads(await resp.read())
                now = time.time()
                for hit in answer.get("hits", {}).get("hits", []):
                    seen.setdefault(hit["_id"], now)
            await asyncio.sleep(SEARCH_EVERY_S)


async def latency_traffic(
    bootstrap: str, url: str, topic: str, prefix: str, rate: float, seconds: float, markers: int
) -> dict[str, Any]:
    produced: dict[str, float] = {}
    seen: dict[str, float] = {}
    done_sending = asyncio.Event()
    every_s = max(0.01, (seconds - WARMUP_S - 1.0) / markers)
    watcher = asyncio.create_task(watch_markers(url, prefix, produced, seen, markers, done_sending))
    generator = Generator(generator_config(int(time.time() * 1000), rate, late=0.0))
    options = LoadOptions(bootstrap=bootstrap, topic=topic, records=int(rate * seconds), rate=rate)
    load, _ = await asyncio.gather(
        send(generator, options), send_markers(bootstrap, topic, markers, every_s, produced)
    )
    done_sending.set()
    await watcher
    latencies = sorted(seen[i] - produced[i] for i in seen)
    return {
        "generator_records": load.delivered,
        "generator_rate": load.rate,
        "markers_sent": len(produced),
        "markers_seen": len(seen),
        "latencies_s": [round(x, 4) for x in latencies],
    }


def histogram_quantiles(port: int, name: str) -> dict[float, float]:
    """p50 and p99 of a Prometheus histogram of the worker, as the bucket bound reaching them."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    buckets: list[tuple[float, float]] = []
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket{{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float(bound), float(line.rsplit(" ", 1)[1])))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0.0
    return {
        q: next((bound for bound, count in buckets if count >= q * total), float("nan"))
        for q in (0.5, 0.99)
    }


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted ``values``."""
    if not values:
        return float("nan")
    rank = max(1, min(len(values), int(-(-q * len(values) // 100))))
    return values[rank - 1]


def run_latency(
    bootstrap: str,
    url: str,
    rate: float,
    seconds: float,
    markers: int,
    workdir: Path,
    cleanup: Cleanup,
) -> dict[str, Any]:
    topics = asyncio.run(create_topics(bootstrap, "latency", cleanup))
    prefix = new_prefix(cleanup)
    worker = Worker(bootstrap, url, topics, prefix, workdir, cleanup)
    try:
        worker.wait_ready()
        cpu0, began = worker.cpu(), time.perf_counter()
        result = asyncio.run(
            latency_traffic(bootstrap, url, topics.events, prefix, rate, seconds, markers)
        )
        worker.check()
        cpu = worker.cpu() - cpu0
        elapsed = time.perf_counter() - began
        processed = histogram_quantiles(worker.port, "botwatch_processing_latency_seconds")
    finally:
        worker.stop()
    latencies = result["latencies_s"]
    result.update(
        {
            "prefix": prefix,
            "target_rate": rate,
            "seconds": seconds,
            "warmup_s": WARMUP_S,
            "search_every_s": SEARCH_EVERY_S,
            "worker_cpu_percent": 100 * cpu / elapsed,
            # Every record's Kafka timestamp to the end of its batch's processing (the
            # worker's histogram: bucket bounds), the rest is the bulk write and the refresh.
            "processed_p50_s": processed[0.5],
            "processed_p99_s": processed[0.99],
            "p50_s": percentile(latencies, 50),
            "p90_s": percentile(latencies, 90),
            "p99_s": percentile(latencies, 99),
            "max_s": latencies[-1] if latencies else float("nan"),
        }
    )
    return result


# --- clean-up, chart, main ---------------------------------------------------------------


async def delete_kafka_things(bootstrap: str, cleanup: Cleanup) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        # The worker's own topics (changelog, assignor) start with its app id.
        names = [
            t
            for t in existing
            if t in cleanup.topics or any(t.startswith(f"{a}-") for a in cleanup.app_ids)
        ]
        if names:
            await admin.delete_topics(names)
        print(f"deleted {len(names)} topics", file=sys.stderr)
        if cleanup.groups:
            with contextlib.suppress(Exception):
                await admin.delete_consumer_groups(cleanup.groups)
    finally:
        await admin.close()


def delete_indices(url: str, prefixes: list[str]) -> None:
    client = OpenSearch(hosts=[url], timeout=60)
    try:
        for prefix in prefixes:
            for row in client.cat.indices(index=f"{prefix}-*", format="json", h="index"):
                client.indices.delete(index=row["index"], ignore_unavailable=True)
            for name in template_bodies(SinkConfig(index_prefix=prefix)):
                client.indices.delete_index_template(name=name, ignore=404)
    finally:
        client.close()


def chart(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    raw, bw, naive = result["raw"], result["botwatch"], result["naive"]
    latency = result["latency"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5), width_ratios=[1.1, 1])
    names = [
        "raw _bulk ceiling\n(pre-serialized, no Kafka)",
        "botwatch worker\n(validate, windows, DLQ)",
        "naive: aiokafka +\nhelpers.async_bulk",
    ]
    rates = [raw["events_per_s"], bw["events_per_s"], naive["events_per_s"]]
    bars = left.bar(names, rates, color=["#9e9e9e", "#1f77b4", "#ff7f0e"], width=0.6)
    labels = [
        f"{rates[0]:,.0f}/s",
        f"{rates[1]:,.0f}/s\n{result['ratio_to_raw']:.2f}x ceiling\n"
        f"{result['ratio_to_naive']:.2f}x naive",
        f"{rates[2]:,.0f}/s",
    ]
    for bar, label in zip(bars, labels, strict=True):
        left.annotate(
            label,
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            xytext=(0, 3),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=10,
            bbox={"facecolor": "white", "edgecolor": "none", "pad": 1},
        )
    left.axhline(
        GOAL_RAW * rates[0], color="#555", ls="--", lw=1, label=f"goal: {GOAL_RAW}x the ceiling"
    )
    left.axhline(
        GOAL_NAIVE * rates[2], color="#d62728", ls=":", lw=1.5, label=f"goal: {GOAL_NAIVE}x naive"
    )
    left.legend(loc="upper right", fontsize=9)
    left.set_ylabel("events/s into searchable documents")
    left.set_ylim(0, max([*rates, GOAL_RAW * rates[0], GOAL_NAIVE * rates[2]]) * 1.2)
    left.set_title(f"Throughput: {result['valid_events']:,} events, same node")
    left.tick_params(axis="x", labelsize=9)

    values = latency["latencies_s"]
    right.hist(values, bins=[i * 0.1 for i in range(int(max([*values, 2.5]) * 10) + 2)],
               color="#1f77b4", alpha=0.8, label="marker events")  # fmt: skip
    right.axvline(latency["p50_s"], color="black", lw=1.5, label=f"p50 {latency['p50_s']:.2f} s")
    right.axvline(
        latency["p99_s"], color="black", ls="--", lw=1.5, label=f"p99 {latency['p99_s']:.2f} s"
    )
    right.axvline(GOAL_P99_S, color="#d62728", ls=":", lw=1.5, label=f"goal: p99 <= {GOAL_P99_S} s")
    right.legend(loc="upper left", fontsize=9)
    right.yaxis.set_major_locator(MaxNLocator(integer=True))
    right.set_xlabel("produce-to-searchable latency (s)")
    right.set_ylabel("marker events")
    right.set_title(
        f"Latency at {latency['generator_rate']:,.0f} events/s (half the peak), "
        f"{latency['markers_seen']} markers"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def cpu_row(name: str, result: dict[str, Any], own: str) -> list[Any]:
    """CPU per document of the variant's own process and of the stack's, over its span.

    The loaders' own CPU is over their whole run (their documents are all they did)."""
    docs = max(result["measured_documents"], 1)
    stack = result.get("stack_cpu_s", {})
    own_per_doc = result[own] / result["documents"] * 1e6
    per_doc = [stack.get(n, float("nan")) / docs * 1e6 for n in ("opensearch", "kafka")]
    busy = sum(stack.values()) / result["seconds"] + own_per_doc * result["events_per_s"] / 1e6
    return [name, own_per_doc, *per_doc, busy]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--latency-s", type=float, default=45.0)
    parser.add_argument("--markers", type=int, default=200)
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds of the three variants, run in turn; each variant's best round counts",
    )
    args = parser.parse_args()
    settings = Settings.load()
    STACK_CPU.find(settings)
    bootstrap, url = settings.kafka_bootstrap, settings.opensearch_url.rstrip("/")
    cleanup = Cleanup()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            topics = asyncio.run(create_topics(bootstrap, "throughput", cleanup))
            generator = Generator(generator_config(timestamp_ms(START), EVENT_RATE, late=0.01))
            options = LoadOptions(
                bootstrap=bootstrap, topic=topics.events, records=args.events, rate=0, pace=False
            )
            load = asyncio.run(send(generator, options))
            if load.delivered != args.events:
                raise RuntimeError(f"only {load.delivered} of {args.events} records were stored")
            records = valid_records(args.events)
            if len(records) != load.valid:
                raise RuntimeError(f"{len(records)} valid events rebuilt, {load.valid} sent")
            print(f"filled {args.events:,} records ({load.valid:,} valid)")
            warmup = warm_up(url, records, cleanup)
            print("node warmed up: " + ", ".join(f"{r:,.0f}" for r in warmup) + " events/s")
            variants: dict[str, Callable[[], dict[str, Any]]] = {
                "raw": lambda: run_raw(url, records, cleanup),
                "botwatch": lambda: run_botwatch(
                    bootstrap, url, topics, load.valid, workdir, cleanup
                ),
                "naive": lambda: run_naive(bootstrap, url, topics.events, args.events, cleanup),
            }
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
            for n in range(args.rounds):
                # Each variant's indices go once it is measured: the node's merges of one
                # variant's segments must not run into the next variant's measurement.
                for name, run in variants.items():
                    result = run()
                    delete_indices(url, [result["prefix"]])
                    runs[name].append(result)
                    print(f"round {n + 1}, {name}: {result['events_per_s']:,.0f} events/s")
            raw, bw, naive = (best_of(runs[name]) for name in ("raw", "botwatch", "naive"))
            raw["warmup"] = warmup
            rate = bw["events_per_s"] / 2
            print(f"latency: {args.latency_s:.0f} s paced at {rate:,.0f} events/s ...")
            latency = run_latency(
                bootstrap, url, rate, args.latency_s, args.markers, workdir, cleanup
            )
    finally:
        asyncio.run(delete_kafka_things(bootstrap, cleanup))
        delete_indices(url, cleanup.prefixes)

    to_raw = bw["events_per_s"] / raw["events_per_s"]
    to_naive = bw["events_per_s"] / naive["events_per_s"]
    print(
        f"\n{args.events:,} records ({load.valid:,} valid events), {BOTS} bots, "
        f"{PARTITIONS} partitions; documents counted with a forced refresh every {POLL_S} s\n"
    )
    print_table(
        ["variant", "documents", "seconds", "events/s", "botwatch ratio", "client CPU s"],
        [
            [f"raw _bulk ceiling ({RAW_CONCURRENCY} x {RAW_BATCH} docs)",
             raw["measured_documents"], raw["seconds"], raw["events_per_s"], to_raw,
             raw["client_cpu_s"]],
            ["botwatch worker --sink opensearch", bw["measured_documents"], bw["seconds"],
             bw["events_per_s"], 1.0, bw["worker_cpu_s"]],
            ["naive aiokafka + helpers.async_bulk", naive["measured_documents"],
             naive["seconds"], naive["events_per_s"], to_naive, naive["client_cpu_s"]],
        ],
    )  # fmt: skip
    print(
        "best of "
        + "; ".join(
            f"{name} " + ", ".join(f"{r:,.0f}" for r in result["rounds"])
            for name, result in (("raw", raw), ("botwatch", bw), ("naive", naive))
        )
        + " events/s"
    )
    print()
    print_table(
        ["CPU per document (µs)", "loader/worker", "OpenSearch", "Kafka", "cores busy"],
        [cpu_row(name, result, key) for name, result, key in (
            ("raw _bulk ceiling", raw, "client_cpu_s"),
            ("botwatch worker", bw, "worker_cpu_s"),
            ("naive loader", naive, "client_cpu_s"),
        )],
    )  # fmt: skip
    print()
    print_table(
        ["latency run", "events/s", "markers", "p50 s", "p90 s", "p99 s", "max s"],
        [
            ["produce -> searchable", latency["generator_rate"],
             f"{latency['markers_seen']}/{latency['markers_sent']}", latency["p50_s"],
             latency["p90_s"], latency["p99_s"], latency["max_s"]],
            ["produce -> processed (all records, bucket bound)", latency["generator_rate"], "-",
             latency["processed_p50_s"], "-", latency["processed_p99_s"], "-"],
        ],
    )  # fmt: skip
    goals = {
        "raw_ratio_min": GOAL_RAW,
        "naive_ratio_min": GOAL_NAIVE,
        "p99_s_max": GOAL_P99_S,
        "raw_met": to_raw >= GOAL_RAW,
        "naive_met": to_naive >= GOAL_NAIVE,
        "p99_met": latency["p99_s"] <= GOAL_P99_S,
    }
    print(
        f"\nbotwatch / raw ceiling: {to_raw:.2f}x (goal >= {GOAL_RAW}x: "
        f"{'met' if goals['raw_met'] else 'NOT met'})\n"
        f"botwatch / naive: {to_naive:.2f}x (goal >= {GOAL_NAIVE}x: "
        f"{'met' if goals['naive_met'] else 'NOT met'})\n"
        f"p99 latency at half the peak rate: {latency['p99_s']:.2f} s (goal <= {GOAL_P99_S} s: "
        f"{'met' if goals['p99_met'] else 'NOT met'})"
    )
    result = {
        "events": args.events,
        "valid_events": load.valid,
        "bots": BOTS,
        "partitions": PARTITIONS,
        "poll_s": POLL_S,
        "rounds": args.rounds,
        "ratio_to_raw": to_raw,
        "ratio_to_naive": to_naive,
        "goals": goals,
        "raw": raw,
        "botwatch": bw,
        "naive": naive,
        "latency": latency,
    }
    write_results("e2e", result)
    chart(result, RESULTS / "e2e.png")
    print("chart written to bench/results/e2e.png")


if __name__ == "__main__":
    main()
