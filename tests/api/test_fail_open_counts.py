"""FailOpenCounts: the rate limit's breaker in front of Redis."""

from __future__ import annotations

from limits import parse
from limits.errors import StorageError
from limits.strategies import FixedWindowRateLimiter

from tests.support.clock import ManualClock
from yabot.api.ratelimit import FailOpenCounts, WindowCounts


class Hung(WindowCounts):
    """A shared counter that fails while ``down`` (as a timed-out Redis call does)."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__(clock)
        self.down = True
        self.calls = 0

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        self.calls += 1
        if self.down:
            raise StorageError(TimeoutError("redis did not answer"))
        return super().incr(key, expiry, amount)


def test_a_failing_shared_counter_is_left_alone_until_the_breaker_retries() -> None:
    clock = ManualClock(1_000.0)
    shared = Hung(clock)
    counts = FailOpenCounts(shared, WindowCounts(clock), retry_after=5.0, clock=clock)
    limiter = FixedWindowRateLimiter(counts)
    item = parse("3/minute")

    hits = [limiter.hit(item, "sub", "svc") for _ in range(4)]

    assert hits == [True, True, True, False]  # counted in the process meanwhile
    assert shared.calls == 1  # one deadline paid, then the breaker kept requests off it
    assert counts.breaker_open
    clock.now += 5.0
    shared.down = False
    assert limiter.hit(item, "sub", "other")  # the probe: Redis answers again
    assert not counts.breaker_open
    assert shared.calls == 2
