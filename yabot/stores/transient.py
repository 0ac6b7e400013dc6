"""Which store errors are worth retrying: the ones that say "try again", never a bad query.

A transient error is retried with backoff and counts against the circuit breaker; anything
else (a constraint violation, a validator rejection, a programming error) goes straight back
to the caller and tells the breaker nothing about the store's health.
"""

from __future__ import annotations

from pymongo.errors import AutoReconnect, NetworkTimeout, ServerSelectionTimeoutError
from sqlalchemy import exc as sa_exc

# SQLite's messages for a lock another connection holds longer than busy_timeout.
_SQLITE_LOCKED = ("database is locked", "database table is locked", "database schema is locked")
# PostgreSQL SQLSTATEs: connection exceptions (class 08), serialization failure, deadlock,
# and the server shutting a session down (admin shutdown, crash shutdown, cannot connect now).
_PG_TRANSIENT_STATES = {"40001", "40P01", "57P01", "57P02", "57P03"}


def is_transient_sql(error: BaseException) -> bool:
    """True for a lock timeout, a dropped or refused connection, a pool timeout, a deadlock."""
    if isinstance(error, sa_exc.TimeoutError):  # no pooled connection came free in time
        return True
    if not isinstance(error, sa_exc.DBAPIError):
        return False
    if error.connection_invalidated:  # SQLAlchemy saw the connection drop ("disconnect")
        return True
    if not isinstance(error, sa_exc.OperationalError):
        return False
    message = str(error.orig).lower()
    if any(text in message for text in _SQLITE_LOCKED):
        return True
    sqlstate = getattr(error.orig, "sqlstate", None)
    if sqlstate is None:
        # psycopg raises OperationalError without a SQLSTATE when it cannot reach the server;
        # SQLite's other OperationalErrors ("no such table") are not transient.
        return type(error.orig).__module__.startswith("psycopg")
    return str(sqlstate).startswith("08") or sqlstate in _PG_TRANSIENT_STATES


def is_transient_mongo(error: BaseException) -> bool:
    """True for pymongo's "the server is (temporarily) unreachable" errors."""
    return isinstance(error, AutoReconnect | ServerSelectionTimeoutError | NetworkTimeout)
