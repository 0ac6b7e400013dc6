"""Repositories on SQLAlchemy: the relational tables and the embedded `sql` document backend."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, Table, select
from sqlalchemy.dialects import postgresql, sqlite

from yabot.domain.users import UserDocument, UserProfile
from yabot.stores.tables import user_documents, user_profiles


def insert_if_absent(conn: Connection, table: Table, values: dict[str, Any]) -> bool:
    """``INSERT … ON CONFLICT DO NOTHING RETURNING pk``; True when the row was inserted.

    RETURNING, not rowcount: psycopg 3 reports -1 for this statement.
    """
    dialect = conn.dialect.name
    insert: Any
    if dialect == "sqlite":
        insert = sqlite.insert
    elif dialect == "postgresql":
        insert = postgresql.insert
    else:
        raise NotImplementedError(f"no conflict-ignoring insert for {dialect}")
    statement = (
        insert(table).values(**values).on_conflict_do_nothing()
        .returning(*table.primary_key.columns)
    )
    return conn.execute(statement).first() is not None


class SqlUserProfiles:
    """`UserProfiles` on the ``user_profiles`` table."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def get(self, user_id: int) -> UserProfile | None:
        with self._engine.connect() as conn:
            row = conn.execute(
                select(user_profiles).where(user_profiles.c.user_id == user_id)
            ).mappings().first()
        return UserProfile.model_validate(dict(row)) if row is not None else None

    def create_if_absent(self, profile: UserProfile) -> bool:
        with self._engine.begin() as conn:
            return insert_if_absent(conn, user_profiles, profile.model_dump())


class SqlUserDocuments:
    """`UserDocuments` as JSON in the ``user_documents`` table (the embedded default)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def get(self, user_id: int) -> UserDocument | None:
        with self._engine.connect() as conn:
            body = conn.execute(
                select(user_documents.c.document).where(user_documents.c.user_id == user_id)
            ).scalar_one_or_none()
        return UserDocument.model_validate(body) if body is not None else None

    def create_if_absent(self, document: UserDocument) -> tuple[UserDocument, bool]:
        with self._engine.begin() as conn:
            created = insert_if_absent(
                conn, user_documents,
                {"user_id": document.user_id, "document": document.model_dump(mode="json")},
            )
        if created:
            return document, True
        existing = self.get(document.user_id)
        assert existing is not None  # rows are never deleted
        return existing, False
