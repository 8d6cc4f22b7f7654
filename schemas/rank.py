"""Which sample a percentile names: the nearest rank, shared by the stream's sketch and the
generator's ground truth so that both name the same one."""

from __future__ import annotations

import math
from typing import Final

# q * n comes out a hair above a whole number for some q and n (0.95 * 20 is exactly 19, but
# 0.07 * 100 is 7.000000000000001): without the slack, ceil named the sample after it.
_SLACK: Final = 1e-9


def nearest_rank(q: float, n: int) -> int:
    """The 0-based index, in ``n`` sorted samples, of the ``q`` quantile: the smallest sample
    with at least ``q`` of them at or below it (``ceil(q * n)``-th, 1-based).

    Not the lower rank ``int(q * (n - 1))`` used before: of a window's two durations, 0 and
    1234.5 ms, that made p95 and p99 0; operators charting slow jobs (and OpenSearch's own
    ``percentiles``) read p95 as nearly the slowest.
    """
    return min(max(math.ceil(q * n - _SLACK) - 1, 0), n - 1)
