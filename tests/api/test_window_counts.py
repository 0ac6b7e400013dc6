"""WindowCounts: the in-process storage behind the rate limit when there is no Redis."""

from __future__ import annotations

from limits import parse
from limits.strategies import FixedWindowRateLimiter

from tests.support.clock import ManualClock
from yabot.api.ratelimit import WindowCounts


def test_a_window_admits_its_amount_then_refuses_until_it_expires() -> None:
    clock = ManualClock(1_000.0)
    limiter = FixedWindowRateLimiter(WindowCounts(clock))
    item = parse("3/minute")
    assert [limiter.hit(item, "sub", "svc") for _ in range(4)] == [True, True, True, False]
    assert limiter.get_window_stats(item, "sub", "svc").reset_time == 1_060.0
    assert limiter.get_window_stats(item, "sub", "svc").remaining == 0
    clock.now = 1_060.0
    assert limiter.get_window_stats(item, "sub", "svc").remaining == 3
    assert limiter.hit(item, "sub", "svc")
    assert limiter.get_window_stats(item, "sub", "svc").reset_time == 1_120.0


def test_subjects_are_counted_apart() -> None:
    limiter = FixedWindowRateLimiter(WindowCounts(ManualClock(1_000.0)))
    item = parse("1/second")
    assert limiter.hit(item, "sub", "a")
    assert limiter.hit(item, "sub", "b")
    assert not limiter.hit(item, "sub", "a")


def test_expired_counts_are_dropped_once_the_table_doubles() -> None:
    clock = ManualClock(1_000.0)
    counts = WindowCounts(clock)
    for n in range(1_000):
        counts.incr(f"old-{n}", 1)
    clock.now += 2
    for n in range(100):
        counts.incr(f"new-{n}", 60)
    assert len(counts._counts) == 100  # the 1,000 expired ones went at the 1,024th key
    assert counts.get("old-1") == 0
    assert counts.get("new-1") == 1
    assert counts.reset() == 100
    assert counts.get("new-1") == 0
