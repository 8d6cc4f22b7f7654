"""Per-bot job outcome counts over long spans in bounded memory, for burn-rate rules.

Burn-rate rules look back as far as days. Keeping every 1-minute window for 3 days would be
4,320 entries per bot, so ``JobCounts`` keeps (successes, failures) at three resolutions and
answers each span from the coarsest one that is still fine enough:

- spans up to 1 h: 1-minute buckets (exact);
- spans up to 12 h: 5-minute buckets;
- longer spans: 1-hour buckets.

A coarse span is the buckets whose start lies inside ``[end - span, end)``: it may miss up to
one bucket less a minute at its old end, which for a 6 h or 3 d burn rate is immaterial.
Each resolution keeps only as far back as the longest span asking for it (bounded: at most
60 + 144 + 720 buckets), and only minutes that had finished jobs are stored at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

MINUTE_MS: Final = 60_000
RESOLUTIONS: Final = ((3_600_000, 60_000), (43_200_000, 300_000), (None, 3_600_000))


def resolution(span_ms: int) -> int:
    """The bucket size a span of ``span_ms`` is answered from."""
    for longest, size in RESOLUTIONS:
        if longest is None or span_ms <= longest:
            return size
    raise AssertionError("unreachable")


def horizons(spans: Iterable[int]) -> dict[int, int]:
    """Bucket size -> how far back it must reach, for the spans some rule asks for."""
    out: dict[int, int] = {}
    for span in spans:
        size = resolution(span)
        out[size] = max(out.get(size, 0), span)
    return out


class JobCounts:
    """(successes, failures) by bucket start, per resolution; buckets arrive oldest first."""

    __slots__ = ("buckets", "horizons")

    def __init__(self, bucket_horizons: Mapping[int, int]) -> None:
        self.horizons = dict(bucket_horizons)
        self.buckets: dict[int, dict[int, list[int]]] = {size: {} for size in self.horizons}

    def add(self, minute_start_ms: int, successes: int, failures: int) -> None:
        if not successes and not failures:
            return
        for size, buckets in self.buckets.items():
            start = minute_start_ms - minute_start_ms % size
            bucket = buckets.get(start)
            if bucket is None:
                buckets[start] = [successes, failures]
                # New buckets come last (dicts keep insertion order): drop from the front.
                cutoff = start - self.horizons[size]
                oldest = next(iter(buckets))
                while oldest < cutoff:
                    del buckets[oldest]
                    oldest = next(iter(buckets))
            else:
                bucket[0] += successes
                bucket[1] += failures

    def sums(self, end_ms: int, span_ms: int) -> tuple[int, int]:
        """(successes, failures) of buckets starting in ``[end_ms - span_ms, end_ms)``."""
        size = resolution(span_ms)
        low = end_ms - span_ms
        successes = failures = 0
        for start, (s, f) in reversed(self.buckets[size].items()):
            if start < low:
                break
            if start < end_ms:
                successes += s
                failures += f
        return successes, failures

    def to_dict(self) -> dict[str, Any]:
        return {
            str(size): [[start, s, f] for start, (s, f) in buckets.items()]
            for size, buckets in self.buckets.items()
            if buckets
        }

    @classmethod
    def from_dict(cls, bucket_horizons: Mapping[int, int], data: Mapping[str, Any]) -> JobCounts:
        """Restore; resolutions no rule asks for any more are dropped."""
        counts = cls(bucket_horizons)
        for size_text, items in data.items():
            buckets = counts.buckets.get(int(size_text))
            if buckets is not None:
                for start, s, f in items:
                    buckets[int(start)] = [int(s), int(f)]
        return counts
