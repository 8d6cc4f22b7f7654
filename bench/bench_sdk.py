"""Producer SDK benchmark: the cost of one logging call on the bot's thread, and throughput.

Run from the repository root with the stack up: ``python -m bench.bench_sdk``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench._harness import print_table, write_results
from producers import AsyncBotLogger, BotLogger, ProducerConfig
from producers.events import EventFactory
from producers.transport import producer_options

BOOTSTRAP = "localhost:9092"
CALLS = 100_000
EVENTS = 200_000
PARTITIONS = 3


async def _admin(create: list[str] | None = None, delete: list[str] | None = None) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        if create:
            await admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in create])
        if delete:
            await admin.delete_topics(delete)
    finally:
        await admin.close()


def _topic(name: str) -> str:
    return f"botwatch-bench.{name}-{uuid.uuid4().hex[:8]}"


def _percentiles(samples_ns: list[int]) -> tuple[float, float]:
    samples_ns.sort()
    p50 = samples_ns[len(samples_ns) // 2] / 1000
    p99 = samples_ns[int(len(samples_ns) * 0.99)] / 1000
    return p50, p99


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(
            {
                "timestamp": self.formatTime(record),
                "level": record.levelname,
                "logger": record.name,
                "message": record.getMessage(),
                "invoice": getattr(record, "invoice", None),
            }
        )


def call_cost(topic: str, spool: Path) -> dict[str, Any]:
    """Per-call latency on the caller's thread, sender thread running (the real situation)."""
    config = ProducerConfig(bootstrap=BOOTSTRAP, topic=topic, spool_dir=spool)
    bot = BotLogger("bench-bot", config=config)
    clock = time.perf_counter_ns
    samples: list[int] = []
    for i in range(CALLS):
        start = clock()
        bot.info("invoice sent", invoice=i)
        samples.append(clock() - start)
    bot.flush(60)
    stats = bot.stats()
    bot.close()
    sdk = _percentiles(samples)

    log = logging.getLogger("bench.stdlib")
    log.propagate = False
    log.setLevel(logging.INFO)
    with tempfile.TemporaryDirectory() as tmp:
        handler = logging.FileHandler(Path(tmp) / "bot.log")
        handler.setFormatter(_JsonFormatter())
        log.addHandler(handler)
        samples = []
        for i in range(CALLS):
            start = clock()
            log.info("invoice sent", extra={"invoice": i})
            samples.append(clock() - start)
        log.removeHandler(handler)
        handler.close()
    stdlib = _percentiles(samples)
    return {
        "calls": CALLS,
        "botlogger_info_us": {"p50": sdk[0], "p99": sdk[1]},
        "stdlib_logging_json_file_us": {"p50": stdlib[0], "p99": stdlib[1]},
        "sdk_sent": stats["sent"],
        "sdk_dropped_queue_full": stats["dropped_queue_full"],
    }


def _payloads() -> list[tuple[bytes, bytes]]:
    factory = EventFactory("bench-bot")
    return [
        (factory.key, factory.build("info", "invoice sent", meta={"invoice": i}))
        for i in range(EVENTS)
    ]


async def bare_aiokafka(topic: str, payloads: list[tuple[bytes, bytes]]) -> float:
    options = producer_options(ProducerConfig(bootstrap=BOOTSTRAP))
    producer = AIOKafkaProducer(**options)
    await producer.start()
    try:
        start = time.perf_counter()
        futures = [await producer.send(topic, value, key=key) for key, value in payloads]
        await asyncio.gather(*futures)
        return time.perf_counter() - start
    finally:
        await producer.stop()


def sdk_sync(topic: str, spool: Path) -> float:
    config = ProducerConfig(bootstrap=BOOTSTRAP, topic=topic, spool_dir=spool)
    bot = BotLogger("bench-bot", config=config)  # one key: one partition, as for the others
    bot.flush(30)
    start = time.perf_counter()
    for i in range(EVENTS):
        bot.info("invoice sent", invoice=i)
    ok = bot.flush(120)
    elapsed = time.perf_counter() - start
    stats = bot.stats()
    bot.close()
    assert ok and stats["sent"] == EVENTS, stats
    return elapsed


async def sdk_async(topic: str, spool: Path) -> float:
    config = ProducerConfig(bootstrap=BOOTSTRAP, topic=topic, spool_dir=spool)
    async with AsyncBotLogger("bench-bot", config=config) as bot:
        await bot.flush(30)
        start = time.perf_counter()
        for i in range(EVENTS):
            await bot.info("invoice sent", invoice=i)
        ok = await bot.flush(120)
        elapsed = time.perf_counter() - start
        stats = bot.stats()
    assert ok and stats["sent"] == EVENTS, stats
    return elapsed


def kcat(topic: str, payloads: list[tuple[bytes, bytes]], tmp: Path) -> float:
    data = tmp / "events.txt"
    data.write_bytes(b"".join(key + b"\t" + value + b"\n" for key, value in payloads))
    config = ProducerConfig()
    command = [
        "kcat", "-P", "-b", BOOTSTRAP, "-t", topic, "-K", "\t", "-z", config.compression,
        "-X", "acks=all", "-X", "enable.idempotence=true",
        "-X", f"linger.ms={config.linger_ms}", "-X", f"batch.size={config.batch_bytes}",
    ]  # fmt: skip
    start = time.perf_counter()
    with data.open("rb") as lines:  # one message per line on stdin (a file argument is one)
        subprocess.run(command, check=True, timeout=300, stdin=lines)
    return time.perf_counter() - start


def main() -> None:
    topics = {name: _topic(name) for name in ("cost", "bare", "sync", "async", "kcat")}
    asyncio.run(_admin(create=list(topics.values())))
    try:
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            cost = call_cost(topics["cost"], tmp / "spool-cost")
            payloads = _payloads()
            runs = {
                "bare aiokafka send loop": asyncio.run(bare_aiokafka(topics["bare"], payloads)),
                "SDK BotLogger (sync)": sdk_sync(topics["sync"], tmp / "spool-sync"),
                "SDK AsyncBotLogger": asyncio.run(sdk_async(topics["async"], tmp / "spool-async")),
                "kcat -P (librdkafka)": kcat(topics["kcat"], payloads, tmp),
            }
    finally:
        asyncio.run(_admin(delete=list(topics.values())))

    print(f"\nCost of one call on the caller's thread ({CALLS:,} calls, microseconds)\n")
    print_table(
        ["call", "p50 us", "p99 us"],
        [
            ["bot.info(...)", *cost["botlogger_info_us"].values()],
            ["stdlib logging, JSON to a file", *cost["stdlib_logging_json_file_us"].values()],
        ],
    )
    bare = EVENTS / runs["bare aiokafka send loop"]
    rates = {name: EVENTS / seconds for name, seconds in runs.items()}
    print(f"\nThroughput, {EVENTS:,} events acknowledged (acks=all, idempotent, lz4)\n")
    print_table(
        ["producer", "seconds", "events/s", "x bare aiokafka"],
        [[name, runs[name], rate, rate / bare] for name, rate in rates.items()],
    )
    write_results(
        "sdk",
        {
            "call_cost": cost,
            "throughput": {
                "events": EVENTS,
                "partitions": PARTITIONS,
                "event_bytes": statistics.mean(len(v) for _, v in payloads[:1000]),
                "settings": {k: v for k, v in producer_options(ProducerConfig()).items()},
                "events_per_s": rates,
                "ratio_to_bare_aiokafka": {name: rate / bare for name, rate in rates.items()},
            },
            "goals": {"call_p50_us_max": 10, "throughput_ratio_min": 0.9},
        },
    )


if __name__ == "__main__":
    main()
