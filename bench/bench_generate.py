"""How fast `botwatch generate` sends, beside kcat sending the same records (the native ceiling).

    .venv/bin/python -m bench.bench_generate [--events N] [--bots N]

Each run gets a fresh 6-partition topic (deleted afterwards). Rows:

- generate only: the generator alone, no Kafka (its own ceiling);
- in process: ``producers.loadgen.send`` with truth accounting, unpaced;
- command: ``botwatch generate --rate 0 --truth ...`` as a user runs it (process start,
  truth file write included);
- paced: ``botwatch generate --rate R --duration S`` (default 15,000 records/s for 10 s), the
  way the latency benchmark and the demo send: its CPU time says what pacing costs;
- kcat -P: librdkafka producing the same pre-generated records from a file, acks=all.

Every Kafka row checks that the topic holds exactly the records sent.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench._harness import print_table, write_results
from botwatch.settings import Settings
from producers.generator import Generator, GeneratorConfig, Truth
from producers.loadgen import LoadOptions, send
from schemas import timestamp_ms

PARTITIONS = 6
START = "2026-11-23T10:00:00Z"
GOAL = 50_000


async def create_topic(bootstrap: str) -> str:
    name = f"botwatch-bench.generate-{uuid.uuid4().hex[:10]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, PARTITIONS, 1)])
    finally:
        await admin.close()
    return name


async def delete_topic(bootstrap: str, name: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([name])
    finally:
        await admin.close()


async def stored(bootstrap: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        ends = await consumer.end_offsets(parts)
        return int(sum(ends.values()))
    finally:
        await consumer.stop()


def config(args: argparse.Namespace) -> GeneratorConfig:
    return GeneratorConfig(
        start_ms=timestamp_ms(START),
        bots=args.bots,
        rate=1000.0,
        malformed=0.01,
        late=0.01,
        seed=1,
    )


def bench_generation(args: argparse.Namespace) -> dict[str, Any]:
    generator = Generator(config(args))
    began = time.perf_counter()
    done = 0
    while done < args.events:
        done += len(generator.take(min(2048, args.events - done)))
    seconds = time.perf_counter() - began
    return {"name": "generate only (no Kafka)", "records": done, "seconds": seconds}


async def bench_in_process(args: argparse.Namespace, bootstrap: str) -> dict[str, Any]:
    topic = await create_topic(bootstrap)
    try:
        generator = Generator(config(args))
        truth = Truth(generator.config, generator)
        options = LoadOptions(
            bootstrap=bootstrap, topic=topic, records=args.events, rate=0, pace=False
        )
        began = time.perf_counter()
        stats = await send(generator, options, truth=truth)
        seconds = time.perf_counter() - began
        assert stats.delivered == args.events == truth.records
        assert await stored(bootstrap, topic) == args.events
    finally:
        await delete_topic(bootstrap, topic)
    return {"name": "loadgen.send in process (+truth)", "records": args.events, "seconds": seconds}


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def run_generate(bootstrap: str, records: int, *options: str) -> dict[str, Any]:
    """``botwatch generate`` as a process into a fresh topic; its wall and CPU time."""
    topic = await create_topic(bootstrap)
    try:
        command = [
            sys.executable,
            "-m",
            "botwatch",
            "--kafka-bootstrap",
            bootstrap,
            "generate",
            *("--topic", topic, *options),
        ]
        cpu0, began = children_cpu_s(), time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        seconds, cpu = time.perf_counter() - began, children_cpu_s() - cpu0
        assert await stored(bootstrap, topic) == records
    finally:
        await delete_topic(bootstrap, topic)
    return {"records": records, "seconds": seconds, "cpu_s": cpu}


async def bench_command(args: argparse.Namespace, bootstrap: str, workdir: Path) -> dict[str, Any]:
    row = await run_generate(
        bootstrap,
        args.events,
        *("--events", str(args.events), "--rate", "0"),
        *("--bots", str(args.bots), "--malformed", "0.01", "--late", "0.01"),
        *("--seed", "1", "--start", START, "--truth", str(workdir / "truth.json")),
    )
    return {"name": "botwatch generate (process)", **row}


async def bench_paced(args: argparse.Namespace, bootstrap: str) -> dict[str, Any]:
    rate, duration = args.paced_rate, args.paced_s
    row = await run_generate(
        bootstrap,
        int(rate * duration),
        *("--rate", str(rate), "--duration", str(duration), "--bots", str(args.bots)),
    )
    return {"name": f"botwatch generate paced at {rate:,.0f}/s (process)", **row}


async def bench_kcat(args: argparse.Namespace, bootstrap: str, workdir: Path) -> dict[str, Any]:
    generator = Generator(config(args))
    lines = workdir / "records.txt"
    with lines.open("wb") as out:
        done = 0
        while done < args.events:
            for record in generator.take(min(2048, args.events - done)):
                assert b"\n" not in record.value and b"\t" not in record.key
                out.write(record.key + b"\t" + record.value + b"\n")
                done += 1
    topic = await create_topic(bootstrap)
    try:
        command = ["kcat", "-P", "-b", bootstrap, "-t", topic, "-K", "\t"]
        command += ["-X", "acks=all", "-X", "linger.ms=5", "-X", "batch.size=524288"]
        with lines.open("rb") as source:
            began = time.perf_counter()
            subprocess.run(command, stdin=source, check=True, capture_output=True)
            seconds = time.perf_counter() - began
        assert await stored(bootstrap, topic) == args.events
    finally:
        await delete_topic(bootstrap, topic)
    return {"name": "kcat -P, same records", "records": args.events, "seconds": seconds}


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    bootstrap = Settings.load().kafka_bootstrap
    rows = [bench_generation(args)]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        rows.append(await bench_in_process(args, bootstrap))
        rows.append(await bench_command(args, bootstrap, workdir))
        rows.append(await bench_kcat(args, bootstrap, workdir))
        rows.append(await bench_paced(args, bootstrap))
    for row in rows:
        row["records_per_s"] = row["records"] / row["seconds"]
        if "cpu_s" in row:
            row["cpu_us_per_record"] = 1e6 * row["cpu_s"] / row["records"]
            row["cores"] = row["cpu_s"] / row["seconds"]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--bots", type=int, default=50)
    parser.add_argument("--paced-rate", type=float, default=15_000.0)
    parser.add_argument("--paced-s", type=float, default=10.0)
    args = parser.parse_args()
    rows = asyncio.run(main_async(args))
    print(f"{args.events:,} records, {args.bots} bots, {PARTITIONS} partitions, acks=all")
    print_table(
        ["path", "records", "seconds", "records/s", "CPU us/record", "cores"],
        [
            [
                r["name"],
                r["records"],
                r["seconds"],
                r["records_per_s"],
                r.get("cpu_us_per_record", "-"),
                r.get("cores", "-"),
            ]
            for r in rows
        ],
    )
    command_rate = rows[2]["records_per_s"]
    print(f"\ngoal {GOAL:,} records/s: {'met' if command_rate >= GOAL else 'NOT met'}")
    write_results(
        "generate",
        {
            "events": args.events,
            "bots": args.bots,
            "partitions": PARTITIONS,
            "goal_records_per_s": GOAL,
            "paced_rate": args.paced_rate,
            "paced_s": args.paced_s,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
