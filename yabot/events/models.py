"""The events YABOT publishes: frozen, strictly validated, one discriminated union, JSON in/out.

An event says what happened to one user, once: ``event_id`` identifies it everywhere (the
outbox, the stream, ``processed_events``), ``seq`` orders it among that user's events (the
user's session assigns it), and ``schema_version`` lets consumers refuse shapes they do not
know. Adding an event type means one new subclass here and one entry in `Event`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from yabot.errors import InvalidEvent

SCHEMA_VERSION: Literal[1] = 1

Name = Annotated[str, Field(min_length=1, max_length=128)]


def utc_now() -> datetime:
    return datetime.now(UTC)


class BaseEvent(BaseModel):
    """Fields every event carries. Strict: no coercion from Python values (``"1"`` is not 1).

    JSON input still reads UUIDs and datetimes from their string forms, as JSON must.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    occurred_at: AwareDatetime = Field(default_factory=utc_now)
    user_id: int
    seq: Annotated[int, Field(ge=1)]
    correlation_id: Annotated[str, Field(max_length=128)] | None = None

    @field_validator("occurred_at")
    @classmethod
    def _in_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    def to_json(self) -> str:
        """The event as the JSON text that travels through the outbox and the stream."""
        return self.model_dump_json()


class UserInteraction(BaseEvent):
    """The user did something in the bot (``action``: ``start``, ``choice``, ``menu`` …)."""

    type: Literal["user_interaction"] = "user_interaction"
    action: Name
    details: dict[str, str] = Field(default_factory=dict)


class UpdateReceived(BaseEvent):
    """A Telegram update for this user entered the system."""

    type: Literal["update_received"] = "update_received"
    update_id: int
    update_kind: Name  # "message", "callback_query", "message_reaction" …


class ReactionDetected(BaseEvent):
    """The user reacted to a message (Telegram ``message_reaction``)."""

    type: Literal["reaction_detected"] = "reaction_detected"
    chat_id: int
    message_id: int
    reaction: Annotated[str, Field(min_length=1, max_length=64)]


class BesitosTransferred(BaseEvent):
    """The user's besitos balance changed by ``amount`` (negative: spent), recorded once
    under ``ledger_key``."""

    type: Literal["besitos_transferred"] = "besitos_transferred"
    amount: int
    balance_after: Annotated[int, Field(ge=0)]
    ledger_key: Name
    reason: Name


class SubscriptionChanged(BaseEvent):
    """The user's subscription (e.g. VIP) changed status."""

    type: Literal["subscription_changed"] = "subscription_changed"
    plan: Name
    status: Literal["active", "expired", "cancelled"]
    expires_at: AwareDatetime | None = None


class FragmentReached(BaseEvent):
    """The user arrived at a narrative fragment, by ``choice_id`` when it was a choice."""

    type: Literal["fragment_reached"] = "fragment_reached"
    fragment_id: Name
    choice_id: Name | None = None


Event = Annotated[
    UserInteraction
    | UpdateReceived
    | ReactionDetected
    | BesitosTransferred
    | SubscriptionChanged
    | FragmentReached,
    Field(discriminator="type"),
]

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)

EVENT_TYPES: dict[str, type[BaseEvent]] = {
    cls.model_fields["type"].default: cls
    for cls in (
        UserInteraction, UpdateReceived, ReactionDetected, BesitosTransferred,
        SubscriptionChanged, FragmentReached,
    )
}


def parse_event(data: str | bytes) -> Event:
    """Read one event from its JSON text; `InvalidEvent` says why when it is not one."""
    try:
        return EVENT_ADAPTER.validate_json(data)
    except ValidationError as exc:
        raise InvalidEvent(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    """The first few problems, by field, without echoing input values (they may be large)."""
    problems = [
        f"{'.'.join(str(part) for part in error['loc']) or '(event)'}: {error['msg']}"
        for error in exc.errors(include_input=False, include_url=False)[:5]
    ]
    return "not a valid event: " + "; ".join(problems)
