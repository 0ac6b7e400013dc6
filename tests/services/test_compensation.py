"""Two-write workflows of one user: when the second write fails, the debit is refunded."""

from __future__ import annotations

import pytest

from tests.support.faults import Failing, InjectedFault, inject_documents
from tests.support.stores import create
from yabot.domain.users import UserChanges
from yabot.errors import IdempotencyConflict
from yabot.seed import load_seed
from yabot.services.narrative import NarrativeService
from yabot.services.shop import ShopService
from yabot.stores.handles import Stores


def never_vip() -> bool:
    return False


def balance(stores: Stores, user_id: int) -> int:
    document = stores.documents.users.get(user_id)
    assert document is not None
    return document.besitos


def test_a_paid_choice_whose_move_fails_is_refunded(stores: Stores) -> None:
    load_seed(stores)
    create(stores, 1, besitos=10)
    stores.documents.users.update(1, UserChanges(current_fragment="gate"))
    users = stores.documents.users
    inject_documents(stores, users=Failing(users, "update"))
    narrative = NarrativeService(stores)
    document = users.get(1)
    assert document is not None

    with pytest.raises(InjectedFault):
        narrative.process_choice(document, "gate", "pay_toll", never_vip)

    assert balance(stores, 1) == 10
    entries = stores.documents.ledger.entries(1)
    assert [(entry.amount, entry.compensated) for entry in entries] == [
        (3, False), (-3, True), (10, False)]  # refund, the marked toll, the setup credit
    assert users.get(1) == document.model_copy(update={"besitos": 10})  # still at the gate


def test_a_purchase_whose_item_never_arrives_is_refunded(stores: Stores) -> None:
    load_seed(stores)
    create(stores, 1, besitos=10)
    users = stores.documents.users
    inject_documents(stores, users=Failing(users, "add_to_inventory"))
    shop = ShopService(stores)
    document = users.get(1)
    assert document is not None

    with pytest.raises(InjectedFault):
        shop.buy(document, "lantern", "p1", never_vip)

    assert balance(stores, 1) == 10
    charge = stores.documents.ledger.get("u1:p1")
    assert charge is not None
    assert (charge.amount, charge.compensated) == (-4, True)
    inject_documents(stores, users=users)
    with pytest.raises(IdempotencyConflict):  # the key is spent on a refunded purchase
        shop.buy(document, "lantern", "p1", never_vip)
    bought = shop.buy(document, "lantern", "p2", never_vip)
    assert (bought.applied, bought.document.inventory, balance(stores, 1)) == (
        True, ("lantern",), 6)
