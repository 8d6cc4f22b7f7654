"""The circuit breaker's state machine, on a clock the test moves."""

from __future__ import annotations

import pytest

from sinks.backoff import backoff_s
from sinks.breaker import CircuitBreaker, State


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock) -> CircuitBreaker:
    return CircuitBreaker(failure_threshold=3, open_s=5.0, clock=clock)


def tripped(clock: Clock) -> CircuitBreaker:
    """A breaker opened by three failures at ``clock.now``."""
    b = breaker(clock)
    for _ in range(3):
        b.record_failure("refused")
    return b


def test_opens_after_n_consecutive_failures() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(2):
        assert b.allow()
        b.record_failure("refused")
    assert b.state is State.CLOSED
    b.record_failure("refused again")
    assert b.state is State.OPEN
    assert not b.allow()
    assert b.wait_s() == 5.0
    assert b.last_error == "refused again"


def test_a_success_resets_the_count() -> None:
    clock = Clock()
    b = breaker(clock)
    b.record_failure("x")
    b.record_failure("x")
    b.record_success()
    b.record_failure("x")
    assert b.state is State.CLOSED


def test_half_open_lets_one_probe_through_after_the_open_duration() -> None:
    clock = Clock()
    b = tripped(clock)
    clock.now += 4.9
    assert not b.allow()
    assert b.wait_s() == pytest.approx(0.1)
    clock.now += 0.1
    assert b.state is State.HALF_OPEN
    assert b.allow()
    assert not b.allow()  # one probe at a time
    assert b.state is State.HALF_OPEN


def test_probe_success_closes() -> None:
    clock = Clock()
    b = tripped(clock)
    clock.now += 5
    assert b.allow()
    b.record_success()
    assert b.state is State.CLOSED
    assert b.allow()
    assert b.wait_s() == 0.0


def test_probe_failure_opens_for_a_full_duration() -> None:
    clock = Clock()
    b = tripped(clock)
    clock.now += 6
    assert b.allow()
    b.record_failure("still down")
    assert b.state is State.OPEN
    assert b.wait_s() == 5.0
    clock.now += 5
    assert b.allow()


def test_an_abandoned_probe_is_given_back() -> None:
    clock = Clock()
    b = tripped(clock)
    clock.now += 5.0
    assert b.allow()  # the probe
    assert not b.allow()
    b.abandon()  # cancelled before an answer
    assert b.state is State.HALF_OPEN
    assert b.allow()  # the next request probes
    b.record_success()
    assert b.state is State.CLOSED
    b.abandon()  # closed: nothing to give back
    assert b.state is State.CLOSED and b.allow()


def test_threshold_must_be_positive() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(0, 1.0, Clock())


def test_backoff_is_full_jitter_under_an_exponential_cap() -> None:
    assert backoff_s(0, 0.1, 10.0, lambda: 0.5) == pytest.approx(0.05)
    assert backoff_s(3, 0.1, 10.0, lambda: 0.999) == pytest.approx(0.7992)
    assert backoff_s(20, 0.1, 10.0, lambda: 0.5) == pytest.approx(5.0)
    assert backoff_s(10_000, 0.1, 10.0, lambda: 0.0) == 0.0
