"""The duration sketch: 1% relative error against the exact rank convention, merges, state."""

from __future__ import annotations

import math
import sys

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.rank import nearest_rank
from streams.sketch import MIN_INDEXABLE, QuantileSketch

# Values the guarantee covers: zero, or at least MIN_INDEXABLE (smaller ones count as zero).
VALUES = st.one_of(
    st.just(0.0),
    st.floats(min_value=MIN_INDEXABLE, max_value=1e12),
    st.floats(min_value=1.0, max_value=10_000.0),
)
QS = (0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0)


def exact(values: list[float], q: float) -> float:
    return sorted(values)[nearest_rank(q, len(values))]


def sketch_of(values: list[float], **kwargs: int) -> QuantileSketch:
    sketch = QuantileSketch(**kwargs)
    for v in values:
        sketch.add(v)
    return sketch


def assert_within_1pct(sketch: QuantileSketch, values: list[float], qs: tuple[float, ...]) -> None:
    for q in qs:
        truth = exact(values, q)
        estimate = sketch.quantile(q)
        assert abs(estimate - truth) <= 0.01 * truth, (q, truth, estimate)
        # The bound actually achieved is alpha (0.5%), which leaves the margin.
        assert abs(estimate - truth) <= 0.005 * (1 + 1e-9) * truth, (q, truth, estimate)


@settings(max_examples=300)
@given(st.lists(VALUES, min_size=1, max_size=300), st.floats(min_value=0.0, max_value=1.0))
def test_quantiles_are_within_one_percent_of_the_exact_rank(values: list[float], q: float) -> None:
    sketch = sketch_of(values)
    assert sketch.count == len(values)
    assert_within_1pct(sketch, values, (*QS, q))


@settings(max_examples=200)
@given(st.lists(st.lists(VALUES, max_size=80), min_size=1, max_size=6))
def test_merged_sketches_keep_the_bound_and_equal_one_sketch_of_everything(
    parts: list[list[float]],
) -> None:
    everything = [v for part in parts for v in part]
    merged = QuantileSketch()
    for part in parts:
        merged.merge(sketch_of(part))
    assert merged == sketch_of(everything)
    assert merged.count == len(everything)
    if everything:
        assert_within_1pct(merged, everything, QS)


@settings(max_examples=200)
@given(st.lists(VALUES, min_size=1, max_size=200))
def test_state_survives_a_json_round_trip(values: list[float]) -> None:
    sketch = sketch_of(values)
    restored = QuantileSketch.from_dict(orjson.loads(orjson.dumps(sketch.to_dict())))
    assert restored == sketch
    assert restored.count == sketch.count
    assert [restored.quantile(q) for q in QS] == [sketch.quantile(q) for q in QS]
    assert_within_1pct(restored, values, QS)
    # A restored sketch keeps counting.
    restored.add(values[0])
    sketch.add(values[0])
    assert restored == sketch


def test_state_is_compact_bucket_counts() -> None:
    sketch = sketch_of([0.0, 10.0, 10.0, 1000.0])
    data = sketch.to_dict()
    assert data["zero"] == 1
    assert sorted(data["bins"].values()) == [1, 2]
    assert all(isinstance(k, str) and int(k) for k in data["bins"])
    assert "floor" not in data


def test_zero_and_tiny_values_go_to_the_zero_bucket() -> None:
    sketch = sketch_of([0.0, MIN_INDEXABLE / 2, 5.0])
    assert sketch.zero == 2
    assert sketch.quantile(0.0) == 0.0
    assert sketch.quantile(0.5) == 0.0
    assert abs(sketch.quantile(1.0) - 5.0) <= 0.05


def test_bucket_count_is_bounded_and_upper_quantiles_stay_accurate() -> None:
    # Every value in a bucket of its own: 1000 buckets, 64 kept.
    values = [1.1**i for i in range(1000)]
    sketch = sketch_of(values, max_bins=64)
    assert len(sketch.bins) == 64
    assert sketch.count == 1000
    # Ranks 937..999 sit in the 63 buckets above the collapsed one.
    assert_within_1pct(sketch, values, (0.94, 0.95, 0.99, 1.0))
    # The lowest quantiles are what collapsing gives up: they are overestimated.
    assert sketch.quantile(0.0) > 1.5 * values[0]
    # Values below the collapsed floor join it instead of creating buckets.
    sketch.add(1e-6)
    assert len(sketch.bins) == 64
    restored = QuantileSketch.from_dict(orjson.loads(orjson.dumps(sketch.to_dict())))
    restored.add(1e-7)
    assert len(restored.bins) == 64
    assert restored.count == 1002


def test_default_bound_holds_over_a_huge_span() -> None:
    sketch = sketch_of([1.02**i for i in range(-3000, 3000)])
    assert len(sketch.bins) <= 2048
    other = sketch_of([1.02**i for i in range(-6000, -3000)])
    sketch.merge(other)
    assert len(sketch.bins) <= 2048
    assert sketch.count == 9000
    assert abs(sketch.quantile(0.99) - 1.02 ** (2909)) <= 0.01 * 1.02**2909


def test_merging_a_collapsed_sketch_moves_the_floor() -> None:
    collapsed = sketch_of([1.1**i for i in range(100)], max_bins=10)
    fine = sketch_of([1.0, 2.0], max_bins=10)
    fine.merge(collapsed)
    assert len(fine.bins) <= 10
    assert fine.count == 102
    floor = collapsed.to_dict()["floor"]
    assert min(fine.bins) == floor
    assert fine.to_dict()["floor"] == floor
    buckets = len(fine.bins)
    fine.add(0.5)  # below the floor: joins it
    assert len(fine.bins) == buckets


def test_largest_float_does_not_overflow() -> None:
    sketch = sketch_of([sys.float_info.max, 1.0])
    top = sketch.quantile(1.0)
    assert math.isfinite(top)
    assert abs(top - sys.float_info.max) <= 0.01 * sys.float_info.max


@pytest.mark.parametrize("bad", [-1.0, -MIN_INDEXABLE, math.nan, math.inf, -math.inf])
def test_invalid_values_are_rejected_without_counting(bad: float) -> None:
    sketch = QuantileSketch()
    with pytest.raises(ValueError):
        sketch.add(bad)
    assert sketch.count == 0


def test_empty_sketch_and_bad_arguments() -> None:
    sketch = QuantileSketch()
    assert sketch.quantile(0.5) == 0.0
    assert sketch.quantiles(0.5, 0.99) == [0.0, 0.0]
    with pytest.raises(ValueError):
        sketch.quantile(1.5)
    with pytest.raises(ValueError):
        QuantileSketch(alpha=0.0)
    with pytest.raises(ValueError):
        QuantileSketch(max_bins=0)
    with pytest.raises(ValueError, match="cannot merge"):
        sketch.merge(QuantileSketch(alpha=0.01))
    with pytest.raises(ValueError):
        QuantileSketch.from_dict({"alpha": 0.005, "max_bins": 8, "zero": 0, "bins": {"3": 0}})
