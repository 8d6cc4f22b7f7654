"""``observe_many`` must leave a histogram exactly as ``observe`` per amount would."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Histogram

from streams.metrics import observe_many

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
AMOUNTS = [0.0, 0.005, 0.0051, 0.01, 0.3, 1.0, 2.5, 59.9, 60.0, 61.0, 1e9, 0.004, 0.5]


def samples(histogram: Histogram, registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    out = {}
    for metric in registry.collect():
        for sample in metric.samples:
            if sample.name.endswith("_created"):
                continue
            out[(sample.name, sample.labels.get("le", ""))] = sample.value
    return out


def test_observe_many_matches_observe_one_by_one() -> None:
    one, many = CollectorRegistry(), CollectorRegistry()
    h_one = Histogram("lat", "x", buckets=BUCKETS, registry=one)
    h_many = Histogram("lat", "x", buckets=BUCKETS, registry=many)
    for amount in AMOUNTS:
        h_one.observe(amount)
    observe_many(h_many, AMOUNTS)
    observe_many(h_many, [])
    got, want = samples(h_many, many), samples(h_one, one)
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert got[key] == pytest.approx(value), key
