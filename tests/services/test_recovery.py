"""Transfers and gifts finish on their own: the recovery pass completes (or refunds) what a
crash interrupted after the debit, once, with the events of what it did."""

from __future__ import annotations

from datetime import timedelta

from tests.sessions.support import stored_events
from tests.support.stores import create
from yabot.domain.besitos import derived_key, user_key
from yabot.domain.users import utcnow
from yabot.events.models import BesitosTransferred, UserInteraction
from yabot.services.besitos import CREDIT, REFUND, BesitosService
from yabot.services.shop import ShopService
from yabot.stores.handles import Stores
from yabot.stores.outbox import PendingTransfer

A, B, NOBODY = 1, 2, 99


def debit_as_a_crashed_transfer(stores: Stores, to_user_id: int, amount: int,
                                sku: str | None = None) -> str:
    """What a transfer (or gift) had stored when the process died: the debit and its
    pending second half, in one write — and nothing after it."""
    key = user_key(A, "t1")
    pending = PendingTransfer(key=key, from_user_id=A, to_user_id=to_user_id, amount=amount,
                              credit_key=key if sku else user_key(A, "t1", CREDIT),
                              created_at=utcnow(), sku=sku, reason="crashed")
    change = stores.documents.ledger.debit(A, amount, key, "transfer", pending=pending)
    assert change.applied
    return key


def test_an_interrupted_transfer_is_credited_once_with_its_event(stores: Stores) -> None:
    create(stores, A, 10)
    create(stores, B)
    key = debit_as_a_crashed_transfer(stores, B, 4)
    service = BesitosService(stores)

    assert service.recover(utcnow() + timedelta(seconds=1)) == 1
    assert service.recover(utcnow() + timedelta(seconds=1)) == 0  # once

    ledger = stores.documents.ledger
    assert ledger.pending_transfers(utcnow() + timedelta(seconds=1)) == []
    assert stores.documents.users.get(B).besitos == 4  # type: ignore[union-attr]
    assert stores.documents.users.get(A).besitos == 6  # type: ignore[union-attr]
    assert ledger.get(derived_key(key, REFUND)) is None
    credits = [e for e in stored_events(stores)
               if isinstance(e, BesitosTransferred) and e.user_id == B]
    assert [(e.amount, e.balance_after, e.ledger_key) for e in credits] == [
        (4, 4, user_key(A, "t1", CREDIT))]


def test_a_transfer_to_a_user_who_is_gone_is_refunded_once(stores: Stores) -> None:
    create(stores, A, 10)
    key = debit_as_a_crashed_transfer(stores, NOBODY, 4)

    assert BesitosService(stores).recover(utcnow() + timedelta(seconds=1)) == 1
    assert BesitosService(stores).recover(utcnow() + timedelta(seconds=1)) == 0

    ledger = stores.documents.ledger
    assert stores.documents.users.get(A).besitos == 10  # type: ignore[union-attr]
    refund = ledger.get(derived_key(key, REFUND))
    assert refund is not None
    assert refund.amount == 4
    assert ledger.get(key).compensated  # type: ignore[union-attr]
    refunds = [e for e in stored_events(stores)
               if isinstance(e, BesitosTransferred) and e.reason == "refund"]
    assert [(e.user_id, e.amount, e.balance_after) for e in refunds] == [(A, 4, 10)]


def test_an_interrupted_gift_is_delivered_with_the_recipients_event(stores: Stores) -> None:
    create(stores, A, 10)
    create(stores, B)
    debit_as_a_crashed_transfer(stores, B, 2, sku="rose")

    assert ShopService(stores).recover(utcnow() + timedelta(seconds=1)) == 1
    assert ShopService(stores).recover(utcnow() + timedelta(seconds=1)) == 0

    assert stores.documents.users.get(B).inventory == ("rose",)  # type: ignore[union-attr]
    received = [e for e in stored_events(stores)
                if isinstance(e, UserInteraction) and e.action == "gift-received"]
    assert [(e.user_id, e.details["sku"]) for e in received] == [(B, "rose")]


def test_a_transfer_younger_than_the_cutoff_is_left_to_its_request(stores: Stores) -> None:
    create(stores, A, 10)
    create(stores, B)
    debit_as_a_crashed_transfer(stores, B, 4)

    assert BesitosService(stores).recover(utcnow() - timedelta(seconds=60)) == 0
    assert stores.documents.users.get(B).besitos == 0  # type: ignore[union-attr]


def test_a_change_and_its_events_take_the_users_next_seqs_in_one_write(
    stores: Stores
) -> None:
    create(stores, A, 10)
    before = len([e for e in stored_events(stores) if e.user_id == A])

    BesitosService(stores).process_transaction(A, "spend", 3, "s1")

    mine = [e for e in stored_events(stores) if e.user_id == A]
    assert [e.seq for e in mine] == list(range(1, before + 2))
    spent = mine[-1]
    assert isinstance(spent, BesitosTransferred)
    assert (spent.amount, spent.balance_after) == (-3, 7)
