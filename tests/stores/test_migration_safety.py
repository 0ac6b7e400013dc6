"""Migrations are safe: one run however many processes start at once (the migration lock),
a backup before every change (pg_dump for PostgreSQL), a downgrade to base only with --yes,
and read-only modes that create nothing."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy import text

from tests.stores.test_migrations import run, sql_settings  # noqa: F401 -- the fixture
from tests.support.http import request
from tests.support.postgres import POSTGRES_TEST_URL
from tests.support.processes import clean_env, free_port
from tests.support.settings import TEST_JWT_SECRET, SettingsFactory
from tests.support.waiting import START_CEILING, eventually, scaled
from yabot.errors import BackupUnavailable
from yabot.settings import Settings
from yabot.stores import migrate
from yabot.stores.connect import sql_engine
from yabot.stores.migrate import ensure_sql_schema, sql_current, sql_head
from yabot.stores.migration_lock import migration_lock


def test_downgrade_to_base_asks_for_yes_and_says_what_it_drops(
    sql_settings: Settings,  # noqa: F811
) -> None:
    assert run(sql_settings)[0] == 0
    engine = sql_engine(sql_settings)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO user_documents (user_id, document, besitos) "
                          "VALUES (1, '{}', 5)"))
    code, lines = run(sql_settings, to="base")
    assert code == 1
    assert "sql: going to base drops table user_documents (1 rows)" in lines
    assert any(line.startswith("refused:") and "--yes" in line for line in lines)
    assert sql_current(engine) == sql_head()  # nothing was dropped
    code, lines = run(sql_settings, to="base", yes=True)
    assert code == 0
    assert "schema ok" not in lines
    assert sql_current(engine) is None
    engine.dispose()


def test_check_and_dry_run_create_nothing(make_settings: SettingsFactory,
                                          tmp_path: Path) -> None:
    settings = make_settings()
    for mode in ({"check": True}, {"dry_run": True}):
        code, lines = run(settings, **mode)
        assert any("apply 0001" in line for line in lines)
        assert code == (1 if "check" in mode else 0)
    assert not (tmp_path / "var").exists()


@pytest.mark.postgres
def test_postgresql_is_dumped_before_an_upgrade(sql_settings: Settings,  # noqa: F811
                                                request: pytest.FixtureRequest) -> None:
    if not sql_settings.sql_url.startswith("postgresql"):
        pytest.skip("pg_dump is for PostgreSQL; SQLite's copy is tested in test_migrations")
    assert run(sql_settings, to="0001")[0] == 0
    engine = sql_engine(sql_settings)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO user_documents (user_id, document, besitos) "
                          "VALUES (7, '{}', 3)"))
    assert run(sql_settings)[0] == 0
    [dump] = (sql_settings.data_dir / "backups").glob("*before-0001*.dump")
    listing = subprocess.run(["pg_restore", "--list", str(dump)], capture_output=True,
                             text=True, check=True).stdout
    assert "TABLE DATA" in listing
    assert "user_documents" in listing
    engine.dispose()


@pytest.mark.postgres
def test_without_pg_dump_a_change_is_refused_unless_no_backup(
    sql_settings: Settings, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
) -> None:
    if not sql_settings.sql_url.startswith("postgresql"):
        pytest.skip("only PostgreSQL needs an external tool for its backup")
    assert run(sql_settings, to="0001")[0] == 0
    monkeypatch.setenv("PATH", "")  # no pg_dump anywhere
    with pytest.raises(BackupUnavailable, match="--no-backup"):
        run(sql_settings)
    engine = sql_engine(sql_settings)
    assert sql_current(engine) == "0001"  # unchanged
    assert run(sql_settings, backup=False)[0] == 0
    assert sql_current(engine) == sql_head()
    engine.dispose()


def test_concurrent_starts_migrate_once(sql_settings: Settings) -> None:  # noqa: F811
    """Eight threads, each with its own engine (own connections, own lock file handle), start
    on an empty database at once; every one ends at head and the schema is whole."""
    engines = [sql_engine(sql_settings) for _ in range(8)]
    barrier = threading.Barrier(len(engines))
    errors: list[BaseException] = []

    def start(engine: sqlalchemy.Engine) -> None:
        try:
            barrier.wait()
            ensure_sql_schema(engine, auto_migrate=True,
                              backups=sql_settings.data_dir / "backups")
        except BaseException as exc:  # reported below, with every other thread's
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(scaled(120))
    assert errors == []
    assert {sql_current(engine) for engine in engines} == {sql_head()}
    for engine in engines:
        engine.dispose()


def test_a_start_racing_a_migration_waits_for_it_instead_of_refusing(
    sql_settings: Settings, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
) -> None:
    """The crash window of several workers starting on an empty database: one reads no
    revision, another finishes migrating (tables and revision committed together), and only
    then does the first look at the tables. It must not take them for a database made
    without migrations (it did: a worker refused to boot, once in CI)."""
    engine, other = sql_engine(sql_settings), sql_engine(sql_settings)
    backups = sql_settings.data_dir / "backups"
    real_current = migrate.sql_current
    raced: list[str | None] = []

    def current_then_the_other_migrates(each: sqlalchemy.Engine) -> str | None:
        revision = real_current(each)
        if not raced:
            raced.append(revision)
            migrate.sql_upgrade(other, backups=backups)  # the other process, start to end
        return revision

    monkeypatch.setattr(migrate, "sql_current", current_then_the_other_migrates)
    ensure_sql_schema(engine, auto_migrate=True, backups=backups)
    assert raced == [None]
    assert real_current(engine) == sql_head()
    engine.dispose()
    other.dispose()


def test_the_lock_excludes_a_second_holder(sql_settings: Settings) -> None:  # noqa: F811
    first, second = sql_engine(sql_settings), sql_engine(sql_settings)
    entered = threading.Event()

    def contend() -> None:
        with migration_lock(second):
            entered.set()

    with migration_lock(first):
        contender = threading.Thread(target=contend)
        contender.start()
        assert not entered.wait(0.2)  # negative check: held, so the contender waits
    contender.join(scaled(30))
    assert entered.is_set()
    first.dispose()
    second.dispose()


def test_many_yabot_migrate_processes_on_a_fresh_file_apply_once(tmp_path: Path) -> None:
    env = clean_env({"YABOT_DATA_DIR": str(tmp_path / "var"), "YABOT_ENV": "test"})
    processes = [subprocess.Popen([sys.executable, "-m", "yabot", "migrate"], env=env,
                                  cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(4)]
    outputs = [process.communicate(timeout=scaled(120)) for process in processes]
    assert [process.returncode for process in processes] == [0] * 4, outputs
    applied = [out for out, _ in outputs if "done: sql: apply 0001" in out]
    assert len(applied) == 1, outputs


@pytest.fixture
def empty_postgres_schema() -> Iterator[str]:
    """A brand-new schema of its own (the session's `postgres_url` is shared by tests)."""
    admin = sqlalchemy.create_engine(POSTGRES_TEST_URL)
    try:
        with admin.connect():
            pass
    except sqlalchemy.exc.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_TEST_URL} ({type(exc).__name__})")
    schema = f"yabot_fresh_{uuid.uuid4().hex[:12]}"
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = sqlalchemy.engine.make_url(POSTGRES_TEST_URL).update_query_dict(
        {"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.mark.postgres
def test_gunicorn_with_three_workers_starts_on_an_empty_postgresql_and_serves(
    empty_postgres_schema: str, tmp_path: Path, local_redis: tuple[str, str],
) -> None:
    port = free_port()
    log_path = tmp_path / "web.log"
    redis_url, prefix = local_redis  # several workers share the partitions through Redis
    env = clean_env({"YABOT_ENV": "production", "JWT_SECRET": TEST_JWT_SECRET,
                     "YABOT_DATA_DIR": str(tmp_path / "var"), "API_PORT": str(port),
                     "DATABASE_URL": empty_postgres_schema, "REDIS_URL": redis_url,
                     "INTAKE_KEY_PREFIX": prefix.rstrip(":"),
                     "EVENTS_STREAM": f"{prefix}events",
                     "RATE_LIMIT_KEY_PREFIX": f"{prefix}ratelimit"})
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "python:yabot.gunicorn_conf", "-w", "3"],
            env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
        try:
            def ready_workers() -> int:
                assert process.poll() is None, log_path.read_text()
                return log_path.read_text().count('"worker ready"')

            eventually(lambda: ready_workers() == 3, "three workers ready", ceiling=START_CEILING)
            assert request("GET", f"http://127.0.0.1:{port}/healthz").status == 200
        finally:
            process.terminate()
            code = process.wait(scaled(60))
    output = log_path.read_text()
    assert code == 0, output
    assert output.count("sql schema upgraded") == 1, output
    assert "UniqueViolation" not in output
