"""A mergeable quantile sketch (DDSketch) for the duration percentiles of window records.

Why DDSketch: its error is *relative* (what matters for durations spanning milliseconds to
hours), two sketches merge by adding bucket counts (so 5-minute and 1-hour views are merges of
1-minute windows), and its state is a small map of integers that survives a JSON changelog.

A value ``x > 0`` goes to bucket ``i = ceil(log_gamma(x))`` with ``gamma = (1 + a) / (1 - a)``,
so bucket ``i`` holds ``(gamma**(i-1), gamma**i]``; the bucket answers with
``2 * gamma**i / (gamma + 1)``, within relative error ``a`` of every value it holds. Bucket
assignment is monotonic in ``x``, so the value of rank ``r`` lies in the bucket where the
cumulative count first exceeds ``r``: ``quantile`` is within ``a`` of the exact answer.

Guarantee (with the default ``alpha = 0.005``, half the 1% the window record promises, the rest
is margin for floating point): for every ``q``, ``|quantile(q) - exact| <= 0.01 * exact`` where
``exact = sorted(values)[nearest_rank(q, n)]`` (``schemas.rank``), provided that

- values below ``MIN_INDEXABLE`` (1e-9, a picosecond when the unit is milliseconds) are
  counted as 0 (their absolute error is below 1e-9), and
- no more than ``max_bins`` (default 2048) buckets are occupied: with the default alpha the
  values must span a ratio below ``gamma**2048``, about 8e8 (1 ms to 9 days). Beyond that the
  lowest buckets collapse into one, which keeps memory bounded and the *upper* quantiles
  (p50, p95, p99) exact to 1%; only quantiles falling into collapsed buckets are overestimated.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from typing import Any, Final

from schemas.rank import nearest_rank

DEFAULT_ALPHA: Final = 0.005
DEFAULT_MAX_BINS: Final = 2048
MIN_INDEXABLE: Final = 1e-9
_MAX_VALUE: Final = sys.float_info.max
_NO_FLOOR: Final = -(2**62)


class QuantileSketch:
    """Counts of values in logarithmic buckets; see the module docstring for the guarantee."""

    __slots__ = (
        "_count",
        "_factor",
        "_floor",
        "_gamma",
        "_inv_log_gamma",
        "_log_gamma",
        "alpha",
        "bins",
        "max_bins",
        "zero",
    )

    def __init__(self, alpha: float = DEFAULT_ALPHA, max_bins: int = DEFAULT_MAX_BINS) -> None:
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
        if max_bins < 1:
            raise ValueError(f"max_bins must be at least 1, got {max_bins!r}")
        self.alpha = alpha
        self.max_bins = max_bins
        self._gamma = (1.0 + alpha) / (1.0 - alpha)
        self._log_gamma = math.log(self._gamma)
        self._inv_log_gamma = 1.0 / self._log_gamma
        self._factor = 2.0 / (1.0 + self._gamma)
        self.bins: dict[int, int] = {}
        self.zero = 0
        self._count = 0
        # Once buckets have collapsed, every value below the floor bucket is counted in it.
        self._floor = _NO_FLOOR

    @property
    def count(self) -> int:
        return self._count

    def add(self, value: float) -> None:
        """Count one value ``>= 0``; NaN, infinities and negatives raise ValueError."""
        if value >= MIN_INDEXABLE:
            if value > _MAX_VALUE:
                raise ValueError(f"sketch values must be finite, got {value!r}")
            key = math.ceil(math.log(value) * self._inv_log_gamma)
            if key < self._floor:  # noqa: PLR1730 (hot path: a call to max() costs more)
                key = self._floor
            bins = self.bins
            n = bins.get(key)
            if n is not None:
                bins[key] = n + 1
            else:
                bins[key] = 1
                if len(bins) > self.max_bins:
                    self._collapse()
        elif value >= 0.0:
            self.zero += 1
        else:
            raise ValueError(f"sketch values must be >= 0, got {value!r}")
        self._count += 1

    def merge(self, other: QuantileSketch) -> None:
        """Add ``other``'s counts to this sketch; both must use the same alpha."""
        if other._gamma != self._gamma:
            raise ValueError(f"cannot merge sketches of alpha {self.alpha} and {other.alpha}")
        floor = max(self._floor, other._floor)
        bins = self.bins
        if floor > self._floor:
            self._floor = floor
            for key in [k for k in bins if k < floor]:
                bins[floor] = bins.get(floor, 0) + bins.pop(key)
        for key, n in other.bins.items():
            target = max(key, floor)
            bins[target] = bins.get(target, 0) + n
        self.zero += other.zero
        self._count += other._count
        if len(bins) > self.max_bins:
            self._collapse()

    def quantile(self, q: float) -> float:
        """The value of rank ``nearest_rank(q, count)`` within relative error alpha; 0.0 if
        empty."""
        return self.quantiles(q)[0]

    def quantiles(self, *qs: float) -> list[float]:
        """Several quantiles for the price of one sort of the buckets."""
        for q in qs:
            if not 0.0 <= q <= 1.0:
                raise ValueError(f"quantile must be in [0, 1], got {q!r}")
        n = self._count
        if n == 0:
            return [0.0 for _ in qs]
        keys = sorted(self.bins)
        answers = []
        for q in qs:
            rank = nearest_rank(q, n)
            if rank < self.zero:
                answers.append(0.0)
                continue
            seen = self.zero
            for key in keys:
                seen += self.bins[key]
                if seen > rank:
                    answers.append(self._value(key))
                    break
        return answers

    def _value(self, key: int) -> float:
        try:
            return math.exp(key * self._log_gamma) * self._factor
        except OverflowError:
            return _MAX_VALUE

    def _collapse(self) -> None:
        """Fold the lowest buckets into one so at most ``max_bins`` remain."""
        bins = self.bins
        keys = sorted(bins)
        excess = len(keys) - self.max_bins
        floor = keys[excess]
        for key in keys[:excess]:
            bins[floor] += bins.pop(key)
        self._floor = floor

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state: bucket indices as string keys, counts as integers."""
        data: dict[str, Any] = {
            "alpha": self.alpha,
            "max_bins": self.max_bins,
            "zero": self.zero,
            "bins": {str(k): n for k, n in self.bins.items()},
        }
        if self._floor != _NO_FLOOR:
            data["floor"] = self._floor
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QuantileSketch:
        sketch = cls(float(data["alpha"]), int(data["max_bins"]))
        zero = int(data["zero"])
        bins = {int(k): int(n) for k, n in data["bins"].items()}
        if zero < 0 or any(n <= 0 for n in bins.values()):
            raise ValueError("sketch counts must be positive")
        sketch.zero = zero
        sketch.bins = bins
        sketch._count = zero + sum(bins.values())
        if "floor" in data:
            sketch._floor = int(data["floor"])
        return sketch

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, QuantileSketch):
            return NotImplemented
        return (
            self._gamma == other._gamma
            and self.max_bins == other.max_bins
            and self.zero == other.zero
            and self.bins == other.bins
            and self._floor == other._floor
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"QuantileSketch(alpha={self.alpha}, count={self._count}, bins={len(self.bins)})"
