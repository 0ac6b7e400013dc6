"""Rate limit per token subject: fixed windows, every limit taken in one step.

A request is counted in all of its subject's windows or in none: `take` checks every window
and counts only when each has room, so a request one limit refuses spends nothing of the
others. Counts live in memory (`WindowCounts`, one count per process) or, when ``REDIS_URL``
is set, in Redis (`RedisCounts`: one Lua script, one round trip per request, one count
across every process of the deployment). Redis is asked with a short deadline
(``RATE_LIMIT_REDIS_TIMEOUT``) behind a circuit breaker (`FailOpenCounts`): when it fails or
is slow, this process counts on its own for ``RATE_LIMIT_REDIS_RETRY_AFTER`` seconds — the
limit then holds per process instead of across them — and one request then tries Redis again.
A slow or dead counter costs a request at most one deadline, once per breaker period.

A window starts at its first request and lasts its period (``Retry-After`` is the seconds
left in the window that refused). The `limits` package only parses the setting: its
strategies ask the storage once per limit to test and once more to hit (four Redis round
trips per request with the default two limits, measured at 25% of a state read's CPU).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import falcon
import redis
import structlog
from limits import parse_many
from redis.backoff import NoBackoff
from redis.retry import Retry

from yabot.errors import RateLimited
from yabot.logs import throttled
from yabot.settings import Settings

log = structlog.get_logger("yabot.api")

#: Subjects whose windows `RateLimit` keeps made (see `RateLimit._windows`).
MAX_SUBJECTS = 4096


@dataclass(frozen=True, slots=True)
class Window:
    """One limit of one subject: at most ``amount`` requests per ``seconds``, counted under
    ``key``."""

    key: str
    amount: int
    seconds: int


class Counts(Protocol):
    def take(self, windows: Sequence[Window]) -> float | None:
        """Count one request in every window if each has room and return None; otherwise
        count nothing and return the seconds until the first full window resets."""


_EMPTY = (0, 0.0)


class WindowCounts:
    """Fixed-window counts in this process; a count past its expiry is dropped when next
    touched, and every expired count once the table has doubled."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[int, float]] = {}  # key -> (count, expires at)
        self._purge_at = 1024

    def take(self, windows: Sequence[Window]) -> float | None:
        now = self._clock()
        with self._lock:
            counts = self._counts  # `_purge` replaces it
            taken: list[tuple[str, tuple[int, float]]] = []
            for window in windows:
                count, expires_at = counts.get(window.key, _EMPTY)
                if expires_at <= now:  # a new window starts with this request
                    count, expires_at = 0, now + window.seconds
                if count >= window.amount:
                    return expires_at - now
                taken.append((window.key, (count + 1, expires_at)))
            counts.update(taken)  # only once every window had room
            if len(counts) >= self._purge_at:
                self._purge(now)
            return None

    def _purge(self, now: float) -> None:
        self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
        self._purge_at = max(1024, 2 * len(self._counts))


# KEYS: one per window; ARGV: amount and seconds of each, in turn. Returns the ms left in
# the first full window, or -1 once every window has counted the request.
_TAKE = """
for i, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') >= tonumber(ARGV[2 * i - 1]) then
    return math.max(redis.call('PTTL', key), 0)
  end
end
for i, key in ipairs(KEYS) do
  if redis.call('INCR', key) == 1 then
    redis.call('EXPIRE', key, ARGV[2 * i])
  end
end
return -1
"""


class RedisCounts:
    """The same windows in Redis, one script call per request."""

    def __init__(self, client: redis.Redis) -> None:
        self._take = client.register_script(_TAKE)

    def take(self, windows: Sequence[Window]) -> float | None:
        args = [n for w in windows for n in (w.amount, w.seconds)]
        left_ms = int(self._take(keys=[w.key for w in windows], args=args))
        return None if left_ms < 0 else left_ms / 1000


class FailOpenCounts:
    """Counts in ``shared`` (Redis) while it answers, in ``local`` while its breaker is open.

    Any error from ``shared`` (a timeout included) opens the breaker for ``retry_after``
    seconds: meanwhile every count goes to ``local`` at once, without touching the network.
    After that, exactly one caller (a flag claimed under a lock that is never held across the
    call) tries ``shared`` again; the others keep counting locally until it answers.
    """

    def __init__(self, shared: Counts, local: Counts, retry_after: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.shared = shared
        self.local = local
        self._retry_after = retry_after
        self._clock = clock
        self._lock = threading.Lock()
        self._open_until = 0.0
        self._probing = False
        self.failures = 0

    @property
    def breaker_open(self) -> bool:
        return self._clock() < self._open_until

    def _counter(self) -> tuple[Counts, bool]:
        """Which counts to ask now, and whether this caller is the breaker's probe."""
        if self._open_until == 0.0:
            return self.shared, False
        with self._lock:
            if self._clock() < self._open_until or self._probing:
                return self.local, False
            self._probing = True
            return self.shared, True

    def take(self, windows: Sequence[Window]) -> float | None:
        counts, probe = self._counter()
        if counts is self.local:
            return counts.take(windows)
        try:
            refused = counts.take(windows)
        except Exception as exc:
            with self._lock:
                self._open_until = self._clock() + self._retry_after
                self._probing = False
                self.failures += 1
            throttled(log, "rate limit counted in this process: redis failed",
                      error=repr(exc), retry_in_s=self._retry_after)
            return self.local.take(windows)
        if probe:
            with self._lock:
                self._open_until = 0.0
                self._probing = False
            log.info("rate limit counted in redis again")
        return refused


def rate_limit_counts(settings: Settings) -> Counts:
    """Redis behind `FailOpenCounts` when ``REDIS_URL`` is set, else this process's
    `WindowCounts`."""
    if settings.redis.url is None:
        return WindowCounts()
    timeout = settings.rate_limit.redis_timeout
    client = redis.Redis.from_url(  # fails fast: the breaker decides what happens next
        settings.redis.url.get_secret_value(), socket_timeout=timeout,
        socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0))
    return FailOpenCounts(RedisCounts(client), WindowCounts(),
                          settings.rate_limit.redis_retry_after)


class RateLimit:
    """Middleware: at most ``RATE_LIMIT_PER_SUBJECT`` requests per token ``sub``; over it,
    `RateLimited` (429 with ``Retry-After``). Runs after `RequireToken` in
    ``process_resource``, so public routes and unknown routes are not counted."""

    def __init__(self, settings: Settings, counts: Counts | None = None) -> None:
        prefix = settings.rate_limit.key_prefix
        self._limits = [(f"{prefix}:{item.amount}/{item.get_expiry()}s:", item.amount,
                         item.get_expiry()) for item in parse_many(settings.rate_limit.per_subject)]
        self._counts = counts or rate_limit_counts(settings)
        #: Each subject's windows, made once (with `WindowCounts.take`'s single pass, the
        #: limit went from 2.5 to 0.8 µs a request with two limits): subjects are the ``sub``
        #: of verified tokens, a handful of services (bounded all the same).
        self._windows: dict[str, tuple[Window, ...]] = {}

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: object, params: dict[str, Any]
    ) -> None:
        subject = getattr(req.context, "subject", None)
        if resource is None or subject is None:
            return
        refused = self.take(subject)
        if refused is not None:
            raise RateLimited(max(1, math.ceil(refused)))

    def take(self, subject: str) -> float | None:
        """Count one request of ``subject`` in each of its windows and return None, or count
        nothing and return the seconds until the first full window resets."""
        return self._counts.take(self._windows_of(subject))

    def _windows_of(self, subject: str) -> tuple[Window, ...]:
        windows = self._windows.get(subject)
        if windows is None:
            if len(self._windows) >= MAX_SUBJECTS:
                self._windows.clear()
            windows = self._windows[subject] = tuple(
                Window(key + subject, amount, seconds) for key, amount, seconds in self._limits)
        return windows
