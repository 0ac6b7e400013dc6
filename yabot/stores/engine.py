"""SQLAlchemy engines: SQLite tuned for concurrent use, PostgreSQL through psycopg 3."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from yabot.stores.retry import RetryPolicy, retry_call

SQLITE_BUSY_TIMEOUT_MS = 5000
#: Retries of the switch to WAL, about a second in all (see `_enable_wal`).
WAL_SWITCH_RETRY = RetryPolicy(attempts=12, base_delay=0.01, max_delay=0.2)


def normalise_url(url: str) -> str:
    """Use psycopg 3 for a bare ``postgresql://`` URL (SQLAlchemy would pick psycopg2)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(
    url: str, *, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS, **options: Any
) -> Engine:
    """An engine whose every SQLite connection runs in WAL mode with foreign keys on.

    WAL lets readers proceed during a write; ``busy_timeout`` makes a writer wait for the lock
    instead of failing at once with "database is locked". ``options`` go to `create_engine`
    (pool settings are ignored for an in-memory SQLite database, which has no pool).
    """
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, **options)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    else:
        options = {k: v for k, v in options.items() if not k.startswith("pool_")
                   and k != "max_overflow"}
    engine = create_engine(url, **options)

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        _enable_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


def _enable_wal(cursor: Any) -> None:
    """Switch the file to WAL. The switch of a fresh file takes an exclusive lock, and SQLite
    answers a concurrent switch "database is locked" at once, without waiting busy_timeout
    (measured: 27 of 150 rounds of 8 first connections at once on a new file failed so), so
    a locked switch is retried; once one connection made the file WAL, the switch is a no-op.
    """
    retry_call(lambda: cursor.execute("PRAGMA journal_mode=WAL"),
               is_transient=_locked, policy=WAL_SWITCH_RETRY, what="sqlite WAL switch")


def _locked(error: BaseException) -> bool:
    return isinstance(error, sqlite3.OperationalError) and "locked" in str(error)
