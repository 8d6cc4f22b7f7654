"""Consumer lag counts what is not yet committed (durable), not what was only read."""

from __future__ import annotations

from streams.app import uncommitted


def test_lag_runs_from_the_committed_offset_to_the_end() -> None:
    # Committed offset 40 is the next record to read: 40..99 are waiting.
    assert uncommitted(100, 40) == 60


def test_a_partition_with_nothing_committed_lags_by_everything_it_holds() -> None:
    assert uncommitted(100, None) == 100
    assert uncommitted(100, 0) == 100


def test_caught_up_is_zero_never_negative() -> None:
    assert uncommitted(100, 100) == 0
    # The end offset is refreshed by fetches; a commit may be seen before it.
    assert uncommitted(100, 105) == 0
