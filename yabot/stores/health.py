"""Store health: breaker state plus a ping, in the `yabot.health` shape."""

from __future__ import annotations

import time
from collections.abc import Callable

from yabot.errors import StoreUnavailable
from yabot.health import ComponentHealth, HealthCheck, HealthStatus
from yabot.stores.breaker import BreakerState
from yabot.stores.guard import StoreGuard

_STATUS = {
    BreakerState.CLOSED: HealthStatus.PASS,
    BreakerState.HALF_OPEN: HealthStatus.WARN,
    BreakerState.OPEN: HealthStatus.FAIL,
}


def store_check(name: str, backend: str, guard: StoreGuard,
                ping: Callable[[], object]) -> HealthCheck:
    """A check that pings through ``guard`` with one attempt (so a half-open breaker's probe
    may be the health check itself) and reports latency and the breaker's state.

    An open breaker fails without touching the store; a failed ping fails and counts against
    the breaker like any query.
    """

    def check() -> ComponentHealth:
        details: dict[str, str | int | float | bool] = {"backend": backend}
        started = time.perf_counter()
        output = None
        try:
            guard.run(ping, "ping", retry=False)
            ping_ok = True
        except StoreUnavailable as exc:
            ping_ok, output = False, str(exc)
        except Exception as exc:  # the store answered, but not as a ping should
            ping_ok, output = False, f"ping failed: {type(exc).__name__}"
        elapsed_ms = (time.perf_counter() - started) * 1000
        state = guard.breaker.state
        details["breaker"] = str(state)
        details["consecutive_failures"] = guard.breaker.consecutive_failures
        status = _STATUS[state] if ping_ok else HealthStatus.FAIL
        if ping_ok and state is not BreakerState.CLOSED:
            output = f"circuit {state}"
        return ComponentHealth(name=name, status=status, observed_ms=round(elapsed_ms, 3),
                               output=output, details=details)

    return check


def stopped_check(name: str) -> HealthCheck:
    def check() -> ComponentHealth:
        return ComponentHealth(name=name, status=HealthStatus.FAIL, output="not running")

    return check
