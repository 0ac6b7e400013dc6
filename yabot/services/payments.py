"""PaymentService: VIP bought with Telegram Stars — offers, checkout checks, settling, refunds.

Called inside the buyer's session (one user's payments are handled in order). Settling and
refunding are idempotent by Telegram's ``telegram_payment_charge_id``: the payment row and the
subscription it grants are one transaction (`SqlStarPayments`).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import ValidationError

from yabot.domain.payments import (
    StarOffer,
    StarPayment,
    invoice_payload,
    offer_in,
    vip_until,
    why_not_payable,
)
from yabot.domain.subscriptions import Subscription
from yabot.domain.users import Language, utcnow
from yabot.errors import InvalidInput, InvalidStory, NotFound
from yabot.stores.handles import Stores
from yabot.stores.payments import SqlStarPayments

OFFERS_FILE = "vip.toml"


def read_offers(folder: Path) -> dict[str, StarOffer]:
    """The Stars offers in ``folder/vip.toml`` (none when the file is absent); `InvalidStory`
    naming the problem when it does not read."""
    path = folder / OFFERS_FILE
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        offers = [StarOffer.model_validate({"offer_id": raw.get("id"), **raw})
                  for raw in data.get("offer", [])]
    except (tomllib.TOMLDecodeError, ValidationError, AttributeError) as exc:
        raise InvalidStory(f"{path}: {exc}") from None
    by_id = {offer.offer_id: offer for offer in offers}
    if len(by_id) != len(offers):
        raise InvalidStory(f"{path}: an offer id is used twice")
    return by_id


class PaymentService:
    """Plain class; thread-safe (the offers never change after start)."""

    def __init__(self, stores: Stores, offers: dict[str, StarOffer]) -> None:
        self._stores = stores
        self.offers = offers

    def offer(self, offer_id: str) -> StarOffer:
        found = self.offers.get(offer_id)
        if found is None:
            raise NotFound(f"no VIP offer {offer_id!r}")
        return found

    def payload(self, offer: StarOffer, user_id: int) -> str:
        return invoice_payload(offer, user_id)

    def why_not(self, user_id: int, payload: str, currency: str, total: int) -> str | None:
        """Why a pre-checkout query must be declined; None when it may go ahead."""
        return why_not_payable(offer_in(payload, self.offers, user_id), currency, total)

    def settle(self, user_id: int, charge_id: str, payload: str, currency: str, total: int
               ) -> tuple[StarOffer, Subscription, bool]:
        """Grant the VIP ``payload`` names for the payment ``charge_id``, once. Telegram took
        the Stars already, so an unknown offer or amount is still recorded if it can be
        (`InvalidInput` otherwise, for an operator to refund)."""
        offer = offer_in(payload, self.offers, user_id)
        why = why_not_payable(offer, currency, total)
        if offer is None or why is not None:
            raise InvalidInput(f"a payment that matches no offer ({why}); refund it")
        payment = StarPayment(charge_id=charge_id, user_id=user_id, offer_id=offer.offer_id,
                              stars=total, days=offer.days, paid_at=utcnow())
        subscription, applied = SqlStarPayments(self._stores.relational).settle(
            payment, lambda now, paid_until: vip_until(now, paid_until, offer))
        return offer, subscription, applied

    def refund(self, user_id: int, charge_id: str) -> tuple[StarPayment, bool]:
        """Record the refund of ``charge_id`` (this user's), once."""
        refunded = SqlStarPayments(self._stores.relational).refund(charge_id)
        if refunded is None or refunded[0].user_id != user_id:
            raise NotFound(f"no Stars payment {charge_id!r} of this user")
        return refunded


def offer_texts(offer: StarOffer, language: Language) -> tuple[str, str]:
    return offer.title.in_(language), offer.description.in_(language)
