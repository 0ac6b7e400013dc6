"""Request bodies of the API: strict JSON, unknown fields refused, and the schema in
``/openapi.json`` saying exactly what the code accepts.

Each body becomes one ask of `yabot.sessions.messages`. Bodies are parsed in pydantic's strict
JSON mode, so ``"1"`` is not an amount and ``"true"`` is not a boolean. Where JSON Schema and
strict parsing would disagree, the code follows the schema or the schema is made to say what
the code does:

- an integer written as an integral float (``5.0``) is an integer in JSON Schema, so it is
  accepted as one (`JsonInt`); ``5.5`` is refused by both;
- a key given twice in one object is refused (400): JSON leaves its meaning open, and
  "the last one wins" lets a proxy and the API read different requests;
- text fields refuse control characters (PostgreSQL cannot store NUL in text);
- a subscription body is one of three shapes (`SubscriptionBody`), so ``{"plan": "vip"}``
  without ``ends_at`` is invalid by the schema as it is by the code.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    RootModel,
    ValidationError,
)

from yabot.domain.besitos import Amount
from yabot.domain.items import Sku
from yabot.domain.subscriptions import Plan
from yabot.domain.users import (
    PLAIN_TEXT,
    FirstName,
    Language,
    LanguageTag,
    TelegramUsername,
    UserId,
)
from yabot.errors import InvalidInput, Unprocessable


def _integral(value: Any) -> Any:
    """``5.0`` as ``5`` (JSON Schema's integer); any other value unchanged, for the strict
    integer check to accept or refuse."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _utc(value: datetime) -> datetime:
    """An aware time in UTC. One valid by the schema that an offset takes out of years
    1-9999 is `Unprocessable` (422), raised through pydantic as it is."""
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise Unprocessable("ends_at: out of the years 1-9999 once converted to UTC") from exc


JsonInt = BeforeValidator(_integral)
Instant = Annotated[AwareDatetime, AfterValidator(_utc)]


class Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PreferencesBody(Body):
    """``PUT /user/{id}/preferences``: the whole set of preferences. PUT replaces: every field
    is required, and nothing of the previous preferences is kept."""

    language: Language
    notifications: bool


Reason = Annotated[str, Field(max_length=256, pattern=PLAIN_TEXT)]


class Earn(Body):
    kind: Literal["earn"]
    amount: Annotated[Amount, JsonInt]
    reason: Reason = ""


class Spend(Body):
    kind: Literal["spend"]
    amount: Annotated[Amount, JsonInt]
    reason: Reason = ""


class Transfer(Body):
    """To another user: ``to_user_id`` is required here and refused on the other kinds."""

    kind: Literal["transfer"]
    amount: Annotated[Amount, JsonInt]
    to_user_id: Annotated[UserId, JsonInt]
    reason: Reason = ""


class TransactionBody(RootModel[Annotated[Earn | Spend | Transfer, Field(discriminator="kind")]]):
    """``POST /user/{id}/besitos``: earn, spend, or transfer to ``to_user_id``."""

    model_config = ConfigDict(frozen=True)




class ProvisionBody(Body):
    """``PUT /user/{id}``: a user known from Telegram, provisioned by a service before (or
    without) their first update. The Telegram profile fields, as Telegram gives them."""

    first_name: FirstName = ""
    username: TelegramUsername | None = None
    language_code: LanguageTag | None = None


class PurchaseBody(Body):
    """``POST /user/{id}/purchases``: buy ``sku`` with the user's besitos."""

    sku: Sku


class GiftBody(Body):
    """``POST /user/{id}/gifts``: buy ``sku`` with the user's besitos for ``to_user_id``."""

    sku: Sku
    to_user_id: Annotated[UserId, JsonInt]


class StartPlan(Body):
    """Start the VIP plan until ``ends_at`` (which must be in the future)."""

    plan: Literal["vip"]
    status: Literal["active"] = "active"
    ends_at: Instant


class StartFree(Body):
    """Go back to the free plan: free is the absence of a subscription, so this cancels the
    current one (``ends_at`` is ignored)."""

    plan: Literal["free"]
    status: Literal["active"] = "active"
    ends_at: Instant | None = None


class CancelPlan(Body):
    """Cancel the current subscription, whatever its plan."""

    plan: Plan
    status: Literal["cancelled"]
    ends_at: Instant | None = None


class SubscriptionBody(RootModel[StartPlan | StartFree | CancelPlan]):
    """``PUT /user/{id}/subscription``: one of `StartPlan`, `StartFree`, `CancelPlan`."""

    model_config = ConfigDict(frozen=True)


B = TypeVar("B", bound=BaseModel)


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise InvalidInput(f"{key}: given more than once in one object")
        seen[key] = value
    return seen


def parse_body(model: type[B], raw: bytes) -> B:
    """``raw`` as ``model``, or `InvalidInput` naming each bad field (never echoing values)."""
    if not raw:
        raise InvalidInput("a JSON body is required")
    try:
        json.loads(raw, object_pairs_hook=_refuse_duplicates)
    except (ValueError, RecursionError) as exc:  # `InvalidInput` is neither: it passes
        raise InvalidInput("the body is not valid JSON") from exc
    try:
        return model.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in error['loc']) or 'body'}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        ]
        raise InvalidInput("; ".join(problems[:10])) from exc
