"""Decode + validate throughput: ``schemas.decode_event`` against orjson + jsonschema.

Both sides get the same record bytes, a mix shaped like a busy fleet (mostly info logs and
job lifecycle events, some failures with stack traces, a few malformed records), and must
produce a verdict per record: the event or the first error. One process pinned to one
core; the median of several repetitions is reported.

    .venv/bin/python -m bench.bench_validate [--records N] [--repetitions R]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from jsonschema import Draft202012Validator

from bench._harness import print_table, write_results
from schemas import EventError, decode_event, event_json_schema

BOTS = [f"{kind}-bot-{n}" for kind in ("invoice", "crawler", "etl", "mailer") for n in range(5)]
WORDS = [
    "processed",
    "invoice",
    "customer",
    "page",
    "batch",
    "row",
    "upload",
    "download",
    "retry",
    "timeout",
    "connection",
    "queue",
    "item",
    "report",
    "export",
    "sync",
    "ledger",
    "order",
    "shipment",
]
STACK_FRAME = '  File "/srv/bots/{bot}/steps.py", line {line}, in {fn}\n    {code}\n'
# (kind, share): shares add up to 1.
MIX = (
    ("info_log", 0.45),
    ("job_lifecycle", 0.20),
    ("heartbeat", 0.10),
    ("retry_warning", 0.08),
    ("failure_with_stack", 0.08),
    ("debug_big_meta", 0.05),
    ("malformed", 0.04),
)


def _timestamp(rng: random.Random) -> str:
    millis = rng.randrange(1000)
    return f"2026-11-23T10:{rng.randrange(60):02d}:{rng.randrange(60):02d}.{millis:03d}Z"


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def _base(rng: random.Random, level: str) -> dict[str, Any]:
    bot = rng.choice(BOTS)
    return {
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "timestamp": _timestamp(rng),
        "bot_id": bot,
        "job_id": f"{bot}:{rng.randrange(10**6)}",
        "level": level,
        "message": _sentence(rng, rng.randrange(5, 25)),
        "host": f"worker-{rng.randrange(8)}",
        "env": "prod",
        "schema_version": 1,
    }


def _event(kind: str, rng: random.Random) -> dict[str, Any]:
    if kind == "info_log":
        event = _base(rng, "info")
        event["meta"] = {"step": rng.choice(WORDS), "items": rng.randrange(500)}
    elif kind == "job_lifecycle":
        event = _base(rng, "info")
        event["status"] = rng.choice(("started", "success"))
        if event["status"] == "success":
            event["duration_ms"] = round(rng.lognormvariate(7, 1), 3)
        event["retry_count"] = 0
    elif kind == "heartbeat":
        event = _base(rng, "debug")
        del event["job_id"]
        event["status"] = "heartbeat"
        event["message"] = "alive"
    elif kind == "retry_warning":
        event = _base(rng, "warning")
        event["status"] = "retry"
        event["retry_count"] = rng.randrange(1, 5)
        event["meta"] = {"backoff_s": rng.choice((1, 2, 4, 8)), "reason": "timeout"}
    elif kind == "failure_with_stack":
        event = _base(rng, rng.choice(("error", "error", "critical")))
        frames = "".join(
            STACK_FRAME.format(
                bot=event["bot_id"], line=rng.randrange(900), fn=rng.choice(WORDS), code="run()"
            )
            for _ in range(rng.randrange(5, 20))
        )
        event["status"] = "failure"
        event["duration_ms"] = rng.randrange(100, 60_000)
        event["retry_count"] = rng.randrange(4)
        event["error"] = {
            "type": rng.choice(("TimeoutError", "KeyError", "HTTPError")),
            "message": _sentence(rng, 8),
            "stack": "Traceback (most recent call last):\n" + frames,
        }
    elif kind == "debug_big_meta":
        event = _base(rng, "debug")
        event["meta"] = {
            "request": {"url": "https://api.example.com/v1/orders", "method": "GET"},
            "rows": [{"id": rng.randrange(10**6), "state": rng.choice(WORDS)} for _ in range(20)],
        }
    else:
        raise ValueError(kind)
    return event


def _malformed(rng: random.Random) -> bytes:
    event = _base(rng, "info")
    breakage = rng.randrange(5)
    if breakage == 0:
        event["customer"] = "acme"  # unknown top-level field
    elif breakage == 1:
        event["timestamp"] = "2026-11-23 10:00:00"  # no offset
    elif breakage == 2:
        event["duration_ms"] = -3
    elif breakage == 3:
        del event["level"]
    else:
        return orjson.dumps(event)[:-7]  # truncated record
    return orjson.dumps(event)


def build_records(count: int, seed: int = 7) -> tuple[list[bytes], list[str]]:
    """``count`` records in the proportions of MIX, and the kind of each."""
    rng = random.Random(seed)
    kinds = rng.choices([k for k, _ in MIX], weights=[w for _, w in MIX], k=count)
    records = [
        _malformed(rng) if kind == "malformed" else orjson.dumps(_event(kind, rng))
        for kind in kinds
    ]
    return records, kinds


def run_decode_event(records: Sequence[bytes]) -> int:
    invalid = 0
    for raw in records:
        try:
            decode_event(raw)
        except EventError:
            invalid += 1
    return invalid


def make_run_jsonschema(schema: dict[str, Any]) -> Callable[[Sequence[bytes]], int]:
    validator = Draft202012Validator(schema)  # built once, like a worker would

    def run(records: Sequence[bytes]) -> int:
        invalid = 0
        for raw in records:
            try:
                event = orjson.loads(raw)
            except orjson.JSONDecodeError:
                invalid += 1
                continue
            # The first error, as decode_event reports it: what a dead letter needs.
            if next(validator.iter_errors(event), None) is not None:
                invalid += 1
        return invalid

    return run


def run_orjson_only(records: Sequence[bytes]) -> int:
    invalid = 0
    for raw in records:
        try:
            orjson.loads(raw)
        except orjson.JSONDecodeError:
            invalid += 1
    return invalid


def measure(
    run: Callable[[Sequence[bytes]], int], records: Sequence[bytes], repetitions: int
) -> tuple[float, int]:
    """Median events/s over ``repetitions`` passes, after one warm-up pass."""
    invalid = run(records)
    rates = []
    for _ in range(repetitions):
        start = time.perf_counter()
        run(records)
        rates.append(len(records) / (time.perf_counter() - start))
    return statistics.median(rates), invalid


def pin_to_one_core() -> int | None:
    """Stay on one CPU so the number means one core, not whatever the scheduler gave."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--repetitions", type=int, default=5)
    args = parser.parse_args(argv)

    cpu = pin_to_one_core()
    records, kinds = build_records(args.records)
    mix = Counter(kinds)
    sizes = sorted(len(r) for r in records)
    candidates = {
        "schemas.decode_event": run_decode_event,
        "orjson.loads + jsonschema": make_run_jsonschema(event_json_schema()),
        "orjson.loads only (floor)": run_orjson_only,
    }
    results: dict[str, dict[str, Any]] = {}
    for name, run in candidates.items():
        rate, invalid = measure(run, records, args.repetitions)
        results[name] = {
            "events_per_s": round(rate),
            "us_per_event": 1e6 / rate,
            "invalid": invalid,
        }
    if (
        results["schemas.decode_event"]["invalid"]
        != results["orjson.loads + jsonschema"]["invalid"]
    ):
        raise SystemExit("the two validators disagree on how many records are invalid")

    baseline = results["orjson.loads + jsonschema"]["events_per_s"]
    rows = [
        [name, r["events_per_s"], r["us_per_event"], r["events_per_s"] / baseline, r["invalid"]]
        for name, r in results.items()
    ]
    print(
        f"{len(records):,} records (median {statistics.median(sizes)} B, max {sizes[-1]} B), "
        f"{args.repetitions} repetitions, median shown, pinned to CPU {cpu}\n"
    )
    print_table(["validator", "events/s", "us/event", "x jsonschema", "invalid"], rows)
    # Where the ratio comes from: per kind, on that kind's records of the same set.
    by_kind: dict[str, dict[str, float]] = {}
    for kind in sorted(mix):
        subset = [raw for raw, k in zip(records, kinds, strict=True) if k == kind]
        ours, _ = measure(candidates["schemas.decode_event"], subset, args.repetitions)
        theirs, _ = measure(candidates["orjson.loads + jsonschema"], subset, args.repetitions)
        by_kind[kind] = {
            "decode_event_per_s": round(ours),
            "jsonschema_per_s": round(theirs),
            "ratio": round(ours / theirs, 1),
        }
    print()
    print_table(
        ["kind", "records", "decode_event/s", "jsonschema/s", "x jsonschema"],
        [
            [kind, mix[kind], r["decode_event_per_s"], r["jsonschema_per_s"], r["ratio"]]
            for kind, r in by_kind.items()
        ],
    )
    write_results(
        "validate",
        {
            "records": len(records),
            "repetitions": args.repetitions,
            "pinned_cpu": cpu,
            "record_bytes": {"median": statistics.median(sizes), "max": sizes[-1]},
            "mix": dict(sorted(mix.items())),
            "results": results,
            "by_kind": by_kind,
            "speedup_vs_jsonschema": round(
                results["schemas.decode_event"]["events_per_s"] / baseline, 1
            ),
        },
    )


if __name__ == "__main__":
    main()
