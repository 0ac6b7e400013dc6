"""Balances stop at `MAX_BESITOS` on every backend: earn, spend, transfer and gift driven to
the limit; past it is `BalanceLimit` and nothing is written."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text, update
from sqlalchemy import exc as sa_exc

from tests.support.faults import inject_documents
from tests.support.stores import create, sql_engine, stores_on
from yabot.domain.besitos import MAX_BESITOS, LedgerEntry, user_key
from yabot.domain.items import Item
from yabot.domain.users import UserDocument
from yabot.errors import BalanceLimit, InvalidInput
from yabot.services.besitos import BesitosService
from yabot.services.reactions import ReactionService
from yabot.services.shop import ShopService
from yabot.stores.handles import Stores
from yabot.stores.tables import besitos_ledger, user_documents

A, B = 1, 2
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres), "mongomock"]


@pytest.fixture(params=BACKENDS)
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    with stores_on(request.param, request, tmp_path) as stores:
        yield stores


def balance(stores: Stores, user_id: int) -> int:
    document = stores.documents.users.get(user_id)
    assert document is not None
    return document.besitos


def ledger_keys(stores: Stores, user_id: int) -> list[str]:
    return [entry.key for entry in stores.documents.ledger.entries(user_id, limit=1000)]


def test_earning_stops_at_the_limit_and_past_it_writes_nothing(stores: Stores) -> None:
    create(stores, A, besitos=MAX_BESITOS - 5)
    service = BesitosService(stores)
    assert service.process_transaction(A, "earn", 5, "fill").balance == MAX_BESITOS
    before = ledger_keys(stores, A)

    with pytest.raises(BalanceLimit):
        service.process_transaction(A, "earn", 1, "one-more")

    assert balance(stores, A) == MAX_BESITOS
    assert ledger_keys(stores, A) == before
    replay = service.process_transaction(A, "earn", 5, "fill")  # a replay is not a new credit
    assert (replay.applied, replay.balance) == (False, MAX_BESITOS)


def test_the_whole_range_can_be_spent_and_earned_again(stores: Stores) -> None:
    create(stores, A, besitos=MAX_BESITOS)
    service = BesitosService(stores)
    assert service.process_transaction(A, "spend", MAX_BESITOS, "all").balance == 0
    assert service.process_transaction(A, "earn", MAX_BESITOS, "back").balance == MAX_BESITOS
    with pytest.raises(InvalidInput):
        service.process_transaction(A, "earn", MAX_BESITOS + 1, "too-much")
    entries = stores.documents.ledger.entries(A)
    assert [(e.amount, e.balance_after) for e in entries[:2]] == [
        (MAX_BESITOS, MAX_BESITOS), (-MAX_BESITOS, 0)]


def test_a_transfer_to_a_full_wallet_is_refused_before_the_debit(stores: Stores) -> None:
    create(stores, A, besitos=10)
    create(stores, B, besitos=MAX_BESITOS - 3)
    service = BesitosService(stores)

    with pytest.raises(BalanceLimit):
        service.process_transaction(A, "transfer", 4, "t", to_user_id=B)

    assert (balance(stores, A), balance(stores, B)) == (10, MAX_BESITOS - 3)
    assert stores.documents.ledger.get(user_key(A, "t")) is None
    done = service.process_transaction(A, "transfer", 3, "t2", to_user_id=B)
    assert (done.balance, done.recipient_balance) == (7, MAX_BESITOS)


class StaleRecipient:
    """Reads B as empty: the wallet fills between the transfer's check and its credit."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def get(self, user_id: int) -> UserDocument | None:
        document: UserDocument | None = self._inner.get(user_id)
        if document is not None and user_id == B:
            return document.model_copy(update={"besitos": 0})
        return document


def test_a_transfer_that_loses_the_race_to_the_limit_refunds_the_sender(stores: Stores) -> None:
    create(stores, A, besitos=10)
    create(stores, B, besitos=MAX_BESITOS)
    users = stores.documents.users
    inject_documents(stores, users=StaleRecipient(users))
    service = BesitosService(stores)

    with pytest.raises(BalanceLimit):
        service.process_transaction(A, "transfer", 4, "t", to_user_id=B)

    inject_documents(stores, users=users)
    assert (balance(stores, A), balance(stores, B)) == (10, MAX_BESITOS)
    debit = stores.documents.ledger.get(user_key(A, "t"))
    assert debit is not None
    assert debit.compensated  # refunded, and marked so
    assert user_key(A, "t:credit") not in ledger_keys(stores, B)


def test_a_full_wallet_can_still_gift_and_receive_a_gift(stores: Stores) -> None:
    create(stores, A, besitos=MAX_BESITOS)
    create(stores, B, besitos=MAX_BESITOS)
    stores.documents.items.put(Item(sku="rose", name="Rose", price_besitos=MAX_BESITOS))
    shop = ShopService(stores)
    giver = stores.documents.users.get(A)
    assert giver is not None

    outcome = shop.gift(giver, "rose", B, "g", lambda: False)

    assert outcome.applied
    assert outcome.charge is not None
    assert (balance(stores, A), balance(stores, B)) == (0, MAX_BESITOS)
    assert "rose" in outcome.document.inventory


def test_a_reaction_on_a_full_wallet_earns_nothing_and_fails_nothing(stores: Stores) -> None:
    create(stores, A, besitos=MAX_BESITOS - 1)
    reactions = ReactionService(stores, reward=5, daily_cap=100)
    assert reactions.react(A, 10, 1).awarded == 0
    assert balance(stores, A) == MAX_BESITOS - 1


def test_the_store_refuses_a_credit_past_the_limit_even_called_directly(stores: Stores) -> None:
    create(stores, A, besitos=MAX_BESITOS - 1)
    ledger = stores.documents.ledger
    with pytest.raises(BalanceLimit):
        ledger.credit(A, 2, "direct")
    assert ledger.get("direct") is None
    assert ledger.credit(A, 1, "direct").balance == MAX_BESITOS
    assert not ledger.credit(A, 1, "direct").applied  # a replay at the limit is a replay


def test_a_model_past_the_limit_is_refused_before_any_write() -> None:
    with pytest.raises(ValueError, match="less than or equal"):
        UserDocument(user_id=A, besitos=MAX_BESITOS + 1)
    with pytest.raises(ValueError, match="less than or equal"):
        LedgerEntry(key="k", user_id=A, amount=1, balance_after=MAX_BESITOS + 1)


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_the_sql_schema_refuses_a_balance_past_the_limit(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:

    with sql_engine(kind, request, tmp_path) as engine:
        _write(engine, "INSERT INTO user_documents (user_id, document, besitos) "
                       "VALUES (1, '{}', 0)")
        with (pytest.raises(sa_exc.IntegrityError, match="besitos_at_most_max"),
              engine.begin() as conn):
            conn.execute(update(user_documents).values(besitos=MAX_BESITOS + 1))
        with (pytest.raises(sa_exc.IntegrityError, match="at_most_max"),
              engine.begin() as conn):
            conn.execute(besitos_ledger.insert().values(
                key="k", user_id=1, amount=MAX_BESITOS + 1, balance_after=0,
                created_at=UserDocument(user_id=1).created_at))


def _write(engine: Engine, statement: str) -> None:
    with engine.begin() as conn:
        conn.execute(text(statement))
