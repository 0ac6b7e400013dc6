"""Repositories on pymongo: the production document backend.

Only pymongo's public API is used here; tests run this same code on mongomock.
Every public method is one guarded unit of work (`StoreGuard`), retried on transient errors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from datetime import UTC, datetime
from typing import Annotated, Any

import structlog
from bson import ObjectId
from pydantic import Field
from pymongo import DESCENDING, ReturnDocument
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError, OperationFailure

from yabot.crashpoints import crash_point
from yabot.domain.besitos import (
    BalanceChange,
    LedgerEntry,
    ensure_room,
    positive,
)
from yabot.domain.items import Item
from yabot.domain.ledger_pages import LedgerPage, LedgerPosition, decode_cursor, encode_cursor
from yabot.domain.narrative import Fragment
from yabot.domain.users import UserChanges, UserDocument, UtcDatetime
from yabot.errors import InvalidRecord, StoreUnavailable, UserNotFound
from yabot.logs import throttled
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
from yabot.stores.schemas import COLLECTIONS
from yabot.stores.transient import is_transient_mongo

Document = dict[str, Any]

log = structlog.get_logger("yabot.stores.mongo")

DOCUMENT_VALIDATION_FAILURE = 121  # MongoDB's error code for a `$jsonSchema` rejection
# How many recent ledger keys a user document remembers (see `MongoBesitosLedger`).
RECENT_LEDGER_KEYS = 64
# How many times a write that stores events re-reads the user after another write to the
# same user won the compare-and-set (each loss means someone else made progress). Not
# `retry_call`: a lost compare-and-set is retried at once, with no backoff (not an outage).
CAS_ATTEMPTS = 100

#: Copies parked events to the SQL ``event_outbox``, idempotently by ``event_id``
#: (`yabot.stores.sql.append_outbox` on the relational engine).
OutboxWriter = Callable[[Sequence[OutboxRecord]], None]


def mongo_guard(name: str = "mongo") -> StoreGuard:
    """A guard with the default policy and breaker, for repositories built outside a store."""
    return StoreGuard(name, is_transient=is_transient_mongo)


def ensure_indexes(db: Database[Document]) -> None:
    """Create every declared index (`yabot.stores.schemas`). Idempotent."""
    for schema in COLLECTIONS:
        db[schema.name].create_indexes(schema.indexes)


def validation_error(error: OperationFailure) -> InvalidRecord:
    """Name the first field a `$jsonSchema` validator rejected (MongoDB ≥ 5 explains why in
    ``errInfo.details``); fall back to the collection-level message."""
    details = (error.details or {}).get("errInfo", {}).get("details", {})
    for rule in details.get("schemaRulesNotSatisfied", []):
        for prop in rule.get("propertiesNotSatisfied", []):
            return InvalidRecord(str(prop.get("propertyName")), "fails the schema")
        for name in rule.get("missingProperties", []):
            return InvalidRecord(str(name), "is required")
    return InvalidRecord("document", "fails the collection's schema")


# What a user read returns: the domain's document, not the ledger's bookkeeping in it.
USER_FIELDS: Mapping[str, Any] = {"_id": False, "ledger_keys": False, "pending_ledger": False,
                                  "pending_events": False, "pending_transfers": False,
                                  "event_seq": False, "handled_updates": False}
# What a balance change reads back: the balance, its guards and the entries still to flush.
BALANCE_FIELDS: Mapping[str, Any] = {"_id": False, "user_id": True, "besitos": True,
                                     "pending_ledger": True, "pending_events": True,
                                     "event_seq": True, "ledger_keys": True}
# What a write that stores events reads first: the above, and the window of handled updates
# the write may extend.
WRITE_FIELDS: Mapping[str, Any] = {**BALANCE_FIELDS, "handled_updates": True}


def seq_guard(last_seq: int) -> Any:
    """Matches a document whose ``event_seq`` is ``last_seq`` (a missing one counts as 0)."""
    return {"$in": [0, None]} if last_seq == 0 else last_seq


def with_handled(current: Document, records: Sequence[OutboxRecord],
                 fields: Document) -> Document:
    """``fields`` (a ``$set``) plus the user's window of handled updates with the update
    ``records`` were made for, if any, as ``current`` read it. Written by a compare-and-set
    on ``event_seq`` that the records advance, so no concurrent write of the window is lost."""
    handled = handled_by(records)
    if handled is None:
        return fields
    window = handled_window(current.get("handled_updates") or [], handled.update_id,
                            handled.window)
    return fields if window is None else {**fields, "handled_updates": window}


def parked_events(records: Sequence[OutboxRecord]) -> Document:
    return {"pending_events": {"$each": [record.as_document() for record in records]}}


def flush_events(db: Database[Document], user: Document, outbox: OutboxWriter | None) -> None:
    """Copy the events parked in ``user`` (oldest first) to the outbox, then unpark them. A
    crash in between leaves them parked: the next flush copies them again (skipped by id)."""
    parked = user.get("pending_events") or []
    if not parked or outbox is None:
        return
    outbox([OutboxRecord(entry["event_id"], entry["stream"], entry["body"])
            for entry in parked])
    db.users.update_one(
        {"user_id": user["user_id"]},
        {"$pull": {"pending_events": {"event_id": {"$in": [e["event_id"] for e in parked]}}}},
    )


class _Repository:
    def __init__(self, db: Database[Document], guard: StoreGuard | None,
                 outbox: OutboxWriter | None = None) -> None:
        self._db = db
        self._guard = guard or mongo_guard()
        self._outbox = outbox

    def _write(self, operation: Any, what: str) -> Any:
        try:
            return self._guard.run(operation, what)
        except DuplicateKeyError:
            raise
        except OperationFailure as exc:
            if exc.code == DOCUMENT_VALIDATION_FAILURE:
                raise validation_error(exc) from exc
            raise


class MongoUserDocuments(_Repository):
    """`UserDocuments` on the ``users`` collection."""

    def __init__(self, db: Database[Document], guard: StoreGuard | None = None,
                 outbox: OutboxWriter | None = None) -> None:
        super().__init__(db, guard, outbox)
        self._users: Collection[Document] = db.users

    def get(self, user_id: int) -> UserDocument | None:
        found = self._guard.run(
            lambda: self._users.find_one({"user_id": user_id}, projection=USER_FIELDS),
            "get user",
        )
        return UserDocument.model_validate(found) if found is not None else None

    def get_many(self, user_ids: Sequence[int]) -> dict[int, UserDocument]:
        found = self._guard.run(
            lambda: list(self._users.find({"user_id": {"$in": list(user_ids)}},
                                          projection=USER_FIELDS)),
            "get users",
        )
        return {document["user_id"]: UserDocument.model_validate(document)
                for document in found}

    def create_if_absent(self, document: UserDocument) -> tuple[UserDocument, bool]:
        def create() -> Document | None:
            try:
                found: Document | None = self._users.find_one_and_update(
                    {"user_id": document.user_id},
                    {"$setOnInsert": document.model_dump()},
                    upsert=True,
                    projection=USER_FIELDS,
                    return_document=ReturnDocument.BEFORE,
                )
            except DuplicateKeyError:  # a concurrent upsert inserted it first
                found = self._users.find_one({"user_id": document.user_id}, USER_FIELDS)
            return found

        before = self._write(create, "create user")
        if before is None:
            return document, True
        return UserDocument.model_validate(before), False

    def _modify(self, user_id: int, update: Document, what: str,
                events: EventDrafts = no_events, settles: str | None = None) -> UserDocument:
        def write() -> Document | None:
            after: Document | None
            if events is no_events:
                after = self._users.find_one_and_update(
                    {"user_id": user_id}, update, projection=USER_FIELDS,
                    return_document=ReturnDocument.AFTER,
                )
            else:
                after = self._with_events(user_id, update, events)
            if after is not None and settles is not None:
                settle_transfer(self._db, settles)
            return after

        after = self._write(write, what)
        if after is None:
            raise UserNotFound(user_id)
        return UserDocument.model_validate(
            {name: value for name, value in after.items() if name not in USER_FIELDS})

    def _with_events(self, user_id: int, update: Document,
                     events: EventDrafts) -> Document | None:
        """``update`` and the events parked with it in one compare-and-set on ``event_seq``
        (the drafts need the next ``seq`` before the write); then the events are flushed."""
        for _ in range(CAS_ATTEMPTS):
            current = self._users.find_one({"user_id": user_id}, projection=WRITE_FIELDS)
            if current is None:
                return None
            last_seq = int(current.get("event_seq") or 0)
            records = events(last_seq + 1, int(current.get("besitos", 0)))
            push = {**update.get("$push", {}), **parked_events(records)}
            fields = {**update.get("$set", {}), "event_seq": last_seq + len(records)}
            after = self._users.find_one_and_update(
                {"user_id": user_id, "event_seq": seq_guard(last_seq)},
                {**update, "$set": with_handled(current, records, fields), "$push": push},
                return_document=ReturnDocument.AFTER,
            )
            if after is not None:
                crash_point("store-after-commit")
                try:
                    flush_events(self._db, after, self._outbox)
                except Exception as exc:  # stored and parked: a later flush copies them
                    throttled(log, "parked events not copied yet", user_id=user_id,
                              error=repr(exc))
                return dict(after)
        raise StoreUnavailable(f"user {user_id} changed {CAS_ATTEMPTS} times under a write")

    def flush_parked(self, limit: int = 100) -> int:
        """Copy events parked in users' documents (a crash came between a change and the
        copy) to the outbox; how many users had some. Run by the recovery pass."""
        def flush() -> int:
            parked = list(self._users.find({"pending_events.0": {"$exists": True}},
                                           projection=BALANCE_FIELDS).limit(limit))
            for user in parked:
                flush_events(self._db, user, self._outbox)
            return len(parked)

        flushed: int = self._write(flush, "flush parked events")
        return flushed

    def update(self, user_id: int, changes: UserChanges, *,
               events: EventDrafts = no_events) -> UserDocument:
        return self._modify(user_id, {"$set": changes.fields()}, "update user", events)

    def add_to_inventory(self, user_id: int, sku: str, *, events: EventDrafts = no_events,
                         settles: str | None = None) -> UserDocument:
        return self._modify(user_id, {"$addToSet": {"inventory": sku}}, "add to inventory",
                            events, settles)

    def record_events(self, user_id: int, events: EventDrafts) -> UserDocument:
        return self._modify(user_id, {}, "record events", events)


def settle_transfer(db: Database[Document], key: str) -> bool:
    """Unpark the pending transfer debited under ``key`` from its sender's document."""
    result = db.users.update_one({"pending_transfers.key": key},
                                 {"$pull": {"pending_transfers": {"key": key}}})
    return bool(result.modified_count)


class MongoNarrativeFragments(_Repository):
    """`NarrativeFragments` on the ``narrative_fragments`` collection."""

    def get(self, fragment_id: str) -> Fragment | None:
        found = self._guard.run(
            lambda: self._db.narrative_fragments.find_one(
                {"fragment_id": fragment_id}, projection={"_id": False}
            ),
            "get fragment",
        )
        return Fragment.model_validate(found) if found is not None else None

    def put(self, fragment: Fragment) -> None:
        self._write(
            lambda: self._db.narrative_fragments.replace_one(
                {"fragment_id": fragment.fragment_id}, fragment.model_dump(), upsert=True
            ),
            "put fragment",
        )


class MongoItemCatalogue(_Repository):
    """`ItemCatalogue` on the ``items`` collection."""

    def get(self, sku: str) -> Item | None:
        found = self._guard.run(
            lambda: self._db["items"].find_one({"sku": sku}, projection={"_id": False}),
            "get item",
        )
        return Item.model_validate(found) if found is not None else None

    def put(self, item: Item) -> None:
        self._write(
            lambda: self._db["items"].replace_one({"sku": item.sku}, item.model_dump(),
                                                  upsert=True),
            "put item",
        )

    def all(self) -> list[Item]:
        found = self._guard.run(
            lambda: list(self._db["items"].find({}, projection={"_id": False}).sort("sku")),
            "list items",
        )
        return [Item.model_validate(document) for document in found]


class _DocumentPosition(LedgerPosition):
    """A ledger entry's place on the ``mongo`` backend: ``created_at``, then ``_id``."""

    at: UtcDatetime
    id: Annotated[str, Field(pattern=r"^[0-9a-f]{24}$")]


class MongoBesitosLedger(_Repository):
    """`BesitosLedger` on ``users.besitos`` and the ``besitos_ledger`` collection.

    Without a multi-document transaction the user document is the source of truth: one
    ``find_one_and_update`` guarded by ``besitos >= n`` *and* "key not among the user's recent
    ledger keys" changes the balance, remembers the key and parks the entry in the user's
    ``pending_ledger``, atomically; the entry is then written to the ledger idempotently
    (upsert on the unique ``key``) and unparked. A process that dies in between leaves the
    entry parked, and the next change or read of that user's ledger writes it (`_flush`): no
    applied change is ever missing from the ledger. A key older than the last
    `RECENT_LEDGER_KEYS` of that user is still refused, by the ledger lookup done first.
    """

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
        parked = LedgerEntry(key=key, user_id=user_id, amount=delta, balance_after=0,
                             reason=reason, request=request).model_dump(exclude={"balance_after"})
        users: Collection[Document] = self._db.users
        ledger: Collection[Document] = self._db.besitos_ledger

        def attempt(current: Document) -> Document | None:
            """One compare-and-set of the change on the document as ``current`` read it:
            the balance, the key, the events and the pending transfer in one update."""
            balance = int(current["besitos"])
            last_seq = int(current.get("event_seq") or 0)
            records = events(last_seq + 1, balance + delta)
            push: Document = {
                "ledger_keys": {"$each": [key], "$slice": -RECENT_LEDGER_KEYS},
                "pending_ledger": parked, **parked_events(records),
            }
            if pending is not None:
                push["pending_transfers"] = pending.as_document()
            fields = with_handled(current, records, {"event_seq": last_seq + len(records)})
            return users.find_one_and_update(
                {"user_id": user_id, "ledger_keys": {"$ne": key}, "besitos": balance,
                 "event_seq": seq_guard(last_seq)},
                {"$inc": {"besitos": delta}, "$set": fields, "$push": push},
                projection=BALANCE_FIELDS, return_document=ReturnDocument.AFTER,
            )

        def apply() -> BalanceChange:
            fresh = ledger.find_one({"key": key}, projection={"_id": True}) is None
            for _ in range(CAS_ATTEMPTS):
                current = users.find_one({"user_id": user_id}, projection=WRITE_FIELDS)
                if current is None:
                    raise UserNotFound(user_id)
                new_key = fresh and key not in (current.get("ledger_keys") or [])
                if new_key and delta > 0:
                    # The compare-and-set below matches this exact balance, so the limit
                    # checked here is the limit the change meets.
                    ensure_room(int(current["besitos"]), delta)
                possible = new_key and current["besitos"] + delta >= 0
                if not possible:
                    self._flush(current)  # a replay after a crash finds its entry in the ledger
                    return BalanceChange(applied=False, balance=current["besitos"])
                after = attempt(current)
                if after is not None:
                    crash_point("store-after-commit")
                    self._flush_stored(after)
                    if settles is not None:
                        settle_transfer(self._db, settles)
                    return BalanceChange(applied=True, balance=after["besitos"])
            raise StoreUnavailable(f"user {user_id} changed {CAS_ATTEMPTS} times under a write")

        result: BalanceChange = self._write(apply, "debit" if delta < 0 else "credit")
        return result

    def _flush_stored(self, user: Document) -> None:
        """`_flush` after a change is stored: a failure must not turn the stored change into
        an error (the client would retry what is done); what stays parked, a later write of
        this user or the recovery pass (`MongoUserDocuments.flush_parked`) copies."""
        try:
            self._flush(user)
        except Exception as exc:
            throttled(log, "parked ledger entries or events not copied yet",
                      user_id=user.get("user_id"), error=repr(exc))

    def _flush(self, user: Document) -> None:
        """Write the entries parked in ``user`` (one read of the document) to the ledger, then
        unpark them. Each entry's ``balance_after`` is the document's balance less the
        changes parked after it: every change parks itself in the same update that applies
        it, and all of a flush's entries are written before any is unparked, so an entry
        not yet in the ledger always has every later change still parked behind it."""
        flush_events(self._db, user, self._outbox)
        parked = user.get("pending_ledger") or []
        if not parked:
            return
        balances = [user["besitos"]]
        for entry in reversed(parked[1:]):
            balances.append(balances[-1] - entry["amount"])
        for entry, balance_after in zip(parked, reversed(balances), strict=True):
            # Oldest first: `entries` orders equal ``created_at`` by insertion.
            self._record({**entry, "balance_after": balance_after})
        self._db.users.update_one(
            {"user_id": user["user_id"]},
            {"$pull": {"pending_ledger": {"key": {"$in": [entry["key"] for entry in parked]}}}},
        )

    def _record(self, entry: Document) -> None:
        """Insert ``entry`` unless its key is in the ledger (a racing flush wrote it)."""
        with suppress(DuplicateKeyError):
            self._db.besitos_ledger.update_one({"key": entry["key"]},
                                               {"$setOnInsert": entry}, upsert=True)

    def entries(self, user_id: int, limit: int = 50) -> list[LedgerEntry]:
        def read() -> list[Document]:
            user = self._db.users.find_one({"user_id": user_id}, projection=BALANCE_FIELDS)
            if user is not None:
                self._flush(user)
            return list(
                self._db.besitos_ledger.find({"user_id": user_id}, projection={"_id": False})
                .sort([("created_at", DESCENDING), ("_id", DESCENDING)]).limit(limit)
            )

        found = self._guard.run(read, "ledger entries")
        return [LedgerEntry.model_validate(document) for document in found]

    def page(self, user_id: int, limit: int, cursor: str | None = None) -> LedgerPage:
        # ``created_at`` then ``_id``, both descending, on the (user_id, created_at) index:
        # the order `entries` reads, made total by the unique ``_id``.
        query: Document = {"user_id": user_id}
        if cursor is not None:
            after = decode_cursor(cursor, _DocumentPosition, user_id)
            oid = ObjectId(after.id)
            query["$or"] = [{"created_at": {"$lt": after.at}},
                            {"created_at": after.at, "_id": {"$lt": oid}}]

        def read() -> list[Document]:
            if cursor is None:  # the first page: an entry still parked is written first
                user = self._db.users.find_one({"user_id": user_id}, projection=BALANCE_FIELDS)
                if user is not None:
                    self._flush(user)
            return list(self._db.besitos_ledger.find(query).sort(
                [("created_at", DESCENDING), ("_id", DESCENDING)]).limit(limit + 1))

        found = self._guard.run(read, "ledger page")
        entries = tuple(LedgerEntry.model_validate({k: v for k, v in document.items()
                                                    if k != "_id"})
                        for document in found[:limit])
        next_cursor = None
        if len(found) > limit:
            last = found[limit - 1]
            next_cursor = encode_cursor(_DocumentPosition(
                u=user_id, at=entries[-1].created_at, id=str(last["_id"])))
        return LedgerPage(entries=entries, next_cursor=next_cursor)

    def get(self, key: str) -> LedgerEntry | None:
        found = self._guard.run(
            lambda: self._db.besitos_ledger.find_one({"key": key}, projection={"_id": False}),
            "ledger entry",
        )
        return LedgerEntry.model_validate(found) if found is not None else None

    def mark_compensated(self, key: str) -> bool:
        result = self._write(
            lambda: self._db.besitos_ledger.update_one({"key": key},
                                                       {"$set": {"compensated": True}}),
            "mark compensated",
        )
        return bool(result.matched_count)

    def pending_transfers(self, older_than: datetime, limit: int = 100
                          ) -> list[PendingTransfer]:
        def read() -> list[Document]:
            return list(self._db.users.find(
                {"pending_transfers.created_at": {"$lte": older_than}},
                projection={"_id": False, "pending_transfers": True},
            ).limit(limit))

        found: list[PendingTransfer] = []
        for user in self._guard.run(read, "pending transfers"):
            for entry in user.get("pending_transfers") or []:
                created = entry["created_at"]
                if created.tzinfo is None:  # BSON dates come back naive (UTC)
                    created = created.replace(tzinfo=UTC)
                if created <= older_than:
                    found.append(PendingTransfer(**{**entry, "created_at": created}))
        return sorted(found, key=lambda transfer: transfer.created_at)[:limit]

    def settle(self, key: str) -> bool:
        settled: bool = self._write(lambda: settle_transfer(self._db, key), "settle transfer")
        return settled

    def earned_since(self, user_id: int, reason: str, since: datetime) -> int:
        found = self._guard.run(
            lambda: list(self._db.besitos_ledger.find(
                {"user_id": user_id, "reason": reason, "amount": {"$gt": 0},
                 "created_at": {"$gte": since}},
                projection={"amount": True, "_id": False},
            )),
            "earned since",
        )
        return sum(int(document["amount"]) for document in found)


class MongoUserProgress:
    """`UserProgress` in two places: the window a change records in the user's document
    (``users.handled_updates``, in the change's own update: `with_handled`), and the
    ``user_progress`` collection (``_id`` is the user id), where `record_update` writes —
    updates of a user with no document (who never sent /start), and every window stored
    before changes recorded their update. A read returns both, the collection's first."""

    def __init__(self, db: Database[Document], guard: StoreGuard | None = None) -> None:
        self._collection: Collection[Document] = db.user_progress
        self._users: Collection[Document] = db.users
        self._guard = guard or mongo_guard()

    def handled_updates(self, user_id: int) -> list[int]:
        def read() -> list[int]:
            kept = self._collection.find_one({"_id": user_id},
                                             projection={"handled_updates": True})
            user = self._users.find_one({"user_id": user_id},
                                        projection={"_id": False, "handled_updates": True})
            handled = [*(kept or {}).get("handled_updates", []),
                       *(user or {}).get("handled_updates", [])]
            # Each id once, where it was recorded last (the newest end).
            return list(reversed(dict.fromkeys(int(u) for u in reversed(handled))))

        found: list[int] = self._guard.run(read, "read handled updates")
        return found

    def record_update(self, user_id: int, update_id: int, window: int) -> None:
        def write() -> None:
            # Pull then push (two updates, each idempotent): one user's updates are recorded
            # by its one session, so nothing interleaves; a retry repeats both harmlessly.
            self._collection.update_one(
                {"_id": user_id},
                {"$pull": {"handled_updates": update_id}}, upsert=True)
            self._collection.update_one(
                {"_id": user_id},
                {"$push": {"handled_updates": {"$each": [update_id], "$slice": -window}}})

        self._guard.run(write, "record a handled update")


def mongo_documents(db: Database[Document], guard: StoreGuard | None = None,
                    outbox: OutboxWriter | None = None) -> DocumentRepositories:
    """Every document repository of the `mongo` backend, sharing one guard. ``outbox``
    receives the events parked with each change; without one they stay parked."""
    guard = guard or mongo_guard()
    return DocumentRepositories(
        "mongo", MongoUserDocuments(db, guard, outbox), MongoNarrativeFragments(db, guard),
        MongoItemCatalogue(db, guard), MongoBesitosLedger(db, guard, outbox),
        MongoUserProgress(db, guard),
    )
