"""The `Coordinator` protocol: what sessions (and tools) may ask it. It never asks them."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from actors import Ask, Message
from yabot.domain.besitos import Amount, LedgerKey, TransactionKind
from yabot.domain.items import Item, Sku
from yabot.domain.users import UserId
from yabot.services.besitos import TransactionOutcome
from yabot.views import SubscriptionView


class VipAccess(Message):
    """Whether the user has VIP access now, and the subscription that says so."""

    user_id: UserId
    vip: bool
    subscription: SubscriptionView


class ValidateVipAccess(Ask[VipAccess]):
    """Does ``user_id`` have VIP access at this moment (expiry evaluated now)?"""

    user_id: UserId


class ProcessTransaction(Ask[TransactionOutcome]):
    """Earn, spend or transfer besitos for ``user_id`` under ``idempotency_key`` (see
    `yabot.services.besitos.BesitosService.process_transaction` for what it raises)."""

    user_id: UserId
    kind: TransactionKind
    amount: Amount
    idempotency_key: LedgerKey
    to_user_id: UserId | None = None
    reason: Annotated[str, Field(max_length=256)] = ""


class InteractionOutcome(Message):
    """What `ProcessUserInteraction` did: ``applied`` False for a replay or nothing to do;
    ``charged`` the besitos taken from the user (``balance`` after it) under ``ledger_key``."""

    item: Item
    applied: bool
    balance: int
    charged: int = 0
    ledger_key: str | None = None


class ProcessUserInteraction(Ask[InteractionOutcome]):
    """An interaction of ``user_id`` that changes another user too. ``action="gift"``: buy
    ``sku`` for ``to_user_id`` under ``idempotency_key`` (`ShopService.gift`); the giver is
    refunded if the item cannot be delivered."""

    user_id: UserId
    action: Literal["gift"]
    to_user_id: UserId
    sku: Sku
    idempotency_key: LedgerKey
