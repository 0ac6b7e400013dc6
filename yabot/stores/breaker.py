"""A circuit breaker: stop calling a failing store for a while, then probe it.

States (the usual names): ``closed`` — calls go through and consecutive failures are counted;
``open`` — after ``failure_threshold`` consecutive failures, calls are refused at once with
`StoreUnavailable` until ``cool_down`` seconds have passed; ``half_open`` — then exactly one
call (the probe) goes through: success closes the breaker, failure opens it again.

Thread-safe; the clock is injected so tests never sleep.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from enum import StrEnum

import structlog

from yabot.errors import StoreUnavailable

log = structlog.get_logger("yabot.stores.breaker")


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Counts consecutive failures of one store; see the module docstring for the states."""

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        cool_down: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.name = name
        self._threshold = failure_threshold
        self._cool_down = cool_down
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at = 0.0
        self._state = BreakerState.CLOSED
        self._probing = False

    @property
    def state(self) -> BreakerState:
        """The state now (an open breaker whose cool-down has passed reads as half-open)."""
        with self._lock:
            if self._state is BreakerState.OPEN and self._cooled_down():
                return BreakerState.HALF_OPEN
            return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def before_call(self) -> None:
        """Raise `StoreUnavailable` unless a call may go through now."""
        with self._lock:
            if self._state is BreakerState.CLOSED:
                return
            if self._state is BreakerState.OPEN:
                if not self._cooled_down():
                    remaining = self._cool_down - (self._clock() - self._opened_at)
                    raise StoreUnavailable(
                        f"the {self.name} store is unavailable (circuit open)",
                        retry_after=math.ceil(remaining),
                    )
                self._transition(BreakerState.HALF_OPEN)
            if self._probing:  # half-open: one probe at a time
                raise StoreUnavailable(f"the {self.name} store is unavailable (circuit probing)")
            self._probing = True

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._probing = False
            if self._state is not BreakerState.CLOSED:
                self._transition(BreakerState.CLOSED)

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            self._probing = False
            if self._state is BreakerState.HALF_OPEN or self._failures >= self._threshold:
                self._opened_at = self._clock()
                if self._state is not BreakerState.OPEN:
                    self._transition(BreakerState.OPEN)

    def _cooled_down(self) -> bool:
        return self._clock() - self._opened_at >= self._cool_down

    def _transition(self, state: BreakerState) -> None:
        log.warning("circuit breaker", store=self.name, state=str(state),
                    previous=str(self._state), failures=self._failures)
        self._state = state
