"""Repositories on pymongo: the production document backend.

Only pymongo's public API is used here; tests run this same code on mongomock.
Every public method is one guarded unit of work (`StoreGuard`), retried on transient errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import suppress
from datetime import datetime
from typing import Any

from pymongo import DESCENDING, ReturnDocument
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError, OperationFailure

from yabot.domain.besitos import BalanceChange, LedgerEntry, positive
from yabot.domain.items import Item
from yabot.domain.narrative import Fragment
from yabot.domain.users import UserChanges, UserDocument
from yabot.errors import InvalidRecord, UserNotFound
from yabot.stores.guard import StoreGuard
from yabot.stores.handles import DocumentRepositories
from yabot.stores.schemas import COLLECTIONS
from yabot.stores.transient import is_transient_mongo

Document = dict[str, Any]

DOCUMENT_VALIDATION_FAILURE = 121  # MongoDB's error code for a `$jsonSchema` rejection
# How many recent ledger keys a user document remembers (see `MongoBesitosLedger`).
RECENT_LEDGER_KEYS = 64


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
USER_FIELDS: Mapping[str, Any] = {"_id": False, "ledger_keys": False, "pending_ledger": False}
# What a balance change reads back: the balance and the entries still to flush.
BALANCE_FIELDS: Mapping[str, Any] = {"_id": False, "user_id": True, "besitos": True,
                                     "pending_ledger": True}


class _Repository:
    def __init__(self, db: Database[Document], guard: StoreGuard | None) -> None:
        self._db = db
        self._guard = guard or mongo_guard()

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

    def __init__(self, db: Database[Document], guard: StoreGuard | None = None) -> None:
        super().__init__(db, guard)
        self._users: Collection[Document] = db.users

    def get(self, user_id: int) -> UserDocument | None:
        found = self._guard.run(
            lambda: self._users.find_one({"user_id": user_id}, projection=USER_FIELDS),
            "get user",
        )
        return UserDocument.model_validate(found) if found is not None else None

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

    def _modify(self, user_id: int, update: Document, what: str) -> UserDocument:
        after = self._write(
            lambda: self._users.find_one_and_update(
                {"user_id": user_id}, update, projection=USER_FIELDS,
                return_document=ReturnDocument.AFTER,
            ),
            what,
        )
        if after is None:
            raise UserNotFound(user_id)
        return UserDocument.model_validate(after)

    def update(self, user_id: int, changes: UserChanges) -> UserDocument:
        return self._modify(user_id, {"$set": changes.fields()}, "update user")

    def add_to_inventory(self, user_id: int, sku: str) -> UserDocument:
        return self._modify(user_id, {"$addToSet": {"inventory": sku}}, "add to inventory")


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
              request: str | None = None) -> BalanceChange:
        return self._change(user_id, -positive(amount), key, reason, request)

    def credit(self, user_id: int, amount: int, key: str, reason: str = "",
               request: str | None = None) -> BalanceChange:
        return self._change(user_id, positive(amount), key, reason, request)

    def _change(self, user_id: int, delta: int, key: str, reason: str,
                request: str | None) -> BalanceChange:
        parked = LedgerEntry(key=key, user_id=user_id, amount=delta, balance_after=0,
                             reason=reason, request=request).model_dump(exclude={"balance_after"})
        users: Collection[Document] = self._db.users
        ledger: Collection[Document] = self._db.besitos_ledger
        guard: Document = {"user_id": user_id, "ledger_keys": {"$ne": key}}
        if delta < 0:
            guard["besitos"] = {"$gte": -delta}

        def apply() -> BalanceChange:
            if ledger.find_one({"key": key}, projection={"_id": True}) is None:
                after = users.find_one_and_update(
                    guard,
                    {"$inc": {"besitos": delta},
                     "$push": {"ledger_keys": {"$each": [key], "$slice": -RECENT_LEDGER_KEYS},
                               "pending_ledger": parked}},
                    projection=BALANCE_FIELDS, return_document=ReturnDocument.AFTER,
                )
                if after is not None:
                    self._flush(after)
                    return BalanceChange(applied=True, balance=after["besitos"])
            current = users.find_one({"user_id": user_id}, projection=BALANCE_FIELDS)
            if current is None:
                raise UserNotFound(user_id)
            self._flush(current)  # a replay after a crash finds its entry in the ledger
            return BalanceChange(applied=False, balance=current["besitos"])

        result: BalanceChange = self._write(apply, "debit" if delta < 0 else "credit")
        return result

    def _flush(self, user: Document) -> None:
        """Write the entries parked in ``user`` (one read of the document) to the ledger, then
        unpark them. Each entry's ``balance_after`` is the document's balance less the
        changes parked after it: every change parks itself in the same update that applies
        it, and all of a flush's entries are written before any is unparked, so an entry
        not yet in the ledger always has every later change still parked behind it."""
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
    """`UserProgress` in the ``user_progress`` collection (``_id`` is the user id)."""

    def __init__(self, db: Database[Document], guard: StoreGuard | None = None) -> None:
        self._collection: Collection[Document] = db.user_progress
        self._guard = guard or mongo_guard()

    def reserve_seq(self, user_id: int, count: int) -> int:
        found = self._guard.run(lambda: self._collection.find_one_and_update(
            {"_id": user_id},
            {"$inc": {"event_seq": count}, "$setOnInsert": {"handled_updates": []}},
            upsert=True, return_document=ReturnDocument.AFTER,
        ), "reserve event seqs")
        assert found is not None  # upserted
        return int(found["event_seq"])

    def release_seq(self, user_id: int, reserved: int, used: int) -> bool:
        result = self._guard.run(lambda: self._collection.update_one(
            {"_id": user_id, "event_seq": reserved}, {"$set": {"event_seq": used}},
        ), "release event seqs")
        return result.modified_count == 1

    def handled_updates(self, user_id: int) -> list[int]:
        found = self._guard.run(lambda: self._collection.find_one(
            {"_id": user_id}, projection={"handled_updates": True}), "read handled updates")
        return [int(u) for u in (found or {}).get("handled_updates", [])]

    def record_update(self, user_id: int, update_id: int, window: int) -> None:
        def write() -> None:
            # Pull then push (two updates, each idempotent): one user's updates are recorded
            # by its one session, so nothing interleaves; a retry repeats both harmlessly.
            self._collection.update_one(
                {"_id": user_id},
                {"$pull": {"handled_updates": update_id},
                 "$setOnInsert": {"event_seq": 0}}, upsert=True)
            self._collection.update_one(
                {"_id": user_id},
                {"$push": {"handled_updates": {"$each": [update_id], "$slice": -window}}})

        self._guard.run(write, "record a handled update")


def mongo_documents(db: Database[Document], guard: StoreGuard | None = None
                    ) -> DocumentRepositories:
    """Every document repository of the `mongo` backend, sharing one guard."""
    guard = guard or mongo_guard()
    return DocumentRepositories(
        "mongo", MongoUserDocuments(db, guard), MongoNarrativeFragments(db, guard),
        MongoItemCatalogue(db, guard), MongoBesitosLedger(db, guard),
        MongoUserProgress(db, guard),
    )
