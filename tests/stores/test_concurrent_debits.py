"""Debits racing from 8 threads on the `sql` backend (SQLite file and PostgreSQL).

mongomock's conditional update is not atomic across threads, so the `mongo` backend's
atomicity is tested only on a real server (the `mongodb` marker) by the same test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.stores import SQL_BACKENDS, mongo_database, sql_engine
from tests.support.threads import race
from yabot.domain.besitos import BalanceChange
from yabot.domain.users import UserDocument
from yabot.stores.handles import DocumentRepositories
from yabot.stores.mongo import ensure_indexes, mongo_documents
from yabot.stores.sql import sql_documents

THREADS = 8


@pytest.fixture(params=[*SQL_BACKENDS, pytest.param("mongodb", marks=pytest.mark.mongodb)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DocumentRepositories]:
    if request.param == "mongodb":
        with mongo_database("mongodb") as db:
            ensure_indexes(db)
            yield mongo_documents(db)
        return
    with sql_engine(request.param, request, tmp_path) as engine:
        yield sql_documents(engine)


def race_all(work: Callable[[int], list[BalanceChange]]) -> list[BalanceChange]:
    """Every change ``work`` made, from `THREADS` threads racing."""
    return [change for changes in race(THREADS, work) for change in changes]


def test_racing_debits_never_take_the_balance_below_zero(store: DocumentRepositories) -> None:
    store.users.create_if_absent(UserDocument(user_id=1, besitos=100))
    results = race_all(lambda i: [store.ledger.debit(1, 3, f"t{i}-{n}") for n in range(10)])
    applied = sum(change.applied for change in results)
    user = store.users.get(1)
    assert user is not None
    assert applied == 33  # 100 // 3: every debit that fits applies, none beyond
    assert user.besitos == 100 - 3 * applied == 1
    assert all(change.balance >= 0 for change in results)
    assert len(store.ledger.entries(1, limit=1000)) == applied


def test_racing_debits_with_one_key_apply_once(store: DocumentRepositories) -> None:
    store.users.create_if_absent(UserDocument(user_id=1, besitos=100))
    results = race_all(lambda _: [store.ledger.debit(1, 10, "the-same-purchase")])
    assert sum(change.applied for change in results) == 1
    user = store.users.get(1)
    assert user is not None
    assert user.besitos == 90
    assert [entry.key for entry in store.ledger.entries(1)] == ["the-same-purchase"]
