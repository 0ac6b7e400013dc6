"""Writing jobs: `schedule` and `cancel` run on a caller's connection, so a job can be
written in the same transaction as the change that calls for it (an event handler's, say)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, delete
from sqlalchemy.dialects import postgresql, sqlite

from yabot.stores.tables import scheduled_jobs


class Job(BaseModel):
    """A job as the scheduler hands it to its handler."""

    model_config = ConfigDict(frozen=True)

    id: int
    key: str
    kind: str
    user_id: int | None
    payload: dict[str, Any]
    due_at: datetime
    version: int
    attempts: int


def schedule(conn: Connection, key: str, kind: str, due_at: datetime, *,
             user_id: int | None = None, payload: dict[str, Any] | None = None) -> None:
    """Make job ``key`` due at ``due_at``: creates it, or moves an existing one (a new
    version: a firing of the old one that is in flight will not delete it)."""
    values = {
        "key": key, "kind": kind, "user_id": user_id, "payload": payload or {},
        "due_at": due_at.astimezone(UTC), "version": 1, "attempts": 0,
        "lease_owner": None, "lease_until": None, "created_at": datetime.now(UTC),
    }
    dialect_insert: Any = sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert
    statement = dialect_insert(scheduled_jobs).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=[scheduled_jobs.c.key],
        set_={"kind": kind, "user_id": user_id, "payload": payload or {},
              "due_at": values["due_at"], "version": scheduled_jobs.c.version + 1,
              "attempts": 0, "lease_owner": None, "lease_until": None},
    )
    conn.execute(statement)


def cancel(conn: Connection, key: str) -> bool:
    """Remove job ``key``; True if there was one."""
    return conn.execute(delete(scheduled_jobs).where(scheduled_jobs.c.key == key)).rowcount > 0
