"""Alembic environment: always run from `yabot.stores.migrate` with a connection attached.

``render_as_batch`` lets ALTERs work on SQLite (copy-and-move); ``compare_type`` makes
autogenerate notice column type changes.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from yabot.stores.tables import metadata

connection: Connection | None = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through yabot.stores.migrate (yabot migrate)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
