"""Store backends for tests: SQL engines on a real SQLite file or the test PostgreSQL,
MongoDB databases on mongomock or a real server (``MONGODB_TEST_URI``), and whole `Stores`
on them for service, coordinator and session tests."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pymongo
import pytest
from pymongo.database import Database
from sqlalchemy import Engine

from tests.support import mongomock_gaps
from yabot.domain.users import TelegramIdentity
from yabot.services.users import UserService
from yabot.stores.engine import make_engine
from yabot.stores.handles import RelationalRepositories, Stores
from yabot.stores.mongo import ensure_indexes, mongo_documents
from yabot.stores.sql import (
    SqlSubscriptions,
    SqlUserProfiles,
    append_outbox,
    sql_documents,
    sql_guard,
)
from yabot.stores.tables import metadata

SQL_BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
MONGO_BACKENDS = ["mongomock", pytest.param("mongodb", marks=pytest.mark.mongodb)]
DOCUMENT_BACKENDS = [*SQL_BACKENDS, *MONGO_BACKENDS]

Document = dict[str, Any]


def sql_url(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite3'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@contextmanager
def sql_engine(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A fresh schema (from the metadata) on SQLite (a real file) or the test PostgreSQL."""
    engine = make_engine(sql_url(kind, request, tmp_path))
    metadata.drop_all(engine)
    metadata.create_all(engine)
    try:
        yield engine
    finally:
        metadata.drop_all(engine)
        engine.dispose()


def mongo_client(kind: str) -> pymongo.MongoClient[Document]:
    if kind == "mongomock":
        client: pymongo.MongoClient[Document] = mongomock_gaps.client()
        return client
    uri = os.environ.get("MONGODB_TEST_URI")
    if not uri:
        pytest.skip("MONGODB_TEST_URI is not set: no real MongoDB server to test against")
    return pymongo.MongoClient(uri, tz_aware=True, serverSelectionTimeoutMS=3000)


@contextmanager
def mongo_database(kind: str) -> Iterator[Database[Document]]:
    """A database with a unique name, dropped afterwards."""
    client = mongo_client(kind)
    db = client[f"yabot_test_{uuid.uuid4().hex[:8]}"]
    try:
        yield db
    finally:
        client.drop_database(db.name)
        client.close()


@contextmanager
def stores_on(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    """Relational repositories on SQLite (a file), documents on ``backend``: ``sqlite``
    (the embedded `sql` backend, same file) or ``mongomock``."""
    with sql_engine("sqlite", request, tmp_path) as engine:
        stores = Stores()
        guard = sql_guard()
        stores.attach_relational(RelationalRepositories(
            engine, SqlUserProfiles(engine, guard), SqlSubscriptions(engine, guard), guard
        ))
        if backend == "sqlite":
            stores.attach_documents(sql_documents(engine, guard))
            yield stores
            return
        with mongo_database(backend) as db:
            ensure_indexes(db)
            stores.attach_documents(mongo_documents(
                db, outbox=lambda records: append_outbox(engine, records)))
            yield stores


def create(stores: Stores, user_id: int, besitos: int = 0) -> None:
    """A user in both stores, with ``besitos`` credited under a setup key."""
    UserService(stores).create_user(TelegramIdentity(user_id=user_id, first_name=f"u{user_id}"))
    if besitos:
        stores.documents.ledger.credit(user_id, besitos, f"setup-{user_id}", "setup")
