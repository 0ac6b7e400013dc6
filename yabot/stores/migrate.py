"""Migrations of both stores: Alembic for SQL, numbered idempotent steps for MongoDB.

SQL revisions live in `yabot/stores/migrations/versions` and ship with the package. Every
upgrade or downgrade holds the database's migration lock (`migration_lock`: any number of
processes starting at once migrate once) and is preceded by a backup (`yabot.stores.backup`:
a copy of a SQLite file as ``<file>.before-<revision>.bak``, a ``pg_dump`` for PostgreSQL).
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RangeNotAncestorError
from pymongo.database import Database
from sqlalchemy import Engine, func, inspect

from yabot.errors import BackupUnavailable, SchemaMismatch
from yabot.stores.backup import backup_database
from yabot.stores.migration_lock import migration_lock
from yabot.stores.mongo_migrations import mongo_current, mongo_head, mongo_pending, mongo_upgrade
from yabot.stores.tables import metadata

log = structlog.get_logger("yabot.stores.migrate")
# Alembic logs every context it configures at INFO; our own lines say what was applied.
logging.getLogger("alembic").setLevel(logging.WARNING)

MIGRATIONS = Path(__file__).parent / "migrations"
Document = dict[str, Any]


def alembic_config(connection: Any = None) -> Config:
    """An Alembic config pointing at the shipped revisions (no ``alembic.ini`` needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def sql_head() -> str:
    head = script_directory().get_current_head()
    assert head is not None  # the baseline exists
    return head


def sql_current(engine: Engine) -> str | None:
    """The database's revision, or None if it was never migrated."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def sql_pending(engine: Engine, to: str = "head") -> list[str]:
    """Revisions an upgrade to ``to`` would apply, oldest first (empty when up to date)."""
    current = sql_current(engine)
    scripts = script_directory()
    target = scripts.get_revision(to)
    if target is None:
        return []
    try:
        revisions = list(scripts.iterate_revisions(target.revision, current or "base"))
    except RangeNotAncestorError:  # ``to`` is below the current revision: nothing to apply
        return []
    return [f"{rev.revision} {rev.doc}" for rev in reversed(revisions)]


def sql_is_known(revision: str | None) -> bool:
    """False for a database migrated by newer code than this (a revision we do not ship)."""
    if revision is None:
        return True
    try:
        return script_directory().get_revision(revision) is not None
    except Exception:  # alembic raises its own CommandError/ResolutionError for unknown ids
        return False


def sql_upgrade(engine: Engine, to: str = "head", *, backups: Path | None = None,
                backup: bool = True) -> list[str]:
    """Apply pending revisions up to ``to`` under the migration lock; return what was applied
    (empty: a no-op, e.g. another process did it first). With ``backup`` the database is
    backed up first (PostgreSQL into ``backups``; an empty one needs none); `BackupUnavailable`
    when that cannot be done, and nothing is changed."""
    with migration_lock(engine):
        return _upgrade_locked(engine, to, backups=backups, backup=backup)


def _upgrade_locked(engine: Engine, to: str = "head", *, backups: Path | None = None,
                    backup: bool = True) -> list[str]:
    """`sql_upgrade` for a caller that holds the migration lock."""
    pending = sql_pending(engine, to)
    if not pending:
        return []
    current = sql_current(engine)
    if backup and (current is not None or engine.dialect.name != "postgresql"):
        backup_database(engine, f"before-{current or 'base'}", backups)
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), to)
    log.info("sql schema upgraded", applied=pending, revision=sql_current(engine))
    return pending


def sql_reverts(engine: Engine, to: str) -> list[str]:
    """Revisions a downgrade to ``to`` would revert, newest first (empty: nothing to undo)."""
    current = sql_current(engine)
    if current is None or current == to:
        return []
    scripts = script_directory()
    if to != "base" and to not in {rev.revision for rev in scripts.iterate_revisions(
            current, "base")}:
        return []  # ``to`` is not below the current revision
    return [f"{rev.revision} {rev.doc}"
            for rev in scripts.iterate_revisions(current, to) if rev.revision != to]


def sql_downgrade(engine: Engine, to: str, *, backups: Path | None = None,
                  backup: bool = True) -> list[str]:
    """Revert revisions down to ``to`` (a revision id, or ``base``) under the migration lock,
    after a backup as in `sql_upgrade`; return what was reverted."""
    with migration_lock(engine):
        reverted = sql_reverts(engine, to)
        if not reverted:
            return []
        if backup:
            backup_database(engine, f"before-{sql_current(engine)}", backups)
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), to)
    log.info("sql schema downgraded", reverted=reverted, revision=sql_current(engine))
    return reverted


def sql_tables_dropped_by(engine: Engine, to: str) -> list[tuple[str, int]]:
    """The yabot tables a downgrade to ``to`` drops with their row counts (only ``base``
    drops whole tables: every table the baseline created, plus ``alembic_version``)."""
    if to != "base" or sql_current(engine) is None:
        return []
    present = set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        return [(name, int(conn.execute(metadata.tables[name].select().with_only_columns(
                    func.count())).scalar_one()))
                for name in sorted(present & set(metadata.tables))]


def sql_differences(engine: Engine) -> list[str]:
    """How the database differs from `yabot.stores.tables` (empty: it matches), by name."""
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                 metadata)
    return [_describe(diff) for diff in diffs]


def _describe(diff: Any) -> str:
    if isinstance(diff, list):  # column-level changes come grouped in a list
        return "; ".join(_describe(item) for item in diff)
    kind = diff[0]
    names = []
    for part in diff[1:]:
        name = getattr(part, "name", None)
        if name is not None:
            names.append(str(name))
        elif isinstance(part, str):
            names.append(part)
    return f"{kind}: {'.'.join(names)}"


def ensure_sql_schema(engine: Engine, *, auto_migrate: bool, backups: Path | None = None
                      ) -> None:
    """Bring the schema to head (``auto_migrate``; under the migration lock, so concurrent
    starts migrate once) or refuse with `SchemaMismatch` saying what to run. A database at a
    revision this code does not ship is always refused, and so is a PostgreSQL database with
    data when no backup can be taken first (``backups`` is the dump folder)."""
    current = sql_current(engine)
    _refuse_unknown(current)
    if current is not None and not sql_pending(engine):
        return  # at head: the common start, without waiting for the lock
    # Another process may be migrating right now: read outside the lock, its tables could be
    # committed between our reading no revision and our looking at the tables, and read as a
    # database made without migrations. So everything is read again under the lock, which
    # that process holds until it is done.
    with migration_lock(engine):
        current = sql_current(engine)
        _refuse_unknown(current)
        if current is None:
            unmanaged = sorted(set(inspect(engine).get_table_names()) & set(metadata.tables))
            if unmanaged:
                raise SchemaMismatch(
                    f"the SQL database has yabot tables ({', '.join(unmanaged)}) but no "
                    "Alembic revision: it was created without migrations; move it away (for "
                    "SQLite, the file) and start again, or migrate its data by hand",
                    store="sql",
                )
        pending = sql_pending(engine)
        if not pending:
            return
        if not auto_migrate:
            raise SchemaMismatch(
                f"the SQL database is at revision {current or 'base'}, this code needs "
                f"{sql_head()} (pending: {', '.join(pending)}): run `yabot migrate`",
                store="sql",
            )
        try:
            _upgrade_locked(engine, backups=backups)
        except BackupUnavailable as exc:
            raise SchemaMismatch(
                f"the SQL database is at revision {current}, this code needs {sql_head()}, "
                f"and it cannot be backed up before migrating ({exc}): run `yabot migrate`",
                store="sql",
            ) from exc


def _refuse_unknown(current: str | None) -> None:
    if not sql_is_known(current):
        raise SchemaMismatch(
            f"the SQL database is at revision {current}, unknown to this version of yabot "
            f"(head {sql_head()}): it was migrated by newer code; deploy that code or run "
            "`yabot migrate --to REV` with the newer code first",
            store="sql",
        )


def ensure_mongo_schema(db: Database[Document], *, auto_migrate: bool) -> None:
    """The same for MongoDB's numbered steps."""
    current = mongo_current(db)
    if current > mongo_head():
        raise SchemaMismatch(
            f"the MongoDB database is at migration {current}, newer than this code's "
            f"{mongo_head()}: it was migrated by newer code",
            store="mongo",
        )
    pending = mongo_pending(db)
    if not pending:
        return
    if not auto_migrate:
        raise SchemaMismatch(
            f"the MongoDB database is at migration {current}, this code needs {mongo_head()} "
            f"(pending: {', '.join(map(str, pending))}): run `yabot migrate`",
            store="mongo",
        )
    mongo_upgrade(db)


@dataclass(frozen=True)
class _RevisionOptions:
    message: str
    rev_id: str | None = None


def new_revision(engine: Engine, options: _RevisionOptions) -> None:
    """Autogenerate a revision from the difference between ``engine``'s schema and the tables."""
    with engine.begin() as conn:
        command.revision(alembic_config(conn), message=options.message, autogenerate=True,
                         rev_id=options.rev_id)


if __name__ == "__main__":  # python -m yabot.stores.migrate revision -m "…" [--rev-id N] [URL]
    import argparse
    import tempfile

    from yabot.stores.engine import make_engine

    parser = argparse.ArgumentParser(prog="python -m yabot.stores.migrate")
    parser.add_argument("action", choices=["revision"])
    parser.add_argument("-m", "--message", required=True)
    parser.add_argument("--rev-id")
    parser.add_argument("url", nargs="?", help="database at the current head (default: a "
                        "temporary SQLite file upgraded to head)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        engine = make_engine(args.url or f"sqlite:///{scratch}/head.sqlite3")
        if args.url is None and script_directory().get_current_head() is not None:
            sql_upgrade(engine)
        new_revision(engine, _RevisionOptions(args.message, args.rev_id))
        engine.dispose()
    sys.exit(0)
