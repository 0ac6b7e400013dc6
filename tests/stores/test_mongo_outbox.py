"""The `mongo` backend's outbox: a change's events are parked in the user's document by the
change's own update, and copied to the SQL ``event_outbox`` afterwards — so a crash between
the two leaves them parked, never lost, and the next write of that user copies them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from tests.support.stores import mongo_database, sql_engine
from yabot.domain.users import UserDocument
from yabot.events.drafts import Drafts, besitos
from yabot.events.models import BesitosTransferred, parse_event
from yabot.events.outbox import SqlOutbox
from yabot.stores.mongo import ensure_indexes, mongo_documents
from yabot.stores.outbox import OutboxRecord
from yabot.stores.sql import append_outbox

Document = dict[str, Any]


class DyingOutbox:
    """Copies to the SQL outbox, except while ``dead`` (as if the process died first)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dead = False

    def __call__(self, records: Sequence[OutboxRecord]) -> None:
        if self.dead:
            raise RuntimeError("the process died before copying the parked events")
        append_outbox(self.engine, records)


@pytest.fixture
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Any, Engine,
                                                                             DyingOutbox]]:
    with sql_engine("sqlite", request, tmp_path) as engine, mongo_database("mongomock") as db:
        ensure_indexes(db)
        outbox = DyingOutbox(engine)
        yield mongo_documents(db, outbox=outbox), engine, outbox


def test_events_parked_by_a_change_survive_a_crash_and_the_next_write_copies_them(
    setup: tuple[Any, Engine, DyingOutbox]
) -> None:
    documents, engine, outbox = setup
    documents.users.create_if_absent(UserDocument(user_id=1))
    drafts = Drafts("events")

    outbox.dead = True
    change = documents.ledger.credit(1, 5, "k1", "earn",
                                     events=drafts.of(besitos(1, 5, "k1", "earn")))
    assert change.applied  # stored: the caller is not told otherwise
    assert SqlOutbox(lambda: engine).count() == 0  # its event is parked

    outbox.dead = False
    documents.ledger.credit(1, 2, "k2", "earn", events=drafts.of(besitos(1, 2, "k2", "earn")))

    stored = [parse_event(entry.body) for entry in SqlOutbox(lambda: engine).oldest(10)]
    assert all(isinstance(e, BesitosTransferred) for e in stored)
    assert [(e.seq, e.ledger_key, e.balance_after) for e in stored
            if isinstance(e, BesitosTransferred)] == [(1, "k1", 5), (2, "k2", 7)]
    assert [entry.key for entry in documents.ledger.entries(1)] == ["k2", "k1"]


def test_a_write_that_lost_the_race_for_the_users_seq_tries_again(
    setup: tuple[Any, Engine, DyingOutbox]
) -> None:
    documents, engine, _ = setup
    documents.users.create_if_absent(UserDocument(user_id=1))
    drafts = Drafts("events")
    raced: list[bool] = []

    def build(first_seq: int, balance: int) -> Sequence[OutboxRecord]:
        if not raced:  # another write of the same user commits in between
            raced.append(True)
            documents.users.record_events(1, drafts.of(besitos(1, 0, "other", "x")))
        return drafts.of(besitos(1, 3, "k1", "earn"))(first_seq, balance)

    documents.ledger.credit(1, 3, "k1", "earn", events=build)

    stored = [parse_event(entry.body) for entry in SqlOutbox(lambda: engine).oldest(10)]
    assert [e.seq for e in stored] == [1, 2]
    assert documents.users.get(1).besitos == 3


def test_the_recovery_pass_copies_events_a_crash_left_parked(
    setup: tuple[Any, Engine, DyingOutbox]
) -> None:
    documents, engine, outbox = setup
    documents.users.create_if_absent(UserDocument(user_id=1))
    outbox.dead = True
    documents.users.record_events(1, Drafts("events").of(besitos(1, 0, "k", "x")))
    assert SqlOutbox(lambda: engine).count() == 0

    outbox.dead = False
    assert documents.users.flush_parked() == 1
    assert documents.users.flush_parked() == 0
    assert SqlOutbox(lambda: engine).count() == 1
