"""One migration at a time per database, however many processes start at once.

`gunicorn -w N`, several hosts, or a release phase running while old workers restart: each
may find the schema behind and migrate. Without a lock two of them create ``alembic_version``
together and one dies on a unique violation. Whoever holds this lock re-reads the revision
before acting, so the first migrates and the others find the schema at head.

- PostgreSQL: a session-level ``pg_advisory_lock`` on its own connection, keyed by the
  schema (``current_schema()``), so databases and schemas do not wait for each other; it is
  released when the connection closes, even if the process dies.
- SQLite: an exclusive ``flock`` on ``<file>.migrate.lock`` next to the database file; the
  kernel releases it when the process dies. An in-memory database has one user: no lock.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

#: First half of the advisory lock's key: "yabot migrate" (any constant; the schema is the
#: second half).
ADVISORY_LOCK_CLASS = 0x7961626F  # "yabo"


@contextmanager
def migration_lock(engine: Engine) -> Iterator[None]:
    """Hold the database's migration lock for the ``with`` block (blocks while another
    process holds it)."""
    backend = engine.dialect.name
    if backend == "postgresql":
        with _advisory_lock(engine):
            yield
        return
    database = make_url(str(engine.url)).database
    if backend == "sqlite" and database and database != ":memory:":
        with _file_lock(Path(database).with_name(Path(database).name + ".migrate.lock")):
            yield
        return
    yield


@contextmanager
def _advisory_lock(engine: Engine) -> Iterator[None]:
    with engine.connect() as conn:
        params = {"cls": ADVISORY_LOCK_CLASS}
        conn.execute(text("SELECT pg_advisory_lock(:cls, hashtext(current_schema()))"), params)
        conn.commit()  # the lock is the session's, not the transaction's
        try:
            yield
        finally:
            conn.rollback()
            conn.execute(text("SELECT pg_advisory_unlock(:cls, hashtext(current_schema()))"),
                         params)
            conn.commit()


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
