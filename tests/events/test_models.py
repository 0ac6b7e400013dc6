from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from yabot.errors import InvalidEvent, InvalidInput
from yabot.events.models import (
    EVENT_TYPES,
    BesitosTransferred,
    FragmentReached,
    ReactionDetected,
    SubscriptionChanged,
    UpdateReceived,
    UserInteraction,
    parse_event,
)

EXAMPLES = [
    UserInteraction(user_id=1, seq=1, action="start", details={"source": "bot"}),
    UpdateReceived(user_id=2, seq=3, update_id=99, update_kind="message"),
    ReactionDetected(user_id=3, seq=1, chat_id=-100, message_id=7, reaction="❤"),
    BesitosTransferred(
        user_id=4, seq=2, amount=-5, balance_after=10, ledger_key="buy:1", reason="item"
    ),
    SubscriptionChanged(
        user_id=5, seq=1, plan="vip", status="active",
        expires_at=datetime(2030, 1, 1, tzinfo=UTC),
    ),
    FragmentReached(user_id=6, seq=9, fragment_id="intro", choice_id="left",
                    correlation_id="abc"),
]


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: type(e).__name__)
def test_every_event_survives_a_json_round_trip(event: object) -> None:
    assert isinstance(event, UserInteraction | UpdateReceived | ReactionDetected
                      | BesitosTransferred | SubscriptionChanged | FragmentReached)
    again = parse_event(event.to_json())
    assert again == event
    assert type(again) is type(event)


def test_every_event_type_is_in_the_union() -> None:
    assert {type(e) for e in EXAMPLES} == set(EVENT_TYPES.values())


def test_defaults_give_a_fresh_id_and_an_aware_utc_time() -> None:
    first = UserInteraction(user_id=1, seq=1, action="start")
    second = UserInteraction(user_id=1, seq=2, action="start")
    assert first.event_id != second.event_id
    assert first.occurred_at.tzinfo is UTC
    assert first.schema_version == 1


def test_occurred_at_in_another_zone_is_stored_in_utc() -> None:
    local = datetime(2025, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    event = UserInteraction(user_id=1, seq=1, action="start", occurred_at=local)
    assert event.occurred_at == local
    assert event.occurred_at.utcoffset() == timedelta(0)


def test_naive_occurred_at_is_refused() -> None:
    with pytest.raises(ValidationError):
        UserInteraction(user_id=1, seq=1, action="start", occurred_at=datetime(2025, 1, 1))


def test_events_are_frozen() -> None:
    event = UserInteraction(user_id=1, seq=1, action="start")
    with pytest.raises(ValidationError):
        event.seq = 2  # type: ignore[misc]


def test_strict_models_do_not_coerce_python_values() -> None:
    with pytest.raises(ValidationError):
        UserInteraction(user_id="1", seq=1, action="start")  # type: ignore[arg-type]


def _body(**changes: object) -> str:
    body = json.loads(EXAMPLES[0].to_json())
    body.update(changes)
    return json.dumps(body)


def test_unknown_type_raises_invalid_event_naming_the_tag() -> None:
    with pytest.raises(InvalidEvent, match="does_not_exist"):
        parse_event(_body(type="does_not_exist"))


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"seq": 0}, "seq"),
        ({"seq": "1"}, "seq"),
        ({"event_id": "not-a-uuid"}, "event_id"),
        ({"schema_version": 2}, "schema_version"),
        ({"unexpected": True}, "unexpected"),
        ({"occurred_at": "2025-01-01T00:00:00"}, "occurred_at"),
    ],
)
def test_invalid_payload_raises_invalid_event_naming_the_field(
    changes: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidEvent, match=field) as caught:
        parse_event(_body(**changes))
    assert isinstance(caught.value, InvalidInput)
    assert caught.value.code == "invalid-event"


@pytest.mark.parametrize("garbage", [b"", b"not json", b"[1, 2]", b"\xff\xfe", b'{"type": 1}'])
def test_garbage_raises_invalid_event(garbage: bytes) -> None:
    with pytest.raises(InvalidEvent):
        parse_event(garbage)


def test_json_reads_the_uuid_from_its_string_form() -> None:
    event_id = uuid.uuid4()
    event = parse_event(_body(event_id=str(event_id)))
    assert event.event_id == event_id
