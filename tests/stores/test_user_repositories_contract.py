"""One contract for every document and relational backend of the user repositories."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mongomock
import pymongo
import pytest
from sqlalchemy import Engine

from yabot.domain.users import UserDocument, UserProfile
from yabot.stores.engine import make_engine
from yabot.stores.mongo import MongoUserDocuments, ensure_indexes
from yabot.stores.repositories import UserDocuments, UserProfiles
from yabot.stores.sql import SqlUserDocuments, SqlUserProfiles
from yabot.stores.tables import metadata

SQL_BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@contextmanager
def sql_engine(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A fresh schema on SQLite (a real file) or on the test PostgreSQL server."""
    if kind == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'contract.sqlite3'}")
    else:
        engine = make_engine(request.getfixturevalue("postgres_url"))
    metadata.drop_all(engine)
    metadata.create_all(engine)
    try:
        yield engine
    finally:
        metadata.drop_all(engine)
        engine.dispose()


@pytest.fixture(
    params=[*SQL_BACKENDS, "mongomock", pytest.param("mongodb", marks=pytest.mark.mongodb)]
)
def documents(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[UserDocuments]:
    if request.param in ("sqlite", "postgresql"):
        with sql_engine(request.param, request, tmp_path) as engine:
            yield SqlUserDocuments(engine)
        return
    if request.param == "mongomock":
        client: pymongo.MongoClient[dict[str, object]] = mongomock.MongoClient(tz_aware=True)
    else:
        uri = os.environ.get("MONGODB_TEST_URI")
        if not uri:
            pytest.skip("MONGODB_TEST_URI is not set: no real MongoDB server to test against")
        client = pymongo.MongoClient(uri, tz_aware=True, serverSelectionTimeoutMS=3000)
    db = client[f"yabot_test_{uuid.uuid4().hex[:8]}"]
    ensure_indexes(db)
    yield MongoUserDocuments(db)
    client.drop_database(db.name)
    client.close()


@pytest.fixture(params=SQL_BACKENDS)
def profiles(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[UserProfiles]:
    with sql_engine(request.param, request, tmp_path) as engine:
        yield SqlUserProfiles(engine)


def test_unknown_user_document_is_none(documents: UserDocuments) -> None:
    assert documents.get(404) is None


def test_created_document_reads_back_equal(documents: UserDocuments) -> None:
    document = UserDocument(user_id=7, language="es", besitos=3, inventory=("rose",))
    stored, created = documents.create_if_absent(document)
    assert created is True
    assert stored == document
    assert documents.get(7) == document


def test_second_create_keeps_the_first_document(documents: UserDocuments) -> None:
    first = UserDocument(user_id=8, language="es")
    documents.create_if_absent(first)
    stored, created = documents.create_if_absent(UserDocument(user_id=8, language="en"))
    assert created is False
    assert stored == first
    assert documents.get(8) == first


def test_racing_creates_make_exactly_one_document(documents: UserDocuments) -> None:
    outcomes: list[bool] = []
    barrier = threading.Barrier(4)

    def create() -> None:
        barrier.wait()
        outcomes.append(documents.create_if_absent(UserDocument(user_id=9))[1])

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == [False, False, False, True]


def test_profile_is_inserted_once(profiles: UserProfiles) -> None:
    profile = UserProfile(user_id=5, first_name="Ana", username="ana", language_code="es")
    assert profiles.get(5) is None
    assert profiles.create_if_absent(profile) is True
    assert profiles.create_if_absent(profile.model_copy(update={"first_name": "Other"})) is False
    assert profiles.get(5) == profile
