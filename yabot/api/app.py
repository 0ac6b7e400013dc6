"""create_app: the one place the Falcon application is wired."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import falcon
import structlog

from yabot.api.auth import RequireToken, TokenVerifier
from yabot.api.bridge import ApiBridge
from yabot.api.problems import handle_error, serialize_problem
from yabot.api.resources import Liveness, UserStateResource
from yabot.logs import bind_correlation_id
from yabot.settings import Settings

log = structlog.get_logger("yabot.api")

REQUEST_ID_HEADER = "X-Request-Id"


class RequestContext:
    """Binds a correlation id (the caller's ``X-Request-Id`` or a new one) to every log line
    the request causes, echoes it back, and logs one line per request."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        structlog.contextvars.clear_contextvars()
        incoming = req.get_header(REQUEST_ID_HEADER)
        valid = incoming if incoming and len(incoming) <= 64 and incoming.isprintable() else None
        req.context.correlation_id = bind_correlation_id(valid)
        req.context.started = time.perf_counter()

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool
    ) -> None:
        # Runs even when an earlier middleware raised: nothing here may assume it ran.
        correlation_id = getattr(req.context, "correlation_id", None)
        if correlation_id is not None:
            resp.set_header(REQUEST_ID_HEADER, correlation_id)
        started = getattr(req.context, "started", None)
        elapsed_ms = (time.perf_counter() - started) * 1000 if started is not None else None
        log.info("request", method=req.method, path=req.path, status=resp.status, ms=elapsed_ms)


def create_app(
    settings: Settings, bridge: ApiBridge, extra_routes: Mapping[str, object] | None = None
) -> falcon.App[Any, Any]:
    """The API; ``extra_routes`` are resources other parts add (the Telegram webhook)."""
    middleware: list[Any] = [RequestContext(), RequireToken(TokenVerifier(settings))]
    app: falcon.App[Any, Any] = falcon.App(middleware=middleware)
    app.resp_options.xml_error_serialization = False
    app.set_error_serializer(serialize_problem)
    app.add_error_handler(Exception, handle_error)
    app.add_route("/healthz", Liveness())
    app.add_route("/user/{user_id}/state", UserStateResource(bridge))
    for path, resource in (extra_routes or {}).items():
        app.add_route(path, resource)
    return app
