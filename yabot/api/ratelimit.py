"""Rate limit per token subject, with the `limits` package (fixed windows).

Counts live in memory (one count per process) or, when ``REDIS_URL`` is set, in Redis (one
count across every process of the deployment). Redis is asked with a short deadline
(``RATE_LIMIT_REDIS_TIMEOUT``) behind a circuit breaker (`FailOpenCounts`): when it fails or
is slow, this process counts on its own for ``RATE_LIMIT_REDIS_RETRY_AFTER`` seconds — the
limit then holds per process instead of across them — and one request then tries Redis again.
A slow or dead counter costs a request at most one deadline, once per breaker period.
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
from redis.backoff import NoBackoff
from redis.retry import Retry

from yabot.errors import RateLimited
from yabot.logs import throttled
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


class FailOpenCounts(Storage):
    """Counts in ``shared`` (Redis) while it answers, in ``local`` while its breaker is open.

    Any error from ``shared`` (a timeout included) opens the breaker for ``retry_after``
    seconds: meanwhile every count goes to ``local`` at once, without touching the network.
    After that, exactly one caller (a flag claimed under a lock that is never held across the
    call) tries ``shared`` again; the others keep counting locally until it answers.
    """

    STORAGE_SCHEME = ["yabot-fail-open"]

    def __init__(self, shared: Storage, local: Storage, retry_after: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.shared = shared
        self.local = local
        self._retry_after = retry_after
        self._clock = clock
        self._lock = threading.Lock()
        self._open_until = 0.0
        self._probing = False
        self.failures = 0

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return ()

    @property
    def breaker_open(self) -> bool:
        return self._clock() < self._open_until

    def _counter(self) -> tuple[Storage, bool]:
        """Which storage to ask now, and whether this caller is the breaker's probe."""
        if self._open_until == 0.0:
            return self.shared, False
        with self._lock:
            if self._clock() < self._open_until or self._probing:
                return self.local, False
            self._probing = True
            return self.shared, True

    def _call(self, method: str, *args: Any) -> Any:
        storage, probe = self._counter()
        if storage is self.local:
            return getattr(storage, method)(*args)
        try:
            result = getattr(storage, method)(*args)
        except Exception as exc:
            with self._lock:
                self._open_until = self._clock() + self._retry_after
                self._probing = False
                self.failures += 1
            throttled(log, "rate limit counted in this process: redis failed",
                      error=repr(getattr(exc, "storage_error", exc)),
                      retry_in_s=self._retry_after)
            return getattr(self.local, method)(*args)
        if probe:
            with self._lock:
                self._open_until = 0.0
                self._probing = False
            log.info("rate limit counted in redis again")
        return result

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        counted: int = self._call("incr", key, expiry, amount)
        return counted

    def get(self, key: str) -> int:
        count: int = self._call("get", key)
        return count

    def get_expiry(self, key: str) -> float:
        expiry: float = self._call("get_expiry", key)
        return expiry

    def check(self) -> bool:
        return not self.breaker_open

    def reset(self) -> int | None:
        return self.local.reset()

    def clear(self, key: str) -> None:
        self.local.clear(key)
        if not self.breaker_open:
            self.shared.clear(key)


def rate_limit_storage(settings: Settings) -> Storage:
    """Redis behind `FailOpenCounts` when ``REDIS_URL`` is set (keys under
    ``RATE_LIMIT_KEY_PREFIX``), else this process's `WindowCounts`."""
    if settings.redis.url is not None:
        timeout = settings.rate_limit.redis_timeout
        shared = storage_from_string(
            settings.redis.url.get_secret_value(), key_prefix=settings.rate_limit.key_prefix,
            wrap_exceptions=True, socket_timeout=timeout, socket_connect_timeout=timeout,
            # redis-py 8 would retry 10 times by default; limits passes every option through
            # to `redis.from_url` but annotates them as scalars.
            retry=Retry(NoBackoff(), 0),  # type: ignore[arg-type]
        )
        assert isinstance(shared, Storage)
        return FailOpenCounts(shared, WindowCounts(), settings.rate_limit.redis_retry_after)
    return WindowCounts()


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
            throttled(log, "rate limit not checked: storage unavailable",
                      error_type=type(exc.storage_error).__name__)
