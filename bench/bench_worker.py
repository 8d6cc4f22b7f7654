"""Worker throughput beside a bare aiokafka consumer loop, on the same topic in the same run.

    .venv/bin/python -m bench.bench_worker [--events N] [--bots N] [--many-bots N]

One run:

1. creates a fresh 6-partition events topic (and dead-letter, stats and alerts topics) and
   fills it with ``--events`` generated records (1% malformed, 1% late, 5% failed jobs) whose
   event time spans many minutes, so windows close as the worker reads;
2. **bare loop**: a fresh consumer group reads the topic from the beginning with
   ``getmany`` and ``orjson.loads`` on each value, nothing else: the ceiling of a Python
   consumer on this machine;
3. **worker**: ``botwatch worker --sink discard`` as a subprocess (own app id, topics, state
   directory and web port). Its rate runs from the first record it processed to the moment
   ``botwatch_records_in_total`` reaches the record count (group join and table recovery are
   left out); its CPU time over the same span and its peak RSS (VmHWM) come from ``/proc``;
4. **many bots**: the same with ``--many-bots`` distinct bots (default 10,000), all of them
   with open windows at once, for the worker's memory;
5. **malformed flood**: the same with ``--flood-events`` records that are all malformed, as
   when a producer ships a broken schema: every record becomes a dead letter.

Every topic is deleted at the end. The goal: worker >= 0.5x the bare loop; RSS with 10,000
bots <= 300 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench._harness import print_table, write_results
from botwatch.settings import Settings
from producers.generator import Generator, GeneratorConfig
from producers.loadgen import LoadOptions, send
from schemas import timestamp_ms

PARTITIONS = 6
START = "2026-11-23T10:00:00Z"
# Event-time rate: 300,000 records span 10 minutes of event time, so windows keep closing.
EVENT_RATE = 500.0
GOAL_RATIO = 0.5
GOAL_RSS_MB = 300.0
POLL_S = 0.05
TIMEOUT_S = 600.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Topics:
    events: str
    dlq: str
    stats: str
    alerts: str

    def all(self) -> list[str]:
        return [self.events, self.dlq, self.stats, self.alerts]

    @property
    def prefix(self) -> str:
        """What every topic of the run starts with: the worker's own topics too."""
        return self.events.removesuffix(".events")


async def create_topics(bootstrap: str, tag: str) -> Topics:
    prefix = f"botwatch-bench.worker-{tag}-{uuid.uuid4().hex[:8]}"
    topics = Topics(f"{prefix}.events", f"{prefix}.dlq", f"{prefix}.stats", f"{prefix}.alerts")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, PARTITIONS, 1) for name in topics.all()])
    finally:
        await admin.close()
    return topics


async def delete_topics(bootstrap: str, prefixes: list[str]) -> None:
    """Delete every topic starting with one of ``prefixes``."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(tuple(prefixes))]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


async def fill(bootstrap: str, topic: str, events: int, bots: int, malformed: float = 0.01) -> None:
    generator = Generator(
        GeneratorConfig(
            start_ms=timestamp_ms(START),
            bots=bots,
            rate=EVENT_RATE,
            error_rate=0.02,
            failure_rate=0.05,
            malformed=malformed,
            late=0.01,
            seed=7,
        )
    )
    options = LoadOptions(bootstrap=bootstrap, topic=topic, records=events, rate=0, pace=False)
    stats = await send(generator, options)
    if stats.delivered != events:
        raise RuntimeError(f"only {stats.delivered} of {events} records were stored")


async def bare_loop(bootstrap: str, topic: str, events: int) -> dict[str, Any]:
    """A consumer that only decodes the JSON: events/s from its first record to its last."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"botwatch-bench-bare-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    loads = orjson.loads
    read = 0
    began: float | None = None
    cpu0 = time.process_time()
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while read < events:
            if time.monotonic() > deadline:
                raise RuntimeError(f"bare loop read {read} of {events} records in time")
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for records in batches.values():
                if began is None:
                    began = time.perf_counter()
                    cpu0 = time.process_time()
                for record in records:
                    try:  # noqa: SIM105 (cheaper than contextlib.suppress per record)
                        loads(record.value)
                    except orjson.JSONDecodeError:
                        pass
                read += len(records)
        seconds = time.perf_counter() - (began or time.perf_counter())
        cpu = time.process_time() - cpu0
    finally:
        await consumer.stop()
    return {"records": read, "seconds": seconds, "events_per_s": read / seconds, "cpu_s": cpu}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def metric(port: int, name: str) -> float | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            body = response.read().decode()
    except (OSError, urllib.error.URLError):
        return None
    for line in body.splitlines():
        if line.startswith(f"{name} "):
            return float(line.rsplit(" ", 1)[1])
    return None


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of the line (11 and 12 after the ")").
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def memory_mb(pid: int) -> dict[str, float]:
    values: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in {"VmRSS", "VmHWM"}:
            values[name] = int(rest.split()[0]) / 1024
    return values


def worker_env(bootstrap: str, topics: Topics, port: int, workdir: Path) -> dict[str, str]:
    """The environment of a benchmark's worker: its own group, topics, state and port."""
    return {
        **os.environ,
        "BOTWATCH_KAFKA_BOOTSTRAP": bootstrap,
        # Named after the topics: its changelog and assignor topics go with them.
        "BOTWATCH_APP_ID": f"{topics.prefix}.app-{uuid.uuid4().hex[:10]}",
        "BOTWATCH_EVENTS_TOPIC": topics.events,
        "BOTWATCH_DLQ_TOPIC": topics.dlq,
        "BOTWATCH_STATS_TOPIC": topics.stats,
        "BOTWATCH_ALERTS_TOPIC": topics.alerts,
        "BOTWATCH_SILENCES_TOPIC": f"{topics.alerts}.silences",
        "BOTWATCH_PARTITIONS": str(PARTITIONS),
        "BOTWATCH_STATE_DIR": str(workdir / f"state-{port}"),
        "BOTWATCH_WEB_PORT": str(port),
    }


def run_worker(bootstrap: str, topics: Topics, events: int, workdir: Path) -> dict[str, Any]:
    """``botwatch worker --sink discard`` over ``topics.events`` until it read ``events``."""
    port = free_port()
    env = worker_env(bootstrap, topics, port, workdir)
    log = workdir / f"worker-{port}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "botwatch", "worker", "--sink", "discard"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        return _measure(proc, port, events, log)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _measure(proc: subprocess.Popen[bytes], port: int, events: int, log: Path) -> dict[str, Any]:
    name = "botwatch_records_in_total"
    deadline = time.monotonic() + TIMEOUT_S
    started = time.perf_counter()
    first: tuple[float, float, float] | None = None  # (time, records, cpu seconds)
    rss_samples: list[float] = []
    while True:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"worker exited with {proc.returncode}:\n{tail}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"worker did not read {events} records in {TIMEOUT_S} s")
        count = metric(port, name)
        now = time.perf_counter()
        if count is not None and count > 0:
            cpu = cpu_seconds(proc.pid)
            rss_samples.append(memory_mb(proc.pid)["VmRSS"])
            if first is None:
                first = (now, count, cpu)
            if count >= events:
                break
        time.sleep(POLL_S)
    assert first is not None
    t0, c0, cpu0 = first
    seconds = now - t0
    measured = count - c0
    memory = memory_mb(proc.pid)
    return {
        "records": int(count),
        "measured_records": int(measured),
        "seconds": seconds,
        "events_per_s": measured / seconds if seconds > 0 else float("nan"),
        "startup_s": t0 - started,
        "cpu_s": cpu - cpu0,
        "cpu_percent": 100 * (cpu - cpu0) / seconds if seconds > 0 else float("nan"),
        "rss_mb": memory["VmRSS"],
        "peak_rss_mb": memory["VmHWM"],
        "rss_mb_max_sampled": max(rss_samples),
        "windows_closed": metric(port, "botwatch_windows_closed_total"),
        "open_windows": metric(port, "botwatch_open_windows"),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    bootstrap = Settings.load().kafka_bootstrap
    created: list[str] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            topics = await create_topics(bootstrap, "main")
            created.append(topics.prefix)
            began = time.perf_counter()
            await fill(bootstrap, topics.events, args.events, args.bots)
            print(f"filled {args.events:,} records in {time.perf_counter() - began:.1f} s")
            bare = await bare_loop(bootstrap, topics.events, args.events)
            print(f"bare loop: {bare['events_per_s']:,.0f} events/s")
            worker = run_worker(bootstrap, topics, args.events, workdir)
            print(f"worker: {worker['events_per_s']:,.0f} events/s")

            many_topics = await create_topics(bootstrap, "bots")
            created.append(many_topics.prefix)
            await fill(bootstrap, many_topics.events, args.many_events, args.many_bots)
            many = run_worker(bootstrap, many_topics, args.many_events, workdir)
            print(f"worker, {args.many_bots:,} bots: {many['peak_rss_mb']:.0f} MB peak RSS")

            flood_topics = await create_topics(bootstrap, "flood")
            created.append(flood_topics.prefix)
            await fill(bootstrap, flood_topics.events, args.flood_events, args.bots, malformed=1.0)
            flood = run_worker(bootstrap, flood_topics, args.flood_events, workdir)
            print(f"worker, only malformed records: {flood['events_per_s']:,.0f} records/s")
    finally:
        if created:
            await delete_topics(bootstrap, created)
    return {"bare": bare, "worker": worker, "many": many, "flood": flood}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--bots", type=int, default=50)
    parser.add_argument("--many-bots", type=int, default=10_000)
    parser.add_argument(
        "--many-events",
        type=int,
        default=200_000,
        help="records of the many-bots run (3 per bot per minute of event time at 10,000 bots)",
    )
    parser.add_argument(
        "--flood-events",
        type=int,
        default=100_000,
        help="records of the run where every record is malformed (all dead-lettered)",
    )
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    bare, worker, many, flood = result["bare"], result["worker"], result["many"], result["flood"]
    ratio = worker["events_per_s"] / bare["events_per_s"]
    print(
        f"\n{args.events:,} records, {args.bots} bots, {PARTITIONS} partitions, "
        f"sink discarded; many-bots run: {args.many_events:,} records, {args.many_bots:,} bots; "
        f"malformed flood: {args.flood_events:,} records"
    )
    print_table(
        ["run", "records", "seconds", "events/s", "CPU s", "CPU %", "peak RSS MB"],
        [
            ["bare aiokafka loop (orjson.loads)", bare["records"], bare["seconds"],
             bare["events_per_s"], bare["cpu_s"], 100 * bare["cpu_s"] / bare["seconds"], "-"],
            ["botwatch worker --sink discard", worker["measured_records"], worker["seconds"],
             worker["events_per_s"], worker["cpu_s"], worker["cpu_percent"],
             worker["peak_rss_mb"]],
            [f"worker, {args.many_bots:,} bots", many["measured_records"], many["seconds"],
             many["events_per_s"], many["cpu_s"], many["cpu_percent"], many["peak_rss_mb"]],
            ["worker, only malformed records", flood["measured_records"], flood["seconds"],
             flood["events_per_s"], flood["cpu_s"], flood["cpu_percent"], flood["peak_rss_mb"]],
        ],
    )  # fmt: skip
    print(
        f"\nworker / bare loop: {ratio:.2f}x (goal >= {GOAL_RATIO}x: "
        f"{'met' if ratio >= GOAL_RATIO else 'NOT met'})"
    )
    print(
        f"peak RSS with {args.many_bots:,} bots: {many['peak_rss_mb']:.0f} MB "
        f"(goal <= {GOAL_RSS_MB:.0f} MB: "
        f"{'met' if many['peak_rss_mb'] <= GOAL_RSS_MB else 'NOT met'})"
    )
    write_results(
        "worker",
        {
            "events": args.events,
            "bots": args.bots,
            "many_bots": args.many_bots,
            "many_events": args.many_events,
            "flood_events": args.flood_events,
            "partitions": PARTITIONS,
            "event_rate": EVENT_RATE,
            "goal_ratio": GOAL_RATIO,
            "goal_rss_mb": GOAL_RSS_MB,
            "ratio": ratio,
            **result,
        },
    )


if __name__ == "__main__":
    main()
