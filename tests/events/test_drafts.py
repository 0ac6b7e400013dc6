"""Drafts made while an update is handled carry it for the update's sender only."""

from __future__ import annotations

from yabot.events.drafts import Drafts, current_update, handling_update, interaction
from yabot.events.models import parse_event
from yabot.stores.outbox import HandledUpdate

SENDER, RECIPIENT = 61, 62


def test_the_senders_events_carry_the_update_and_another_users_do_not() -> None:
    with handling_update(SENDER, 900):
        drafts = Drafts(window=16).of(interaction(SENDER, "gift"),
                                      interaction(RECIPIENT, "gift-received"))
    assert current_update() is None  # only within the block
    mine, theirs = drafts(1, 0)
    assert mine.handled == HandledUpdate(update_id=900, window=16)
    assert theirs.handled is None
    assert [parse_event(record.body).user_id for record in (mine, theirs)] == [SENDER,
                                                                               RECIPIENT]


def test_the_update_is_not_part_of_the_stored_event() -> None:
    with handling_update(SENDER, 901):
        (record,) = Drafts().of(interaction(SENDER, "start"))(1, 0)
    assert record.as_document() == {"event_id": record.event_id, "stream": record.stream,
                                    "body": record.body}


def test_drafts_made_outside_an_update_carry_none() -> None:
    (record,) = Drafts().of(interaction(SENDER, "api"))(1, 0)
    assert record.handled is None
