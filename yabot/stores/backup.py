"""A copy of the database before its schema changes, so an upgrade or a downgrade can be undone.

- SQLite: the file is copied next to itself as ``<file>.<label>.bak`` with SQLite's online
  backup API, so a running reader does not corrupt the copy.
- PostgreSQL: ``pg_dump --format=custom`` of yabot's schema into the backups folder
  (``<data dir>/backups`` for `yabot migrate`), restorable with ``pg_restore``. Without
  ``pg_dump`` on ``PATH`` the change is refused (`BackupUnavailable`) unless the operator
  passes ``--no-backup`` (their platform's own backups, say).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import structlog
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from yabot.errors import BackupUnavailable

log = structlog.get_logger("yabot.stores.migrate")


def backup_database(engine: Engine, label: str, folder: Path | None) -> Path | None:
    """Back ``engine``'s database up before a schema change; the copy's path, or None when
    there is nothing to copy (an in-memory or missing SQLite file, another backend).
    PostgreSQL needs ``folder``; `BackupUnavailable` when the copy cannot be made."""
    if engine.dialect.name == "postgresql":
        if folder is None:
            raise BackupUnavailable("no folder for the PostgreSQL backup")
        return pg_dump(engine, folder, label)
    return backup_sqlite(engine, label)


def backup_sqlite(engine: Engine, label: str) -> Path | None:
    """Copy a SQLite database file to ``<file>.<label>.bak``; None for other databases."""
    url = make_url(str(engine.url))
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    source = Path(url.database)
    if not source.exists():
        return None
    target = source.with_name(f"{source.name}.{label}.bak")
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()
    log.info("sqlite database backed up", path=str(target))
    return target


def pg_dump_available() -> bool:
    return shutil.which("pg_dump") is not None


def pg_dump(engine: Engine, folder: Path, label: str) -> Path:
    """``pg_dump`` of the schema yabot uses into ``folder``; `BackupUnavailable` on failure."""
    executable = shutil.which("pg_dump")
    if executable is None:
        raise BackupUnavailable(
            "pg_dump is not on PATH, so the database cannot be backed up before the change: "
            "install the PostgreSQL client tools, or pass --no-backup if you have a backup"
        )
    with engine.connect() as conn:
        schema = str(conn.execute(text("SELECT current_schema()")).scalar_one())
    url = make_url(str(engine.url))
    env = dict(os.environ)
    if url.password is not None:  # not on the command line, where `ps` shows it
        env["PGPASSWORD"] = str(url.password)
    conninfo = url.set(drivername="postgresql", password=None).render_as_string(
        hide_password=False)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = folder / f"{url.database or 'yabot'}-{schema}-{label}-{stamp}.dump"
    # S603: the executable is pg_dump from PATH and every argument is ours (no shell).
    result = subprocess.run(  # noqa: S603
        [executable, "--format=custom", f"--file={target}", f"--schema={schema}", "--no-owner",
         f"--dbname={conninfo}"],
        env=env, capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        target.unlink(missing_ok=True)
        detail = (result.stderr.strip().splitlines() or ["no message"])[0]
        raise BackupUnavailable(f"pg_dump failed ({detail}); nothing was changed; pass "
                                "--no-backup to change the schema without a backup")
    log.info("postgresql schema backed up", path=str(target), schema=schema)
    return target
