"""Retry with exponential backoff and full jitter, on transient errors only.

Pure: the caller injects ``sleep`` and the random source, so tests run without waiting.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog

T = TypeVar("T")

log = structlog.get_logger("yabot.stores.retry")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait: attempt ``n`` (from 1) waits a random time in
    ``[0, min(max_delay, base_delay * 2**(n-1))]`` before the next ("full jitter", which
    spreads retrying clients apart instead of having them hit a recovering server together)."""

    attempts: int = 3  # total calls, including the first
    base_delay: float = 0.05
    max_delay: float = 2.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("delays must not be negative")

    def ceiling(self, attempt: int) -> float:
        """The longest wait after failed attempt number ``attempt`` (1-based)."""
        return float(min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1)))

    def delay(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """A wait in ``[0, ceiling(attempt)]``; ``rng`` returns a float in [0, 1)."""
        return self.ceiling(attempt) * rng()


def retry_call(
    operation: Callable[[], T],
    *,
    is_transient: Callable[[BaseException], bool],
    policy: RetryPolicy,
    sleep: Callable[[float], object] = time.sleep,
    rng: Callable[[], float] = random.random,
    what: str = "store operation",
    on_retry: Callable[[int, Exception], None] | None = None,
) -> T:
    """Call ``operation``; on a transient error wait and call again, up to ``policy.attempts``
    calls in all. A non-transient error, or the last transient one, propagates unchanged.

    ``sleep`` may be an event's ``wait`` (a stop cuts the wait short); ``on_retry(attempt,
    error)`` runs before each wait (e.g. to count retries)."""
    attempt = 1
    while True:
        try:
            return operation()
        except Exception as exc:
            if attempt >= policy.attempts or not is_transient(exc):
                raise
            wait = policy.delay(attempt, rng)
            log.warning("transient error, retrying", what=what, attempt=attempt,
                        wait_s=round(wait, 4), error=type(exc).__name__)
            if on_retry is not None:
                on_retry(attempt, exc)
            sleep(wait)
            attempt += 1
