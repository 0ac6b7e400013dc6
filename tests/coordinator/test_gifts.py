"""Gifts through the `Coordinator` (`ProcessUserInteraction`): one user pays, another gets
the item; the giver is refunded when the item cannot be delivered."""

from __future__ import annotations

from collections.abc import Iterator

import pykka
import pytest

from actors import ask
from tests.support.actors import actor_kit
from tests.support.faults import Failing, InjectedFault, inject_documents
from tests.support.stores import create
from tests.support.waiting import ASK
from yabot.coordinator import Coordinator, ProcessUserInteraction
from yabot.errors import (
    IdempotencyConflict,
    InsufficientBesitos,
    InvalidInput,
    UserNotFound,
    VipRequired,
)
from yabot.seed import load_seed
from yabot.stores.handles import Stores

A, B = 1, 2


@pytest.fixture
def coordinator(stores: Stores) -> Iterator[pykka.ActorRef[Coordinator]]:
    load_seed(stores)
    create(stores, A, besitos=10)
    create(stores, B)
    with actor_kit() as kit:
        yield kit.spawn(lambda: Coordinator(stores))


def gift(sku: str, key: str, to: int = B) -> ProcessUserInteraction:
    return ProcessUserInteraction(user_id=A, action="gift", to_user_id=to, sku=sku,
                                  idempotency_key=key)


def inventory(stores: Stores, user_id: int) -> tuple[str, ...]:
    document = stores.documents.users.get(user_id)
    assert document is not None
    return document.inventory


def test_a_gift_charges_the_giver_and_fills_the_recipients_inventory(
    stores: Stores, coordinator: pykka.ActorRef[Coordinator],
) -> None:
    first = ask(coordinator, gift("lantern", "g1"), timeout=ASK)
    assert (first.applied, first.balance, first.charged) == (True, 6, 4)
    assert (inventory(stores, A), inventory(stores, B)) == ((), ("lantern",))
    replay = ask(coordinator, gift("lantern", "g1"), timeout=ASK)
    assert (replay.applied, replay.balance, replay.charged) == (False, 6, 0)
    owned = ask(coordinator, gift("lantern", "g2"), timeout=ASK)  # B has one already
    assert (owned.applied, owned.balance) == (False, 6)
    with pytest.raises(IdempotencyConflict):
        ask(coordinator, gift("rose", "g1"), timeout=ASK)
    with pytest.raises(InvalidInput):
        ask(coordinator, gift("rose", "g3", to=A), timeout=ASK)
    with pytest.raises(UserNotFound):
        ask(coordinator, gift("rose", "g4", to=99), timeout=ASK)
    with pytest.raises(VipRequired):
        ask(coordinator, gift("velvet_mask", "g5"), timeout=ASK)
    ask(coordinator, gift("rose", "g6"), timeout=ASK)
    with pytest.raises(InsufficientBesitos):  # B has no besitos to give A a rose
        ask(coordinator, ProcessUserInteraction(user_id=B, action="gift", to_user_id=A,
                                                sku="rose", idempotency_key="g7"), timeout=ASK)


def test_a_gift_that_cannot_be_delivered_is_refunded(
    stores: Stores, coordinator: pykka.ActorRef[Coordinator],
) -> None:
    users = stores.documents.users
    inject_documents(stores, users=Failing(users, "add_to_inventory"))
    with pytest.raises(InjectedFault):
        ask(coordinator, gift("lantern", "g1"), timeout=ASK)
    charge = stores.documents.ledger.get("u1:g1")
    assert charge is not None
    assert charge.compensated is True
    assert users.get(A) is not None
    assert [entry.amount for entry in stores.documents.ledger.entries(A)] == [4, -4, 10]
    assert inventory(stores, B) == ()
