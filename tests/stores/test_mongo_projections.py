"""The `mongo` backend reads users through projections: the ledger's bookkeeping in a user
document (``ledger_keys``, ``pending_ledger``) never travels to a user read. And the
mongomock gap that used to keep those projections out of production code, filled in
`tests.support.mongomock_gaps`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import pytest
from pymongo import ReturnDocument
from pymongo.database import Database

from tests.support.stores import MONGO_BACKENDS, mongo_database
from yabot.domain.users import UserChanges, UserDocument
from yabot.stores.mongo import MongoBesitosLedger, MongoUserDocuments, ensure_indexes

Document = dict[str, Any]


class RecordingCollection:
    """A collection that remembers every document ``find_one*`` handed back."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.returned: list[Document] = []

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._inner, name)
        if not name.startswith("find_one"):
            return found
        method = cast(Callable[..., Document | None], found)

        def recorded(*args: Any, **kwargs: Any) -> Document | None:
            document = method(*args, **kwargs)
            if document is not None:
                self.returned.append(document)
            return document

        return recorded


class RecordingDatabase:
    def __init__(self, inner: Database[Document]) -> None:
        self._inner = inner
        self.users = RecordingCollection(inner.users)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.mark.parametrize("kind", MONGO_BACKENDS)
def test_user_reads_and_writes_return_only_the_domain_document(kind: str) -> None:
    with mongo_database(kind) as db:
        ensure_indexes(db)
        recording = RecordingDatabase(db)
        users = MongoUserDocuments(cast(Database[Document], recording))
        users.create_if_absent(UserDocument(user_id=1, besitos=5))
        MongoBesitosLedger(db, None).credit(1, 3, "gift")  # fills ledger_keys in the document
        assert "ledger_keys" in (db.users.find_one({"user_id": 1}) or {})

        users.get(1)
        users.update(1, UserChanges(language="es"))
        users.add_to_inventory(1, "rose")
        users.create_if_absent(UserDocument(user_id=1))  # already there: read back

        returned = recording.users.returned
        assert len(returned) == 4
        assert all(set(document) <= set(UserDocument.model_fields) for document in returned)
        assert returned[-1]["besitos"] == 8


def test_mongomock_projects_an_after_document_that_left_its_filter() -> None:
    with mongo_database("mongomock") as db:
        check_after_document_projection(db.users)


def check_after_document_projection(users: Any) -> None:
    users.insert_one({"user_id": 1, "besitos": 5, "ledger_keys": []})
    after = users.find_one_and_update(
        {"user_id": 1, "besitos": {"$gte": 5}, "ledger_keys": {"$ne": "k"}},
        {"$inc": {"besitos": -5}, "$push": {"ledger_keys": "k"}},
        projection={"_id": False, "besitos": True}, return_document=ReturnDocument.AFTER,
    )
    assert after == {"besitos": 0}
    before = users.find_one_and_update(
        {"user_id": 1}, {"$inc": {"besitos": 2}}, projection={"_id": False, "ledger_keys": False},
    )
    assert before == {"user_id": 1, "besitos": 0}


def test_mongomock_leaves_a_shared_projection_as_it_was() -> None:
    projection = {"_id": False, "besitos": True}
    with mongo_database("mongomock") as db:
        db.users.insert_one({"user_id": 1, "besitos": 5})
        assert db.users.find_one({"user_id": 1}, projection) == {"besitos": 5}
    assert list(projection.items()) == [("_id", False), ("besitos", True)]
