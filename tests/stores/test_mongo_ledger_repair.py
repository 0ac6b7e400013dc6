"""The `mongo` ledger has no transaction across the user document and the ledger collection:
a process dying between the two writes must not leave an applied change out of the ledger."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pymongo.database import Database

from tests.support.stores import MONGO_BACKENDS, mongo_database
from yabot.domain.users import UserDocument
from yabot.stores.mongo import MongoBesitosLedger, MongoUserDocuments, ensure_indexes

USER = 7


class ProcessDied(BaseException):
    """Stands for the process ending between the balance update and the ledger write."""


class DyingLedger(MongoBesitosLedger):
    """Dies at its first ledger write, as a process killed at that point would."""

    def _record(self, entry: dict[str, Any]) -> None:
        raise ProcessDied


@pytest.fixture(params=MONGO_BACKENDS)
def db(request: pytest.FixtureRequest) -> Iterator[Database[dict[str, Any]]]:
    with mongo_database(request.param) as db:
        ensure_indexes(db)
        MongoUserDocuments(db).create_if_absent(UserDocument(user_id=USER, besitos=10))
        yield db


def test_a_debit_cut_off_before_its_ledger_write_is_recorded_by_the_replay(
    db: Database[dict[str, Any]],
) -> None:
    with pytest.raises(ProcessDied):
        DyingLedger(db, None).debit(USER, 3, "k1", "purchase")
    ledger = MongoBesitosLedger(db, None)  # the restarted process
    assert ledger.get("k1") is None  # the window this test is about

    replay = ledger.debit(USER, 3, "k1", "purchase")

    assert (replay.applied, replay.balance) == (False, 7)  # applied once, before the crash
    entry = ledger.get("k1")
    assert entry is not None
    assert (entry.amount, entry.balance_after, entry.reason) == (-3, 7, "purchase")


def test_later_changes_record_a_cut_off_entry_with_the_balance_it_left(
    db: Database[dict[str, Any]],
) -> None:
    with pytest.raises(ProcessDied):
        DyingLedger(db, None).debit(USER, 3, "k1")
    ledger = MongoBesitosLedger(db, None)

    ledger.credit(USER, 5, "k2")
    ledger.debit(USER, 4, "k3")

    assert [(e.key, e.amount, e.balance_after) for e in ledger.entries(USER)] == [
        ("k3", -4, 8), ("k2", 5, 12), ("k1", -3, 7),
    ]
    user = db.users.find_one({"user_id": USER})
    assert user is not None
    assert user["pending_ledger"] == []


def test_reading_the_entries_records_a_cut_off_entry(db: Database[dict[str, Any]]) -> None:
    with pytest.raises(ProcessDied):
        DyingLedger(db, None).credit(USER, 2, "k1", "reaction")

    entries = MongoBesitosLedger(db, None).entries(USER)

    assert [(e.key, e.amount, e.balance_after) for e in entries] == [("k1", 2, 12)]
