"""The worker's Prometheus metrics, in a registry of its own (tests run several workers)."""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

STAGES = ("decode", "validate", "sink", "job_failure")


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.records_in = Counter(
            "botwatch_records_in", "Records read from the events topic.", registry=r
        )
        self.records_valid = Counter(
            "botwatch_records_valid", "Records that passed validation.", registry=r
        )
        self.dead_letters = Counter(
            "botwatch_dead_letters",
            "Records sent to the dead-letter topic, by stage.",
            ["stage"],
            registry=r,
        )
        self.duplicates_skipped = Counter(
            "botwatch_duplicates_skipped",
            "Redelivered records already applied to the windows (skipped, not double counted).",
            registry=r,
        )
        self.repeated_letters_skipped = Counter(
            "botwatch_repeated_dead_letters_skipped",
            "Dead letters of redelivered records not sent again: their first reading sent them.",
            registry=r,
        )
        self.reindexed = Counter(
            "botwatch_replayed_reindexed",
            "Records replayed from sink dead letters: indexed again, not counted again.",
            registry=r,
        )
        self.late_events = Counter(
            "botwatch_late_events",
            "Valid events whose window had closed: indexed, left out of the stats.",
            registry=r,
        )
        self.unwindowed_events = Counter(
            "botwatch_unwindowed_events",
            "Valid events whose event time is too far ahead of the clock (or outside years "
            "1..9999 UTC): indexed, left out of the stats, the watermark unmoved.",
            registry=r,
        )
        self.miskeyed_events = Counter(
            "botwatch_miskeyed_events",
            "Valid events whose record key is not their bot_id: indexed, left out of the stats, "
            "and dead-lettered (stage validate) to be replayed keyed by their bot_id.",
            registry=r,
        )
        self.windows_closed = Counter(
            "botwatch_windows_closed", "Per-bot windows closed and published.", registry=r
        )
        self.processing_latency = Histogram(
            "botwatch_processing_latency_seconds",
            "From the record's Kafka timestamp to the end of its batch's processing.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.batch_size = Histogram(
            "botwatch_batch_size",
            "Records per processed batch.",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000),
            registry=r,
        )
        self.consumer_lag = Gauge(
            "botwatch_consumer_lag",
            "Records between the committed offset and the end of each events partition.",
            ["partition"],
            registry=r,
        )
        self.kafka_up = Gauge(
            "botwatch_kafka_up",
            "1 while Kafka answers the worker's metadata requests (every 2 s), else 0.",
            registry=r,
        )
        self.open_windows = Gauge("botwatch_open_windows", "Per-bot windows open now.", registry=r)
        self.unread_partitions = Gauge(
            "botwatch_events_partitions_unread",
            "Partitions of the events topic past BOTWATCH_PARTITIONS (added while the worker "
            "runs): the worker never reads them.",
            registry=r,
        )
        self.records_expired_unread = Counter(
            "botwatch_records_expired_unread",
            "Records of the events topic Kafka deleted before the worker read them (its "
            "retention, or a deletion by hand): lost to botwatch.",
            registry=r,
        )
        self.bots_retired = Counter(
            "botwatch_bots_retired",
            "Bots forgotten after BOTWATCH_RETIRE_AFTER_S without events (state deleted).",
            registry=r,
        )
        self.alert_notifications = Counter(
            "botwatch_alert_notifications",
            "Alert records published (topic, index and receivers), by rule severity and state.",
            ["severity", "state"],
            registry=r,
        )
        self.alerts_active = Gauge(
            "botwatch_alerts_active",
            "Pending and firing alerts of the partitions this worker owns, by state.",
            ["state"],
            registry=r,
        )
        self.silences = Gauge(
            "botwatch_alert_silences",
            "Silences in force, as read from the silences topic.",
            registry=r,
        )
        for stage in STAGES:
            self.dead_letters.labels(stage=stage)


def observe_many(histogram: Histogram, amounts: Iterable[float]) -> None:
    """``histogram.observe(a)`` for each amount, in one pass (one lock per bucket touched).

    ``Histogram.observe`` costs ~1 us (a lock and a bucket scan per call); the worker
    observes one latency per record. This updates the same bucket counters and sum through
    prometheus_client's internals (``_upper_bounds``, ``_buckets``, ``_sum``), and falls back
    to ``observe`` per amount if they are not there.
    """
    parts = _internals(histogram)
    if parts is None:
        for amount in amounts:
            histogram.observe(amount)
        return
    bounds, buckets, total = parts
    counts = [0] * len(bounds)
    added = 0.0
    for amount in amounts:
        counts[bisect_left(bounds, amount)] += 1  # the first bound >= amount, as observe
        added += amount
    total.inc(added)
    for i, n in enumerate(counts):
        if n:
            buckets[i].inc(n)


def observe_ages(histogram: Histogram, now_ms: int, stamps_ms: Iterable[int]) -> None:
    """``histogram.observe(max(0, now_ms - stamp) / 1000)`` for each stamp, in seconds.

    The worker observes the age of every record it processed. Sorting the stamps (mostly in
    order already) and bisecting once per bucket replaces a division and a bucket search per
    record; the counts are those ``observe`` would make, the sum equal up to rounding.
    """
    stamps = sorted(stamps_ms)
    if not stamps:
        return
    parts = _internals(histogram)
    if parts is None:
        observe_many(histogram, [max(0, now_ms - stamp) / 1000 for stamp in stamps])
        return
    bounds, buckets, total = parts
    n = len(stamps)
    past = bisect_right(stamps, now_ms)  # the stamps not in the future: ages above zero
    total.inc((now_ms * past - sum(stamps[:past])) / 1000)
    below = 0
    for bound, bucket in zip(bounds, buckets, strict=True):
        if bound == math.inf:
            within = n
        elif bound < 0:
            within = 0
        else:  # age <= bound  <=>  now_ms - stamp <= the most whole ms within the bound
            within = n - bisect_left(stamps, now_ms - _whole_ms_within(bound))
        if within > below:
            bucket.inc(within - below)
            below = within


def _whole_ms_within(bound_s: float) -> int:
    """The largest whole number of milliseconds ``ms`` with ``ms / 1000 <= bound_s``."""
    ms = math.floor(bound_s * 1000)
    while (ms + 1) / 1000 <= bound_s:
        ms += 1
    while ms / 1000 > bound_s:
        ms -= 1
    return ms


def _internals(histogram: Histogram) -> tuple[Any, Any, Any] | None:
    """prometheus_client's bucket bounds, bucket counters and sum, or None if they changed."""
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        return None
    return bounds, buckets, total
