"""The rate limit's counters: in this process (`WindowCounts`), in real Redis (`RedisCounts`,
one script call) and the breaker in front of Redis (`FailOpenCounts`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import falcon
import falcon.testing
import pytest
import redis

from tests.support.clock import ManualClock
from tests.support.redis_server import no_retry
from tests.support.settings import SettingsFactory
from tests.support.waiting import ASK, eventually
from yabot.api.ratelimit import (
    MAX_SUBJECTS,
    Counts,
    FailOpenCounts,
    RateLimit,
    RedisCounts,
    Window,
    WindowCounts,
)
from yabot.errors import RateLimited


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def counts(request: pytest.FixtureRequest) -> Iterator[Counts]:
    if request.param == "memory":
        yield WindowCounts()
        return
    url, prefix = request.getfixturevalue("local_redis")
    client = redis.Redis.from_url(url, socket_timeout=ASK, retry=no_retry())
    try:
        yield Prefixed(RedisCounts(client), prefix)
    finally:
        client.close()


class Prefixed:
    """Keys under the test's Redis prefix (deleted after the test)."""

    def __init__(self, counts: Counts, prefix: str) -> None:
        self.counts, self.prefix = counts, prefix

    def take(self, windows: Sequence[Window]) -> float | None:
        return self.counts.take(
            [Window(self.prefix + w.key, w.amount, w.seconds) for w in windows])


def test_a_window_admits_its_amount_then_says_how_long_until_it_resets(counts: Counts) -> None:
    minute = [Window("svc", 3, 60)]
    assert [counts.take(minute) for _ in range(3)] == [None, None, None]
    left = counts.take(minute)
    assert left is not None
    assert 59 < left <= 60


def test_a_request_one_window_refuses_counts_in_none(counts: Counts) -> None:
    hour, minute = Window("svc-hour", 3, 3600), Window("svc-minute", 1, 60)
    assert counts.take([hour, minute]) is None
    refused = counts.take([hour, minute])
    assert refused is not None
    assert refused <= 60
    # The hour counted the admitted request only: two more fit, not one.
    assert [counts.take([hour]) for _ in range(2)] == [None, None]
    assert counts.take([hour]) is not None


def test_subjects_are_counted_apart(counts: Counts) -> None:
    assert counts.take([Window("a", 1, 1)]) is None
    assert counts.take([Window("b", 1, 1)]) is None
    assert counts.take([Window("a", 1, 1)]) is not None


def test_a_full_window_admits_again_once_it_expires(counts: Counts) -> None:
    second = [Window("svc", 1, 1)]
    assert counts.take(second) is None
    assert counts.take(second) is not None
    eventually(lambda: counts.take(second) is None, "the window expired and admitted again")


def test_in_memory_a_window_lasts_its_period_from_its_first_request() -> None:
    clock = ManualClock(1_000.0)
    counts = WindowCounts(clock)
    minute = [Window("svc", 2, 60)]
    assert counts.take(minute) is None
    clock.now = 1_030.0
    assert counts.take(minute) is None
    assert counts.take(minute) == 30.0
    clock.now = 1_060.0
    assert counts.take(minute) is None  # a new window from here
    clock.now = 1_119.0
    assert counts.take(minute) is None
    assert counts.take(minute) == 1.0


class Hung:
    """A shared counter that fails while ``down`` (as a timed-out Redis call does)."""

    def __init__(self, clock: ManualClock) -> None:
        self.counts = WindowCounts(clock)
        self.down = True
        self.calls = 0

    def take(self, windows: Sequence[Window]) -> float | None:
        self.calls += 1
        if self.down:
            raise redis.TimeoutError("redis did not answer")
        return self.counts.take(windows)


def test_a_failing_shared_counter_is_left_alone_until_the_breaker_retries() -> None:
    clock = ManualClock(1_000.0)
    shared = Hung(clock)
    counts = FailOpenCounts(shared, WindowCounts(clock), retry_after=5.0, clock=clock)
    minute = [Window("svc", 3, 60)]

    taken = [counts.take(minute) for _ in range(4)]

    assert taken == [None, None, None, 60.0]  # counted in the process meanwhile
    assert shared.calls == 1  # one deadline paid, then the breaker kept requests off it
    assert counts.breaker_open
    clock.now += 5.0
    shared.down = False
    assert counts.take([Window("other", 3, 60)]) is None  # the probe: Redis answers again
    assert not counts.breaker_open
    assert shared.calls == 2


def test_expired_counts_are_dropped_once_the_table_doubles() -> None:
    clock = ManualClock(1_000.0)
    counts = WindowCounts(clock)
    for n in range(1_000):
        counts.take([Window(f"old-{n}", 5, 1)])
    clock.now += 2
    for n in range(100):
        counts.take([Window(f"new-{n}", 5, 60)])
    assert len(counts._counts) == 100  # the 1,000 expired ones went at the 1,024th key
    assert [counts.take([Window("new-1", 2, 60)]) for _ in range(2)] == [None, 60.0]


def test_windows_are_made_once_per_subject_and_their_table_stays_bounded(
    make_settings: SettingsFactory,
) -> None:
    """`RateLimit` keeps each subject's windows made; past `MAX_SUBJECTS` subjects it starts
    over, and the counts (kept apart) still hold every subject to its limit."""
    clock = ManualClock(1_000.0)
    limit = RateLimit(make_settings(RATE_LIMIT_PER_SUBJECT="1/minute"), WindowCounts(clock))

    def request(subject: str) -> falcon.Request:
        req = falcon.testing.create_req()
        req.context.subject = subject
        return req

    resource = object()
    limit.process_resource(request("first"), falcon.Response(), resource, {})
    for n in range(MAX_SUBJECTS + 10):
        limit.process_resource(request(f"svc-{n}"), falcon.Response(), resource, {})
        assert len(limit._windows) <= MAX_SUBJECTS
    with pytest.raises(RateLimited):  # its windows were made again; its count was kept
        limit.process_resource(request("first"), falcon.Response(), resource, {})
    with pytest.raises(RateLimited):
        limit.process_resource(request(f"svc-{MAX_SUBJECTS + 9}"), falcon.Response(),
                               resource, {})
