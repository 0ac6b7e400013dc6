"""Engines and clients as built from settings: SQLite's per-connection pragmas, the SQL pool,
and the `MongoClient`'s pool, timeouts and app name (inspected without a server)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from sqlalchemy import Engine, text

from tests.support.settings import SettingsFactory
from yabot.stores.connect import mongo_client, sql_engine
from yabot.stores.engine import make_engine

POOL_ENV = {"SQL_POOL_SIZE": "7", "SQL_MAX_OVERFLOW": "3", "SQL_POOL_TIMEOUT": "2.5",
            "SQL_POOL_RECYCLE": "600", "SQL_CONNECT_TIMEOUT": "9"}


def pragmas(engine: Engine, connections: int) -> list[tuple[str, int, int]]:
    """(journal_mode, busy_timeout, foreign_keys) of ``connections`` connections held open
    together, so each is a different SQLite connection."""
    with ExitStack() as stack:
        opened = [stack.enter_context(engine.connect()) for _ in range(connections)]
        assert len({id(conn.connection.dbapi_connection) for conn in opened}) == connections
        return [
            (str(conn.execute(text("PRAGMA journal_mode")).scalar_one()),
             int(conn.execute(text("PRAGMA busy_timeout")).scalar_one()),
             int(conn.execute(text("PRAGMA foreign_keys")).scalar_one()))
            for conn in opened
        ]


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'pragmas.sqlite3'}", busy_timeout_ms=1234)
    yield engine
    engine.dispose()


def test_every_sqlite_connection_runs_wal_with_busy_timeout_and_foreign_keys(
    sqlite_engine: Engine,
) -> None:
    assert pragmas(sqlite_engine, 3) == [("wal", 1234, 1)] * 3
    sqlite_engine.dispose()  # connections made after the pool was emptied get them too
    assert pragmas(sqlite_engine, 2) == [("wal", 1234, 1)] * 2


def test_in_memory_sqlite_has_the_pragmas_and_ignores_the_pool_settings() -> None:
    # An in-memory database has no QueuePool: create_engine refuses these options for it.
    engine = make_engine("sqlite:///:memory:", busy_timeout_ms=77, pool_size=5,
                         max_overflow=2, pool_timeout=1.0)
    try:
        [(_, busy_timeout, foreign_keys)] = pragmas(engine, 1)
        assert (busy_timeout, foreign_keys) == (77, 1)
    finally:
        engine.dispose()


def test_sqlite_engine_takes_its_pool_and_busy_timeout_from_settings(
    make_settings: SettingsFactory, tmp_path: Path,
) -> None:
    settings = make_settings(**POOL_ENV, SQL_BUSY_TIMEOUT_MS="4321",
                             SQLITE_DATABASE_PATH=str(tmp_path / "settings.sqlite3"))
    engine = sql_engine(settings)
    try:
        assert_pool_from_settings(engine.pool)
        assert pragmas(engine, 1) == [("wal", 4321, 1)]
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_postgresql_engine_takes_its_pool_and_connect_timeout_from_settings(
    make_settings: SettingsFactory, postgres_url: str,
) -> None:
    engine = sql_engine(make_settings(**POOL_ENV, DATABASE_URL=postgres_url))
    try:
        assert engine.dialect.driver == "psycopg"
        assert_pool_from_settings(engine.pool)
        assert engine.pool._pre_ping is True
        with engine.connect() as conn:
            dbapi = conn.connection.dbapi_connection
            assert dbapi is not None
            parameters = dbapi.info.get_parameters()
        assert parameters["connect_timeout"] == "9"
    finally:
        engine.dispose()


def assert_pool_from_settings(pool: Any) -> None:
    assert (pool.size(), pool.timeout()) == (7, 2.5)
    # QueuePool keeps these two without public accessors.
    assert (pool._max_overflow, pool._recycle) == (3, 600)


def test_mongo_client_takes_pool_timeouts_and_app_name_from_settings(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings(
        MONGODB_URI="mongodb://mongo.invalid:27017", MONGODB_APP_NAME="yabot-test",
        MONGODB_MAX_POOL_SIZE="17", MONGODB_CONNECT_TIMEOUT_MS="1500",
        MONGODB_SERVER_SELECTION_TIMEOUT_MS="2500", MONGODB_SOCKET_TIMEOUT_MS="3500",
    )
    # connect=False: the client is built exactly as in production but starts no monitor.
    client = mongo_client(settings, factory=functools.partial(MongoClient, connect=False))
    try:
        options = client.options
        pool = options.pool_options
        assert (pool.max_pool_size, pool.connect_timeout, pool.socket_timeout) == (
            17, 1.5, 3.5)
        assert options.server_selection_timeout == 2.5
        assert pool.appname == "yabot-test"
        assert pool.metadata["application"] == {"name": "yabot-test"}
        assert options.codec_options.tz_aware is True
    finally:
        client.close()
