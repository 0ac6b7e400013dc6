"""A change made for a Telegram update stores the update as handled in the change's own write,
on every document backend: with the change, or not at all (never one without the other)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from tests.support.stores import MONGO_BACKENDS, mongo_database
from yabot.domain.users import UserChanges, UserDocument
from yabot.events.drafts import Drafts, Handling, besitos, interaction
from yabot.stores.handles import DocumentRepositories
from yabot.stores.mongo import ensure_indexes, mongo_documents
from yabot.stores.outbox import EventDrafts, OutboxRecord

USER = 31
OTHER = 32


def for_update(update_id: int, *actions: str, window: int = 256,
               user_id: int = USER) -> EventDrafts:
    return Drafts(window=window).of(*(interaction(user_id, action) for action in actions),
                                    handling=Handling(user_id, update_id))


@pytest.fixture
def store(document_store: DocumentRepositories) -> DocumentRepositories:
    for user_id in (USER, OTHER):
        document_store.users.create_if_absent(UserDocument(user_id=user_id))
    return document_store


def test_a_change_made_for_an_update_stores_it_as_handled(store: DocumentRepositories) -> None:
    store.users.update(USER, UserChanges(language="es"), events=for_update(70, "settings"))
    store.users.record_events(USER, for_update(71, "start"))
    assert store.progress.handled_updates(USER) == [70, 71]
    assert store.progress.handled_updates(OTHER) == []


def test_a_balance_change_made_for_an_update_stores_it_and_a_refused_one_does_not(
    store: DocumentRepositories,
) -> None:
    drafts = Drafts()
    handling = Handling(USER, 80)
    credited = store.ledger.credit(USER, 5, "k-credit", "test", events=drafts.of(
        besitos(USER, 5, "k-credit", "test"), handling=handling))
    assert credited.applied
    refused = store.ledger.debit(USER, 50, "k-debit", "test", events=drafts.of(
        besitos(USER, -50, "k-debit", "test"), handling=Handling(USER, 81)))
    assert not refused.applied
    replayed = store.ledger.credit(USER, 5, "k-credit", "test", events=drafts.of(
        besitos(USER, 5, "k-credit", "test"), handling=Handling(USER, 82)))
    assert not replayed.applied
    assert store.progress.handled_updates(USER) == [80]


def test_a_change_that_fails_stores_neither_itself_nor_its_update(
    store: DocumentRepositories,
) -> None:
    built = for_update(90, "settings")

    def failing(first_seq: int, balance: int) -> Sequence[OutboxRecord]:
        built(first_seq, balance)
        raise RuntimeError("the write fails after the events were drafted")

    with pytest.raises(RuntimeError):
        store.users.update(USER, UserChanges(language="es"), events=failing)
    assert store.progress.handled_updates(USER) == []
    document = store.users.get(USER)
    assert document is not None
    assert document.language == "en"


def test_the_window_keeps_the_newest_updates_in_order_each_once(
    store: DocumentRepositories,
) -> None:
    for update_id in range(100, 110):
        store.users.record_events(USER, for_update(update_id, "tap", window=4))
    assert store.progress.handled_updates(USER) == [106, 107, 108, 109]
    # A second change of one update (a choice's payment, then its move) records it once.
    store.users.record_events(USER, for_update(109, "tap", "tap", window=4))
    assert store.progress.handled_updates(USER) == [106, 107, 108, 109]
    store.users.record_events(USER, for_update(107, "tap", window=4))
    assert store.progress.handled_updates(USER) == [106, 108, 109, 107]


def test_changes_made_for_no_update_leave_the_window_alone(store: DocumentRepositories) -> None:
    store.users.record_events(USER, for_update(120, "start"))
    store.users.update(USER, UserChanges(language="es"),
                       events=Drafts().of(interaction(USER, "settings")))
    store.ledger.credit(USER, 3, "k-api", "test",
                        events=Drafts().of(besitos(USER, 3, "k-api", "test")))
    assert store.progress.handled_updates(USER) == [120]


def test_updates_recorded_alone_and_with_changes_read_as_one_window(
    store: DocumentRepositories,
) -> None:
    store.progress.record_update(USER, 140, window=8)
    store.users.record_events(USER, for_update(141, "start", window=8))
    store.progress.record_update(USER, 142, window=8)
    assert set(store.progress.handled_updates(USER)) == {140, 141, 142}
    assert len(store.progress.handled_updates(USER)) == 3


@pytest.mark.parametrize("backend", MONGO_BACKENDS)
def test_mongo_stores_the_update_in_the_user_documents_own_update(backend: str) -> None:
    """No outbox to copy to (as if the process died right after the update): the change, its
    parked events and the handled update are all in the user's document already."""
    with mongo_database(backend) as db:
        ensure_indexes(db)
        store = mongo_documents(db)
        store.users.create_if_absent(UserDocument(user_id=USER))
        store.users.update(USER, UserChanges(language="es"), events=for_update(150, "x"))
        user = db.users.find_one({"user_id": USER})
        assert user is not None
        assert (user["language"], user["handled_updates"]) == ("es", [150])
        assert len(user["pending_events"]) == 1
        assert db.user_progress.find_one({"_id": USER}) is None
        assert store.progress.handled_updates(USER) == [150]
        document = store.users.get(USER)
        assert document is not None  # the window is not part of the domain's document
