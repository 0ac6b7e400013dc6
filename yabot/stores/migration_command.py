"""The body of ``yabot migrate``: both stores, check / dry run / apply / roll back, validate.

In three steps that do not mix: `plan` reads where each store is and what reaching the target
takes (it changes nothing), `describe` turns a plan into lines, `apply` carries it out (under
the migration lock, after a backup) and `_validate` compares the result with the code.

Read-only modes (``--check``, ``--dry-run``) create nothing: a SQLite file that does not
exist yet is planned as the empty database it would be, without being created.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pymongo import MongoClient
from pymongo.database import Database
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

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
from yabot.stores.engine import make_engine
from yabot.stores.migrate import (
    sql_current,
    sql_differences,
    sql_downgrade,
    sql_head,
    sql_is_known,
    sql_pending,
    sql_reverts,
    sql_tables_dropped_by,
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

Write = Callable[[str], None]


@dataclass(frozen=True)
class MigrateOptions:
    check: bool = False  # only report; exit 1 when something is pending
    dry_run: bool = False  # report what would run; change nothing
    to: str | None = None  # SQL target revision (``base`` = nothing); default head
    mongo_to: int | None = None  # MongoDB target step (0 = nothing); default the last
    yes: bool = False  # confirmed: a downgrade to ``base`` may drop every table
    backup: bool = True  # back the SQL database up first (False: ``--no-backup``)

    @property
    def read_only(self) -> bool:
        return self.check or self.dry_run


@dataclass(frozen=True)
class Plan:
    """Where the stores are and what reaching the targets takes; empty lists: nothing to do."""

    sql_at: str | None
    sql_target: str
    sql_up: list[str]
    sql_down: list[str]
    sql_drops: list[tuple[str, int]]  # (table, rows) a downgrade to base drops
    mongo_at: int | None  # None: MongoDB not configured
    mongo_target: int | None
    mongo_up: list[str] = field(default_factory=list)
    mongo_down: list[str] = field(default_factory=list)
    refusal: str | None = None  # why this cannot run at all (a database newer than the code)

    @property
    def steps(self) -> list[str]:
        return ([f"sql: apply {rev}" for rev in self.sql_up]
                + [f"sql: revert {rev}" for rev in self.sql_down]
                + [f"mongo: apply {step}" for step in self.mongo_up]
                + [f"mongo: revert {step}" for step in self.mongo_down])


def migrate(
    settings: Settings,
    options: MigrateOptions,
    write: Write = print,
    mongo_client_factory: MongoClientFactory = MongoClient,
) -> int:
    """Run ``yabot migrate``; the exit code: 0 done / up to date, 1 pending (``--check``), a
    database ahead of this code, a downgrade to base without ``--yes``, or a mismatch found
    after applying (each named)."""
    engine = _engine_for(settings, options)
    client = (mongo_client(settings, mongo_client_factory)
              if settings.mongo.uri is not None else None)
    try:
        connect_with_retry("sql", lambda: sql_ping(engine), is_transient_sql,
                           settings.sql.connect_attempts)
        db = None
        if client is not None:
            connect_with_retry("mongo", lambda: mongo_ping(client), is_transient_mongo,
                               settings.mongo.connect_attempts)
            db = client[settings.mongo.database]
        return _run(engine, db, options, write, backups=settings.data_dir / "backups")
    finally:
        engine.dispose()
        if client is not None:
            client.close()


def _engine_for(settings: Settings, options: MigrateOptions) -> Engine:
    """The SQL engine; for a read-only look at a SQLite file that does not exist, an empty
    in-memory database instead (connecting would create the file and its folder)."""
    url = make_url(settings.sql_url)
    if (options.read_only and url.get_backend_name() == "sqlite" and url.database
            and url.database != ":memory:" and not Path(url.database).exists()):
        return make_engine("sqlite://")
    return sql_engine(settings)


def _run(engine: Engine, db: Database[Document] | None, options: MigrateOptions, write: Write,
         *, backups: Path) -> int:
    current = plan(engine, db, options)
    for line in describe(current):
        write(line)
    if current.refusal is not None:
        return 1
    if options.read_only:
        for step in current.steps:
            write(("pending: " if options.check else "would ") + step)
        if not current.steps:
            write("up to date")
        return 1 if options.check and current.steps else 0
    if current.sql_drops and not options.yes:
        write("refused: going to base drops the tables above and everything in them; "
              "run again with --yes to do it")
        return 1
    for step in apply(engine, db, current, options, backups=backups):
        write("done: " + step)
    return _validate(engine, db, write)


def plan(engine: Engine, db: Database[Document] | None, options: MigrateOptions) -> Plan:
    """What reaching ``options``' targets takes; reads only."""
    sql_at = sql_current(engine)
    target = options.to or "head"
    if not sql_is_known(sql_at):
        return Plan(sql_at, target, [], [], [], None, None,
                    refusal=f"sql: revision {sql_at} is unknown to this code (head "
                            f"{sql_head()}): the database was migrated by newer code")
    sql_up = sql_pending(engine, target)
    sql_down = [] if sql_up else sql_reverts(engine, target)
    drops = sql_tables_dropped_by(engine, target) if sql_down else []
    if db is None:
        return Plan(sql_at, target, sql_up, sql_down, drops, None, None)
    mongo_at = mongo_current(db)
    mongo_target = mongo_head() if options.mongo_to is None else options.mongo_to
    if mongo_at > mongo_head():
        return Plan(sql_at, target, sql_up, sql_down, drops, mongo_at, mongo_target,
                    refusal=f"mongo: at step {mongo_at}, newer than this code's {mongo_head()}")
    return Plan(
        sql_at, target, sql_up, sql_down, drops, mongo_at, mongo_target,
        mongo_up=[str(step) for step in mongo_pending(db, mongo_target)],
        mongo_down=[str(step) for step in reversed(STEPS)
                    if mongo_target < step.number <= mongo_at],
    )


def describe(current: Plan) -> list[str]:
    """Where each store is, what a downgrade to base would drop, and any refusal."""
    lines = [f"sql: at {current.sql_at or 'base'}, head {sql_head()}"]
    if current.mongo_at is None:
        lines.append("mongo: not configured (MONGODB_URI unset; documents live in the SQL "
                      "database)")
    else:
        lines.append(f"mongo: at step {current.mongo_at}, head {mongo_head()}")
    for table, rows in current.sql_drops:
        lines.append(f"sql: going to base drops table {table} ({rows} rows)")
    if current.refusal is not None:
        lines.append(current.refusal)
    return lines


def apply(engine: Engine, db: Database[Document] | None, current: Plan, options: MigrateOptions,
          *, backups: Path) -> list[str]:
    """Carry ``current`` out: SQL first (locked, backed up unless ``--no-backup``), then
    MongoDB's numbered steps. Returns the steps this process applied: a SQL step another
    process applied meanwhile (it held the lock first) is not among them."""
    done: list[str] = []
    if current.sql_up:
        done += [f"sql: apply {rev}" for rev in sql_upgrade(
            engine, current.sql_target, backups=backups, backup=options.backup)]
    elif current.sql_down:
        done += [f"sql: revert {rev}" for rev in sql_downgrade(
            engine, current.sql_target, backups=backups, backup=options.backup)]
    if db is not None:
        if current.mongo_up:
            mongo_upgrade(db, options.mongo_to)
            done += [f"mongo: apply {step}" for step in current.mongo_up]
        elif current.mongo_down:
            mongo_downgrade(db, options.mongo_to or 0)
            done += [f"mongo: revert {step}" for step in current.mongo_down]
    return done


def _validate(engine: Engine, db: Database[Document] | None, write: Write) -> int:
    """At head, the database must match the code: tables, indexes, validators, by name."""
    problems = []
    if sql_current(engine) == sql_head():
        problems += [f"sql mismatch: {diff}" for diff in sql_differences(engine)]
    if db is not None and mongo_current(db) == mongo_head():
        problems += [f"mongo mismatch: {problem}" for problem in mongo_problems(db)]
    for problem in problems:
        write(problem)
    if not problems:
        at = sql_current(engine)
        write("schema ok" if at == sql_head()
              else f"sql: now at {at or 'base'}, below head {sql_head()} (not compared)")
    return 1 if problems else 0
