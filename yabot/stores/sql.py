"""Repositories on SQLAlchemy: the relational tables and the embedded `sql` document backend.

Every public method is one guarded unit of work (`StoreGuard`): one transaction, retried as a
whole on transient errors, so a retry never applies half of anything.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, Table, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite

from yabot.domain.besitos import BalanceChange, LedgerEntry, positive
from yabot.domain.items import Item
from yabot.domain.narrative import Fragment
from yabot.domain.users import UserDocument, UserProfile
from yabot.errors import InvalidRecord, UserNotFound
from yabot.stores.guard import StoreGuard
from yabot.stores.handles import DocumentRepositories
from yabot.stores.tables import (
    besitos_ledger,
    items,
    narrative_fragments,
    user_documents,
    user_profiles,
)
from yabot.stores.transient import is_transient_sql


def sql_guard(name: str = "sql") -> StoreGuard:
    """A guard with the default policy and breaker, for repositories built outside a store."""
    return StoreGuard(name, is_transient=is_transient_sql)


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


def upsert(conn: Connection, table: Table, values: dict[str, Any]) -> None:
    """``INSERT … ON CONFLICT (pk) DO UPDATE``: the row ends up holding ``values``."""
    insert: Any = sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert
    statement = insert(table).values(**values)
    keys = [column.name for column in table.primary_key.columns]
    statement = statement.on_conflict_do_update(
        index_elements=keys,
        set_={name: statement.excluded[name] for name in values if name not in keys},
    )
    conn.execute(statement)


def constraint_error(error: sa_exc.IntegrityError) -> InvalidRecord:
    """Name the violated constraint (they are all named, see `tables.metadata`)."""
    message = str(error.orig)
    diag = getattr(error.orig, "diag", None)
    name = getattr(diag, "constraint_name", None)
    if name is None:  # SQLite: "CHECK constraint failed: ck_…" / "FOREIGN KEY constraint failed"
        name = message.rsplit(":", 1)[-1].strip() if ":" in message else message
    return InvalidRecord(str(name), "constraint violated")


class SqlUserProfiles:
    """`UserProfiles` on the ``user_profiles`` table."""

    def __init__(self, engine: Engine, guard: StoreGuard | None = None) -> None:
        self._engine = engine
        self._guard = guard or sql_guard()

    def get(self, user_id: int) -> UserProfile | None:
        def read() -> UserProfile | None:
            with self._engine.connect() as conn:
                row = conn.execute(
                    select(user_profiles).where(user_profiles.c.user_id == user_id)
                ).mappings().first()
            return UserProfile.model_validate(dict(row)) if row is not None else None

        return self._guard.run(read, "get profile")

    def create_if_absent(self, profile: UserProfile) -> bool:
        def write() -> bool:
            with self._engine.begin() as conn:
                return insert_if_absent(conn, user_profiles, profile.model_dump())

        return self._guard.run(write, "create profile")


class SqlUserDocuments:
    """`UserDocuments` as JSON in the ``user_documents`` table (the embedded default)."""

    def __init__(self, engine: Engine, guard: StoreGuard | None = None) -> None:
        self._engine = engine
        self._guard = guard or sql_guard()

    def get(self, user_id: int) -> UserDocument | None:
        def read() -> UserDocument | None:
            with self._engine.connect() as conn:
                row = conn.execute(
                    select(user_documents.c.document, user_documents.c.besitos)
                    .where(user_documents.c.user_id == user_id)
                ).first()
            if row is None:
                return None
            return UserDocument.model_validate({**row.document, "besitos": row.besitos})

        return self._guard.run(read, "get user")

    def create_if_absent(self, document: UserDocument) -> tuple[UserDocument, bool]:
        def write() -> bool:
            with self._engine.begin() as conn:
                return insert_if_absent(
                    conn, user_documents,
                    {"user_id": document.user_id, "besitos": document.besitos,
                     "document": document.model_dump(mode="json", exclude={"besitos"})},
                )

        if self._guard.run(write, "create user"):
            return document, True
        existing = self.get(document.user_id)
        assert existing is not None  # rows are never deleted
        return existing, False


class SqlNarrativeFragments:
    """`NarrativeFragments` as JSON in the ``narrative_fragments`` table."""

    def __init__(self, engine: Engine, guard: StoreGuard | None = None) -> None:
        self._engine = engine
        self._guard = guard or sql_guard()

    def get(self, fragment_id: str) -> Fragment | None:
        def read() -> Fragment | None:
            with self._engine.connect() as conn:
                body = conn.execute(
                    select(narrative_fragments.c.document)
                    .where(narrative_fragments.c.fragment_id == fragment_id)
                ).scalar_one_or_none()
            return Fragment.model_validate(body) if body is not None else None

        return self._guard.run(read, "get fragment")

    def put(self, fragment: Fragment) -> None:
        def write() -> None:
            with self._engine.begin() as conn:
                upsert(conn, narrative_fragments, {
                    "fragment_id": fragment.fragment_id,
                    "document": fragment.model_dump(mode="json"),
                })

        self._guard.run(write, "put fragment")


class SqlItemCatalogue:
    """`ItemCatalogue` as JSON in the ``items`` table."""

    def __init__(self, engine: Engine, guard: StoreGuard | None = None) -> None:
        self._engine = engine
        self._guard = guard or sql_guard()

    def get(self, sku: str) -> Item | None:
        def read() -> Item | None:
            with self._engine.connect() as conn:
                body = conn.execute(
                    select(items.c.document).where(items.c.sku == sku)
                ).scalar_one_or_none()
            return Item.model_validate(body) if body is not None else None

        return self._guard.run(read, "get item")

    def put(self, item: Item) -> None:
        def write() -> None:
            with self._engine.begin() as conn:
                upsert(conn, items, {"sku": item.sku, "document": item.model_dump(mode="json")})

        self._guard.run(write, "put item")

    def all(self) -> list[Item]:
        def read() -> list[Item]:
            with self._engine.connect() as conn:
                bodies = conn.execute(select(items.c.document).order_by(items.c.sku)).scalars()
                return [Item.model_validate(body) for body in bodies]

        return self._guard.run(read, "list items")


class SqlBesitosLedger:
    """`BesitosLedger` on ``user_documents.besitos`` and the ``besitos_ledger`` table.

    A change is one transaction: the conditional ``UPDATE … WHERE besitos >= :n RETURNING``
    (which row-locks the user on PostgreSQL and takes the write lock on SQLite), then the
    ledger row; a key already in the ledger rolls the whole transaction back.
    """

    def __init__(self, engine: Engine, guard: StoreGuard | None = None) -> None:
        self._engine = engine
        self._guard = guard or sql_guard()

    def debit(self, user_id: int, amount: int, key: str, reason: str = "") -> BalanceChange:
        return self._change(user_id, -positive(amount), key, reason)

    def credit(self, user_id: int, amount: int, key: str, reason: str = "") -> BalanceChange:
        return self._change(user_id, positive(amount), key, reason)

    def _change(self, user_id: int, delta: int, key: str, reason: str) -> BalanceChange:
        # Validate before touching the store (raises pydantic's ValidationError on bad input).
        LedgerEntry(key=key, user_id=user_id, amount=delta, balance_after=0, reason=reason)
        balance = user_documents.c.besitos
        statement = (
            update(user_documents)
            .where(user_documents.c.user_id == user_id)
            .values(besitos=balance + delta)
            .returning(balance)
        )
        if delta < 0:
            statement = statement.where(balance >= -delta)

        def apply() -> BalanceChange:
            with self._engine.connect() as conn:
                transaction = conn.begin()
                after = conn.execute(statement).scalar_one_or_none()
                if after is not None:
                    entry = LedgerEntry(key=key, user_id=user_id, amount=delta,
                                        balance_after=after, reason=reason)
                    if insert_if_absent(conn, besitos_ledger, entry.model_dump()):
                        transaction.commit()
                        return BalanceChange(applied=True, balance=after)
                transaction.rollback()  # too poor, unknown user, or the key was used before
                current = conn.execute(
                    select(balance).where(user_documents.c.user_id == user_id)
                ).scalar_one_or_none()
                conn.rollback()
            if current is None:
                raise UserNotFound(user_id)
            return BalanceChange(applied=False, balance=current)

        return self._guard.run(apply, "debit" if delta < 0 else "credit")

    def entries(self, user_id: int, limit: int = 50) -> list[LedgerEntry]:
        def read() -> list[LedgerEntry]:
            with self._engine.connect() as conn:
                rows = conn.execute(
                    select(besitos_ledger).where(besitos_ledger.c.user_id == user_id)
                    .order_by(besitos_ledger.c.id.desc()).limit(limit)
                ).mappings().all()
            return [LedgerEntry.model_validate(dict(row)) for row in rows]

        return self._guard.run(read, "ledger entries")


def sql_documents(engine: Engine, guard: StoreGuard | None = None) -> DocumentRepositories:
    """Every document repository of the embedded `sql` backend, sharing one guard."""
    guard = guard or sql_guard()
    return DocumentRepositories(
        "sql", SqlUserDocuments(engine, guard), SqlNarrativeFragments(engine, guard),
        SqlItemCatalogue(engine, guard), SqlBesitosLedger(engine, guard),
    )
