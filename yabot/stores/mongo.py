"""Repositories on pymongo: the production document backend.

Only pymongo's public API is used here; tests run this same code on mongomock.
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from yabot.domain.users import UserDocument

Document = dict[str, Any]


def ensure_indexes(db: Database[Document]) -> None:
    """Create the indexes the repositories rely on for uniqueness. Idempotent."""
    db.users.create_index([("user_id", ASCENDING)], unique=True, name="user_id_unique")


class MongoUserDocuments:
    """`UserDocuments` on the ``users`` collection."""

    def __init__(self, db: Database[Document]) -> None:
        self._users: Collection[Document] = db.users

    def get(self, user_id: int) -> UserDocument | None:
        found = self._users.find_one({"user_id": user_id}, projection={"_id": False})
        return UserDocument.model_validate(found) if found is not None else None

    def create_if_absent(self, document: UserDocument) -> tuple[UserDocument, bool]:
        try:
            before = self._users.find_one_and_update(
                {"user_id": document.user_id},
                {"$setOnInsert": document.model_dump()},
                upsert=True,
                projection={"_id": False},
                return_document=ReturnDocument.BEFORE,
            )
        except DuplicateKeyError:  # a concurrent upsert inserted it first
            before = self._users.find_one({"user_id": document.user_id}, {"_id": False})
        if before is None:
            return document, True
        return UserDocument.model_validate(before), False
