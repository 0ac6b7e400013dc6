"""Store actors in a real supervisor tree: connect, migrate, attach repositories, report health;
the breaker's states as health reports; retries absorbing real SQLite lock errors."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pykka
import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from actors import StartFailed, Supervisor, spawn
from tests.support import mongomock_gaps
from tests.support.clock import ManualClock
from tests.support.settings import SettingsFactory
from tests.support.waiting import ASK, DEFAULT_CEILING, scaled
from yabot.domain.users import UserDocument
from yabot.errors import SchemaMismatch, StoreUnavailable
from yabot.health import HealthRegistry, HealthStatus
from yabot.settings import Settings
from yabot.stores.actors import stores_supervisor
from yabot.stores.breaker import CircuitBreaker
from yabot.stores.connect import connect_with_retry, sql_engine
from yabot.stores.engine import make_engine
from yabot.stores.guard import StoreGuard
from yabot.stores.handles import Stores
from yabot.stores.health import store_check
from yabot.stores.migrate import sql_upgrade
from yabot.stores.mongo_migrations import mongo_current, mongo_head
from yabot.stores.retry import RetryPolicy
from yabot.stores.sql import sql_documents
from yabot.stores.transient import is_transient_sql


class Tree:
    def __init__(self, settings: Settings, mongo_client: Any = None) -> None:
        self.stores = Stores()
        self.health = HealthRegistry()
        factory = (lambda *_a, **_k: mongo_client) if mongo_client is not None else None
        extra = {"mongo_client_factory": factory} if factory is not None else {}
        self.ref: pykka.ActorRef[Supervisor] = spawn(
            lambda: stores_supervisor(settings, self.stores, health=self.health, **extra)
        )

    def report(self) -> dict[str, Any]:
        return {r.name: r for r in self.health.check_all()}

    def stop(self) -> None:
        self.ref.stop(block=True, timeout=ASK)


@pytest.fixture
def tree(settings: Settings) -> Iterator[Tree]:
    tree = Tree(settings)
    yield tree
    tree.stop()


def test_sql_store_migrates_on_start_and_serves_documents(tree: Tree) -> None:
    users = tree.stores.documents.users
    users.create_if_absent(UserDocument(user_id=1, besitos=5))
    assert tree.stores.documents.backend == "sql"
    assert tree.stores.documents.ledger.debit(1, 2, "k").balance == 3
    sql = tree.report()["sql"]
    assert sql.status is HealthStatus.PASS
    assert sql.details["breaker"] == "closed"
    assert sql.details["backend"] == "sqlite"
    assert sql.observed_ms is not None


def test_stopped_store_reports_failing_health(settings: Settings) -> None:
    tree = Tree(settings)
    tree.stop()
    assert tree.report()["sql"].status is HealthStatus.FAIL
    with pytest.raises(StoreUnavailable):
        _ = tree.stores.relational


def test_sql_store_refuses_to_start_on_a_behind_schema_without_auto_migrate(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings(SQL_AUTO_MIGRATE="false")
    with pytest.raises(StartFailed) as caught:
        Tree(settings)
    failures = []
    error: BaseException | None = caught.value
    while error is not None:
        failures.append(error)
        error = error.__cause__
    assert any(isinstance(e, SchemaMismatch) and "yabot migrate" in str(e) for e in failures)


def test_sql_store_starts_without_auto_migrate_once_migrated(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings(SQL_AUTO_MIGRATE="false")
    engine = sql_engine(settings)
    sql_upgrade(engine)
    engine.dispose()
    tree = Tree(settings)
    try:
        assert tree.report()["sql"].status is HealthStatus.PASS
    finally:
        tree.stop()


def test_doc_store_on_mongo_migrates_and_reports_health(make_settings: SettingsFactory) -> None:
    client = mongomock_gaps.client()
    settings = make_settings(MONGODB_URI="mongodb://mongomock.invalid", MONGODB_DATABASE="d")
    tree = Tree(settings, mongo_client=client)
    try:
        assert tree.stores.documents.backend == "mongo"
        assert mongo_current(client["d"]) == mongo_head()
        tree.stores.documents.users.create_if_absent(UserDocument(user_id=3, besitos=1))
        assert tree.stores.documents.ledger.debit(3, 1, "k").applied is True
        documents = tree.report()["documents"]
        assert documents.status is HealthStatus.PASS
        assert documents.details["backend"] == "mongo"
    finally:
        tree.stop()



def locked() -> None:
    raise sa_exc.OperationalError("UPDATE", {}, sqlite3.OperationalError("database is locked"))


def test_health_reports_each_breaker_state(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'h.sqlite3'}")
    clock = ManualClock()
    guard = StoreGuard("sql", is_transient=is_transient_sql, policy=RetryPolicy(attempts=1),
                       breaker=CircuitBreaker("sql", failure_threshold=2, cool_down=5,
                                              clock=clock))
    check = store_check("sql", "sqlite", guard,
                        lambda: engine.connect().close())
    assert check().status is HealthStatus.PASS
    for _ in range(2):
        with pytest.raises(StoreUnavailable):
            guard.run(locked)
    opened = check()
    assert (opened.status, opened.output, opened.details["breaker"]) == (
        HealthStatus.FAIL, "circuit open", "open")
    clock.now += 5
    half_open = check()
    assert (half_open.status, half_open.details["breaker"]) == (HealthStatus.WARN, "half_open")
    assert check().status is HealthStatus.WARN  # the check itself never uses up the probe
    assert guard.run(lambda: "probe") == "probe"
    closed = check()
    assert (closed.status, closed.details["breaker"]) == (HealthStatus.PASS, "closed")
    engine.dispose()


def test_health_fails_when_the_ping_fails() -> None:
    guard = StoreGuard("sql", is_transient=is_transient_sql)
    result = store_check("sql", "sqlite", guard, locked)()
    assert result.status is HealthStatus.FAIL
    assert result.output == "ping failed: OperationalError"


def test_connect_retries_transient_errors_then_succeeds() -> None:
    calls: list[int] = []

    def ping() -> None:
        calls.append(1)
        if len(calls) < 3:
            locked()

    connect_with_retry("sql", ping, is_transient_sql, attempts=5, sleep=lambda _: None)
    assert len(calls) == 3


def test_connect_gives_up_with_store_unavailable_naming_the_store() -> None:
    with pytest.raises(StoreUnavailable, match="could not reach the sql store after 2 attempts"):
        connect_with_retry("sql", locked, is_transient_sql, attempts=2, sleep=lambda _: None)


def test_connect_raises_a_non_transient_error_at_once() -> None:
    calls: list[int] = []

    def bad_credentials() -> None:
        calls.append(1)
        raise sa_exc.ProgrammingError("SELECT 1", {}, Exception("password authentication"))

    with pytest.raises(sa_exc.ProgrammingError):
        connect_with_retry("sql", bad_credentials, is_transient_sql, attempts=5,
                           sleep=lambda _: None)
    assert calls == [1]


def test_lock_errors_from_concurrent_writers_never_reach_the_caller(tmp_path: Path) -> None:
    """4 threads debit one SQLite file while another connection holds the write lock; a 1 ms
    busy_timeout makes SQLite raise "database is locked" at once. The lock is released only
    once every writer has hit it (each writer's retry waits for that instead of a timed
    backoff), and the guard's retries absorb every lock error, then and afterwards."""
    writers = 4
    url = f"sqlite:///{tmp_path / 'locked.sqlite3'}"
    engine = make_engine(url, busy_timeout_ms=1)
    sql_upgrade(engine)
    lock_errors: list[BaseException] = []
    blocked_writers: set[int] = set()
    counted = threading.Lock()
    all_blocked = threading.Event()
    released = threading.Event()

    def counting(error: BaseException) -> bool:
        with counted:
            lock_errors.append(error)
            if not released.is_set():
                blocked_writers.add(threading.get_ident())
                if len(blocked_writers) == writers:
                    all_blocked.set()
        return is_transient_sql(error)

    def backoff(delay: float) -> None:
        # Hit while the lock is held: wait for the release.
        if released.wait(timeout=scaled(DEFAULT_CEILING)):
            time.sleep(delay)

    guard = StoreGuard("sql", is_transient=counting, sleep=backoff,
                       policy=RetryPolicy(attempts=200, base_delay=0.005, max_delay=0.05))
    store = sql_documents(engine, guard)
    store.users.create_if_absent(UserDocument(user_id=1, besitos=1000))
    blocker = sqlite3.connect(tmp_path / "locked.sqlite3", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # holds the write lock
    errors: list[BaseException] = []
    applied: list[bool] = []

    def debit(index: int) -> None:
        try:
            for n in range(10):
                applied.append(store.ledger.debit(1, 1, f"{index}-{n}").applied)
        except BaseException as exc:  # collected and asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=debit, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    try:
        every_writer_blocked = all_blocked.wait(timeout=scaled(DEFAULT_CEILING))
    finally:
        blocker.execute("COMMIT")
        released.set()
        for thread in threads:
            thread.join()
        blocker.close()
    assert every_writer_blocked, f"only {len(blocked_writers)} writers reached the lock"
    assert errors == []
    assert all("database is locked" in str(error) for error in lock_errors)
    assert applied.count(True) == 40
    user = store.users.get(1)
    assert user is not None
    assert user.besitos == 960
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM besitos_ledger")).scalar_one() == 40
    engine.dispose()
