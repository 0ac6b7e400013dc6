"""Retry, circuit breaker, guard and transient classification — pure, with injected clocks."""

from __future__ import annotations

import sqlite3
import threading

import pytest
from pymongo.errors import (
    AutoReconnect,
    DuplicateKeyError,
    NetworkTimeout,
    OperationFailure,
    ServerSelectionTimeoutError,
)
from sqlalchemy import exc as sa_exc

from tests.support.clock import ManualClock
from yabot.errors import StoreUnavailable
from yabot.stores.breaker import BreakerState, CircuitBreaker
from yabot.stores.guard import StoreGuard
from yabot.stores.retry import RetryPolicy, retry_call
from yabot.stores.transient import is_transient_mongo, is_transient_sql


class Flaky:
    """Fails with ``error`` ``failures`` times, then returns ``"ok"``."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "ok"


class Transient(Exception):
    pass


def state_of(breaker: CircuitBreaker) -> BreakerState:
    """``breaker.state``, read afresh (mypy would keep an asserted property narrowed across
    the calls that change it)."""
    return breaker.state


def is_test_transient(error: BaseException) -> bool:
    return isinstance(error, Transient)


def test_backoff_ceiling_doubles_up_to_the_maximum() -> None:
    policy = RetryPolicy(attempts=10, base_delay=0.1, max_delay=0.5)
    assert [policy.ceiling(n) for n in range(1, 6)] == [0.1, 0.2, 0.4, 0.5, 0.5]


def test_jitter_stays_between_zero_and_the_ceiling() -> None:
    policy = RetryPolicy(base_delay=0.1, max_delay=1.0)
    assert policy.delay(2, rng=lambda: 0.0) == 0.0
    assert policy.delay(2, rng=lambda: 0.5) == pytest.approx(0.1)
    assert policy.delay(2, rng=lambda: 0.999) < policy.ceiling(2)


def test_transient_error_is_retried_until_success() -> None:
    waits: list[float] = []
    flaky = Flaky(2, Transient())
    result = retry_call(flaky, is_transient=is_test_transient, policy=RetryPolicy(attempts=3),
                        sleep=waits.append, rng=lambda: 1.0)
    assert result == "ok"
    assert flaky.calls == 3
    assert waits == [0.05, 0.1]


def test_last_transient_error_propagates_after_all_attempts() -> None:
    flaky = Flaky(5, Transient())
    with pytest.raises(Transient):
        retry_call(flaky, is_transient=is_test_transient, policy=RetryPolicy(attempts=3),
                   sleep=lambda _: None)
    assert flaky.calls == 3


def test_non_transient_error_is_not_retried() -> None:
    flaky = Flaky(1, ValueError("bad query"))
    with pytest.raises(ValueError, match="bad query"):
        retry_call(flaky, is_transient=is_test_transient, policy=RetryPolicy(attempts=5),
                   sleep=lambda _: None)
    assert flaky.calls == 1


def test_each_retry_is_reported_before_its_wait() -> None:
    seen: list[tuple[str, int, str]] = []
    flaky = Flaky(2, Transient("down"))
    retry_call(flaky, is_transient=is_test_transient, policy=RetryPolicy(attempts=3),
               sleep=lambda wait: seen.append(("wait", 0, "")), rng=lambda: 1.0,
               on_retry=lambda attempt, error: seen.append(("retry", attempt, str(error))))
    assert seen == [("retry", 1, "down"), ("wait", 0, ""), ("retry", 2, "down"), ("wait", 0, "")]


def test_a_stop_event_cuts_the_waits_short() -> None:
    """``sleep=stopping.wait``: once the event is set no wait lasts (the attempts still run)."""
    stopping = threading.Event()
    stopping.set()
    flaky = Flaky(5, Transient())
    with pytest.raises(Transient):
        retry_call(flaky, is_transient=is_test_transient,
                   policy=RetryPolicy(attempts=4, base_delay=3600.0, max_delay=3600.0),
                   sleep=stopping.wait, rng=lambda: 1.0)
    assert flaky.calls == 4


def test_breaker_opens_after_consecutive_failures_only() -> None:
    breaker = CircuitBreaker("t", failure_threshold=3, clock=ManualClock(1000.0))
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()  # resets the count: failures must be consecutive
    breaker.record_failure()
    breaker.record_failure()
    assert state_of(breaker) is BreakerState.CLOSED
    breaker.record_failure()
    assert state_of(breaker) is BreakerState.OPEN
    with pytest.raises(StoreUnavailable, match="circuit open"):
        breaker.before_call()


def test_open_breaker_lets_one_probe_through_after_the_cool_down() -> None:
    clock = ManualClock(1000.0)
    breaker = CircuitBreaker("t", failure_threshold=1, cool_down=10, clock=clock)
    breaker.record_failure()
    clock.now += 9.9
    assert state_of(breaker) is BreakerState.OPEN
    clock.now += 0.1
    assert state_of(breaker) is BreakerState.HALF_OPEN
    breaker.before_call()  # the probe
    with pytest.raises(StoreUnavailable, match="probing"):
        breaker.before_call()  # a second caller while the probe runs


def test_successful_probe_closes_the_breaker() -> None:
    clock = ManualClock(1000.0)
    breaker = CircuitBreaker("t", failure_threshold=1, cool_down=1, clock=clock)
    breaker.record_failure()
    clock.now += 1
    breaker.before_call()
    breaker.record_success()
    assert state_of(breaker) is BreakerState.CLOSED
    breaker.before_call()
    breaker.before_call()


def test_failed_probe_reopens_for_a_new_cool_down() -> None:
    clock = ManualClock(1000.0)
    breaker = CircuitBreaker("t", failure_threshold=3, cool_down=5, clock=clock)
    for _ in range(3):
        breaker.record_failure()
    clock.now += 5
    breaker.before_call()
    breaker.record_failure()  # one failure in half-open is enough
    assert state_of(breaker) is BreakerState.OPEN
    clock.now += 4
    assert state_of(breaker) is BreakerState.OPEN
    clock.now += 1
    assert state_of(breaker) is BreakerState.HALF_OPEN


def make_guard(clock: ManualClock, threshold: int = 2) -> StoreGuard:
    return StoreGuard(
        "test", is_transient=is_test_transient, policy=RetryPolicy(attempts=2),
        breaker=CircuitBreaker("test", failure_threshold=threshold, cool_down=30, clock=clock),
        sleep=lambda _: None,
    )


def test_guard_turns_exhausted_transient_errors_into_store_unavailable() -> None:
    guard = make_guard(ManualClock(1000.0))
    with pytest.raises(StoreUnavailable) as caught:
        guard.run(Flaky(10, Transient()))
    assert isinstance(caught.value.__cause__, Transient)
    assert guard.breaker.consecutive_failures == 1


def test_guard_opens_the_breaker_and_stops_calling_the_store() -> None:
    guard = make_guard(ManualClock(1000.0), threshold=2)
    for _ in range(2):
        with pytest.raises(StoreUnavailable):
            guard.run(Flaky(10, Transient()))
    untouched = Flaky(0, Transient())
    with pytest.raises(StoreUnavailable, match="circuit open"):
        guard.run(untouched)
    assert untouched.calls == 0


def test_guard_passes_non_transient_errors_through_without_counting_them() -> None:
    guard = make_guard(ManualClock(1000.0), threshold=1)
    with pytest.raises(ValueError, match="constraint"):
        guard.run(Flaky(1, ValueError("constraint")))
    assert state_of(guard.breaker) is BreakerState.CLOSED
    assert guard.run(Flaky(0, Transient())) == "ok"


def test_guard_closes_again_after_a_successful_probe() -> None:
    clock = ManualClock(1000.0)
    guard = make_guard(clock, threshold=1)
    with pytest.raises(StoreUnavailable):
        guard.run(Flaky(10, Transient()))
    clock.now += 30
    assert state_of(guard.breaker) is BreakerState.HALF_OPEN
    assert guard.run(Flaky(0, Transient())) == "ok"
    assert state_of(guard.breaker) is BreakerState.CLOSED


def _sqlite_error(message: str) -> sa_exc.OperationalError:
    return sa_exc.OperationalError("UPDATE x", {}, sqlite3.OperationalError(message))


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (_sqlite_error("database is locked"), True),
        (_sqlite_error("no such table: users"), False),
        (sa_exc.OperationalError("SELECT 1", {}, Exception("gone"), connection_invalidated=True),
         True),
        (sa_exc.TimeoutError("QueuePool limit reached"), True),
        (sa_exc.IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE failed")), False),
        (ValueError("not a store error"), False),
    ],
)
def test_sql_transient_classification(error: BaseException, transient: bool) -> None:
    assert is_transient_sql(error) is transient


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (AutoReconnect("primary stepped down"), True),
        (ServerSelectionTimeoutError("no servers"), True),
        (NetworkTimeout("timed out"), True),
        (DuplicateKeyError("E11000"), False),
        (OperationFailure("Document failed validation", code=121), False),
    ],
)
def test_mongo_transient_classification(error: BaseException, transient: bool) -> None:
    assert is_transient_mongo(error) is transient
