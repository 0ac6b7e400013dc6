"""ShopService: the item catalogue and purchases with besitos into the user's inventory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import structlog

from yabot.crashpoints import crash_point
from yabot.domain.besitos import BalanceChange, derived_key, request_fingerprint, user_key
from yabot.domain.items import Item
from yabot.domain.users import UserDocument, utcnow
from yabot.errors import (
    IdempotencyConflict,
    InsufficientBesitos,
    InvalidInput,
    ItemNotFound,
    UserNotFound,
    VipRequired,
)
from yabot.events import drafts as draft
from yabot.events.drafts import Builder, Drafts
from yabot.services.besitos import REFUND, BesitosService
from yabot.stores.handles import Stores
from yabot.stores.outbox import PendingTransfer

log = structlog.get_logger("yabot.services.shop")

PURCHASE = "purchase"
GIFT = "gift"


@dataclass(frozen=True)
class PurchaseOutcome:
    item: Item
    applied: bool
    document: UserDocument
    ledger_key: str | None = None
    charge: BalanceChange | None = None


class ShopService:
    """Plain class; a purchase is a debit under the caller's key (recording the delivery as
    pending, with the debit's events), then the item into the inventory (idempotent, with the
    delivery's events, forgetting the pending delivery). If putting the item in fails, the
    debit is compensated. A delivery a crash interrupted is made by `recover` (or by a
    replay of the same key)."""

    def __init__(self, stores: Stores, drafts: Drafts | None = None) -> None:
        self._stores = stores
        self._drafts = drafts or Drafts()
        self._besitos = BesitosService(stores, self._drafts)

    def catalogue(self) -> list[Item]:
        return self._stores.documents.items.all()

    def buy(self, document: UserDocument, sku: str, key: str,
            is_vip: Callable[[], bool]) -> PurchaseOutcome:
        """Raises `ItemNotFound`, `VipRequired`, `InsufficientBesitos`, `IdempotencyConflict`.

        ``applied`` is False for a replay of ``key`` and for an item the user owns already
        (nothing is charged)."""
        item = self._item(sku)
        return self._deliver(document.user_id, document, item, key, is_vip,
                             request_fingerprint(PURCHASE, 0, None, sku), PURCHASE)

    def gift(self, giver: UserDocument, sku: str, to_user_id: int, key: str,
             is_vip: Callable[[], bool]) -> PurchaseOutcome:
        """``giver`` buys ``sku`` for ``to_user_id``: the debit is the giver's, the item goes
        into the recipient's inventory; if that fails, the giver is refunded. ``document`` in
        the outcome is the recipient's. ``applied`` False: a replay of ``key``, or the
        recipient owns the item already (nothing is charged).

        Raises `ItemNotFound`, `UserNotFound` (the recipient), `InvalidInput` (a gift to
        oneself), `VipRequired` (a VIP-only item needs a VIP giver), `InsufficientBesitos`,
        `IdempotencyConflict`."""
        if to_user_id == giver.user_id:
            raise InvalidInput("to_user_id: a gift to oneself is a purchase")
        item = self._item(sku)
        recipient = self._stores.documents.users.get(to_user_id)
        if recipient is None:
            raise UserNotFound(to_user_id)
        return self._deliver(giver.user_id, recipient, item, key, is_vip,
                             request_fingerprint(GIFT, 0, to_user_id, sku),
                             f"{GIFT} to {to_user_id}")

    def _item(self, sku: str) -> Item:
        item = self._stores.documents.items.get(sku)
        if item is None:
            raise ItemNotFound(f"no item {sku!r}")
        return item

    def _deliver(self, payer_id: int, recipient: UserDocument, item: Item, key: str,
                 is_vip: Callable[[], bool], request: str, reason: str) -> PurchaseOutcome:
        """``payer_id`` pays for ``item`` under ``key``; it goes into ``recipient``'s
        inventory (a purchase: the payer is the recipient)."""
        documents = self._stores.documents
        sku = item.sku
        ledger_key = user_key(payer_id, key)
        existing = documents.ledger.get(ledger_key)
        if existing is not None:
            if existing.request != request:
                raise IdempotencyConflict(f"idempotency key {key!r} was used for another "
                                          "request")
            if existing.compensated:
                raise IdempotencyConflict(f"the {reason} under key {key!r} failed and was "
                                          "refunded; retry with a new key")
            if sku not in recipient.inventory:  # a crash between the two writes
                recipient = self._put(payer_id, recipient.user_id, sku, ledger_key)
            else:
                documents.ledger.settle(ledger_key)
            return PurchaseOutcome(item, False, recipient, ledger_key)
        if item.vip_only and not is_vip():
            raise VipRequired(f"item {sku} is for VIP members")
        if sku in recipient.inventory:
            return PurchaseOutcome(item, False, recipient)
        gift = payer_id != recipient.user_id
        payer_event = (draft.interaction(payer_id, "gift", sku=sku,
                                         to_user_id=str(recipient.user_id)) if gift
                       else draft.interaction(payer_id, "purchase", sku=sku))
        charge: BalanceChange | None = None
        if item.price_besitos:
            pending = PendingTransfer(
                key=ledger_key, from_user_id=payer_id, to_user_id=recipient.user_id,
                amount=item.price_besitos, credit_key=ledger_key, created_at=utcnow(),
                sku=sku, request=request, reason=reason,
            )
            charge = documents.ledger.debit(
                payer_id, item.price_besitos, ledger_key, reason, request, pending=pending,
                events=self._drafts.of(
                    draft.besitos(payer_id, -item.price_besitos, ledger_key,
                                  "gift" if gift else "purchase"),
                    payer_event,
                ),
            )
            if not charge.applied:
                if documents.ledger.get(ledger_key) is not None:  # raced with itself
                    return self._deliver(payer_id, recipient, item, key, is_vip, request,
                                         reason)
                raise InsufficientBesitos(
                    f"{item.name} costs {item.price_besitos} besitos, {charge.balance} available"
                )
            crash_point("transfer-debited")
        elif gift:  # nothing to debit: the giver's event is recorded on its own
            documents.users.record_events(payer_id, self._drafts.of(payer_event))
        try:
            after = self._put(payer_id, recipient.user_id, sku,
                              ledger_key if charge is not None else None,
                              first=None if charge is not None or gift else payer_event)
        except Exception:
            if charge is not None:
                self._besitos.compensate(payer_id, item.price_besitos, ledger_key, request)
            raise
        return PurchaseOutcome(item, True, after, ledger_key, charge)

    def _put(self, payer_id: int, recipient_id: int, sku: str, settles: str | None,
             first: Builder | None = None) -> UserDocument:
        """The item into the recipient's inventory with its events, settling the pending
        delivery debited under ``settles``."""
        received = (draft.interaction(recipient_id, "gift-received", sku=sku,
                                      from_user_id=str(payer_id))
                    if payer_id != recipient_id else None)
        return self._stores.documents.users.add_to_inventory(
            recipient_id, sku, events=self._drafts.of(first, received), settles=settles,
        )

    def recover(self, older_than: datetime, limit: int = 100) -> int:
        """Deliver every item paid for before ``older_than`` whose delivery a crash left
        pending (or refund the payer when the recipient is gone); returns how many."""
        ledger = self._stores.documents.ledger
        finished = 0
        for pending in ledger.pending_transfers(older_than, limit):
            if pending.sku is None:
                continue
            if ledger.get(derived_key(pending.key, REFUND)) is not None:
                ledger.settle(pending.key)
                finished += 1
                continue
            log.warning("finishing an interrupted delivery", key=pending.key,
                        to_user_id=pending.to_user_id, sku=pending.sku)
            try:
                self._put(pending.from_user_id, pending.to_user_id, pending.sku, pending.key)
            except UserNotFound:
                self._besitos.compensate(pending.from_user_id, pending.amount, pending.key,
                                         pending.request)
            finished += 1
        return finished
