"""ShopService: the item catalogue and purchases with besitos into the user's inventory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from yabot.domain.besitos import BalanceChange, request_fingerprint, user_key
from yabot.domain.items import Item
from yabot.domain.users import UserDocument
from yabot.errors import (
    IdempotencyConflict,
    InsufficientBesitos,
    ItemNotFound,
    Unprocessable,
    UserNotFound,
    VipRequired,
)
from yabot.services.besitos import BesitosService
from yabot.stores.handles import Stores

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
    """Plain class; a purchase is a debit under the caller's key, then the item into the
    inventory (idempotent). If putting the item in fails, the debit is compensated. A replay
    of a purchase whose item never arrived (a crash in between) puts it there."""

    def __init__(self, stores: Stores) -> None:
        self._stores = stores
        self._besitos = BesitosService(stores)

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
            raise Unprocessable("to_user_id: a gift to oneself is a purchase")
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
                recipient = documents.users.add_to_inventory(recipient.user_id, sku)
            return PurchaseOutcome(item, False, recipient, ledger_key)
        if item.vip_only and not is_vip():
            raise VipRequired(f"item {sku} is for VIP members")
        if sku in recipient.inventory:
            return PurchaseOutcome(item, False, recipient)
        charge: BalanceChange | None = None
        if item.price_besitos:
            charge = documents.ledger.debit(payer_id, item.price_besitos, ledger_key, reason,
                                            request)
            if not charge.applied:
                if documents.ledger.get(ledger_key) is not None:  # raced with itself
                    return self._deliver(payer_id, recipient, item, key, is_vip, request,
                                         reason)
                raise InsufficientBesitos(
                    f"{item.name} costs {item.price_besitos} besitos, {charge.balance} available"
                )
        try:
            after = documents.users.add_to_inventory(recipient.user_id, sku)
        except Exception:
            if charge is not None:
                self._besitos.compensate(payer_id, item.price_besitos, ledger_key, request)
            raise
        return PurchaseOutcome(item, True, after, ledger_key, charge)
