"""Request bodies of the API: strict JSON, unknown fields refused.

Each body becomes one ask of `yabot.sessions.messages`. Bodies are parsed in pydantic's strict
JSON mode, so ``"1"`` is not an amount and ``"true"`` is not a boolean.
"""

from __future__ import annotations

from typing import Annotated, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from yabot.domain.besitos import Amount
from yabot.domain.subscriptions import Plan
from yabot.domain.users import Language, UserId
from yabot.errors import InvalidInput


class Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PreferencesBody(Body):
    """``PUT /user/{id}/preferences``: the whole set of preferences. PUT replaces: every field
    is required, and nothing of the previous preferences is kept."""

    language: Language
    notifications: bool


class TransactionBody(Body):
    """``POST /user/{id}/besitos``: earn, spend, or transfer to ``to_user_id``."""

    kind: Literal["earn", "spend", "transfer"]
    amount: Amount
    to_user_id: UserId | None = None
    reason: Annotated[str, Field(max_length=256)] = ""


class SubscriptionBody(Body):
    """``PUT /user/{id}/subscription``: start ``plan`` until ``ends_at`` (``status="active"``),
    or cancel the current subscription (``status="cancelled"``)."""

    plan: Plan
    status: Literal["active", "cancelled"] = "active"
    ends_at: AwareDatetime | None = None


B = TypeVar("B", bound=Body)


def parse_body(model: type[B], raw: bytes) -> B:
    """``raw`` as ``model``, or `InvalidInput` naming each bad field (never echoing values)."""
    if not raw:
        raise InvalidInput("a JSON body is required")
    try:
        return model.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in error['loc']) or 'body'}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        ]
        raise InvalidInput("; ".join(problems[:10])) from exc
