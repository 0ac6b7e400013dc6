"""Health of the runtime's components, in the shape of the IETF health-check draft.

Components (stores, event bus, actor tree) register a check; `/readyz` runs them all. A check
must be quick (it runs on a request thread) and must not raise: it reports ``fail`` instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class HealthStatus(StrEnum):
    PASS = "pass"  # noqa: S105 (a status, not a password)
    WARN = "warn"  # working, degraded (e.g. circuit half-open, events going to the outbox)
    FAIL = "fail"


class ComponentHealth(BaseModel):
    """One component's answer: ``status``, how long the check took, and why if not ``pass``."""

    model_config = ConfigDict(frozen=True)

    name: str
    status: HealthStatus
    observed_ms: float | None = None
    output: str | None = None  # human-readable reason; never a secret
    details: dict[str, str | int | float | bool] = Field(default_factory=dict)


HealthCheck = Callable[[], ComponentHealth]


class HealthRegistry:
    """Named checks; thread-safe. The worst component status is the overall status."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._checks: dict[str, HealthCheck] = {}

    def register(self, name: str, check: HealthCheck) -> None:
        with self._lock:
            self._checks[name] = check

    def unregister(self, name: str) -> None:
        with self._lock:
            self._checks.pop(name, None)

    def check_all(self) -> list[ComponentHealth]:
        with self._lock:
            checks = dict(self._checks)
        results = []
        for name, check in checks.items():
            started = time.perf_counter()
            try:
                result = check()
            except Exception as exc:  # a broken check is a failing component, not a 500
                result = ComponentHealth(
                    name=name, status=HealthStatus.FAIL, output=type(exc).__name__,
                    observed_ms=(time.perf_counter() - started) * 1000,
                )
            results.append(result)
        return results


def overall(results: list[ComponentHealth]) -> HealthStatus:
    if any(r.status is HealthStatus.FAIL for r in results):
        return HealthStatus.FAIL
    if any(r.status is HealthStatus.WARN for r in results):
        return HealthStatus.WARN
    return HealthStatus.PASS
