"""What every request's log says: its correlation id, echoed back, and one line per request.

Shared by the Falcon app's middleware (`RequestContext`) and by the state reads answered at
the ASGI layer (`yabot.api.snapshot_reads`), so both log and echo alike.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import falcon
import structlog

from yabot.logs import bind_correlation_id

log = structlog.get_logger("yabot.api")

REQUEST_ID_HEADER = "X-Request-Id"
_REQUEST_ID_ENVIRON = "HTTP_X_REQUEST_ID"  # how WSGI spells that header


def begin_request(incoming_id: str | None) -> str:
    """A request's log context: structlog's context cleared and a correlation id bound — the
    caller's ``X-Request-Id`` when it is short and printable, a new one otherwise —
    which is returned."""
    structlog.contextvars.clear_contextvars()
    usable = incoming_id and len(incoming_id) <= 64 and incoming_id.isprintable()
    return bind_correlation_id(incoming_id if usable else None)


class RequestLog:
    """The one line logged per request, at INFO.

    Keeps the logger structlog resolves on first use (through the module's lazy proxy each
    call cost 0.65 µs even below the level, bound 0.15), and gathers the line's fields only
    when INFO is on (0.3 µs a request)."""

    def __init__(self) -> None:
        self._log: Any = None

    def line(self, method: str, path: str, status: str | int, started: float | None) -> None:
        if self._log is None:
            self._log = log.bind()
        if not self._log.is_enabled_for(logging.INFO):
            return
        elapsed_ms = (time.perf_counter() - started) * 1000 if started is not None else None
        self._log.info("request", method=method, path=path, status=status, ms=elapsed_ms)


class RequestContext:
    """Binds a correlation id (the caller's ``X-Request-Id`` or a new one) to every log line
    the request causes, echoes it back, and logs one line per request (`RequestLog`).
    Every request passes here twice, so it reads its header from the environ directly."""

    def __init__(self) -> None:
        self._request_log = RequestLog()

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.correlation_id = begin_request(req.env.get(_REQUEST_ID_ENVIRON))
        req.context.started = time.perf_counter()

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool
    ) -> None:
        # Runs even when an earlier middleware raised: nothing here may assume it ran.
        correlation_id = getattr(req.context, "correlation_id", None)
        if correlation_id is not None:
            resp.set_header(REQUEST_ID_HEADER, correlation_id)
        self._request_log.line(req.method, req.path, resp.status,
                               getattr(req.context, "started", None))
