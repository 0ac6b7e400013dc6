"""The one mapping from errors to HTTP: RFC 9457 problem details (application/problem+json)."""

from __future__ import annotations

import json
import math
from typing import Any

import falcon
import structlog

from actors import ActorDead, AskTimeout, Overloaded, Parked, Quarantined
from yabot import errors

log = structlog.get_logger("yabot.api")

PROBLEM_JSON = "application/problem+json"

# Most specific first: the first matching class wins.
STATUS_BY_ERROR: tuple[tuple[type[Exception], str, str], ...] = (
    (errors.NotFound, falcon.HTTP_404, "Not Found"),
    (errors.PayloadTooLarge, falcon.HTTP_413, "Content Too Large"),
    (errors.LengthRequired, falcon.HTTP_411, "Length Required"),
    (errors.UnsupportedMediaType, falcon.HTTP_415, "Unsupported Media Type"),
    (errors.InvalidInput, falcon.HTTP_400, "Bad Request"),
    (errors.Unauthorized, falcon.HTTP_401, "Unauthorized"),
    (errors.Forbidden, falcon.HTTP_403, "Forbidden"),
    (errors.Conflict, falcon.HTTP_409, "Conflict"),
    (errors.RateLimited, falcon.HTTP_429, "Too Many Requests"),
    (errors.Unavailable, falcon.HTTP_503, "Service Unavailable"),
    (errors.TimedOut, falcon.HTTP_504, "Gateway Timeout"),
    (AskTimeout, falcon.HTTP_504, "Gateway Timeout"),
    (ActorDead, falcon.HTTP_503, "Service Unavailable"),
    (Overloaded, falcon.HTTP_503, "Service Unavailable"),
    (Quarantined, falcon.HTTP_503, "Service Unavailable"),
    (Parked, falcon.HTTP_503, "Service Unavailable"),
)


class Problem(falcon.HTTPError):
    """An HTTP error that carries our problem code (the last segment of the ``type`` URI)."""

    def __init__(
        self, status: str, title: str, problem_code: str, detail: str | None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status, title=title, description=detail, headers=headers)
        self.problem_code = problem_code


def to_http_error(error: Exception) -> Problem:
    """The HTTP error for ``error``; unknown errors become a bare 500 (details only in logs)."""
    for error_type, status, title in STATUS_BY_ERROR:
        if isinstance(error, error_type):
            if isinstance(error, errors.YabotError):
                return Problem(status, title, error.code, str(error), _headers(error))
            return Problem(status, title, _actor_code(error), None, _actor_headers(error))
    return Problem(falcon.HTTP_500, "Internal Server Error", "internal", None)


def _headers(error: errors.YabotError) -> dict[str, str] | None:
    if isinstance(error, errors.RateLimited):
        return {"Retry-After": str(error.retry_after)}
    if isinstance(error, errors.Unauthorized):
        return {"WWW-Authenticate": 'Bearer realm="yabot"'}
    if isinstance(error, errors.Unavailable):
        return {"Retry-After": "1"}
    return None


def _actor_headers(error: Exception) -> dict[str, str] | None:
    if isinstance(error, Quarantined):  # this user's session is refused for a while
        return {"Retry-After": str(max(1, math.ceil(error.retry_after)))}
    if isinstance(error, Overloaded | ActorDead):
        return {"Retry-After": "1"}
    return None


def _actor_code(error: Exception) -> str:
    return "timeout" if isinstance(error, AskTimeout) else "unavailable"


def handle_error(req: falcon.Request, resp: falcon.Response, error: Exception, params: Any) -> None:
    """Falcon error handler for every non-HTTP exception."""
    if isinstance(error, falcon.HTTPError):
        raise error
    http_error = to_http_error(error)
    if http_error.status_code >= 500:
        log.error(
            "request failed", path=req.path, status=http_error.status_code,
            error_type=type(error).__name__, exc_info=http_error.status_code == 500,
        )
    raise http_error


def serialize_problem(req: falcon.Request, resp: falcon.Response, error: falcon.HTTPError) -> None:
    """Render any `falcon.HTTPError` as problem details."""
    code = getattr(error, "problem_code", None) or _default_code(error.status_code)
    body: dict[str, Any] = {
        "type": f"/problems/{code}",
        "title": error.title,
        "status": error.status_code,
    }
    if error.description:
        body["detail"] = error.description
    resp.content_type = PROBLEM_JSON
    resp.data = json.dumps(body).encode()


def _default_code(status: int) -> str:
    return {
        400: "invalid-input", 401: "unauthorized", 403: "forbidden", 404: "not-found",
        405: "method-not-allowed", 409: "conflict", 411: "length-required",
        413: "payload-too-large", 415: "unsupported-media-type", 429: "too-many-requests",
    }.get(status, "internal" if status >= 500 else "error")
