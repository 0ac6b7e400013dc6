"""Rate limit per token subject, with the `limits` package (fixed windows).

Counts live in memory (one count per process) or, when ``REDIS_URL`` is set, in Redis (one
count across every process of the deployment). When Redis does not answer the request is let
through and the failure logged: an outage of the counter must not take the API down with it.
"""

from __future__ import annotations

import math
import time
from typing import Any

import falcon
import structlog
from limits import RateLimitItem, parse_many
from limits.errors import StorageError
from limits.storage import Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter

from yabot.errors import RateLimited
from yabot.settings import Settings

log = structlog.get_logger("yabot.api")


def rate_limit_storage(settings: Settings) -> Storage:
    """Redis when ``REDIS_URL`` is set (keys under ``RATE_LIMIT_KEY_PREFIX``), else memory."""
    if settings.redis.url is not None:
        storage = storage_from_string(
            settings.redis.url.get_secret_value(), key_prefix=settings.rate_limit.key_prefix,
            wrap_exceptions=True, socket_timeout=0.5, socket_connect_timeout=0.5,
        )
    else:
        storage = storage_from_string("memory://")
    assert isinstance(storage, Storage)
    return storage


class RateLimit:
    """Middleware: at most ``RATE_LIMIT_PER_SUBJECT`` requests per token ``sub``; over it,
    `RateLimited` (429 with ``Retry-After``). Runs after `RequireToken` in
    ``process_resource``, so public routes and unknown routes are not counted."""

    def __init__(self, settings: Settings, storage: Storage | None = None) -> None:
        self._items: list[RateLimitItem] = parse_many(settings.rate_limit.per_subject)
        self._limiter = FixedWindowRateLimiter(storage or rate_limit_storage(settings))

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: object, params: dict[str, Any]
    ) -> None:
        subject = getattr(req.context, "subject", None)
        if resource is None or subject is None:
            return
        try:
            for item in self._items:
                if not self._limiter.hit(item, "sub", subject):
                    reset_at = self._limiter.get_window_stats(item, "sub", subject).reset_time
                    raise RateLimited(max(1, math.ceil(reset_at - time.time())))
        except StorageError as exc:
            log.warning("rate limit not checked: storage unavailable",
                        error_type=type(exc.storage_error).__name__)
