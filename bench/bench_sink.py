"""Bulk-write throughput into the real OpenSearch node: three ways to index the same events.

- ``raw ceiling``: pre-built ``_bulk`` bodies posted straight to the node (no per-event work);
- ``OpenSearchSink``: ``write_events`` on pre-validated records (redaction fast path, action
  line per event, raw bytes reused, per-item result handling);
- ``helpers.async_bulk``: opensearch-py's helper with dicts (it serializes every event).

The node, not the client, sets the pace on one machine, so the client's CPU per event is
reported too: it is what the worker has left for validation and windows.

Each run writes into fresh indices of its own prefix, deleted afterwards, so every variant
pays for the same index creation and the same number of new documents.

    .venv/bin/python -m bench.bench_sink [--events 20000] [--batch 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid
from typing import Any

import aiohttp
import orjson
from opensearchpy import AsyncOpenSearch, OpenSearch
from opensearchpy.helpers import async_bulk

from bench._harness import print_table, write_results
from schemas import decode_event, timestamp_ms
from schemas.sink import SinkRecord
from sinks.bulk import BULK_PATH
from sinks.config import SinkConfig
from sinks.opensearch import OpenSearchSink
from sinks.templates import install_templates, template_bodies

URL = "http://localhost:9200"
LEVELS = ("debug", "info", "info", "info", "warning", "error")


def make_records(n: int, seed: int = 7) -> list[SinkRecord]:
    rng = random.Random(seed)
    records = []
    for i in range(n):
        event = {
            "event_id": uuid.UUID(int=rng.getrandbits(128)).hex,
            "timestamp": f"2026-11-23T10:{i // 600 % 60:02d}:{i // 10 % 60:02d}.{i % 1000:03d}Z",
            "bot_id": f"bot-{i % 50}",
            "job_id": f"job-{i // 20}",
            "level": rng.choice(LEVELS),
            "message": f"processed invoice {i} for customer {rng.randrange(10_000)}",
            "status": rng.choice(("started", "success", "heartbeat")),
            "duration_ms": rng.random() * 5000,
            "meta": {"region": "eu-west-1", "attempt": rng.randrange(3), "tags": ["a", "b"]},
            "host": f"worker-{i % 8}",
            "env": "bench",
            "schema_version": 1,
        }
        raw = orjson.dumps(event)
        sent = timestamp_ms(event["timestamp"])  # sent when it happened: its day's index
        records.append(SinkRecord(raw, decode_event(raw), "botwatch.events", 0, i, sent, None, []))
    return records


def batches(records: list[SinkRecord], size: int) -> list[list[SinkRecord]]:
    return [records[i : i + size] for i in range(0, len(records), size)]


async def run_sink(prefix: str, records: list[SinkRecord], batch: int) -> float:
    async with OpenSearchSink(SinkConfig(opensearch_url=URL, index_prefix=prefix)) as sink:
        await sink.write_events(records[:1])  # templates installed outside the timing
        began = time.perf_counter()
        for chunk in batches(records[1:], batch):
            result = await sink.write_events(chunk)
            assert not result.rejected, result.rejected[0].reason
        return time.perf_counter() - began


async def run_raw(prefix: str, records: list[SinkRecord], batch: int) -> float:
    bodies = []
    for chunk in batches(records[1:], batch):
        lines = []
        for r in chunk:
            family = "events-errors" if r.event["level"] == "error" else "events"
            action = {
                "create": {"_index": f"{prefix}-{family}-2026.11.23", "_id": r.event["event_id"]}
            }
            lines.append(orjson.dumps(action) + b"\n" + r.raw + b"\n")
        bodies.append(b"".join(lines))
    headers = {"Content-Type": "application/x-ndjson"}
    async with aiohttp.ClientSession() as session:
        began = time.perf_counter()
        for body in bodies:
            async with session.post(URL + BULK_PATH, data=body, headers=headers) as resp:
                answer = orjson.loads(await resp.read())
                assert resp.status == 200 and not answer["errors"], answer
        return time.perf_counter() - began


async def run_helper(prefix: str, records: list[SinkRecord], batch: int) -> float:
    client = AsyncOpenSearch(hosts=[URL], timeout=60)
    try:
        began = time.perf_counter()
        for chunk in batches(records[1:], batch):
            actions = [
                {
                    "_op_type": "create",
                    "_index": f"{prefix}-"
                    f"{'events-errors' if r.event['level'] == 'error' else 'events'}-2026.11.23",
                    "_id": r.event["event_id"],
                    "_source": r.event,
                }
                for r in chunk
            ]
            ok, errors = await async_bulk(
                client, actions, chunk_size=batch, max_chunk_bytes=5 << 20
            )
            assert ok == len(chunk) and not errors
        return time.perf_counter() - began
    finally:
        await client.close()


def cleanup(client: Any, prefix: str) -> None:
    for row in client.cat.indices(index=f"{prefix}-*", format="json", h="index"):
        client.indices.delete(index=row["index"], ignore_unavailable=True)
    for name in template_bodies(SinkConfig(index_prefix=prefix)):
        client.indices.delete_index_template(name=name, ignore=404)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    records = make_records(args.events + 1)
    client = OpenSearch(hosts=[URL], timeout=60)
    variants = {
        "raw _bulk (ceiling)": run_raw,
        "OpenSearchSink.write_events": run_sink,
        "helpers.async_bulk (dicts)": run_helper,
    }
    best: dict[str, float] = {}
    cpu: dict[str, float] = {}
    for _ in range(args.rounds):
        for name, run in variants.items():
            prefix = f"botwatch-bench-{uuid.uuid4().hex[:8]}"
            install_templates(client, SinkConfig(index_prefix=prefix))
            cpu0 = time.process_time()
            try:
                seconds = asyncio.run(run(prefix, records, args.batch))
            finally:
                used = time.process_time() - cpu0
                cleanup(client, prefix)
            best[name] = min(best.get(name, seconds), seconds)
            cpu[name] = min(cpu.get(name, used), used)
    client.close()
    rows = [
        (
            name,
            args.events,
            round(args.events / s),
            s * 1000 / (args.events / args.batch),
            cpu[name] * 1e6 / args.events,
        )
        for name, s in best.items()
    ]
    print(f"{args.events} events, batches of {args.batch}, best of {args.rounds} rounds\n")
    print_table(["variant", "events", "events/s", "ms/batch", "client CPU us/event"], rows)
    write_results(
        "sink",
        {
            "events": args.events,
            "batch": args.batch,
            "rounds": args.rounds,
            "results": [
                {
                    "variant": n,
                    "events_per_s": r,
                    "ms_per_batch": round(ms, 1),
                    "client_cpu_us_per_event": round(c, 2),
                }
                for n, _, r, ms, c in rows
            ],
        },
    )


if __name__ == "__main__":
    main()
