"""Per-event cost of the window logic and memory of per-bot state.

The per-event path is ``PartitionClock.observe`` + ``BotState.apply`` on decoded events of
one partition shaped like a busy fleet (mostly info logs and job lifecycle events, some
failures with durations, a few late arrivals). It is measured alone and with the rest of the
worker's pure per-event work (``PartitionState.track``, closing due windows and building their
records). Memory is what 10,000 bots with one open window each hold (tracemalloc), and the
size of their JSON state (what the changelog carries). One process pinned to one core; the
median of several repetitions is reported.

    .venv/bin/python -m bench.bench_windows [--events N] [--bots B] [--repetitions R]
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
import tracemalloc
from collections import Counter
from collections.abc import Sequence
from typing import Any

import orjson

from bench._harness import print_table, write_results
from bench.bench_validate import pin_to_one_core
from streams.bot_state import BotState, Outcome, PartitionState
from streams.watermark import PartitionClock

T0 = 1_795_428_000_000  # 2026-11-23T10:00:00Z
# (kind, share): shares add up to 1.
MIX = (
    ("info_log", 0.45),
    ("job_started", 0.10),
    ("job_success", 0.10),
    ("heartbeat", 0.10),
    ("retry_warning", 0.08),
    ("failure", 0.08),
    ("debug", 0.05),
    ("late", 0.04),
)
Record = tuple[str, int, int, dict[str, Any]]  # bot, offset, event time, event


def _event(kind: str, rng: random.Random) -> dict[str, Any]:
    if kind in {"info_log", "late"}:
        return {"level": "info", "message": "processed batch"}
    if kind == "job_started":
        return {"level": "info", "status": "started", "job_id": "j"}
    if kind == "job_success":
        return {"level": "info", "status": "success", "duration_ms": rng.lognormvariate(7, 1)}
    if kind == "heartbeat":
        return {"level": "debug", "status": "heartbeat"}
    if kind == "retry_warning":
        return {"level": "warning", "status": "retry", "retry_count": rng.randrange(1, 5)}
    if kind == "failure":
        level = rng.choice(("error", "error", "critical"))
        return {"level": level, "status": "failure", "duration_ms": rng.randrange(100, 60_000)}
    if kind == "debug":
        return {"level": "debug", "message": "row"}
    raise ValueError(kind)


def build_stream(count: int, bots: int, rate_per_s: int, seed: int = 11) -> list[Record]:
    """``count`` records of one partition, event time advancing at ``rate_per_s``."""
    rng = random.Random(seed)
    names = [f"bot-{n:05d}" for n in range(bots)]
    kinds = rng.choices([k for k, _ in MIX], weights=[w for _, w in MIX], k=count)
    step = 1000 / rate_per_s
    stream = []
    for offset, kind in enumerate(kinds):
        now = T0 + int(offset * step)
        # Producers' clocks and batching: a few seconds of disorder; "late": minutes behind.
        ts = now - (rng.randrange(120_000, 300_000) if kind == "late" else rng.randrange(3000))
        stream.append((rng.choice(names), offset, ts, _event(kind, rng)))
    return stream


def run_apply(stream: Sequence[Record]) -> tuple[list[Outcome], int]:
    """The hot path alone: observe + apply (windows are never closed)."""
    clock = PartitionClock()
    bots: dict[str, BotState] = {}
    outcomes: list[Outcome] = []
    append = outcomes.append
    for wall, (bot_id, offset, ts, event) in enumerate(stream):
        clock.observe(ts, wall)
        state = bots.get(bot_id)
        if state is None:
            state = bots[bot_id] = BotState(bot_id)
        append(state.apply(offset, event, ts, clock))
    return outcomes, 0


def run_full(stream: Sequence[Record]) -> tuple[list[Outcome], int]:
    """observe + apply + track, and closing due windows into records when the minute turns."""
    part = PartitionState()
    clock = part.clock
    bots: dict[str, BotState] = {}
    outcomes: list[Outcome] = []
    append = outcomes.append
    closed = 0
    next_check = clock.watermark
    for wall, (bot_id, offset, ts, event) in enumerate(stream):
        clock.observe(ts, wall)
        state = bots.get(bot_id)
        if state is None:
            state = bots[bot_id] = BotState(bot_id)
        append(state.apply(offset, event, ts, clock))
        part.track(bot_id, state.next_close_ms)
        if clock.watermark >= next_check:
            for name in part.due():
                closed += len(bots[name].close_ready(clock.watermark))
                part.track(name, bots[name].next_close_ms)
            next_check = clock.watermark - clock.watermark % 60_000 + 60_000
    return outcomes, closed


def measure(run: Any, stream: Sequence[Record], repetitions: int) -> tuple[float, Any]:
    """Median nanoseconds per event over ``repetitions`` passes, after one warm-up pass."""
    result = run(stream)
    costs = []
    for _ in range(repetitions):
        start = time.perf_counter_ns()
        run(stream)
        costs.append((time.perf_counter_ns() - start) / len(stream))
    return statistics.median(costs), result


def memory_of_bots(bots: int, events_per_window: int, durations: bool) -> dict[str, float]:
    """Traced bytes per bot holding one open window, and its JSON state size."""
    rng = random.Random(5)
    clock = PartitionClock()
    clock.observe(T0, 0)
    events = []
    for i in range(events_per_window):
        event: dict[str, Any] = {"level": "info", "status": "success" if i % 2 else "started"}
        if durations:
            event["duration_ms"] = rng.lognormvariate(7, 1)
        events.append(event)
    names = [f"bot-{n:05d}" for n in range(bots)]
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    states = {}
    for name in names:
        state = BotState(name)
        for offset, event in enumerate(events):
            state.apply(offset, event, T0 + offset, clock)
        states[name] = state
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    sizes = sorted(len(orjson.dumps(s.to_dict())) for s in states.values())
    return {
        "bytes_per_bot": used / bots,
        "total_mib": used / 2**20,
        "json_bytes_per_bot": statistics.median(sizes),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--bots", type=int, default=1_000, help="bots in the partition")
    parser.add_argument("--rate", type=int, default=2_000, help="events per second of event time")
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--memory-bots", type=int, default=10_000)
    args = parser.parse_args(argv)

    cpu = pin_to_one_core()
    stream = build_stream(args.events, args.bots, args.rate)
    hot_ns, (hot_outcomes, _) = measure(run_apply, stream, args.repetitions)
    full_ns, (full_outcomes, closed) = measure(run_full, stream, args.repetitions)
    if hot_outcomes != full_outcomes:
        raise SystemExit("the two loops disagree on the outcomes")
    outcomes = Counter(o.value for o in hot_outcomes)

    print(
        f"{len(stream):,} events, {args.bots:,} bots in one partition, {args.rate:,} events/s "
        f"of event time, {args.repetitions} repetitions, median shown, pinned to CPU {cpu}\n"
    )
    print_table(
        ["per-event path", "ns/event", "events/s"],
        [
            ["observe + apply", hot_ns, round(1e9 / hot_ns)],
            ["observe + apply + track + close", full_ns, round(1e9 / full_ns)],
        ],
    )
    print(f"\noutcomes: {', '.join(f'{o} {n:,}' for o, n in sorted(outcomes.items()))}")
    print(f"window records built: {closed:,}\n")

    memory = {
        "log_only": memory_of_bots(args.memory_bots, 20, durations=False),
        "with_durations": memory_of_bots(args.memory_bots, 20, durations=True),
    }
    print_table(
        [f"{args.memory_bots:,} bots, 1 window of 20 events", "bytes/bot", "MiB", "JSON B/bot"],
        [
            [name, m["bytes_per_bot"], m["total_mib"], m["json_bytes_per_bot"]]
            for name, m in memory.items()
        ],
    )
    write_results(
        "windows",
        {
            "events": len(stream),
            "bots_in_partition": args.bots,
            "event_rate_per_s": args.rate,
            "repetitions": args.repetitions,
            "pinned_cpu": cpu,
            "mix": dict(MIX),
            "outcomes": dict(sorted(outcomes.items())),
            "window_records_built": closed,
            "per_event_ns": {
                "observe_apply": round(hot_ns, 1),
                "observe_apply_track_close": round(full_ns, 1),
            },
            "memory": {"bots": args.memory_bots, "events_per_window": 20, **memory},
        },
    )


if __name__ == "__main__":
    main()
