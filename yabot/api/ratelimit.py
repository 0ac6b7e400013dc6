"""Rate limit per token subject, with the `limits` package (fixed windows).

Counts live in memory (one count per process) or, when ``REDIS_URL`` is set, in Redis (one
count across every process of the deployment). When Redis does not answer the request is let
through and the failure logged: an outage of the counter must not take the API down with it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
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


class WindowCounts(Storage):
    """Fixed-window counts in this process, for limits' strategies; a count past its expiry
    is dropped when next touched, and every expired count once the table has doubled.

    limits' own ``memory://`` storage (limits 5.8) restarts a `threading.Timer` thread every
    10 ms while hits arrive, and the request that starts it waits for the new thread to run.
    Measured from 8 threads: 23 µs mean / 109 µs p99 per hit against 9.5 / 46 µs here. Fixed
    windows need only `incr`, `get` and `get_expiry`; the rest of the interface does what it
    says.
    """

    STORAGE_SCHEME = ["yabot-memory"]

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[int, float]] = {}  # key -> (count, expires at)
        self._purge_at = 1024

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return ()

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = self._clock()
        with self._lock:
            count, expires_at = self._counts.get(key, (0, 0.0))
            if expires_at <= now:
                count, expires_at = 0, now + expiry
            count += amount
            self._counts[key] = (count, expires_at)
            if len(self._counts) >= self._purge_at:
                self._purge(now)
            return count

    def get(self, key: str) -> int:
        count, expires_at = self._counts.get(key, (0, 0.0))
        return count if expires_at > self._clock() else 0

    def get_expiry(self, key: str) -> float:
        _count, expires_at = self._counts.get(key, (0, 0.0))
        return expires_at if expires_at > self._clock() else self._clock()

    def check(self) -> bool:
        return True

    def reset(self) -> int | None:
        with self._lock:
            cleared = len(self._counts)
            self._counts.clear()
            return cleared

    def clear(self, key: str) -> None:
        with self._lock:
            self._counts.pop(key, None)

    def _purge(self, now: float) -> None:
        self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
        self._purge_at = max(1024, 2 * len(self._counts))


def rate_limit_storage(settings: Settings) -> Storage:
    """Redis when ``REDIS_URL`` is set (keys under ``RATE_LIMIT_KEY_PREFIX``), else this
    process's `WindowCounts`."""
    if settings.redis.url is not None:
        storage = storage_from_string(
            settings.redis.url.get_secret_value(), key_prefix=settings.rate_limit.key_prefix,
            wrap_exceptions=True, socket_timeout=0.5, socket_connect_timeout=0.5,
        )
        assert isinstance(storage, Storage)
        return storage
    return WindowCounts()


class RateLimit:
    """Middleware: at most ``RATE_LIMIT_PER_SUBJECT`` requests per token ``sub``; over it,
    `RateLimited` (429 with ``Retry-After``). Runs after `RequireToken` in
    ``process_resource``, so public routes and unknown routes are not counted."""

    def __init__(self, settings: Settings, storage: Storage | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._items: list[RateLimitItem] = parse_many(settings.rate_limit.per_subject)
        self._limiter = FixedWindowRateLimiter(storage or rate_limit_storage(settings))
        self._clock = clock  # the storage's clock: ``Retry-After`` is its window's reset

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: object, params: dict[str, Any]
    ) -> None:
        subject = getattr(req.context, "subject", None)
        if resource is None or subject is None:
            return
        try:
            # Every limit is tested before any is hit: a request refused by one limit spends
            # nothing of the others (two racing requests may both pass a test; the hits still
            # count both, so the overshoot is at most the number of racing requests).
            for item in self._items:
                if not self._limiter.test(item, "sub", subject):
                    reset_at = self._limiter.get_window_stats(item, "sub", subject).reset_time
                    raise RateLimited(max(1, math.ceil(reset_at - self._clock())))
            for item in self._items:
                self._limiter.hit(item, "sub", subject)
        except StorageError as exc:
            log.warning("rate limit not checked: storage unavailable",
                        error_type=type(exc.storage_error).__name__)
