"""Event fixtures: a private redis-server (killable), the local Redis with a per-run key
prefix, and a SQLite file with the schema."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine

from tests.support.redis_server import MISSING, RedisServer, no_retry, redis_server_binary
from tests.support.waiting import ASK
from yabot.stores.engine import make_engine
from yabot.stores.tables import metadata

REDIS_TEST_URL = os.environ.get("REDIS_TEST_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, on a free port; the test may kill and restart it."""
    binary = redis_server_binary()
    if binary is None:
        pytest.skip(MISSING)
    server = RedisServer(tmp_path / "redis", binary).start()
    yield server
    server.stop()


@pytest.fixture
def local_redis() -> Iterator[tuple[str, str]]:
    """``(url, key_prefix)`` on the shared local Redis; every key under the prefix is deleted
    afterwards. Skips when nothing answers at REDIS_TEST_URL."""
    client = redis.Redis.from_url(REDIS_TEST_URL, socket_timeout=ASK, retry=no_retry())
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        pytest.skip(
            f"Redis is not reachable at {REDIS_TEST_URL} ({type(exc).__name__}); "
            "start it or set REDIS_TEST_URL"
        )
    prefix = f"yabot-test:{uuid.uuid4().hex[:12]}:"
    yield REDIS_TEST_URL, prefix
    for key in client.scan_iter(match=prefix + "*"):
        client.delete(key)
    client.close()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """A SQLite file (WAL) with every table, as the SQL store creates it."""
    engine = make_engine(f"sqlite:///{tmp_path / 'events.sqlite3'}")
    metadata.create_all(engine)
    yield engine
    engine.dispose()
