"""Rule evaluation cost per closed window with 100 rules and 10,000 bots.

Synthetic fleet: 10,000 bots, each closing one 1-minute window record per minute (DESIGN.md
shape); 2% of them are in an incident (high error and failure rates, slow jobs), so alerts
really fire and resolve. 100 rules: 70 threshold rules over every statistic and several spans
(half of them selecting bots by glob), 10 absence, 10 burn-rate (page and ticket pairs) and 10
new-error-type rules. Warm-up minutes fill the spans first; then ``on_window`` is timed per
record, ``on_event`` per event, and ``tick`` over the whole fleet. The per-bot state size is
what the changelog carries (JSON). One process pinned to one core; medians of repetitions.

    .venv/bin/python -m bench.bench_alerts [--bots N] [--minutes M] [--repetitions R]
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
from collections.abc import Sequence
from typing import Any

import orjson

from bench._harness import print_table, write_results
from bench.bench_validate import pin_to_one_core
from streams.alerts import AlertEngine, parse_rules
from streams.windows import WINDOW_MS, rfc3339

T0 = 1_795_428_000_000  # 2026-11-23T10:00:00Z
STATS = (
    ("error_rate", ">", 0.2),
    ("failure_rate", ">", 0.25),
    ("p95_duration_ms", ">", 20_000),
    ("p99_duration_ms", ">", 40_000),
    ("count", "<", 1),
    ("errors", ">", 50),
    ("failures", ">", 20),
    ("retries", ">", 40),
)


def rules_yaml() -> str:
    """100 rules of every kind, written as a user would write them."""
    lines = ["rules:"]
    for i in range(70):
        stat, op, threshold = STATS[i % len(STATS)]
        span = (1, 5, 15)[i % 3]
        selector = f'    selector: {{glob: "bot-{i % 10}*"}}\n' if i % 2 else ""
        lines.append(
            f"  - name: threshold-{i}\n    kind: threshold\n    severity: warning\n"
            f'{selector}    stat: {stat}\n    op: "{op}"\n    threshold: {threshold}\n'
            f"    span: {span}\n    min_events: 10\n    for: {i % 3}m\n"
            f'    annotations: {{summary: "{{bot_id}} {stat} {{value}} over {{window}}"}}'
        )
    for i in range(10):
        lines.append(
            f"  - name: down-{i}\n    kind: absence\n    severity: critical\n    for: {5 + i}m"
        )
    for i in range(10):
        severity = "critical" if i % 2 else "warning"
        lines.append(
            f"  - name: burn-{i}\n    kind: burn_rate\n    severity: {severity}\n"
            f"    objective: 0.99\n    min_events: 20"
        )
    for i in range(10):
        lines.append(
            f"  - name: new-error-{i}\n    kind: new_error_type\n    severity: info\n"
            f"    days: {1 + i}"
        )
    return "\n".join(lines) + "\n"


def window(bot: str, minute: int, rng: random.Random, incident: bool) -> dict[str, Any]:
    count = rng.randrange(20, 200)
    errors = rng.randrange(count // 3, count) if incident else rng.randrange(0, 3)
    finished = rng.randrange(5, 30)
    # Healthy bots fail about one job in 300: well inside a 99% objective.
    failures = rng.randrange(finished // 2, finished) if incident else int(rng.random() < 0.05)
    p95 = rng.uniform(30_000, 60_000) if incident else rng.uniform(500, 5_000)
    start = T0 + minute * WINDOW_MS
    return {
        "bot_id": bot,
        "window_start": rfc3339(start),
        "window_end": rfc3339(start + WINDOW_MS),
        "window_size_s": 60,
        "count": count,
        "errors": errors,
        "successes": finished - failures,
        "failures": failures,
        "retries": rng.randrange(0, 10),
        "error_rate": errors / count,
        "failure_rate": failures / finished,
        "levels": {"debug": 0, "info": count - errors, "warning": 0, "error": errors},
        "duration_ms": {
            "count": finished,
            "sum": p95 * finished / 2,
            "min": 10.0,
            "max": p95 * 1.2,
            "mean": p95 / 2,
            "p50": p95 / 3,
            "p95": p95,
            "p99": p95 * 1.1,
        },
        "late_events_excluded": 0,
        "schema_version": 1,
    }


def run(bots: int, warmup: int, minutes: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    names = [f"bot-{n:05d}" for n in range(bots)]
    incident = set(rng.sample(names, bots // 50))
    engine = AlertEngine(parse_rules(rules_yaml()))
    error_types = [f"Error{n}" for n in range(8)]
    notifications = 0
    # Warm-up: every bot is seen and its spans fill; not timed.
    for minute in range(warmup):
        for bot in names:
            engine.on_event(bot, "prod", rng.choice(error_types), T0 + minute * WINDOW_MS)
            notifications += len(engine.on_window(window(bot, minute, rng, bot in incident)))
    records = [
        [window(bot, minute, rng, bot in incident) for bot in names]
        for minute in range(warmup, warmup + minutes)
    ]
    events = [
        (bot, "prod", rng.choice(error_types) if rng.random() < 0.1 else None, T0 + m * WINDOW_MS)
        for m in range(warmup, warmup + minutes)
        for bot in names
    ]
    gc.collect()
    gc.disable()
    try:
        window_s = event_s = tick_s = 0.0
        for minute, batch in enumerate(records):
            lo, hi = minute * bots, (minute + 1) * bots
            start = time.perf_counter()
            for bot, env, error_type, ts in events[lo:hi]:
                notifications += len(engine.on_event(bot, env, error_type, ts))
            event_s += time.perf_counter() - start
            start = time.perf_counter()
            for record in batch:
                notifications += len(engine.on_window(record))
            window_s += time.perf_counter() - start
            start = time.perf_counter()
            notifications += len(engine.tick(T0 + (warmup + minute + 1) * WINDOW_MS + 5000))
            tick_s += time.perf_counter() - start
    finally:
        gc.enable()
    sizes = [len(orjson.dumps(engine.bot_to_dict(bot))) for bot in names]
    count = bots * minutes
    return {
        "us_per_window": window_s / count * 1e6,
        "us_per_event": event_s / count * 1e6,
        "ms_per_tick": tick_s / minutes * 1e3,
        "windows_per_s": count / window_s,
        "state_bytes_per_bot_mean": statistics.fmean(sizes),
        "state_bytes_per_bot_max": max(sizes),
        "active_alerts": len(engine.active()),
        "notifications": notifications,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bots", type=int, default=10_000)
    parser.add_argument("--warmup", type=int, default=16, help="minutes before timing")
    parser.add_argument("--minutes", type=int, default=5, help="timed minutes")
    parser.add_argument("--repetitions", type=int, default=3)
    args = parser.parse_args(argv)

    cpu = pin_to_one_core()
    runs = [run(args.bots, args.warmup, args.minutes, seed) for seed in range(args.repetitions)]
    result = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    print(
        f"{args.bots:,} bots, 100 rules (70 threshold, 10 absence, 10 burn_rate, "
        f"10 new_error_type), {args.minutes} timed minutes, median of {args.repetitions}\n"
    )
    print_table(
        ["what", "cost"],
        [
            [
                "on_window (all rules of one bot, one closed window)",
                f"{result['us_per_window']:.1f} us",
            ],
            ["closed windows per second, one core", int(result["windows_per_s"])],
            ["on_event", f"{result['us_per_event']:.2f} us"],
            ["tick over the whole fleet", f"{result['ms_per_tick']:.1f} ms"],
            ["state per bot (JSON), mean", f"{result['state_bytes_per_bot_mean']:.0f} B"],
            ["state per bot (JSON), max", f"{result['state_bytes_per_bot_max']:.0f} B"],
            ["alerts pending or firing at the end", int(result["active_alerts"])],
        ],
    )
    write_results(
        "alerts",
        {
            "cpu_pinned": cpu,
            "bots": args.bots,
            "rules": {
                "total": 100,
                "threshold": 70,
                "absence": 10,
                "burn_rate": 10,
                "new_error_type": 10,
            },
            "warmup_minutes": args.warmup,
            "timed_minutes": args.minutes,
            "repetitions": args.repetitions,
            **result,
            "runs": runs,
        },
    )


if __name__ == "__main__":
    main()
