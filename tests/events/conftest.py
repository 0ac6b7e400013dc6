"""Event fixtures: a private redis-server (killable) and a SQLite file with the schema. The
local Redis with a per-test key prefix is the suite-wide `local_redis` fixture."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.support.redis_server import MISSING, RedisServer, redis_server_binary
from yabot.stores.engine import make_engine
from yabot.stores.tables import metadata


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
def engine(tmp_path: Path) -> Iterator[Engine]:
    """A SQLite file (WAL) with every table, as the SQL store creates it."""
    engine = make_engine(f"sqlite:///{tmp_path / 'events.sqlite3'}")
    metadata.create_all(engine)
    yield engine
    engine.dispose()
