"""Store actors: they own connection pools (connect, health, close), not the queries.

Queries run in the caller's thread through the repositories these actors attach to `Stores`;
routing every query through one store thread would serialise the whole bot.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog
from pymongo import MongoClient
from sqlalchemy import Engine

from actors import Actor, ChildSpec, Strategy, Supervisor
from yabot.settings import Settings
from yabot.stores.engine import make_engine
from yabot.stores.handles import RelationalRepositories, Stores
from yabot.stores.mongo import Document, ensure_indexes, mongo_documents
from yabot.stores.sql import SqlSubscriptions, SqlUserProfiles, sql_documents
from yabot.stores.tables import metadata

log = structlog.get_logger("yabot.stores")

MongoClientFactory = Callable[..., MongoClient[Document]]


class SqlStore(Actor):
    """Owns the SQLAlchemy `Engine` for `Settings.sql_url`; creates the schema on start."""

    def __init__(self, settings: Settings, stores: Stores) -> None:
        super().__init__()
        self._settings = settings
        self._stores = stores
        self._engine: Engine | None = None

    def pre_start(self) -> None:
        engine = make_engine(self._settings.sql_url)
        metadata.create_all(engine)
        self._engine = engine
        self._stores.attach_relational(RelationalRepositories(
            engine, SqlUserProfiles(engine), SqlSubscriptions(engine)
        ))
        log.info("sql store started", dialect=engine.dialect.name)

    def post_stop(self) -> None:
        self._stores.attach_relational(None)
        if self._engine is not None:
            self._engine.dispose()


class DocStore(Actor):
    """Owns the document backend: a `MongoClient` when `MONGODB_URI` is set, else the SQL
    engine of `SqlStore` (started before this actor, restarted with it: rest_for_one)."""

    def __init__(
        self,
        settings: Settings,
        stores: Stores,
        mongo_client_factory: MongoClientFactory = MongoClient,
    ) -> None:
        super().__init__()
        self._settings = settings
        self._stores = stores
        self._client_factory = mongo_client_factory
        self._client: MongoClient[Document] | None = None

    def pre_start(self) -> None:
        uri = self._settings.mongo.uri
        if uri is None:
            engine = self._stores.relational.engine
            self._stores.attach_documents(sql_documents(engine))
            log.info("document store started", backend="sql")
            return
        client: MongoClient[Document] = self._client_factory(
            uri.get_secret_value(), appname="yabot", tz_aware=True
        )
        db = client[self._settings.mongo.database]
        ensure_indexes(db)
        self._client = client
        self._stores.attach_documents(mongo_documents(db))
        log.info("document store started", backend="mongo")

    def post_stop(self) -> None:
        self._stores.attach_documents(None)
        if self._client is not None:
            self._client.close()


def stores_supervisor(
    settings: Settings, stores: Stores, mongo_client_factory: MongoClientFactory = MongoClient
) -> Supervisor:
    """SQL first, documents second; rest_for_one because documents may live on the SQL engine."""
    children: list[ChildSpec] = [
        ChildSpec("sql", lambda: SqlStore(settings, stores)),
        ChildSpec("docs", lambda: DocStore(settings, stores, mongo_client_factory)),
    ]
    return Supervisor("stores", children, strategy=Strategy.REST_FOR_ONE)

