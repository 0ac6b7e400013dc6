"""The Redis side of the events: a fail-fast client and the stream's health.

Nothing here publishes on a request's path: events are stored with their changes (the
transactional outbox) and `yabot.events.relay.OutboxRelay` sends them.
"""

from __future__ import annotations

import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from yabot.health import ComponentHealth, HealthStatus
from yabot.settings import EventSettings

#: Errors after which Redis may answer again: worth a retry later.
TRANSIENT = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


def connect_redis(url: str, settings: EventSettings, *, extra_timeout: float = 0.0) -> redis.Redis:
    """A client that fails fast: our own backoff decides about retries.

    redis-py 8 retries every command 10 times with backoff (up to 1 s apart) by default,
    which would stall a caller for seconds while Redis is down or paused.
    """
    return redis.Redis.from_url(
        url,
        socket_timeout=settings.redis_timeout + extra_timeout,
        socket_connect_timeout=settings.redis_timeout,
        retry=Retry(NoBackoff(), 0),
    )


def stream_health(client: redis.Redis | None, settings: EventSettings, outbox: int | None,
                  breaker_open: bool) -> ComponentHealth:
    """Ping, stream length, consumer-group lag and the outbox size; never raises.

    Called with ``breaker_open`` the relay's breaker is keeping away from Redis, and Redis is
    not asked (a hung Redis must not make `/readyz` slow): the answer is WARN at once.
    """
    started = time.perf_counter()
    details: dict[str, str | int | float | bool] = {"stream": settings.stream}
    if outbox is not None:
        details["outbox"] = outbox
    if client is None:
        return _health(HealthStatus.PASS, started, "disabled: REDIS_URL is unset", details)
    if breaker_open:
        return _health(HealthStatus.WARN, started,
                       "redis is failing; events wait in the outbox", details)
    try:
        client.ping()
        details["stream_length"] = int(client.xlen(settings.stream))
        details.update(_group_details(client, settings))
    except redis.exceptions.RedisError as exc:
        return _health(HealthStatus.WARN, started,
                       f"redis unreachable ({type(exc).__name__}); events wait in the outbox",
                       details)
    if details.get("outbox"):
        return _health(HealthStatus.WARN, started, "relaying the outbox", details)
    return _health(HealthStatus.PASS, started, None, details)


def _group_details(client: redis.Redis, settings: EventSettings) -> dict[str, int]:
    try:
        groups = client.xinfo_groups(settings.stream)
    except redis.exceptions.ResponseError:  # no stream yet
        return {}
    for group in groups:
        name = group.get("name", b"")
        if isinstance(name, bytes):
            name = name.decode()
        if name == settings.consumer_group:
            lag = group.get("lag")
            return {"pending": int(group.get("pending", 0)),
                    **({"lag": int(lag)} if lag is not None else {})}
    return {}


def _health(
    status: HealthStatus, started: float, output: str | None,
    details: dict[str, str | int | float | bool],
) -> ComponentHealth:
    return ComponentHealth(
        name="events", status=status, output=output, details=details,
        observed_ms=(time.perf_counter() - started) * 1000,
    )
