"""The operations the domain added to the document repositories, on every backend."""

from __future__ import annotations

from datetime import timedelta

import pytest

from yabot.domain.users import UserChanges, UserDocument, utcnow
from yabot.errors import UserNotFound
from yabot.stores.handles import DocumentRepositories


def with_user(store: DocumentRepositories, user_id: int, besitos: int = 0) -> None:
    store.users.create_if_absent(UserDocument(user_id=user_id, besitos=besitos))


def test_update_writes_only_the_fields_given(document_store: DocumentRepositories) -> None:
    with_user(document_store, 1, besitos=7)
    after = document_store.users.update(1, UserChanges(current_fragment="gate"))
    assert (after.current_fragment, after.language, after.notifications) == ("gate", "en", True)
    after = document_store.users.update(1, UserChanges(language="es", notifications=False))
    assert (after.current_fragment, after.language, after.notifications) == ("gate", "es", False)
    assert after.besitos == 7
    assert document_store.users.get(1) == after


def test_update_of_an_unknown_user_is_user_not_found(document_store: DocumentRepositories
                                                     ) -> None:
    with pytest.raises(UserNotFound):
        document_store.users.update(99, UserChanges(language="es"))
    with pytest.raises(UserNotFound):
        document_store.users.add_to_inventory(99, "rose")


def test_an_item_enters_the_inventory_once(document_store: DocumentRepositories) -> None:
    with_user(document_store, 1)
    document_store.users.add_to_inventory(1, "rose")
    document_store.users.add_to_inventory(1, "lantern")
    after = document_store.users.add_to_inventory(1, "rose")
    assert after.inventory == ("rose", "lantern")
    stored = document_store.users.get(1)
    assert stored is not None
    assert stored.inventory == ("rose", "lantern")


def test_a_ledger_entry_is_found_by_key_with_its_request(document_store: DocumentRepositories
                                                         ) -> None:
    with_user(document_store, 1, besitos=10)
    document_store.ledger.debit(1, 4, "u1:k", "spend", request="spend:4::")
    entry = document_store.ledger.get("u1:k")
    assert entry is not None
    assert (entry.amount, entry.balance_after, entry.request, entry.compensated) == (
        -4, 6, "spend:4::", False)
    assert document_store.ledger.get("nothing") is None


def test_marking_a_change_compensated_keeps_it_in_the_ledger(
    document_store: DocumentRepositories,
) -> None:
    with_user(document_store, 1, besitos=10)
    document_store.ledger.debit(1, 4, "u1:t")
    assert document_store.ledger.mark_compensated("u1:t") is True
    assert document_store.ledger.mark_compensated("u1:nothing") is False
    entry = document_store.ledger.get("u1:t")
    assert entry is not None
    assert entry.compensated is True


def test_earned_since_sums_credits_with_that_reason_only(document_store: DocumentRepositories
                                                        ) -> None:
    with_user(document_store, 1)
    ledger = document_store.ledger
    ledger.credit(1, 2, "r1", "reaction")
    ledger.credit(1, 3, "r2", "reaction")
    ledger.credit(1, 50, "e1", "earn")
    ledger.debit(1, 1, "d1", "reaction")
    now = utcnow()
    assert ledger.earned_since(1, "reaction", now - timedelta(hours=1)) == 5
    assert ledger.earned_since(1, "reaction", now + timedelta(hours=1)) == 0
    assert ledger.earned_since(2, "reaction", now - timedelta(hours=1)) == 0
