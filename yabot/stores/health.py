"""Store health: the breaker's state plus a ping, in the `yabot.health` shape."""

from __future__ import annotations

import time
from collections.abc import Callable

from yabot.health import ComponentHealth, HealthCheck, HealthStatus
from yabot.stores.breaker import BreakerState
from yabot.stores.guard import StoreGuard


def store_check(name: str, backend: str, guard: StoreGuard,
                ping: Callable[[], object]) -> HealthCheck:
    """A passive check: it reads the breaker and pings, and changes neither.

    - breaker open → ``fail`` without touching the store ("circuit open");
    - half-open → ``warn`` (the next query is the probe) with the ping's latency;
    - closed → ``pass`` if the ping answers, else ``fail`` naming the error type.

    Passive, so polling ``/readyz`` neither opens a breaker nor uses up a half-open probe.
    """

    def check() -> ComponentHealth:
        state = guard.breaker.state
        details: dict[str, str | int | float | bool] = {
            "backend": backend, "breaker": str(state),
            "consecutive_failures": guard.breaker.consecutive_failures,
        }
        if state is BreakerState.OPEN:
            return ComponentHealth(name=name, status=HealthStatus.FAIL, output="circuit open",
                                   details=details)
        started = time.perf_counter()
        try:
            ping()
            failure = None
        except Exception as exc:  # a check reports, it never raises
            failure = f"ping failed: {type(exc).__name__}"
        elapsed_ms = round((time.perf_counter() - started) * 1000, 3)
        if failure is not None:
            return ComponentHealth(name=name, status=HealthStatus.FAIL, observed_ms=elapsed_ms,
                                   output=failure, details=details)
        if state is BreakerState.HALF_OPEN:
            return ComponentHealth(name=name, status=HealthStatus.WARN, observed_ms=elapsed_ms,
                                   output="circuit half-open: probing", details=details)
        return ComponentHealth(name=name, status=HealthStatus.PASS, observed_ms=elapsed_ms,
                               details=details)

    return check


def stopped_check(name: str) -> HealthCheck:
    def check() -> ComponentHealth:
        return ComponentHealth(name=name, status=HealthStatus.FAIL, output="not running")

    return check
