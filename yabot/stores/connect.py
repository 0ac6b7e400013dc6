"""Building pools from settings and reaching the servers on start, with retries."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import structlog
from pymongo import MongoClient
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from yabot.errors import StoreUnreachable
from yabot.settings import Settings, StoreResilience
from yabot.stores.breaker import CircuitBreaker
from yabot.stores.engine import make_engine
from yabot.stores.guard import StoreGuard
from yabot.stores.retry import RetryPolicy, retry_call
from yabot.stores.transient import is_transient_mongo, is_transient_sql

log = structlog.get_logger("yabot.stores")

Document = dict[str, Any]
MongoClientFactory = Callable[..., MongoClient[Document]]
CONNECT_MAX_DELAY = 5.0


def sql_engine(settings: Settings) -> Engine:
    """The engine for `Settings.sql_url` with the configured pool and timeouts."""
    sql = settings.sql
    options: dict[str, Any] = {
        "pool_size": sql.pool_size, "max_overflow": sql.max_overflow,
        "pool_timeout": sql.pool_timeout, "pool_recycle": sql.pool_recycle,
    }
    if make_url(settings.sql_url).get_backend_name() == "postgresql":
        options["connect_args"] = {"connect_timeout": sql.connect_timeout}
    return make_engine(settings.sql_url, busy_timeout_ms=sql.busy_timeout_ms, **options)


def sql_store_guard(settings: Settings) -> StoreGuard:
    return _store_guard("sql", settings.sql, is_transient_sql)


def _store_guard(name: str, store: StoreResilience,
                 is_transient: Callable[[BaseException], bool]) -> StoreGuard:
    """Retries and a circuit breaker for the store ``name``, as its settings say."""
    return StoreGuard(
        name, is_transient=is_transient,
        policy=RetryPolicy(attempts=store.retry_attempts, base_delay=store.retry_base_delay),
        breaker=CircuitBreaker(name, failure_threshold=store.breaker_failures,
                               cool_down=store.breaker_cool_down),
    )


def mongo_client(settings: Settings, factory: MongoClientFactory = MongoClient) -> MongoClient[
    Document
]:
    """A `MongoClient` with the configured pool and timeouts; it connects lazily."""
    mongo = settings.mongo
    assert mongo.uri is not None
    return factory(
        mongo.uri.get_secret_value(), appname=mongo.app_name, tz_aware=True,
        maxPoolSize=mongo.max_pool_size, connectTimeoutMS=mongo.connect_timeout_ms,
        serverSelectionTimeoutMS=mongo.server_selection_timeout_ms,
        socketTimeoutMS=mongo.socket_timeout_ms,
    )


def mongo_store_guard(settings: Settings) -> StoreGuard:
    return _store_guard("mongo", settings.mongo, is_transient_mongo)


def connect_with_retry(
    name: str,
    ping: Callable[[], object],
    is_transient: Callable[[BaseException], bool],
    attempts: int,
    *,
    sleep: Callable[[float], None] = time.sleep,
    rng: Callable[[], float] = random.random,
) -> None:
    """Call ``ping`` until it answers, backing off on transient errors; `StoreUnreachable`
    naming the store when every attempt failed. Non-transient errors (bad credentials, a bad
    URL) are raised at once: waiting would not fix them."""
    policy = RetryPolicy(attempts=attempts, base_delay=0.2, max_delay=CONNECT_MAX_DELAY)
    try:
        retry_call(ping, is_transient=is_transient, policy=policy, sleep=sleep, rng=rng,
                   what=f"connect to {name}")
    except Exception as exc:
        if is_transient(exc):
            raise StoreUnreachable(name, attempts, _first_line(exc)) from exc
        raise


def _first_line(error: BaseException) -> str:
    """``Type: first line of the message``, short: drivers put the host and port there (never
    the password), which is what an operator needs to see."""
    lines = str(error).strip().splitlines()
    text = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def sql_ping(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def mongo_ping(client: MongoClient[Document]) -> None:
    client.admin.command("ping")
