"""A circuit breaker as a plain state machine over an injected clock (no I/O, no sleeping).

closed --N consecutive failures--> open --open duration elapsed--> half-open (one probe)
half-open --probe succeeds--> closed;  half-open --probe fails--> open (for a full duration)
half-open --probe abandoned (cancelled)--> half-open, the next request probes

The sink asks ``allow()`` before each request and reports the outcome; while the circuit
is open it waits ``wait_s()`` instead of hammering a node that is down, and ``health()``
of the sink reports the circuit so the worker's /ready turns 503.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum


class State(IntEnum):
    """Values are what the breaker-state gauge exports."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitBreaker:
    def __init__(self, failure_threshold: int, open_s: float, clock: Callable[[], float]) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.failure_threshold = failure_threshold
        self.open_s = open_s
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None
        self.last_error = ""
        self._probing = False

    @property
    def state(self) -> State:
        if self.opened_at is None:
            return State.CLOSED
        if self._probing or self.clock() >= self.opened_at + self.open_s:
            return State.HALF_OPEN
        return State.OPEN

    def allow(self) -> bool:
        """May a request go out now? In half-open only one probe at a time may."""
        state = self.state
        if state is State.CLOSED:
            return True
        if state is State.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def wait_s(self) -> float:
        """Seconds until ``allow()`` can say yes (0 when closed; open duration while probing)."""
        if self.opened_at is None:
            return 0.0
        if self._probing:
            return self.open_s
        return max(0.0, self.opened_at + self.open_s - self.clock())

    def record_success(self) -> None:
        self.failures = 0
        self.opened_at = None
        self._probing = False

    def abandon(self) -> None:
        """The probe ``allow()`` let out ends with no answer either way (cancelled, or an
        error that says nothing of the node): it is given back, the state is kept. Without
        it a cancelled probe would hold the circuit half-open, refusing all, forever. Call it
        only for the probe: requests let out while closed hold no probe to give back."""
        self._probing = False

    def record_failure(self, error: str) -> None:
        self.failures += 1
        self.last_error = error
        if self._probing or (self.opened_at is None and self.failures >= self.failure_threshold):
            self.opened_at = self.clock()
        self._probing = False
