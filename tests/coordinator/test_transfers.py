"""Transfers through the `Coordinator` actor: idempotent, and compensated when the credit fails."""

from __future__ import annotations

from collections.abc import Iterator

import pykka
import pytest

from actors import ask
from tests.support.actors import actor_kit
from tests.support.faults import Failing, InjectedFault, inject_documents
from tests.support.stores import create
from tests.support.waiting import ASK
from yabot.coordinator import Coordinator, ProcessTransaction, ValidateVipAccess
from yabot.errors import IdempotencyConflict, InsufficientBesitos, InvalidInput, UserNotFound
from yabot.stores.handles import Stores

A, B = 1, 2


@pytest.fixture
def coordinator(stores: Stores) -> Iterator[pykka.ActorRef[Coordinator]]:
    create(stores, A, besitos=10)
    create(stores, B)
    with actor_kit() as kit:
        yield kit.spawn(lambda: Coordinator(stores))


def transfer(amount: int, key: str, to: int = B) -> ProcessTransaction:
    return ProcessTransaction(user_id=A, kind="transfer", amount=amount, idempotency_key=key,
                              to_user_id=to)


def balances(stores: Stores) -> tuple[int, int]:
    a, b = stores.documents.users.get(A), stores.documents.users.get(B)
    assert a is not None
    assert b is not None
    return a.besitos, b.besitos


def test_a_transfer_moves_besitos_once(stores: Stores,
                                       coordinator: pykka.ActorRef[Coordinator]) -> None:
    first = ask(coordinator, transfer(4, "t1"), timeout=ASK)
    again = ask(coordinator, transfer(4, "t1"), timeout=ASK)
    assert (first.applied, first.balance, first.recipient_balance) == (True, 6, 4)
    assert (again.applied, again.balance) == (False, 6)
    assert balances(stores) == (6, 4)
    with pytest.raises(IdempotencyConflict):
        ask(coordinator, transfer(5, "t1"), timeout=ASK)
    with pytest.raises(IdempotencyConflict):  # same key, another recipient
        ask(coordinator, transfer(4, "t1", to=3), timeout=ASK)
    with pytest.raises(InsufficientBesitos):
        ask(coordinator, transfer(7, "t2"), timeout=ASK)
    with pytest.raises(UserNotFound):
        ask(coordinator, transfer(1, "t3", to=99), timeout=ASK)
    with pytest.raises(InvalidInput):
        ask(coordinator, transfer(1, "t4", to=A), timeout=ASK)
    assert balances(stores) == (6, 4)


def test_a_failed_credit_is_compensated_and_the_ledger_shows_it(
    stores: Stores, coordinator: pykka.ActorRef[Coordinator],
) -> None:
    ledger = Failing(stores.documents.ledger, "credit", when=lambda user_id, *_, **__: user_id == B)
    inject_documents(stores, ledger=ledger)

    with pytest.raises(InjectedFault):
        ask(coordinator, transfer(4, "t1"), timeout=ASK)

    assert ledger.raised == 1
    assert balances(stores) == (10, 0)  # the sender got the 4 besitos back
    debit = stores.documents.ledger.get(f"u{A}:t1")
    refund = stores.documents.ledger.get(f"u{A}:t1:refund")
    assert debit is not None
    assert refund is not None
    assert (debit.amount, debit.compensated) == (-4, True)
    assert (refund.amount, refund.balance_after) == (4, 10)
    assert stores.documents.ledger.get(f"u{A}:t1:credit") is None
    # The key is spent on a refunded transfer: a retry must use a new key.
    with pytest.raises(IdempotencyConflict):
        ask(coordinator, transfer(4, "t1"), timeout=ASK)
    assert balances(stores) == (10, 0)


def test_a_replay_finishes_a_transfer_interrupted_after_the_debit(
    stores: Stores, coordinator: pykka.ActorRef[Coordinator],
) -> None:
    # What a crash between the two writes leaves: the debit, no credit, no refund.
    stores.documents.ledger.debit(A, 4, f"u{A}:t1", "transfer", request="transfer:4:2:")
    assert balances(stores) == (6, 0)
    finished = ask(coordinator, transfer(4, "t1"), timeout=ASK)
    assert (finished.applied, finished.recipient_balance) == (True, 4)
    assert balances(stores) == (6, 4)
    assert ask(coordinator, transfer(4, "t1"), timeout=ASK).applied is False
    assert balances(stores) == (6, 4)


def test_vip_access_is_answered_for_a_free_user(coordinator: pykka.ActorRef[Coordinator]
                                                ) -> None:
    access = ask(coordinator, ValidateVipAccess(user_id=A), timeout=ASK)
    assert (access.vip, access.subscription.plan) == (False, "free")


def test_a_key_of_the_longest_length_is_refunded_too(
    stores: Stores, coordinator: pykka.ActorRef[Coordinator],
) -> None:
    key = "k" * 128
    ledger = Failing(stores.documents.ledger, "credit", when=lambda user_id, *_, **__: user_id == B)
    inject_documents(stores, ledger=ledger)
    with pytest.raises(InjectedFault):
        ask(coordinator, transfer(4, key), timeout=ASK)
    assert balances(stores) == (10, 0)
    with pytest.raises(IdempotencyConflict):
        ask(coordinator, transfer(4, key), timeout=ASK)
