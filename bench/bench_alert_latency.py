"""Alert latency: from the moment the breaching window closes to the notification at a receiver.

    .venv/bin/python -m bench.bench_alert_latency [--incidents N]

One run:

1. a fresh events topic (and the worker's other topics), a webhook receiver on loopback in
   this process, and ``botwatch worker`` with one threshold rule (error rate > 50% over one
   1-minute window, ``min_events`` 5, no ``for``), an allowed lateness of 1 s;
2. per step, one bot's window *k* gets 10 events (all errors on even steps, none on odd ones);
   then the record that closes it is sent: the first event of window *k+1*, 1 s of event time
   past the end of window *k*. The moment Kafka acknowledges that record is the moment the
   window closes; the arrival of the webhook's notification (firing on even steps, resolved
   on odd ones) ends the measurement. Every step is one notification, so ``--incidents N``
   makes N measurements;
3. side by side, the floor any Kafka-driven notifier has: the same closing record's trip
   from acknowledgement to a bare aiokafka consumer polling the topic.

Event times lie in the past (one minute per step), so steps follow each other as fast as
the worker answers; idle closing is pushed out of the way so only the watermark closes
windows. Goal: p99 <= 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench._harness import print_table, write_results
from bench.bench_worker import Topics, create_topics, delete_topics, free_port, worker_env
from botwatch.settings import Settings
from streams.windows import WINDOW_MS, rfc3339

GOAL_P99_S = 2.0
LATENESS_S = 1
RULES = """\
rules:
  - name: bench-errors
    kind: threshold
    severity: critical
    stat: error_rate
    op: ">"
    threshold: 0.5
    span: 1
    min_events: 5
"""


class Inbox:
    """The webhook receiver: the arrival time of every notification, by status."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, str]] = []
        self.changed = asyncio.Condition()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        arrived = time.time()
        async with self.changed:
            for alert in body["alerts"]:
                self.arrivals.append((arrived, alert["status"]))
            self.changed.notify_all()
        return web.Response(text="ok")

    async def wait(self, count: int, timeout_s: float = 30.0) -> tuple[float, str]:
        async with asyncio.timeout(timeout_s), self.changed:
            await self.changed.wait_for(lambda: len(self.arrivals) >= count)
        return self.arrivals[count - 1]


def event(bot: str, ts_ms: int, level: str) -> bytes:
    return orjson.dumps(
        {
            "event_id": str(uuid.uuid4()),
            "timestamp": rfc3339(ts_ms),
            "bot_id": bot,
            "level": level,
            "message": "bench",
            "schema_version": 1,
        }
    )


def start_worker(bootstrap: str, topics: Topics, hook: str, workdir: Path) -> tuple[Any, int]:
    port = free_port()
    rules = workdir / "rules.yaml"
    rules.write_text(RULES)
    env = {
        **worker_env(bootstrap, topics, port, workdir),
        "BOTWATCH_ALERT_RULES": str(rules),
        "BOTWATCH_ALERT_WEBHOOK_URL": hook,
        "BOTWATCH_ALLOWED_LATENESS_S": str(LATENESS_S),
        "BOTWATCH_IDLE_CLOSE_S": "86400",
    }
    log = (workdir / "worker.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "botwatch", "worker", "--sink", "discard"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError((workdir / "worker.log").read_text()[-3000:])
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as resp:
                if resp.status == 200:
                    return proc, port
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the worker was not ready within 120 s")


async def bare_trip(consumer: AIOKafkaConsumer, sent_at: float, value: bytes) -> float:
    """Seconds from ``sent_at`` until the bare consumer has read the record ``value``."""
    while True:
        batches = await consumer.getmany(timeout_ms=1000)
        for records in batches.values():
            if any(r.value == value for r in records):
                return time.time() - sent_at


async def run(incidents: int) -> dict[str, Any]:
    bootstrap = Settings.load().kafka_bootstrap
    topics = await create_topics(bootstrap, "alert-latency")
    inbox = Inbox()
    app = web.Application()
    app.router.add_post("/hook", inbox.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    hook_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", hook_port).start()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    consumer = AIOKafkaConsumer(
        topics.events, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="latest"
    )
    await producer.start()
    await consumer.start()
    workdir = Path(tempfile.mkdtemp(prefix="botwatch-bench-alerts-"))
    proc, _ = await asyncio.to_thread(
        start_worker, bootstrap, topics, f"http://127.0.0.1:{hook_port}/hook", workdir
    )
    latencies: list[float] = []
    trips: list[float] = []
    try:
        now = int(time.time() * 1000)
        start = now - now % WINDOW_MS - (incidents + 2) * WINDOW_MS
        bot = "latency-bot"
        for step in range(incidents):
            window = start + step * WINDOW_MS
            level = "error" if step % 2 == 0 else "info"
            body = [
                await producer.send(
                    topics.events, event(bot, window + 2000 + i, level), key=bot.encode()
                )
                for i in range(10)
            ]
            await asyncio.gather(*body)
            closing = event(bot, window + WINDOW_MS + LATENESS_S * 1000, "info")
            await asyncio.sleep(0.6)  # the window's own events are in a batch of their own
            await producer.send_and_wait(topics.events, closing, key=bot.encode())
            closed_at = time.time()
            trips.append(await bare_trip(consumer, closed_at, closing))
            arrived, status = await inbox.wait(step + 1)
            expected = "firing" if step % 2 == 0 else "resolved"
            if status != expected:
                raise RuntimeError(f"step {step}: expected a {expected} notification, got {status}")
            latencies.append(arrived - closed_at)
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, 60)
        await consumer.stop()
        await producer.stop()
        await runner.cleanup()
        await delete_topics(bootstrap, [topics.prefix])
    return {"latencies_s": latencies, "kafka_trips_s": trips}


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--incidents", type=int, default=60)
    args = parser.parse_args()
    measured = asyncio.run(run(args.incidents))
    rows = []
    summary: dict[str, Any] = {}
    for name, key in (
        ("window close -> webhook", "latencies_s"),
        ("Kafka ack -> bare consumer", "kafka_trips_s"),
    ):
        values = measured[key]
        stats = {
            "n": len(values),
            "p50_s": statistics.median(values),
            "p99_s": quantile(values, 0.99),
            "max_s": max(values),
        }
        summary[key] = stats
        rows.append((name, stats["n"], stats["p50_s"], stats["p99_s"], stats["max_s"]))
    print_table(("path", "n", "p50 s", "p99 s", "max s"), rows)
    p99 = summary["latencies_s"]["p99_s"]
    print(f"goal: p99 <= {GOAL_P99_S} s -> {'met' if p99 <= GOAL_P99_S else 'NOT met'}")
    write_results(
        "alert_latency",
        {
            "incidents": args.incidents,
            "goal_p99_s": GOAL_P99_S,
            "goal_met": p99 <= GOAL_P99_S,
            "worker_batch_within_s": Settings.load().streams.batch_within_s,
            **summary,
            "raw": measured,
        },
    )


if __name__ == "__main__":
    main()
