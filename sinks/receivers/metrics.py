"""Prometheus metrics of the alert receivers, one set per registry, labelled by receiver."""

from __future__ import annotations

from weakref import WeakKeyDictionary

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_BY_REGISTRY: WeakKeyDictionary[CollectorRegistry, ReceiverMetrics] = WeakKeyDictionary()


class ReceiverMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        """Prefer ``ReceiverMetrics.of(registry)``: a registry holds each metric once."""
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.delivered = Counter(
            "botwatch_receiver_delivered",
            "Alert notifications a receiver accepted.",
            ["receiver"],
            registry=r,
        )
        self.failures = Counter(
            "botwatch_receiver_failures",
            "Failed delivery attempts: timeout, connection, or an HTTP error status.",
            ["receiver", "reason"],
            registry=r,
        )
        self.retries = Counter(
            "botwatch_receiver_retries",
            "Delivery attempts that were retries of a failed one.",
            ["receiver"],
            registry=r,
        )
        self.dropped = Counter(
            "botwatch_receiver_dropped",
            "Alert notifications given up: queue_full (oldest dropped), retries_exhausted, "
            "rejected (a 4xx retrying cannot fix), stopped (still queued at shutdown), "
            "superseded (failing while a newer record of its alert waited).",
            ["receiver", "reason"],
            registry=r,
        )
        self.queued = Gauge(
            "botwatch_receiver_queued",
            "Alert notifications waiting in a receiver's queue.",
            ["receiver"],
            registry=r,
        )
        self.up = Gauge(
            "botwatch_receiver_up",
            "1 while a receiver's last delivery succeeded, 0 while it fails.",
            ["receiver"],
            registry=r,
        )
        self.latency = Histogram(
            "botwatch_receiver_request_seconds",
            "Duration of one request to a receiver that got an answer.",
            ["receiver"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )

    @classmethod
    def of(cls, registry: CollectorRegistry | None) -> ReceiverMetrics:
        """The metrics in ``registry`` (created on first use), or a private set for ``None``."""
        if registry is None:
            return cls()
        found = _BY_REGISTRY.get(registry)
        if found is None:
            found = _BY_REGISTRY[registry] = cls(registry)
        return found
