"""`yabot migrate`: Alembic on SQLite and PostgreSQL, numbered steps on MongoDB (mongomock)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, inspect, text

from tests.support import mongomock_gaps
from tests.support.processes import clean_env
from tests.support.settings import SettingsFactory
from tests.support.waiting import COMMAND_CEILING, scaled
from yabot.cli import main
from yabot.errors import SchemaMismatch
from yabot.settings import Settings
from yabot.stores.connect import sql_engine
from yabot.stores.migrate import (
    ensure_mongo_schema,
    ensure_sql_schema,
    sql_current,
    sql_differences,
    sql_head,
)
from yabot.stores.migration_command import MigrateOptions, migrate
from yabot.stores.mongo import mongo_documents
from yabot.stores.mongo_migrations import mongo_current, mongo_head, mongo_problems
from yabot.stores.schemas.history import VALIDATORS_V1
from yabot.stores.sql import SqlBesitosLedger
from yabot.stores.tables import metadata


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def sql_settings(request: pytest.FixtureRequest, make_settings: SettingsFactory) -> Iterator[
    Settings
]:
    """Settings on an empty SQLite file, or an empty PostgreSQL schema (emptied afterwards)."""
    if request.param == "sqlite":
        yield make_settings()
        return
    settings = make_settings(DATABASE_URL=request.getfixturevalue("postgres_url"))
    yield settings
    engine = sql_engine(settings)
    metadata.drop_all(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    engine.dispose()


def run(settings: Settings, **options: Any) -> tuple[int, list[str]]:
    lines: list[str] = []
    code = migrate(settings, MigrateOptions(**options), lines.append,
                   mongo_client_factory=_mongo_factory)
    return code, lines


_mongo_client: Any = None


def _mongo_factory(*_: Any, **__: Any) -> Any:
    return _mongo_client


@pytest.fixture
def mongo_settings(make_settings: SettingsFactory) -> Iterator[Settings]:
    """Settings with MongoDB configured; the client is one shared mongomock client."""
    global _mongo_client
    _mongo_client = mongomock_gaps.client()
    yield make_settings(MONGODB_URI="mongodb://mongomock.invalid", MONGODB_DATABASE="migrations")
    _mongo_client = None


def engine_of(settings: Settings) -> Engine:
    return sql_engine(settings)


def test_fresh_database_migrates_to_head_and_matches_the_tables(sql_settings: Settings) -> None:
    code, lines = run(sql_settings)
    assert code == 0
    assert "done: sql: apply 0001 baseline: every table" in lines
    assert lines[-1] == "schema ok"
    engine = engine_of(sql_settings)
    assert sql_current(engine) == sql_head()
    assert sql_differences(engine) == []  # autogenerate finds nothing to do
    assert set(metadata.tables) <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_migrating_twice_is_a_no_op(sql_settings: Settings) -> None:
    run(sql_settings)
    code, lines = run(sql_settings)
    assert code == 0
    assert not [line for line in lines if line.startswith("done:")]


def test_check_lists_pending_then_passes(sql_settings: Settings) -> None:
    code, lines = run(sql_settings, check=True)
    assert code == 1
    assert "pending: sql: apply 0001 baseline: every table" in lines
    run(sql_settings)
    assert run(sql_settings, check=True) == (0, [
        f"sql: at {sql_head()}, head {sql_head()}",
        "mongo: not configured (MONGODB_URI unset; documents live in the SQL database)",
        "up to date",
    ])


def test_dry_run_changes_nothing(sql_settings: Settings) -> None:
    code, lines = run(sql_settings, dry_run=True)
    assert code == 0
    assert "would sql: apply 0001 baseline: every table" in lines
    engine = engine_of(sql_settings)
    assert sql_current(engine) is None
    engine.dispose()


def test_upgrade_downgrade_upgrade_round_trip(sql_settings: Settings) -> None:
    assert run(sql_settings)[0] == 0
    code, lines = run(sql_settings, to="base", yes=True)
    assert code == 0
    assert "done: sql: revert 0001 baseline: every table" in lines
    engine = engine_of(sql_settings)
    assert sql_current(engine) is None
    assert not set(metadata.tables) & set(inspect(engine).get_table_names())
    assert run(sql_settings, check=True)[0] == 1
    assert run(sql_settings)[0] == 0
    assert sql_differences(engine) == []
    engine.dispose()


def test_a_missing_table_is_reported_by_name(sql_settings: Settings) -> None:
    run(sql_settings)
    engine = engine_of(sql_settings)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE items"))
    assert any("items" in diff for diff in sql_differences(engine))
    engine.dispose()


@pytest.mark.usefixtures("in_process_cli")
def test_yabot_migrate_reports_a_table_missing_after_applying_and_exits_1(
    sql_settings: Settings, capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(sql_settings, to="0001")[0] == 0
    engine = engine_of(sql_settings)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE items"))
    engine.dispose()
    capsys.readouterr()
    code = main(["migrate"])  # reads the same settings from the environment
    lines = capsys.readouterr().out.splitlines()
    assert code == 1
    assert "done: sql: apply 0002 ledger: request fingerprint and compensation mark" in lines
    assert [line for line in lines if line.startswith("sql mismatch:")] == [
        "sql mismatch: add_table: items"  # autogenerate would add it back
    ]
    assert "schema ok" not in lines


def test_sqlite_file_is_backed_up_before_an_upgrade(make_settings: SettingsFactory,
                                                     tmp_path: Path) -> None:
    settings = make_settings()
    engine = engine_of(settings)
    with engine.begin() as conn:  # the file exists (an older, empty database)
        conn.execute(text("CREATE TABLE keepsake (x INTEGER)"))
    engine.dispose()
    run(settings)
    backup = tmp_path / "var" / "yabot.sqlite3.before-base.bak"
    assert backup.exists()
    backup_engine = sql_engine(make_settings(SQLITE_DATABASE_PATH=str(backup)))
    assert inspect(backup_engine).get_table_names() == ["keepsake"]
    backup_engine.dispose()


def test_store_refuses_a_behind_schema_without_auto_migrate(sql_settings: Settings) -> None:
    engine = engine_of(sql_settings)
    with pytest.raises(SchemaMismatch, match="run `yabot migrate`"):
        ensure_sql_schema(engine, auto_migrate=False)
    ensure_sql_schema(engine, auto_migrate=True)
    ensure_sql_schema(engine, auto_migrate=False)  # at head now: accepted
    engine.dispose()


def test_store_refuses_tables_created_without_migrations(sql_settings: Settings) -> None:
    engine = engine_of(sql_settings)
    metadata.create_all(engine)
    with pytest.raises(SchemaMismatch, match="no Alembic revision"):
        ensure_sql_schema(engine, auto_migrate=True)
    engine.dispose()


def test_store_refuses_a_database_migrated_by_newer_code(sql_settings: Settings) -> None:
    run(sql_settings)
    engine = engine_of(sql_settings)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(SchemaMismatch, match="9999"):
        ensure_sql_schema(engine, auto_migrate=True)
    assert run(sql_settings)[0] == 1
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = :head"),
                     {"head": sql_head()})
    engine.dispose()


def test_mongo_steps_apply_once_and_leave_indexes_and_validators(
    mongo_settings: Settings,
) -> None:
    code, lines = run(mongo_settings)
    assert code == 0
    assert "done: mongo: apply 1 collections with $jsonSchema validators" in lines
    assert "done: mongo: apply 2 unique and lookup indexes" in lines
    db = _mongo_client["migrations"]
    assert mongo_current(db) == mongo_head()
    assert mongo_problems(db) == []
    code, lines = run(mongo_settings)
    assert code == 0
    assert not [line for line in lines if line.startswith("done:")]


def test_mongo_round_trip_with_check(mongo_settings: Settings) -> None:
    assert run(mongo_settings, check=True)[0] == 1
    run(mongo_settings)
    assert run(mongo_settings, check=True)[0] == 0
    code, lines = run(mongo_settings, mongo_to=0)
    assert code == 0
    assert "done: mongo: revert 2 unique and lookup indexes" in lines
    db = _mongo_client["migrations"]
    assert mongo_current(db) == 0
    assert "index missing: users.user_id_unique" in mongo_problems(db)
    assert run(mongo_settings, check=True)[0] == 1
    assert run(mongo_settings)[0] == 0
    assert mongo_problems(db) == []


def test_a_missing_mongo_index_is_reported_by_name(mongo_settings: Settings) -> None:
    run(mongo_settings)
    db = _mongo_client["migrations"]
    db.besitos_ledger.drop_index("key_unique")
    code, lines = run(mongo_settings)
    assert code == 1
    assert "mongo mismatch: index missing: besitos_ledger.key_unique" in lines


def test_doc_store_refuses_pending_mongo_steps_without_auto_migrate() -> None:
    db = mongomock_gaps.client()["refuse"]
    with pytest.raises(SchemaMismatch, match="run `yabot migrate`"):
        ensure_mongo_schema(db, auto_migrate=False)
    ensure_mongo_schema(db, auto_migrate=True)
    assert mongo_current(db) == mongo_head()


def test_yabot_migrate_command_exit_codes(tmp_path: Path) -> None:
    env = clean_env({"YABOT_DATA_DIR": str(tmp_path), "YABOT_ENV": "test"})

    def yabot(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "yabot", "migrate", *args], env=env,
                              cwd=tmp_path, capture_output=True, text=True,
                              timeout=scaled(COMMAND_CEILING), check=False)

    before = yabot("--check")
    assert before.returncode == 1
    assert "pending: sql: apply 0001" in before.stdout
    assert yabot().returncode == 0
    after = yabot("--check")
    assert after.returncode == 0
    assert "up to date" in after.stdout


def test_revision_0002_adds_the_ledger_columns_keeping_the_entries(sql_settings: Settings
                                                                   ) -> None:
    assert run(sql_settings, to="0001")[0] == 0
    engine = engine_of(sql_settings)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO user_documents (user_id, document, besitos) VALUES (1, '{}', 5)"))
        conn.execute(text(
            "INSERT INTO besitos_ledger (key, user_id, amount, balance_after, reason, created_at)"
            " VALUES ('u1:old', 1, 5, 5, 'earn', CURRENT_TIMESTAMP)"))
    code, lines = run(sql_settings)
    assert code == 0
    assert "done: sql: apply 0002 ledger: request fingerprint and compensation mark" in lines
    assert lines[-1] == "schema ok"
    entry = SqlBesitosLedger(engine).get("u1:old")
    assert entry is not None
    assert (entry.amount, entry.request, entry.compensated) == (5, None, False)
    assert run(sql_settings, to="0001")[0] == 0  # and back: the columns go, the rows stay
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM besitos_ledger")).scalar_one() == 1
    engine.dispose()


def test_mongo_step_3_sets_the_new_validators_and_reverts_to_the_old(
    mongo_settings: Settings,
) -> None:
    code, lines = run(mongo_settings)
    assert code == 0
    assert ("done: mongo: apply 3 validators: localized fragments, preferences, ledger request "
            "and mark") in lines
    db = _mongo_client["migrations"]
    assert mongo_problems(db) == []
    assert run(mongo_settings, mongo_to=2)[0] == 0
    options = {info["name"]: info["options"] for info in db.list_collections()}
    assert options["narrative_fragments"]["validator"] == VALIDATORS_V1["narrative_fragments"]
    assert "validator missing or different: narrative_fragments" in mongo_problems(db)
    assert run(mongo_settings)[0] == 0
    assert mongo_problems(db) == []


def test_a_fragment_stored_in_the_old_shape_still_reads(mongo_settings: Settings) -> None:
    run(mongo_settings)
    db = _mongo_client["migrations"]
    db.narrative_fragments.insert_one({
        "fragment_id": "old", "title": "Old", "text": "Plain text", "vip_only": False,
        "choices": [{"choice_id": "go", "text": "Go", "next_fragment": "next",
                     "cost_besitos": 0, "requires_vip": False}],
    })
    fragment = mongo_documents(db).fragments.get("old")
    assert fragment is not None
    assert (fragment.text.es, fragment.choices[0].label.en) == ("Plain text", "Go")


def test_revision_0003_bot_adds_the_star_payments_table(sql_settings: Settings) -> None:
    assert run(sql_settings)[0] == 0
    engine = engine_of(sql_settings)
    try:
        columns = {c["name"] for c in inspect(engine).get_columns("star_payments")}
        assert run(sql_settings, to="0002")[0] == 0  # and back: the table goes
        assert "star_payments" not in inspect(engine).get_table_names()
    finally:
        engine.dispose()
    assert columns == {"charge_id", "user_id", "offer_id", "stars", "days", "status",
                       "subscription_id", "paid_at", "refunded_at"}
