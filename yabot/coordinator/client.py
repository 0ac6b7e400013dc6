"""How a session reaches the coordinator: by ask through the tree, or inline in tests/tools."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

import pykka

from actors import ask
from yabot.coordinator.messages import (
    InteractionOutcome,
    ProcessTransaction,
    ProcessUserInteraction,
    ValidateVipAccess,
    VipAccess,
)
from yabot.errors import Unavailable, UserNotFound
from yabot.events.drafts import Drafts
from yabot.services.besitos import BesitosService, TransactionOutcome
from yabot.services.shop import ShopService
from yabot.services.subscriptions import SubscriptionService
from yabot.stores.handles import Stores


class Coordination(Protocol):
    """The coordinator's workflows as a session calls them."""

    def validate_vip_access(self, user_id: int) -> VipAccess: ...

    def process_transaction(self, request: ProcessTransaction) -> TransactionOutcome: ...

    def process_user_interaction(self, request: ProcessUserInteraction
                                 ) -> InteractionOutcome: ...


class CoordinatorClient:
    """Asks the running `Coordinator`, found through ``find`` on every call (a restart gives
    it a new ref). `Unavailable` while it is down; ``timeout`` bounds each ask."""

    def __init__(self, find: Callable[[], pykka.ActorRef[Any] | None], timeout: float) -> None:
        self._find = find
        self._timeout = timeout

    def _ref(self) -> pykka.ActorRef[Any]:
        ref = self._find()
        if ref is None:
            raise Unavailable("the coordinator is not running")
        return ref

    def validate_vip_access(self, user_id: int) -> VipAccess:
        return ask(self._ref(), ValidateVipAccess(user_id=user_id), timeout=self._timeout)

    def process_transaction(self, request: ProcessTransaction) -> TransactionOutcome:
        return ask(self._ref(), request, timeout=self._timeout)

    def process_user_interaction(self, request: ProcessUserInteraction
                                 ) -> InteractionOutcome:
        return ask(self._ref(), request, timeout=self._timeout)


class InlineCoordination:
    """The same workflows run in the caller's thread: for sessions tested without the tree
    and for command-line tools."""

    def __init__(self, stores: Stores, drafts: Drafts | None = None) -> None:
        self._stores = stores
        self._besitos = BesitosService(stores, drafts)
        self._subscriptions = SubscriptionService(stores)
        self._shop = ShopService(stores, drafts)

    def validate_vip_access(self, user_id: int) -> VipAccess:
        view = self._subscriptions.check_subscription_status(user_id)
        return VipAccess(user_id=user_id, vip=view.vip, subscription=view)

    def process_transaction(self, request: ProcessTransaction) -> TransactionOutcome:
        return self._besitos.process_transaction(
            request.user_id, request.kind, request.amount, request.idempotency_key,
            request.to_user_id, request.reason,
        )

    def recover(self, older_than: datetime, limit: int = 100) -> int:
        """Finish transfers, gifts and purchases a crash left half done before
        ``older_than`` (`BesitosService.recover`, `ShopService.recover`); how many."""
        self._stores.documents.users.flush_parked(limit)
        return (self._besitos.recover(older_than, limit)
                + self._shop.recover(older_than, limit))

    def process_user_interaction(self, request: ProcessUserInteraction
                                 ) -> InteractionOutcome:
        giver = self._stores.documents.users.get(request.user_id)
        if giver is None:
            raise UserNotFound(request.user_id)
        outcome = self._shop.gift(
            giver, request.sku, request.to_user_id, request.idempotency_key,
            lambda: self.validate_vip_access(request.user_id).vip,
        )
        if outcome.charge is not None:
            balance = outcome.charge.balance
        else:
            balance = self._besitos.balance(request.user_id)
        return InteractionOutcome(
            item=outcome.item, applied=outcome.applied, balance=balance,
            charged=outcome.item.price_besitos if outcome.charge is not None else 0,
            ledger_key=outcome.ledger_key,
        )
