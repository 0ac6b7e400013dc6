"""HTTP metrics per route template and status, and the one ``/metrics`` text for the process."""

from __future__ import annotations

import bisect
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import falcon

from yabot.api.policy import PUBLIC

# Upper bounds in seconds: from a hello-world answer (~1 ms) to an ask that timed out.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)
UNMATCHED = "<unmatched>"  # requests no route matched, so labels stay bounded
OTHER_METHOD = "OTHER"  # any method HTTP does not define: a client may send any token
KNOWN_METHODS = frozenset(falcon.constants.COMBINED_METHODS)


@dataclass
class _Latency:
    count: int = 0
    total: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS))


class HttpMetrics:
    """Request counts by (method, route template, status), latency histograms by (method,
    route template), and requests in flight. Thread-safe; labels are bounded: by the routes
    (`UNMATCHED` for any path no route matched) and by HTTP's methods (`OTHER_METHOD` for any
    other), whatever clients send."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str, int], int] = defaultdict(int)
        self._latency: dict[tuple[str, str], _Latency] = defaultdict(_Latency)
        self._in_flight = 0

    def started(self) -> None:
        with self._lock:
            self._in_flight += 1

    def finished(self, method: str, route: str, status: int, seconds: float | None) -> None:
        index = bisect.bisect_left(LATENCY_BUCKETS, seconds) if seconds is not None else -1
        with self._lock:
            self._in_flight -= 1
            self._counts[(method, route, status)] += 1
            if seconds is not None:
                latency = self._latency[(method, route)]
                latency.count += 1
                latency.total += seconds
                if index < len(LATENCY_BUCKETS):
                    latency.buckets[index] += 1

    def prometheus_text(self) -> str:
        with self._lock:
            counts = dict(self._counts)
            latency = {k: (v.count, v.total, list(v.buckets)) for k, v in self._latency.items()}
            in_flight = self._in_flight
        lines = [
            "# HELP yabot_http_requests_total HTTP requests answered, by route and status.",
            "# TYPE yabot_http_requests_total counter",
        ]
        for (method, route, status), n in sorted(counts.items()):
            lines.append(f'yabot_http_requests_total{{method="{method}",route="{_esc(route)}",'
                         f'status="{status}"}} {n}')
        lines += [
            "# HELP yabot_http_request_duration_seconds Time to answer, by route template.",
            "# TYPE yabot_http_request_duration_seconds histogram",
        ]
        for (method, route), (count, total, buckets) in sorted(latency.items()):
            labels = f'method="{method}",route="{_esc(route)}"'
            cumulative = 0
            for bound, n in zip(LATENCY_BUCKETS, buckets, strict=True):
                cumulative += n
                lines.append(f'yabot_http_request_duration_seconds_bucket{{{labels},le="{bound}"}}'
                             f" {cumulative}")
            lines.append(
                f'yabot_http_request_duration_seconds_bucket{{{labels},le="+Inf"}} {count}'
            )
            lines.append(f"yabot_http_request_duration_seconds_sum{{{labels}}} {total:.6f}")
            lines.append(f"yabot_http_request_duration_seconds_count{{{labels}}} {count}")
        lines += [
            "# HELP yabot_http_requests_in_flight Requests being handled now.",
            "# TYPE yabot_http_requests_in_flight gauge",
            f"yabot_http_requests_in_flight {in_flight}",
        ]
        return "\n".join(lines) + "\n"


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class MeasureRequests:
    """Middleware: counts every request, including those an earlier middleware refused."""

    def __init__(self, metrics: HttpMetrics) -> None:
        self._metrics = metrics

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.measure_started = time.perf_counter()
        self._metrics.started()

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool
    ) -> None:
        started = getattr(req.context, "measure_started", None)
        if started is None:  # process_request never ran for this request
            return
        route = req.uri_template or UNMATCHED
        method = req.method if req.method in KNOWN_METHODS else OTHER_METHOD
        self._metrics.finished(method, route, resp.status_code, time.perf_counter() - started)


PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


class MetricsResource:
    """``GET /metrics``: Prometheus text from every source given (HTTP, actors, events).

    Public like the health routes: serve the API on an internal address, or filter
    ``/metrics`` at the proxy."""

    policy = PUBLIC

    def __init__(self, sources: list[Callable[[], str]]) -> None:
        self._sources = sources

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = PROMETHEUS_TEXT
        resp.text = "".join(source() for source in self._sources)
