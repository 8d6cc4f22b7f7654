"""Retry delays: exponential backoff with full jitter (AWS Architecture Blog, 2015)."""

from __future__ import annotations

from collections.abc import Callable


def backoff_s(attempt: int, base_s: float, cap_s: float, rand: Callable[[], float]) -> float:
    """A delay drawn uniformly from [0, min(cap, base * 2**attempt)); ``rand()`` is in [0, 1).

    Full jitter spreads the retries of many workers that failed together, so a node coming
    back is not hit by all of them at once.
    """
    ceiling = min(cap_s, base_s * float(2 ** min(attempt, 62)))
    return ceiling * rand()
