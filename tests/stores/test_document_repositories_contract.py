"""The contract of the fragment, item and ledger repositories, on every document backend."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from yabot.domain.items import Item
from yabot.domain.narrative import Choice, Fragment
from yabot.domain.texts import Localized
from yabot.domain.users import UserDocument
from yabot.errors import InvalidInput, UserNotFound
from yabot.stores.handles import DocumentRepositories

FOREST = Fragment(
    fragment_id="forest.1", title="The forest", text="Two paths.",
    choices=(
        Choice(choice_id="left", label="Go left", next_fragment="forest.2"),
        Choice(choice_id="right", label=Localized(es="A la derecha", en="Go right"),
               next_fragment="forest.3", cost_besitos=5, requires_vip=True),
        Choice(choice_id="door", label="The door", next_fragment="forest.4", reward_besitos=2,
               requires_item="key"),
    ),
)


def with_user(store: DocumentRepositories, user_id: int, besitos: int) -> None:
    store.users.create_if_absent(UserDocument(user_id=user_id, besitos=besitos))


def test_unknown_fragment_is_none(document_store: DocumentRepositories) -> None:
    assert document_store.fragments.get("nowhere") is None


def test_fragment_reads_back_equal_with_its_choices(document_store: DocumentRepositories) -> None:
    document_store.fragments.put(FOREST)
    assert document_store.fragments.get("forest.1") == FOREST


def test_putting_a_fragment_again_replaces_it(document_store: DocumentRepositories) -> None:
    document_store.fragments.put(FOREST)
    ending = Fragment.model_validate({**FOREST.model_dump(), "text": "The end.", "choices": ()})
    document_store.fragments.put(ending)
    assert document_store.fragments.get("forest.1") == ending


def test_items_are_listed_by_sku(document_store: DocumentRepositories) -> None:
    rose = Item(sku="rose", name="A rose", price_besitos=3)
    key = Item(sku="key", name="Old key", price_besitos=10, vip_only=True)
    document_store.items.put(rose)
    document_store.items.put(key)
    document_store.items.put(rose.model_copy(update={"price_besitos": 4}))
    assert document_store.items.get("rose") == rose.model_copy(update={"price_besitos": 4})
    assert document_store.items.get("nothing") is None
    assert [item.sku for item in document_store.items.all()] == ["key", "rose"]


def test_debit_within_the_balance_applies(document_store: DocumentRepositories) -> None:
    with_user(document_store, 1, 10)
    change = document_store.ledger.debit(1, 4, "buy-rose-1", reason="rose")
    assert (change.applied, change.balance) == (True, 6)
    user = document_store.users.get(1)
    assert user is not None
    assert user.besitos == 6


def test_debit_beyond_the_balance_is_not_applied(document_store: DocumentRepositories) -> None:
    with_user(document_store, 1, 3)
    change = document_store.ledger.debit(1, 4, "too-much")
    assert (change.applied, change.balance) == (False, 3)
    assert document_store.ledger.entries(1) == []


def test_debit_of_the_whole_balance_leaves_zero(document_store: DocumentRepositories) -> None:
    with_user(document_store, 1, 5)
    assert document_store.ledger.debit(1, 5, "all").balance == 0


def test_second_debit_with_same_key_is_not_applied(document_store: DocumentRepositories) -> None:
    with_user(document_store, 1, 10)
    assert document_store.ledger.debit(1, 3, "k").applied is True
    again = document_store.ledger.debit(1, 3, "k")
    assert (again.applied, again.balance) == (False, 7)
    assert len(document_store.ledger.entries(1)) == 1


def test_credit_adds_once_per_key(document_store: DocumentRepositories) -> None:
    with_user(document_store, 1, 0)
    assert document_store.ledger.credit(1, 5, "gift").balance == 5
    assert document_store.ledger.credit(1, 5, "gift").applied is False
    assert document_store.ledger.credit(1, 2, "gift-2").balance == 7


def test_a_key_is_unique_across_users(document_store: DocumentRepositories) -> None:
    with_user(document_store, 1, 10)
    with_user(document_store, 2, 10)
    assert document_store.ledger.debit(1, 1, "shared").applied is True
    assert document_store.ledger.debit(2, 1, "shared").applied is False


def test_debit_for_an_unknown_user_raises(document_store: DocumentRepositories) -> None:
    with pytest.raises(UserNotFound):
        document_store.ledger.debit(404, 1, "nobody")


def test_invalid_amount_is_refused_before_the_store(document_store: DocumentRepositories) -> None:
    with_user(document_store, 1, 10)
    with pytest.raises(InvalidInput, match="amount"):
        document_store.ledger.debit(1, -1, "negative")
    with pytest.raises(InvalidInput, match="amount"):
        document_store.ledger.credit(1, 0, "zero")
    with pytest.raises(ValidationError):
        document_store.ledger.credit(1, 1, "")  # an empty idempotency key
    assert document_store.ledger.entries(1) == []


def test_ledger_entries_are_newest_first(document_store: DocumentRepositories) -> None:
    with_user(document_store, 1, 10)
    document_store.ledger.credit(1, 5, "a", reason="gift")
    document_store.ledger.debit(1, 3, "b", reason="rose")
    document_store.ledger.debit(1, 30, "c")  # not applied, not recorded
    entries = document_store.ledger.entries(1)
    assert [(e.key, e.amount, e.balance_after, e.reason) for e in entries] == [
        ("b", -3, 12, "rose"), ("a", 5, 15, "gift"),
    ]
    assert document_store.ledger.entries(1, limit=1)[0].key == "b"
    assert document_store.ledger.entries(2) == []


@pytest.mark.mongodb
def test_validator_rejection_names_the_field_on_real_mongodb() -> None:
    """mongomock never enforces validators, so this runs on a real server only."""
    from tests.support.stores import mongo_database
    from yabot.errors import InvalidRecord
    from yabot.stores.mongo import mongo_documents
    from yabot.stores.mongo_migrations import mongo_upgrade

    with mongo_database("mongodb") as db:
        mongo_upgrade(db)
        store = mongo_documents(db)
        broken = Item.model_construct(sku="rose", name="A rose", description="",
                                      price_besitos=-1, vip_only=False)
        with pytest.raises(InvalidRecord) as caught:
            store.items.put(broken)
        assert caught.value.field == "price_besitos"
        assert store.items.get("rose") is None
