"""An update that changed its sender is handled once in effect: its id is stored with the
change, so a later incarnation of the session (after a crash that lost the update's own
record) skips it. A change it caused to another user does not count as that user's update."""

from __future__ import annotations

from tests.sessions.support import Sessions, new_incarnation, start
from yabot.events.drafts import handling_update
from yabot.events.models import UserInteraction
from yabot.sessions.messages import (
    GiftItem,
    Preferences,
    RecordUpdate,
    SeenUpdate,
    SetPreferences,
    Transact,
)


def handled(sessions: Sessions, user_id: int) -> list[int]:
    return sessions.stores.documents.progress.handled_updates(user_id)


def test_a_change_made_for_an_update_marks_it_handled_without_its_record(
    sessions: Sessions,
) -> None:
    start(sessions, 51)
    with handling_update(51, 700):
        sessions.ask(51, SetPreferences(preferences=Preferences(language="es")))
    # No RecordUpdate: the process died between the change and the update's record.
    new_incarnation(sessions, 51)
    assert sessions.ask(51, SeenUpdate(update_id=700)) is True
    assert sessions.ask(51, SeenUpdate(update_id=701)) is False


def test_a_transfer_and_a_gift_mark_the_senders_update_not_the_recipients(
    sessions: Sessions,
) -> None:
    start(sessions, 52)
    start(sessions, 53)
    sessions.ask(52, Transact(kind="earn", amount=20, idempotency_key="fund"))
    with handling_update(52, 710):
        sessions.ask(52, Transact(kind="transfer", amount=5, idempotency_key="t",
                                  to_user_id=53))
    with handling_update(52, 711):
        sessions.ask(52, GiftItem(sku="rose", to_user_id=53, idempotency_key="g"))
    assert handled(sessions, 52) == [710, 711]
    assert handled(sessions, 53) == []


def test_the_updates_record_and_its_change_count_once(sessions: Sessions) -> None:
    start(sessions, 54)
    with handling_update(54, 720):
        sessions.ask(54, SetPreferences(preferences=Preferences(language="es")))
    sessions.ask(54, RecordUpdate(update_id=720, update_kind="callback_query",
                                  action="settings"))
    assert sessions.ask(54, SeenUpdate(update_id=720)) is True
    assert handled(sessions, 54) == [720]
    actions = [event.action for event in sessions.of(54) if isinstance(event, UserInteraction)]
    assert actions == ["start", "preferences", "settings"]


def test_an_update_of_someone_without_a_record_is_remembered_all_the_same(
    sessions: Sessions,
) -> None:
    sessions.ask(55, RecordUpdate(update_id=730, update_kind="message"))
    new_incarnation(sessions, 55)
    assert sessions.ask(55, SeenUpdate(update_id=730)) is True
    assert sessions.of(55) == []
