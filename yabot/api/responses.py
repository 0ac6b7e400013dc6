"""What the HTTP API answers: its own response models, documented in ``/openapi.json`` from
these same classes.

The session's views (`yabot.views`) and the stored records they carry may change with
storage; these do not change unless this module does, and the OpenAPI snapshot test
(`tests/api/test_contract.py`) fails until the document is updated with them. One field, one
place: a user's id, language or creation time appears once in a state, whatever the
document and the profile both store.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from yabot.domain.besitos import MAX_BESITOS, LedgerEntry
from yabot.domain.ledger_pages import LedgerPage
from yabot.domain.subscriptions import Plan, SubscriptionStatus
from yabot.domain.users import Language
from yabot.views import (
    ChoiceView,
    FragmentView,
    Gift,
    Preferences,
    Purchase,
    SubscriptionView,
    TransactionResult,
    UserState,
)

Besitos = Annotated[int, Field(ge=0, le=MAX_BESITOS)]
UserIdField = Annotated[int, Field(ge=1, le=2**53 - 1)]


class Response(BaseModel):
    """Every field documented, nothing else sent (``extra="forbid"``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class PreferencesResponse(Response):
    language: Language
    notifications: bool

    @classmethod
    def of(cls, view: Preferences) -> PreferencesResponse:
        return cls(language=view.language, notifications=view.notifications)


class SubscriptionResponse(Response):
    """The plan now: a lapsed VIP plan reads ``status="expired"``, ``vip=false``; no
    subscription at all reads ``plan="free"`` with ``status`` null."""

    plan: Plan
    status: SubscriptionStatus | None
    starts_at: datetime | None
    ends_at: datetime | None
    vip: bool

    @classmethod
    def of(cls, view: SubscriptionView) -> SubscriptionResponse:
        return cls(plan=view.plan, status=view.status, starts_at=view.starts_at,
                   ends_at=view.ends_at, vip=view.vip)


class TelegramProfileResponse(Response):
    """Who the user is on Telegram, as last seen."""

    first_name: str
    username: str | None
    language_code: str | None


class UserStateResponse(Response):
    """A user: identity, story position, wallet and inventory, preferences, plan."""

    user_id: UserIdField
    created_at: datetime
    telegram: TelegramProfileResponse | None
    preferences: PreferencesResponse
    besitos: Besitos
    current_fragment: str | None
    inventory: tuple[str, ...]
    subscription: SubscriptionResponse

    @classmethod
    def of(cls, state: UserState) -> UserStateResponse:
        document, profile = state.document, state.profile
        return cls(
            user_id=document.user_id,
            created_at=document.created_at,
            telegram=None if profile is None else TelegramProfileResponse(
                first_name=profile.first_name, username=profile.username,
                language_code=profile.language_code),
            preferences=PreferencesResponse.of(state.preferences),
            besitos=document.besitos,
            current_fragment=document.current_fragment,
            inventory=document.inventory,
            subscription=SubscriptionResponse.of(state.subscription),
        )


class ChoiceResponse(Response):
    """``available`` false: ``why_not`` names the reason as a problem code
    (``insufficient-besitos``, ``item-required``, ``vip-required``)."""

    choice_id: str
    label: str
    next_fragment: str
    cost_besitos: Besitos
    reward_besitos: Besitos
    requires_item: str | None
    requires_vip: bool
    available: bool
    why_not: str | None

    @classmethod
    def of(cls, view: ChoiceView) -> ChoiceResponse:
        return cls(choice_id=view.choice_id, label=view.label, next_fragment=view.next_fragment,
                   cost_besitos=view.cost_besitos, reward_besitos=view.reward_besitos,
                   requires_item=view.requires_item, requires_vip=view.requires_vip,
                   available=view.available, why_not=view.why_not)


class FragmentResponse(Response):
    """A fragment as one user sees it, in their language; no choices: an ending."""

    fragment_id: str
    title: str
    text: str
    vip_only: bool
    ending: bool
    balance: Besitos
    choices: tuple[ChoiceResponse, ...]

    @classmethod
    def of(cls, view: FragmentView) -> FragmentResponse:
        return cls(fragment_id=view.fragment_id, title=view.title, text=view.text,
                   vip_only=view.vip_only, ending=view.ending, balance=view.balance,
                   choices=tuple(ChoiceResponse.of(choice) for choice in view.choices))


class TransactionResponse(Response):
    """``applied`` false: this key was applied before; nothing changed and ``balance`` is
    the balance now."""

    key: str
    kind: Literal["earn", "spend", "transfer"]
    amount: Besitos
    applied: bool
    balance: Besitos

    @classmethod
    def of(cls, view: TransactionResult) -> TransactionResponse:
        return cls(key=view.key, kind=view.kind, amount=view.amount, applied=view.applied,
                   balance=view.balance)


class PurchaseResponse(Response):
    """``applied`` false: this key bought before, or the user owns the item already (nothing
    was charged)."""

    sku: str
    applied: bool
    balance: Besitos
    inventory: tuple[str, ...]

    @classmethod
    def of(cls, view: Purchase) -> PurchaseResponse:
        return cls(sku=view.item.sku, applied=view.applied, balance=view.balance,
                   inventory=view.inventory)


class GiftResponse(Response):
    """``applied`` false: this key gifted before, or the recipient owns the item already
    (nothing was charged). ``balance`` is the giver's."""

    sku: str
    to_user_id: UserIdField
    applied: bool
    balance: Besitos

    @classmethod
    def of(cls, view: Gift) -> GiftResponse:
        return cls(sku=view.item.sku, to_user_id=view.to_user_id, applied=view.applied,
                   balance=view.balance)


class LedgerEntryResponse(Response):
    """One applied change of the balance. ``key``: the ledger's own key of the change, unique
    (made from the ``Idempotency-Key`` it was applied under, or by the application for its own
    changes: rewards, a transfer's credit, refunds);
    ``amount``: signed (spending, a transfer out or a purchase is negative, never 0);
    ``compensated``: undone by a later compensating entry (a transfer whose credit failed)."""

    key: str
    amount: Annotated[int, Field(ge=-MAX_BESITOS, le=MAX_BESITOS)]
    balance_after: Besitos
    reason: str
    compensated: bool
    created_at: datetime

    @classmethod
    def of(cls, entry: LedgerEntry) -> LedgerEntryResponse:
        return cls(key=entry.key, amount=entry.amount, balance_after=entry.balance_after,
                   reason=entry.reason, compensated=entry.compensated,
                   created_at=entry.created_at)


class LedgerPageResponse(Response):
    """A page of the user's besitos ledger, newest first. ``next_cursor``: pass it as
    ``cursor`` for the next page (null: this is the last). Paging from the first page to the
    last returns every change recorded before the first page was read exactly once; changes
    recorded meanwhile are on a new first page."""

    entries: tuple[LedgerEntryResponse, ...]
    next_cursor: str | None

    @classmethod
    def of(cls, page: LedgerPage) -> LedgerPageResponse:
        return cls(entries=tuple(LedgerEntryResponse.of(entry) for entry in page.entries),
                   next_cursor=page.next_cursor)


#: Every response body of the API's own routes, for the OpenAPI document.
RESPONSES: tuple[type[Response], ...] = (
    UserStateResponse, PreferencesResponse, FragmentResponse, TransactionResponse,
    SubscriptionResponse, PurchaseResponse, GiftResponse, LedgerPageResponse,
)
