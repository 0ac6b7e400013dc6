"""``GET /readyz``: readiness in the shape of the IETF health-check draft
(draft-inadarei-api-health-check): ``status`` and ``checks`` by component."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import falcon

from yabot.health import ComponentHealth, HealthStatus, overall

HEALTH_JSON = "application/health+json"


class Readiness:
    """Ready when every registered check passes or warns and the process is not shutting
    down; otherwise 503. ``draining`` is set at the start of shutdown (SIGTERM), before
    in-flight requests finish, so a load balancer stops sending new ones first."""

    public = True

    def __init__(
        self, checks: Callable[[], list[ComponentHealth]], draining: threading.Event
    ) -> None:
        self._checks = checks
        self._draining = draining

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        results = self._checks()
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        if self._draining.is_set():
            results.append(ComponentHealth(name="shutdown", status=HealthStatus.FAIL,
                                           output="the process is shutting down"))
        status = overall(results)
        resp.content_type = HEALTH_JSON
        resp.status = falcon.HTTP_503 if status is HealthStatus.FAIL else falcon.HTTP_200
        if status is HealthStatus.FAIL:
            resp.set_header("Retry-After", "1")
        resp.media = {
            "status": status.value,
            "checks": {result.name: [_check(result, now)] for result in results},
        }


def _check(result: ComponentHealth, now: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"status": result.status.value, "time": now}
    if result.observed_ms is not None:
        entry["observedValue"] = round(result.observed_ms, 3)
        entry["observedUnit"] = "ms"
    if result.output:
        entry["output"] = result.output
    if result.details:
        entry["details"] = dict(result.details)
    return entry
