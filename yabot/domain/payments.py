"""VIP bought with Telegram Stars: the offers, the invoice payload, and what a payment grants.

Pure rules, no I/O. An offer (``yabot/narrative/vip.toml``) is a number of Stars for a number
of days of VIP. The invoice payload names the offer and the buyer, so a pre-checkout query or
a payment is checked against both: the price, the currency (``XTR``), and the person paying.
A payment extends VIP from the later of now and the end of the VIP already paid for.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from yabot.domain.texts import Localized
from yabot.domain.users import UserId, UtcDatetime

STARS = "XTR"  # Telegram Stars' currency code
OfferId = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[a-z0-9][a-z0-9_-]*$")]
ChargeId = Annotated[str, Field(min_length=1, max_length=256)]
PAYLOAD_PREFIX = "vip"


class StarOffer(BaseModel):
    """``stars`` Stars for ``days`` days of VIP."""

    model_config = ConfigDict(frozen=True)

    offer_id: OfferId
    stars: Annotated[int, Field(ge=1, le=10_000)]
    days: Annotated[int, Field(ge=1, le=3_660)]
    title: Localized
    description: Localized

    @property
    def period(self) -> timedelta:
        return timedelta(days=self.days)


class PaymentStatus(StrEnum):
    PAID = "paid"
    REFUNDED = "refunded"


class StarPayment(BaseModel):
    """One settled payment, keyed by Telegram's ``telegram_payment_charge_id``."""

    model_config = ConfigDict(frozen=True)

    charge_id: ChargeId
    user_id: UserId
    offer_id: OfferId
    stars: int
    days: int
    status: PaymentStatus = PaymentStatus.PAID
    subscription_id: int | None = None
    paid_at: UtcDatetime
    refunded_at: UtcDatetime | None = None


def invoice_payload(offer: StarOffer, user_id: int) -> str:
    """What the invoice carries back in the pre-checkout query and the payment."""
    return f"{PAYLOAD_PREFIX}:{offer.offer_id}:{user_id}"


def offer_in(payload: str, offers: dict[str, StarOffer], user_id: int) -> StarOffer | None:
    """The offer ``payload`` names, if it is one of ours and was made to ``user_id``."""
    prefix, _, rest = payload.partition(":")
    offer_id, _, buyer = rest.partition(":")
    if prefix != PAYLOAD_PREFIX or buyer != str(user_id):
        return None
    return offers.get(offer_id)


def why_not_payable(offer: StarOffer | None, currency: str, total: int) -> str | None:
    """Why a checkout for ``offer`` must be declined (None: it may go ahead)."""
    if offer is None:
        return "unknown-offer"
    if currency != STARS:
        return "wrong-currency"
    if total != offer.stars:
        return "wrong-amount"
    return None


def vip_until(now: datetime, paid_until: datetime | None, offer: StarOffer) -> datetime:
    """The end of VIP after paying for ``offer``: its days added to whatever is left."""
    start = paid_until if paid_until is not None and paid_until > now else now
    return start + offer.period
