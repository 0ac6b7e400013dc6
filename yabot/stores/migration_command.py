"""The body of ``yabot migrate``: both stores, check / dry run / apply / roll back, validate."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pymongo import MongoClient
from pymongo.database import Database
from sqlalchemy import Engine

from yabot.settings import Settings
from yabot.stores.connect import (
    Document,
    MongoClientFactory,
    connect_with_retry,
    mongo_client,
    mongo_ping,
    sql_engine,
    sql_ping,
)
from yabot.stores.migrate import (
    sql_current,
    sql_differences,
    sql_downgrade,
    sql_head,
    sql_is_known,
    sql_pending,
    sql_reverts,
    sql_upgrade,
)
from yabot.stores.mongo_migrations import (
    STEPS,
    mongo_current,
    mongo_downgrade,
    mongo_head,
    mongo_pending,
    mongo_problems,
    mongo_upgrade,
)
from yabot.stores.transient import is_transient_mongo, is_transient_sql


@dataclass(frozen=True)
class MigrateOptions:
    check: bool = False  # only report; exit 1 when something is pending
    dry_run: bool = False  # report what would run; change nothing
    to: str | None = None  # SQL target revision (``base`` = nothing); default head
    mongo_to: int | None = None  # MongoDB target step (0 = nothing); default the last


def migrate(
    settings: Settings,
    options: MigrateOptions,
    write: Callable[[str], None] = print,
    mongo_client_factory: MongoClientFactory = MongoClient,
) -> int:
    """Run ``yabot migrate``; the exit code: 0 done / up to date, 1 pending (``--check``), a
    database ahead of this code, or a mismatch found after applying (each named)."""
    engine = sql_engine(settings)
    client = (mongo_client(settings, mongo_client_factory)
              if settings.mongo.uri is not None else None)
    try:
        connect_with_retry("sql", lambda: sql_ping(engine), is_transient_sql,
                           settings.sql.sql_connect_attempts)
        db = None
        if client is not None:
            connect_with_retry("mongo", lambda: mongo_ping(client), is_transient_mongo,
                               settings.mongo.connect_attempts)
            db = client[settings.mongo.database]
        return _migrate(engine, db, options, write)
    finally:
        engine.dispose()
        if client is not None:
            client.close()


def _migrate(engine: Engine, db: Database[Document] | None, options: MigrateOptions,
             write: Callable[[str], None]) -> int:
    current = sql_current(engine)
    if not sql_is_known(current):
        write(f"sql: revision {current} is unknown to this code (head {sql_head()}): "
              "the database was migrated by newer code")
        return 1
    target = options.to or "head"
    sql_up = sql_pending(engine, target)
    sql_down = [] if sql_up else sql_reverts(engine, target)
    write(f"sql: at {current or 'base'}, head {sql_head()}")
    mongo_up: list[str] = []
    mongo_down: list[str] = []
    if db is not None:
        mongo_at = mongo_current(db)
        if mongo_at > mongo_head():
            write(f"mongo: at step {mongo_at}, newer than this code's {mongo_head()}")
            return 1
        mongo_target = mongo_head() if options.mongo_to is None else options.mongo_to
        mongo_up = [str(step) for step in mongo_pending(db, mongo_target)]
        mongo_down = [str(step) for step in reversed(STEPS)
                      if mongo_target < step.number <= mongo_at]
        write(f"mongo: at step {mongo_at}, head {mongo_head()}")
    else:
        write("mongo: not configured (MONGODB_URI unset; documents live in the SQL database)")

    plan = ([f"sql: apply {rev}" for rev in sql_up] + [f"sql: revert {rev}" for rev in sql_down]
            + [f"mongo: apply {step}" for step in mongo_up]
            + [f"mongo: revert {step}" for step in mongo_down])
    if options.check or options.dry_run:
        for line in plan:
            write(("pending: " if options.check else "would ") + line)
        if not plan:
            write("up to date")
        return 1 if options.check and plan else 0

    if sql_up:
        sql_upgrade(engine, target)
    elif sql_down:
        sql_downgrade(engine, target)
    if db is not None:
        if mongo_up:
            mongo_upgrade(db, options.mongo_to)
        elif mongo_down:
            mongo_downgrade(db, options.mongo_to or 0)
    for line in plan:
        write("done: " + line)
    return _validate(engine, db, write)


def _validate(engine: Engine, db: Database[Document] | None,
              write: Callable[[str], None]) -> int:
    """At head, the database must match the code: tables, indexes, validators, by name."""
    problems = []
    if sql_current(engine) == sql_head():
        problems += [f"sql mismatch: {diff}" for diff in sql_differences(engine)]
    if db is not None and mongo_current(db) == mongo_head():
        problems += [f"mongo mismatch: {problem}" for problem in mongo_problems(db)]
    for problem in problems:
        write(problem)
    if not problems:
        write("schema ok")
    return 1 if problems else 0
