"""The sink's Prometheus metrics, in the registry the caller passes (or a private one)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class SinkMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.docs_written = Counter(
            "botwatch_sink_docs_written",
            "Documents written to OpenSearch, by index family.",
            ["family"],
            registry=r,
        )
        self.duplicates = Counter(
            "botwatch_sink_duplicates",
            "Events already in OpenSearch (a redelivery): counted as written, not rewritten.",
            registry=r,
        )
        self.rejected = Counter(
            "botwatch_sink_rejected",
            "Documents OpenSearch refused for good (mapping or parse errors), by index family.",
            ["family"],
            registry=r,
        )
        self.retries = Counter(
            "botwatch_sink_retries",
            "Retries: of whole requests (unreachable, 429, 5xx) and of single items (429, 5xx).",
            ["scope"],
            registry=r,
        )
        self.bulk_latency = Histogram(
            "botwatch_sink_bulk_seconds",
            "Duration of one request to OpenSearch that got an answer.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.max_request_bytes = Gauge(
            "botwatch_sink_max_request_bytes",
            "Largest _bulk request body the sink sends: BOTWATCH_BULK_MAX_BYTES, or less once "
            "OpenSearch refused a request as too large (413).",
            registry=r,
        )
        self.refused_documents = Gauge(
            "botwatch_sink_refused_documents",
            "Documents OpenSearch answers 429 or 5xx one by one (a node past its flood-stage "
            "disk watermark, a full write queue), retried until written.",
            registry=r,
        )
        self.breaker_state = Gauge(
            "botwatch_sink_breaker_state",
            "Circuit breaker towards OpenSearch: 0 closed, 1 half-open, 2 open.",
            registry=r,
        )
