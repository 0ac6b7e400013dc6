"""`StoreGuard`: every repository call goes through one — breaker, then retries, then
classification of what failed."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from yabot.errors import StoreUnavailable
from yabot.stores.breaker import CircuitBreaker
from yabot.stores.retry import RetryPolicy, retry_call

T = TypeVar("T")


class StoreGuard:
    """Runs store operations in the caller's thread with the store's breaker and retry policy.

    - breaker open → `StoreUnavailable` at once, the store is not touched;
    - a transient error is retried with backoff; if the last attempt fails too, the breaker
      counts one failure and the caller gets `StoreUnavailable` (the API's 503);
    - any other error means the store answered: the breaker counts a success and the error
      goes back unchanged (repositories translate constraint violations themselves).

    An operation may run more than once, so it must be idempotent or a single transaction.
    """

    def __init__(
        self,
        name: str,
        *,
        is_transient: Callable[[BaseException], bool],
        policy: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.name = name
        self.is_transient = is_transient
        self.policy = policy or RetryPolicy()
        self.breaker = breaker or CircuitBreaker(name)
        self._sleep = sleep
        self._rng = rng

    def run(
        self, operation: Callable[[], T], what: str = "store operation", *, retry: bool = True
    ) -> T:
        """Run ``operation`` as described on the class; ``retry=False`` makes one attempt
        (health probes: they must be quick, and they are repeated anyway)."""
        self.breaker.before_call()
        policy = self.policy if retry else RetryPolicy(attempts=1)
        try:
            result = retry_call(
                operation, is_transient=self.is_transient, policy=policy,
                sleep=self._sleep, rng=self._rng, what=f"{self.name}: {what}",
            )
        except Exception as exc:
            if self.is_transient(exc):
                self.breaker.record_failure()
                raise StoreUnavailable(
                    f"the {self.name} store did not answer ({type(exc).__name__})"
                ) from exc
            self.breaker.record_success()
            raise
        self.breaker.record_success()
        return result
