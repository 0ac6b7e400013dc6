"""Store actors: they own connection pools (connect, migrate, health, close), not the queries.

Queries run in the caller's thread through the repositories these actors attach to `Stores`;
routing every query through one store thread would serialise the whole bot. Each store's
`StoreGuard` (retries + circuit breaker) is shared by all its repositories and its health
check, so the health endpoint shows the state the queries see.
"""

from __future__ import annotations

import structlog
from pymongo import MongoClient
from sqlalchemy import Engine

from actors import Actor, ChildSpec, Strategy, Supervisor
from yabot.health import HealthRegistry
from yabot.settings import Settings
from yabot.stores.connect import (
    Document,
    MongoClientFactory,
    connect_with_retry,
    mongo_client,
    mongo_ping,
    mongo_store_guard,
    sql_engine,
    sql_ping,
    sql_store_guard,
)
from yabot.stores.handles import RelationalRepositories, Stores
from yabot.stores.health import stopped_check, store_check
from yabot.stores.migrate import ensure_mongo_schema, ensure_sql_schema
from yabot.stores.mongo import mongo_documents
from yabot.stores.sql import SqlSubscriptions, SqlUserProfiles, append_outbox, sql_documents
from yabot.stores.transient import is_transient_mongo, is_transient_sql

log = structlog.get_logger("yabot.stores")

__all__ = ["DocStore", "MongoClientFactory", "SqlStore", "stores_supervisor"]


class SqlStore(Actor):
    """Owns the SQLAlchemy `Engine` for `Settings.sql_url`.

    On start: connect (retrying transient errors with backoff), then bring the schema to the
    Alembic head — or, with ``SQL_AUTO_MIGRATE=false``, refuse to start (`SchemaMismatch`,
    so the supervisor reports `StartFailed`) until ``yabot migrate`` has run. Reports into
    health as ``sql``.
    """

    def __init__(self, settings: Settings, stores: Stores,
                 health: HealthRegistry | None = None) -> None:
        super().__init__()
        self._settings = settings
        self._stores = stores
        self._health = health
        self._engine: Engine | None = None

    def pre_start(self) -> None:
        engine = sql_engine(self._settings)
        self._engine = engine
        connect_with_retry("sql", lambda: sql_ping(engine), is_transient_sql,
                           self._settings.sql.connect_attempts)
        ensure_sql_schema(engine, auto_migrate=self._settings.sql.auto_migrate,
                          backups=self._settings.data_dir / "backups")
        guard = sql_store_guard(self._settings)
        self._stores.attach_relational(RelationalRepositories(
            engine, SqlUserProfiles(engine, guard), SqlSubscriptions(engine, guard), guard
        ))
        if self._health is not None:
            self._health.register("sql", store_check("sql", engine.dialect.name, guard,
                                                     lambda: sql_ping(engine)))
        log.info("sql store started", dialect=engine.dialect.name)

    def post_stop(self) -> None:
        self._stores.attach_relational(None)
        if self._health is not None:
            self._health.register("sql", stopped_check("sql"))
        if self._engine is not None:
            self._engine.dispose()


class DocStore(Actor):
    """Owns the document backend: a `MongoClient` when `MONGODB_URI` is set, else the SQL
    engine of `SqlStore` (started before this actor, restarted with it: rest_for_one).

    For MongoDB: connect with retry on transient errors, apply (or, with
    ``MONGODB_AUTO_MIGRATE=false``, require) the numbered migrations, report into health as
    ``documents``. On the `sql` backend the documents share the SQL store's guard.
    """

    def __init__(
        self,
        settings: Settings,
        stores: Stores,
        mongo_client_factory: MongoClientFactory = MongoClient,
        health: HealthRegistry | None = None,
    ) -> None:
        super().__init__()
        self._settings = settings
        self._stores = stores
        self._client_factory = mongo_client_factory
        self._health = health
        self._client: MongoClient[Document] | None = None

    def pre_start(self) -> None:
        if self._settings.mongo.uri is None:
            relational = self._stores.relational
            self._stores.attach_documents(sql_documents(relational.engine, relational.guard))
            log.info("document store started", backend="sql")
            return
        client = mongo_client(self._settings, self._client_factory)
        self._client = client
        connect_with_retry("mongo", lambda: mongo_ping(client), is_transient_mongo,
                           self._settings.mongo.connect_attempts)
        db = client[self._settings.mongo.database]
        ensure_mongo_schema(db, auto_migrate=self._settings.mongo.auto_migrate)
        guard = mongo_store_guard(self._settings)
        engine = self._stores.relational.engine  # parked events go to its event_outbox
        self._stores.attach_documents(mongo_documents(
            db, guard, outbox=lambda records: append_outbox(engine, records)))
        if self._health is not None:
            self._health.register("documents", store_check("documents", "mongo", guard,
                                                           lambda: mongo_ping(client)))
        log.info("document store started", backend="mongo")

    def post_stop(self) -> None:
        self._stores.attach_documents(None)
        if self._client is not None:
            if self._health is not None:
                self._health.register("documents", stopped_check("documents"))
            self._client.close()


def stores_supervisor(
    settings: Settings,
    stores: Stores,
    mongo_client_factory: MongoClientFactory = MongoClient,
    health: HealthRegistry | None = None,
) -> Supervisor:
    """SQL first, documents second; rest_for_one because documents may live on the SQL engine."""
    children: list[ChildSpec] = [
        ChildSpec("sql", lambda: SqlStore(settings, stores, health)),
        ChildSpec("docs", lambda: DocStore(settings, stores, mongo_client_factory, health)),
    ]
    return Supervisor("stores", children, strategy=Strategy.REST_FOR_ONE)
