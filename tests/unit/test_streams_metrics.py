"""``observe_many`` and ``observe_ages`` must leave a histogram as ``observe`` per amount would."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram

from streams.metrics import observe_ages, observe_many

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


NOW = 1_795_428_000_000


@settings(max_examples=300)
@given(
    st.lists(
        st.one_of(
            st.integers(-5_000, 100_000),  # around the bucket bounds, and in the future
            st.sampled_from([0, 5, 6, 10, 250, 1000, 2500, 60_000, 60_001]),
        ),
        max_size=40,
    )
)
def test_observe_ages_matches_observe_of_each_age(ages_ms: list[int]) -> None:
    one, many = CollectorRegistry(), CollectorRegistry()
    h_one = Histogram("age", "x", buckets=BUCKETS, registry=one)
    h_many = Histogram("age", "x", buckets=BUCKETS, registry=many)
    stamps = [NOW - age for age in ages_ms]
    for stamp in stamps:
        h_one.observe(max(0, NOW - stamp) / 1000)
    observe_ages(h_many, NOW, stamps)
    got, want = samples(h_many, many), samples(h_one, one)
    assert got.keys() == want.keys()
    for key, value in want.items():
        if key[0].endswith("_sum"):
            assert got[key] == pytest.approx(value), key
        else:
            assert got[key] == value, key
