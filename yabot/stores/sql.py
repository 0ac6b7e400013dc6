"""Repositories on SQLAlchemy: the relational tables and the embedded `sql` document backend.

Every public method is one guarded unit of work (`StoreGuard`): one transaction, retried as a
whole on transient errors, so a retry never applies half of anything.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    Table,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import ScalarSelect

from yabot.crashpoints import crash_point
from yabot.domain.besitos import (
    MAX_BESITOS,
    BalanceChange,
    LedgerEntry,
    ensure_room,
    positive,
)
from yabot.domain.items import Item
from yabot.domain.ledger_pages import LedgerPage, LedgerPosition, decode_cursor, encode_cursor
from yabot.domain.narrative import Fragment
from yabot.domain.subscriptions import Subscription, SubscriptionStatus
from yabot.domain.users import UserChanges, UserDocument, UserProfile, utcnow
from yabot.errors import InvalidRecord, UserNotFound
from yabot.stores.guard import StoreGuard
from yabot.stores.handles import DocumentRepositories
from yabot.stores.outbox import (
    EventDrafts,
    OutboxRecord,
    PendingTransfer,
    handled_by,
    handled_window,
    no_events,
)
from yabot.stores.tables import (
    besitos_ledger,
    event_outbox,
    items,
    narrative_fragments,
    pending_transfers,
    subscriptions,
    user_documents,
    user_profiles,
    user_progress,
)
from yabot.stores.transient import is_transient_sql

T = TypeVar("T")


def sql_guard(name: str = "sql") -> StoreGuard:
    """A guard with the default policy and breaker, for repositories built outside a store."""
    return StoreGuard(name, is_transient=is_transient_sql)


def insert_if_absent(conn: Connection, table: Table, values: dict[str, Any]) -> bool:
    """``INSERT … ON CONFLICT DO NOTHING RETURNING pk``; True when the row was inserted.

    RETURNING, not rowcount: psycopg 3 reports -1 for this statement.
    """
    dialect = conn.dialect.name
    dialect_insert: Any
    if dialect == "sqlite":
        dialect_insert = sqlite.insert
    elif dialect == "postgresql":
        dialect_insert = postgresql.insert
    else:
        raise NotImplementedError(f"no conflict-ignoring insert for {dialect}")
    statement = (
        dialect_insert(table).values(**values).on_conflict_do_nothing()
        .returning(*table.primary_key.columns)
    )
    return conn.execute(statement).first() is not None


def upsert(conn: Connection, table: Table, values: dict[str, Any]) -> None:
    """``INSERT … ON CONFLICT (pk) DO UPDATE``: the row ends up holding ``values``."""
    dialect_insert: Any = sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert
    statement = dialect_insert(table).values(**values)
    keys = [column.name for column in table.primary_key.columns]
    statement = statement.on_conflict_do_update(
        index_elements=keys,
        set_={name: statement.excluded[name] for name in values if name not in keys},
    )
    conn.execute(statement)


def insert_outbox(conn: Connection, records: Sequence[OutboxRecord]) -> None:
    """Append ``records`` to ``event_outbox`` inside the caller's transaction."""
    if records:
        now = datetime.now(UTC)
        conn.execute(insert(event_outbox),
                     [{**record.as_document(), "created_at": now} for record in records])


def append_outbox(engine: Engine, records: Sequence[OutboxRecord]) -> None:
    """Append ``records`` in a transaction of their own, skipping any whose ``event_id`` is
    there already: how the `mongo` backend copies a user's parked events (idempotently)."""
    if not records:
        return
    now = datetime.now(UTC)
    with engine.begin() as conn:
        for record in records:
            insert_if_absent(conn, event_outbox, {**record.as_document(), "created_at": now})


def write_events(conn: Connection, user_id: int, last_seq: int, balance: int,
                 events: EventDrafts) -> int:
    """Build the drafts with the user's next ``seq``, advance ``event_seq`` past them and
    append them to the outbox, all in the caller's transaction (which must hold the user's
    row lock, so ``last_seq`` is current); returns the new ``event_seq``. The update the
    change was made for, if any, is recorded as handled in the same transaction."""
    records = events(last_seq + 1, balance)
    if not records:
        return last_seq
    conn.execute(update(user_documents).where(user_documents.c.user_id == user_id)
                 .values(event_seq=last_seq + len(records)))
    insert_outbox(conn, records)
    handled = handled_by(records)
    if handled is not None:
        remember_update(conn, user_id, handled.update_id, handled.window)
    return last_seq + len(records)


def remember_update(conn: Connection, user_id: int, update_id: int, window: int) -> None:
    """Record ``update_id`` in the user's window of handled updates, in the caller's
    transaction."""
    # Locks the row (a no-op update) or creates it, then rewrites the window: a concurrent
    # writer of the same user's window waits for this transaction, and reads its result.
    found = conn.execute(_LOCK_PROGRESS, {"uid": user_id}).first()
    if found is None:
        if insert_if_absent(conn, user_progress,
                            {"user_id": user_id, "handled_updates": [update_id]}):
            return
        found = conn.execute(_LOCK_PROGRESS, {"uid": user_id}).one()  # inserted meanwhile
    handled = handled_window(list(found.handled_updates or []), update_id, window)
    if handled is not None:
        conn.execute(update(user_progress).where(user_progress.c.user_id == user_id)
                     .values(handled_updates=handled))


_LOCK_PROGRESS = (
    update(user_progress).where(user_progress.c.user_id == bindparam("uid"))
    .values(handled_updates=user_progress.c.handled_updates)
    .returning(user_progress.c.handled_updates)
)


# The field each named constraint protects, for error messages: the constraints a
# repository write can run into. The ledger's CHECKs (``amount <> 0``, ``balance_after >= 0``)
# are a last line of defence the ledger's own validation never reaches (`positive` refuses a
# zero amount; ``balance_after`` is read back from the CHECKed balance); if one ever fires,
# the error names the constraint.
CONSTRAINT_FIELDS = {
    "ck_subscriptions_ends_after_start": "ends_at",
    "ck_subscriptions_subscription_plan": "plan",
    "ck_subscriptions_subscription_status": "status",
    "fk_subscriptions_user_id_user_profiles": "user_id",
    "ck_user_documents_besitos_not_negative": "besitos",
    "ck_user_documents_besitos_at_most_max": "besitos",
}


def constraint_error(error: sa_exc.IntegrityError) -> InvalidRecord:
    """`InvalidRecord` naming the field whose constraint the write violated."""
    message = str(error.orig)
    name = getattr(getattr(error.orig, "diag", None), "constraint_name", None)  # PostgreSQL
    if name is None and "FOREIGN KEY" in message:  # SQLite does not name a failed foreign key
        return InvalidRecord("user_id", "refers to no existing row")
    if name is None:  # SQLite: "CHECK constraint failed: ck_…"
        name = message.rsplit(":", 1)[-1].strip()
    return InvalidRecord(CONSTRAINT_FIELDS.get(str(name), str(name)), f"violates {name}")


def guarded_write(guard: StoreGuard, operation: Callable[[], T], what: str) -> T:
    """``guard.run(operation)`` with a constraint violation raised as `InvalidRecord`.

    The operation is one transaction, so a refused write leaves nothing behind.
    """
    try:
        return guard.run(operation, what)
    except sa_exc.IntegrityError as exc:
        raise constraint_error(exc) from exc


# One-row reads, built once (building a statement per call costs more than running it on
# SQLite) and shared by the repositories and `yabot.stores.context`.
_PROFILE = select(user_profiles).where(user_profiles.c.user_id == bindparam("uid"))
_DOCUMENT = select(user_documents.c.document, user_documents.c.besitos).where(
    user_documents.c.user_id == bindparam("uid")
)
_DOCUMENTS = select(user_documents.c.user_id, user_documents.c.document,
                    user_documents.c.besitos).where(
    user_documents.c.user_id.in_(bindparam("uids", expanding=True))
)
_PROFILES = select(user_profiles).where(
    user_profiles.c.user_id.in_(bindparam("uids", expanding=True))
)
_CURRENT_SUBSCRIPTION = (
    select(subscriptions)
    .where(subscriptions.c.user_id == bindparam("uid"),
           subscriptions.c.status == SubscriptionStatus.ACTIVE.value)
    .order_by(subscriptions.c.id.desc()).limit(1)
)
# The newest subscription whatever its status: what a user's plan reads as now is decided at
# access time (`yabot.services.subscriptions.subscription_view`), so an expired or cancelled
# one shows as such instead of as no plan.
_LATEST_SUBSCRIPTION = (
    select(subscriptions)
    .where(subscriptions.c.user_id == bindparam("uid"))
    .order_by(subscriptions.c.id.desc()).limit(1)
)
# A user's document, profile and newest subscription as one row (a document always exists
# where the other two do): one statement, one round trip, instead of three.
_OLDER = subscriptions.alias("older")


def _newest_subscription_id(user_id: ColumnElement[int], table: Table) -> ScalarSelect[int]:
    """The id of the newest subscription of the user ``user_id`` (a column of ``table``)."""
    return (select(_OLDER.c.id).where(_OLDER.c.user_id == user_id)
            .order_by(_OLDER.c.id.desc()).limit(1).correlate(table).scalar_subquery())


_CONTEXT_COLUMNS = (
    user_documents.c.document, user_documents.c.besitos,
    *[c.label(f"profile_{c.name}") for c in user_profiles.c],
    *[c.label(f"subscription_{c.name}") for c in subscriptions.c],
)
_CONTEXT_FROM = (
    user_documents
    .outerjoin(user_profiles, user_profiles.c.user_id == user_documents.c.user_id)
    .outerjoin(subscriptions, subscriptions.c.id == _newest_subscription_id(
        user_documents.c.user_id, user_documents))
)
_DOCUMENT_CONTEXT = (
    select(*_CONTEXT_COLUMNS).select_from(_CONTEXT_FROM)
    .where(user_documents.c.user_id == bindparam("uid"))
)
# The same row for many users at once (`read_document_contexts`), each led by its user id.
_DOCUMENT_CONTEXTS = (
    select(user_documents.c.user_id.label("context_user_id"), *_CONTEXT_COLUMNS)
    .select_from(_CONTEXT_FROM)
    .where(user_documents.c.user_id.in_(bindparam("uids", expanding=True)))
)
# The newest subscription of each of many users (`read_latest_subscriptions`).
_LATEST_SUBSCRIPTIONS = select(subscriptions).where(
    subscriptions.c.user_id.in_(bindparam("uids", expanding=True)),
    subscriptions.c.id == _newest_subscription_id(subscriptions.c.user_id, subscriptions),
)
# (label in that row, model field)
_PROFILE_LABELS = [(f"profile_{c.name}", c.name) for c in user_profiles.c]
_SUBSCRIPTION_LABELS = [(f"subscription_{c.name}", c.name) for c in subscriptions.c]


def _stored_document(body: dict[str, Any], besitos: int) -> UserDocument:
    """A user document as stored: the JSON body, and the balance from its own column (where
    conditional updates change it)."""
    return UserDocument.model_validate({**body, "besitos": besitos})


def read_profile(conn: Connection, user_id: int) -> UserProfile | None:
    row = conn.execute(_PROFILE, {"uid": user_id}).mappings().first()
    return UserProfile.model_validate(dict(row)) if row is not None else None


def read_document(conn: Connection, user_id: int) -> UserDocument | None:
    row = conn.execute(_DOCUMENT, {"uid": user_id}).first()
    if row is None:
        return None
    return _stored_document(row.document, row.besitos)


def read_document_context(
    conn: Connection, user_id: int,
) -> tuple[UserDocument | None, UserProfile | None, Subscription | None]:
    """The user's document, profile and newest subscription in one statement, for documents
    kept on this engine; all None when there is no document."""
    row = conn.execute(_DOCUMENT_CONTEXT, {"uid": user_id}).first()
    return _context_parts(row._mapping) if row is not None else (None, None, None)


def read_document_contexts(
    conn: Connection, user_ids: Sequence[int],
) -> dict[int, tuple[UserDocument, UserProfile | None, Subscription | None]]:
    """`read_document_context` for each of ``user_ids`` that has a document, in one
    statement (a few hundred ids at a time: every id is a bound parameter)."""
    rows = conn.execute(_DOCUMENT_CONTEXTS, {"uids": list(user_ids)})
    return {row.context_user_id: _context_parts(row._mapping) for row in rows}


def _context_parts(
    fields: Mapping[Any, Any],
) -> tuple[UserDocument, UserProfile | None, Subscription | None]:
    document = _stored_document(fields["document"], fields["besitos"])
    profile = (UserProfile.model_validate({name: fields[label] for label, name in _PROFILE_LABELS})
               if fields["profile_user_id"] is not None else None)
    subscription = (Subscription.model_validate(
        {name: fields[label] for label, name in _SUBSCRIPTION_LABELS})
        if fields["subscription_id"] is not None else None)
    return document, profile, subscription


def read_current_subscription(conn: Connection, user_id: int) -> Subscription | None:
    row = conn.execute(_CURRENT_SUBSCRIPTION, {"uid": user_id}).mappings().first()
    return Subscription.model_validate(dict(row)) if row is not None else None


def read_latest_subscription(conn: Connection, user_id: int) -> Subscription | None:
    row = conn.execute(_LATEST_SUBSCRIPTION, {"uid": user_id}).mappings().first()
    return Subscription.model_validate(dict(row)) if row is not None else None


def read_profiles(conn: Connection, user_ids: Sequence[int]) -> dict[int, UserProfile]:
    """`read_profile` for each of ``user_ids`` that has a profile, in one statement."""
    rows = conn.execute(_PROFILES, {"uids": list(user_ids)}).mappings()
    return {row["user_id"]: UserProfile.model_validate(dict(row)) for row in rows}


def read_latest_subscriptions(conn: Connection, user_ids: Sequence[int]
                              ) -> dict[int, Subscription]:
    """`read_latest_subscription` for each of ``user_ids`` that has one, in one statement."""
    rows = conn.execute(_LATEST_SUBSCRIPTIONS, {"uids": list(user_ids)}).mappings()
    return {row["user_id"]: Subscription.model_validate(dict(row)) for row in rows}


class SqlUserProfiles:
    """`UserProfiles` on the ``user_profiles`` table."""

    def __init__(self, engine: Engine, guard: StoreGuard | None = None) -> None:
        self._engine = engine
        self._guard = guard or sql_guard()

    def get(self, user_id: int) -> UserProfile | None:
        def read() -> UserProfile | None:
            with self._engine.connect() as conn:
                return read_profile(conn, user_id)

        return self._guard.run(read, "get profile")

    def create_if_absent(self, profile: UserProfile) -> bool:
        def write() -> bool:
            with self._engine.begin() as conn:
                return insert_if_absent(conn, user_profiles, profile.model_dump())

        return guarded_write(self._guard, write, "create profile")


class SqlUserDocuments:
    """`UserDocuments` as JSON in the ``user_documents`` table (the embedded default)."""

    def __init__(self, engine: Engine, guard: StoreGuard | None = None) -> None:
        self._engine = engine
        self._guard = guard or sql_guard()

    def get(self, user_id: int) -> UserDocument | None:
        def read() -> UserDocument | None:
            with self._engine.connect() as conn:
                return read_document(conn, user_id)

        return self._guard.run(read, "get user")

    def get_many(self, user_ids: Sequence[int]) -> dict[int, UserDocument]:
        def read() -> dict[int, UserDocument]:
            with self._engine.connect() as conn:
                rows = conn.execute(_DOCUMENTS, {"uids": list(user_ids)})
                return {row.user_id: _stored_document(row.document, row.besitos)
                        for row in rows}

        return self._guard.run(read, "get users")

    def create_if_absent(self, document: UserDocument) -> tuple[UserDocument, bool]:
        def write() -> bool:
            with self._engine.begin() as conn:
                return insert_if_absent(
                    conn, user_documents,
                    {"user_id": document.user_id, "besitos": document.besitos,
                     "document": document.model_dump(mode="json", exclude={"besitos"})},
                )

        if guarded_write(self._guard, write, "create user"):
            return document, True
        existing = self.get(document.user_id)
        assert existing is not None  # rows are never deleted
        return existing, False

    # Locks the row first (the write lock on SQLite, a row lock on PostgreSQL) and reads it,
    # so the read-modify-write below never loses a concurrent change.
    _lock = (
        update(user_documents).where(user_documents.c.user_id == bindparam("uid"))
        .values(besitos=user_documents.c.besitos)
        .returning(user_documents.c.document, user_documents.c.besitos,
                   user_documents.c.event_seq)
    )

    def _modify(self, user_id: int, change: Any, what: str, events: EventDrafts,
                settles: str | None = None) -> UserDocument:
        def write() -> UserDocument | None:
            with self._engine.begin() as conn:
                row = conn.execute(self._lock, {"uid": user_id}).first()
                if row is None:
                    return None
                body = change(dict(row.document))
                if body != row.document:
                    conn.execute(update(user_documents)
                                 .where(user_documents.c.user_id == user_id)
                                 .values(document=body))
                write_events(conn, user_id, row.event_seq, row.besitos, events)
                if settles is not None:
                    conn.execute(delete(pending_transfers)
                                 .where(pending_transfers.c.key == settles))
                crash_point("store-before-commit")
            crash_point("store-after-commit")
            return _stored_document(body, row.besitos)

        found: UserDocument | None = guarded_write(self._guard, write, what)
        if found is None:
            raise UserNotFound(user_id)
        return found

    def update(self, user_id: int, changes: UserChanges, *,
               events: EventDrafts = no_events) -> UserDocument:
        fields = changes.fields()
        return self._modify(user_id, lambda body: {**body, **fields}, "update user", events)

    def add_to_inventory(self, user_id: int, sku: str, *, events: EventDrafts = no_events,
                         settles: str | None = None) -> UserDocument:
        def add(body: dict[str, Any]) -> dict[str, Any]:
            inventory = list(body.get("inventory", []))
            return body if sku in inventory else {**body, "inventory": [*inventory, sku]}

        return self._modify(user_id, add, "add to inventory", events, settles)

    def record_events(self, user_id: int, events: EventDrafts) -> UserDocument:
        return self._modify(user_id, lambda body: body, "record events", events)

    def flush_parked(self, limit: int = 100) -> int:
        return 0  # events are written to the outbox in the change's own transaction


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

        guarded_write(self._guard, write, "put fragment")


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

        guarded_write(self._guard, write, "put item")

    def all(self) -> list[Item]:
        def read() -> list[Item]:
            with self._engine.connect() as conn:
                bodies = conn.execute(select(items.c.document).order_by(items.c.sku)).scalars()
                return [Item.model_validate(body) for body in bodies]

        return self._guard.run(read, "list items")


class _RowPosition(LedgerPosition):
    """A ledger entry's place on the ``sql`` backend: its row id."""

    id: int


class SqlBesitosLedger:
    """`BesitosLedger` on ``user_documents.besitos`` and the ``besitos_ledger`` table.

    A change is one transaction: the conditional ``UPDATE … WHERE besitos >= :n RETURNING``
    (which row-locks the user on PostgreSQL and takes the write lock on SQLite), then the
    ledger row; a key already in the ledger rolls the whole transaction back.
    """

    def __init__(self, engine: Engine, guard: StoreGuard | None = None) -> None:
        self._engine = engine
        self._guard = guard or sql_guard()
        # Built once with bound parameters: building statements per call cost more than the
        # SQLite work itself (bench/stores.py).
        balance = user_documents.c.besitos
        credit = (
            update(user_documents)
            .where(user_documents.c.user_id == bindparam("uid"))
            .values(besitos=balance + bindparam("delta"))
            .returning(balance, user_documents.c.event_seq)
        )
        # ``room`` is MAX_BESITOS - delta: a credit never takes the balance past the limit
        # (the CHECK would refuse it too, but as an error instead of "not applied").
        self._credit = credit.where(balance <= bindparam("room"))
        self._debit = credit.where(balance >= -bindparam("delta"))
        dialect_insert: Any = (sqlite.insert if engine.dialect.name == "sqlite"
                               else postgresql.insert)
        self._record = (dialect_insert(besitos_ledger).on_conflict_do_nothing()
                        .returning(besitos_ledger.c.id))
        self._balance = select(balance).where(user_documents.c.user_id == bindparam("uid"))

    def debit(self, user_id: int, amount: int, key: str, reason: str = "",
              request: str | None = None, *, events: EventDrafts = no_events,
              pending: PendingTransfer | None = None) -> BalanceChange:
        return self._change(user_id, -positive(amount), key, reason, request, events,
                            pending=pending)

    def credit(self, user_id: int, amount: int, key: str, reason: str = "",
               request: str | None = None, *, events: EventDrafts = no_events,
               settles: str | None = None) -> BalanceChange:
        return self._change(user_id, positive(amount), key, reason, request, events,
                            settles=settles)

    def _change(self, user_id: int, delta: int, key: str, reason: str,
                request: str | None, events: EventDrafts, *,
                pending: PendingTransfer | None = None,
                settles: str | None = None) -> BalanceChange:
        # Validate before touching the store (raises pydantic's ValidationError on bad input).
        entry = LedgerEntry(key=key, user_id=user_id, amount=delta, balance_after=0,
                            reason=reason, request=request).model_dump()
        statement = self._debit if delta < 0 else self._credit
        parameters = {"uid": user_id, "delta": delta, "room": MAX_BESITOS - delta}

        def apply() -> BalanceChange:
            with self._engine.connect() as conn:
                transaction = conn.begin()
                row = conn.execute(statement, parameters).first()
                if row is not None:
                    after = row.besitos
                    recorded = conn.execute(self._record, {**entry, "balance_after": after})
                    if recorded.first() is not None:
                        # The change's events, and the rest of its workflow, commit with it.
                        write_events(conn, user_id, row.event_seq, after, events)
                        if pending is not None:
                            conn.execute(insert(pending_transfers).values(
                                **pending.as_document()))
                        if settles is not None:
                            conn.execute(delete(pending_transfers)
                                         .where(pending_transfers.c.key == settles))
                        crash_point("store-before-commit")
                        transaction.commit()
                        crash_point("store-after-commit")
                        return BalanceChange(applied=True, balance=after)
                transaction.rollback()  # too poor, unknown user, or the key was used before
                current = conn.execute(self._balance, {"uid": user_id}).scalar_one_or_none()
                # A credit that found no room and is not a replay is over the limit.
                over = (delta > 0 and current is not None
                        and conn.execute(self._by_key, {"key": key}).first() is None)
                conn.rollback()
            if current is None:
                raise UserNotFound(user_id)
            if over:
                ensure_room(current, delta)
            return BalanceChange(applied=False, balance=current)

        return guarded_write(self._guard, apply, "debit" if delta < 0 else "credit")

    def pending_transfers(self, older_than: datetime, limit: int = 100
                          ) -> list[PendingTransfer]:
        def read() -> list[PendingTransfer]:
            with self._engine.connect() as conn:
                rows = conn.execute(
                    select(pending_transfers).where(pending_transfers.c.created_at <= older_than)
                    .order_by(pending_transfers.c.created_at).limit(limit)
                ).mappings().all()
            return [PendingTransfer(**dict(row)) for row in rows]

        return self._guard.run(read, "pending transfers")

    def settle(self, key: str) -> bool:
        def write() -> bool:
            with self._engine.begin() as conn:
                return conn.execute(
                    delete(pending_transfers).where(pending_transfers.c.key == key)
                    .returning(pending_transfers.c.key)
                ).first() is not None

        return guarded_write(self._guard, write, "settle transfer")

    def entries(self, user_id: int, limit: int = 50) -> list[LedgerEntry]:
        def read() -> list[LedgerEntry]:
            with self._engine.connect() as conn:
                rows = conn.execute(
                    select(besitos_ledger).where(besitos_ledger.c.user_id == user_id)
                    .order_by(besitos_ledger.c.id.desc()).limit(limit)
                ).mappings().all()
            return [LedgerEntry.model_validate(dict(row)) for row in rows]

        return self._guard.run(read, "ledger entries")

    def page(self, user_id: int, limit: int, cursor: str | None = None) -> LedgerPage:
        # The row id is the ledger's insertion order: a page after ``cursor`` is the rows of
        # smaller id, on the (user_id, id) index.
        before = None if cursor is None else decode_cursor(cursor, _RowPosition, user_id).id
        query = select(besitos_ledger).where(besitos_ledger.c.user_id == user_id)
        if before is not None:
            query = query.where(besitos_ledger.c.id < before)
        query = query.order_by(besitos_ledger.c.id.desc()).limit(limit + 1)

        def read() -> LedgerPage:
            with self._engine.connect() as conn:
                rows = conn.execute(query).mappings().all()
            entries = tuple(LedgerEntry.model_validate(dict(row)) for row in rows[:limit])
            more = len(rows) > limit
            return LedgerPage(entries=entries, next_cursor=encode_cursor(
                _RowPosition(u=user_id, id=rows[limit - 1]["id"])) if more else None)

        return self._guard.run(read, "ledger page")

    _by_key = select(besitos_ledger).where(besitos_ledger.c.key == bindparam("key"))

    def get(self, key: str) -> LedgerEntry | None:
        def read() -> LedgerEntry | None:
            with self._engine.connect() as conn:
                row = conn.execute(self._by_key, {"key": key}).mappings().first()
            return LedgerEntry.model_validate(dict(row)) if row is not None else None

        return self._guard.run(read, "ledger entry")

    def mark_compensated(self, key: str) -> bool:
        def write() -> bool:
            with self._engine.begin() as conn:
                return conn.execute(
                    update(besitos_ledger).where(besitos_ledger.c.key == key)
                    .values(compensated=True).returning(besitos_ledger.c.id)
                ).first() is not None

        return guarded_write(self._guard, write, "mark compensated")

    def earned_since(self, user_id: int, reason: str, since: datetime) -> int:
        def read() -> int:
            with self._engine.connect() as conn:
                total = conn.execute(
                    select(func.coalesce(func.sum(besitos_ledger.c.amount), 0))
                    .where(besitos_ledger.c.user_id == user_id,
                           besitos_ledger.c.reason == reason,
                           besitos_ledger.c.amount > 0,
                           besitos_ledger.c.created_at >= since)
                ).scalar_one()
            return int(total)

        return self._guard.run(read, "earned since")


class SqlSubscriptions:
    """`Subscriptions` on the ``subscriptions`` table."""

    def __init__(self, engine: Engine, guard: StoreGuard | None = None) -> None:
        self._engine = engine
        self._guard = guard or sql_guard()

    def start(self, subscription: Subscription) -> Subscription:
        values = subscription.model_dump(exclude={"id"})
        values["status"] = SubscriptionStatus.ACTIVE.value
        values["plan"] = subscription.plan.value

        def write() -> int:
            with self._engine.begin() as conn:
                conn.execute(
                    update(subscriptions)
                    .where(subscriptions.c.user_id == subscription.user_id,
                           subscriptions.c.status == SubscriptionStatus.ACTIVE.value)
                    .values(status=SubscriptionStatus.CANCELLED.value,
                            updated_at=subscription.updated_at)
                )
                new_id: int = conn.execute(
                    insert(subscriptions).values(**values).returning(subscriptions.c.id)
                ).scalar_one()
                return new_id

        new_id = guarded_write(self._guard, write, "start subscription")
        return subscription.model_copy(update={"id": new_id,
                                               "status": SubscriptionStatus.ACTIVE})

    def current(self, user_id: int) -> Subscription | None:
        def read() -> Subscription | None:
            with self._engine.connect() as conn:
                return read_current_subscription(conn, user_id)

        return self._guard.run(read, "current subscription")

    def latest(self, user_id: int) -> Subscription | None:
        found = self._read(_LATEST_SUBSCRIPTION, "latest subscription", {"uid": user_id})
        return found[0] if found else None

    def set_status(self, subscription_id: int, status: SubscriptionStatus) -> Subscription | None:
        def write() -> int | None:
            with self._engine.begin() as conn:
                changed: int | None = conn.execute(
                    update(subscriptions).where(subscriptions.c.id == subscription_id)
                    .values(status=status.value, updated_at=utcnow())
                    .returning(subscriptions.c.id)
                ).scalar_one_or_none()
                return changed

        if guarded_write(self._guard, write, "set subscription status") is None:
            return None
        found = self._read(select(subscriptions).where(subscriptions.c.id == subscription_id),
                           "get subscription")
        return found[0] if found else None

    def expire_due(self, now: datetime) -> int:
        def write() -> int:
            with self._engine.begin() as conn:
                return len(conn.execute(
                    update(subscriptions)
                    .where(subscriptions.c.status == SubscriptionStatus.ACTIVE.value,
                           subscriptions.c.ends_at <= now)
                    .values(status=SubscriptionStatus.EXPIRED.value, updated_at=utcnow())
                    .returning(subscriptions.c.id)
                ).all())

        expired: int = guarded_write(self._guard, write, "expire subscriptions")
        return expired

    def _read(self, statement: Any, what: str,
              parameters: dict[str, Any] | None = None) -> list[Subscription]:
        def read() -> list[Subscription]:
            with self._engine.connect() as conn:
                rows = conn.execute(statement, parameters).mappings().all()
            return [Subscription.model_validate(dict(row)) for row in rows]

        return self._guard.run(read, what)


class SqlUserProgress:
    """`UserProgress` in the ``user_progress`` table."""

    def __init__(self, engine: Engine, guard: StoreGuard | None = None) -> None:
        self._engine = engine
        self._guard = guard or sql_guard()

    def handled_updates(self, user_id: int) -> list[int]:
        def read() -> list[int]:
            with self._engine.connect() as conn:
                found = conn.execute(
                    select(user_progress.c.handled_updates)
                    .where(user_progress.c.user_id == user_id)).scalar_one_or_none()
            return [int(update_id) for update_id in found or []]

        return self._guard.run(read, "read handled updates")

    def record_update(self, user_id: int, update_id: int, window: int) -> None:
        def write() -> None:
            with self._engine.begin() as conn:
                remember_update(conn, user_id, update_id, window)

        guarded_write(self._guard, write, "record a handled update")


def sql_documents(engine: Engine, guard: StoreGuard | None = None) -> DocumentRepositories:
    """Every document repository of the embedded `sql` backend, sharing one guard."""
    guard = guard or sql_guard()
    return DocumentRepositories(
        "sql", SqlUserDocuments(engine, guard), SqlNarrativeFragments(engine, guard),
        SqlItemCatalogue(engine, guard), SqlBesitosLedger(engine, guard),
        SqlUserProgress(engine, guard), engine=engine,
    )
