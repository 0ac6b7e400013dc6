"""UserSession: the one actor through which all of one user's interactions pass, in order."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from actors import Actor, Message
from yabot.coordinator.client import Coordination, InlineCoordination
from yabot.coordinator.messages import ProcessTransaction, ProcessUserInteraction
from yabot.domain.subscriptions import Subscription, SubscriptionStatus
from yabot.domain.users import UserDocument
from yabot.events.counters import event_counters
from yabot.events.models import (
    BaseEvent,
    BesitosTransferred,
    FragmentReached,
    ReactionDetected,
    SubscriptionChanged,
    UpdateReceived,
    UserInteraction,
)
from yabot.services.besitos import TransactionOutcome
from yabot.services.narrative import CHOICE_COST, CHOICE_REWARD, NarrativeService
from yabot.services.reactions import REACTION, ReactionService
from yabot.services.shop import GIFT, PURCHASE, ShopService
from yabot.services.subscriptions import SubscriptionService
from yabot.services.users import UserService, state_from_context
from yabot.sessions.messages import (
    BuyItem,
    ChangeSubscription,
    Choose,
    FragmentView,
    GetShop,
    GetState,
    GetSubscription,
    GetWallet,
    Gift,
    GiftItem,
    Purchase,
    React,
    ReactionReward,
    RecordUpdate,
    Relinquish,
    SeenUpdate,
    SetPreferences,
    Shop,
    ShowFragment,
    Start,
    SubscriptionView,
    Transact,
    TransactionResult,
    Wallet,
    Welcome,
)
from yabot.sessions.progress import EventSeqs, HandledUpdates
from yabot.stores.context import UserContext
from yabot.stores.handles import Stores
from yabot.stores.repositories import UserProgress

log = structlog.get_logger("yabot.sessions")

#: Where a session hands its events; `yabot.events.bus.Events.publish` in the runtime.
Publish = Callable[[BaseEvent], object]
#: How a session tells another user's session something (`KeyedActors.tell` in the runtime).
Notify = Callable[[int, Message], None]


def publish_nowhere(event: BaseEvent) -> None:
    """The default for sessions built without an event bus (tests, tools)."""


def notify_nobody(user_id: int, message: Message) -> None:
    """The default for sessions built without the registry of sessions."""


class Credited(Message):
    """Told (never asked) to a user's session when another user's workflow credited them,
    so that the credited user's event gets that user's next ``seq``."""

    amount: int
    balance_after: int
    ledger_key: str
    reason: str


class Gifted(Message):
    """Told to a user's session when another user gave them an item."""

    sku: str
    from_user_id: int


@dataclass
class SessionServices:
    """Everything a session calls; one set is shared by every session (all thread-safe)."""

    stores: Stores
    users: UserService
    narrative: NarrativeService
    shop: ShopService
    reactions: ReactionService
    subscriptions: SubscriptionService
    #: The coordinator's workflows (transfers, the VIP gate): asked through the tree in the
    #: runtime, inline in tests.
    coordination: Coordination
    #: One user's own earn/spend run in the session's thread: the store's conditional update
    #: makes them atomic, and no single actor becomes a queue for every user's wallet.
    own_wallet: InlineCoordination = field(init=False)
    notify: Notify = notify_nobody
    #: How long a session may answer `GetState` from the context it last read (seconds; 0
    #: reads every time). It bounds how stale a change made behind the session's back (by
    #: another process on the same database) can look; the session's own changes, and the
    #: ones other sessions tell it of, are never served stale.
    state_max_age: float = 0.0
    #: How many handled update ids each user remembers (`SeenUpdate`).
    handled_updates_window: int = 256

    def __post_init__(self) -> None:
        self.own_wallet = InlineCoordination(self.stores)

    @classmethod
    def build(cls, stores: Stores, *, start_fragment: str = "start", reaction_reward: int = 1,
              reaction_daily_cap: int = 10, coordination: Coordination | None = None,
              notify: Notify = notify_nobody, state_max_age: float = 0.0,
              handled_updates_window: int = 256) -> SessionServices:
        return cls(
            stores=stores, users=UserService(stores),
            narrative=NarrativeService(stores, start_fragment), shop=ShopService(stores),
            reactions=ReactionService(stores, reaction_reward, reaction_daily_cap),
            subscriptions=SubscriptionService(stores),
            coordination=coordination or InlineCoordination(stores), notify=notify,
            state_max_age=state_max_age, handled_updates_window=handled_updates_window,
        )


#: Messages that only read the user's state: handling them keeps the context `GetState` serves.
_READS_ONLY = (GetState, GetWallet, GetShop, RecordUpdate, SeenUpdate)
# (`Relinquish` is not one of them: it drops the cached context too.)


class UserSession(Actor):
    """Handles every message for one user, one at a time, in arrival order.

    It holds no state a restart could lose: everything lives in the stores, read on demand.
    That includes ``seq``, the number of the user's next event: reserved from the user's
    stored progress in blocks (`EventSeqs`), so it keeps growing across incarnations,
    restarts and processes — gap-free except after a crash or a lost partition, when the
    unused rest of one block is skipped. Publishing never fails a request: an error is
    logged and counted. The handled Telegram updates are remembered there too
    (`SeenUpdate`, `RecordUpdate`).

    `GetState`, the hottest read, is answered from the context the previous `GetState` read
    as long as the session has handled nothing but reads since and the context is younger
    than ``state_max_age``: every change to a user passes through this session (or is told to
    it, like `Credited`), so the context cannot have changed behind it within the process.

    Every state change publishes its event after the change is stored. The first message of
    an incarnation also repairs a user left half-created by a crash (a document without its
    profile). The session asks the coordinator (never the other way round) and only tells
    other sessions (`Credited`).
    """

    # A daemon thread, because there are thousands of sessions: CPython's Thread.start scans
    # every live non-daemon thread (threading._maintain_shutdown_locks), which measured 3.9 ms
    # per start with 10,000 sessions alive against 0.5 ms for a daemon thread. The runtime
    # stops every session before the process exits, so nothing relies on Python waiting.
    use_daemon_thread = True

    def __init__(self, user_id: int, users: UserService, publish: Publish = publish_nowhere,
                 services: SessionServices | None = None) -> None:
        super().__init__()
        self.user_id = user_id
        self._services = services or SessionServices.build(users.stores)
        self._users = users
        self._publish = publish
        self._seqs = EventSeqs(user_id, self._progress)
        self._handled = HandledUpdates(user_id, self._progress,
                                       self._services.handled_updates_window)
        self._profile_checked = False
        self._context: UserContext | None = None
        self._context_read_at = 0.0

    def _progress(self) -> UserProgress:
        return self._services.stores.documents.progress

    def post_stop(self) -> None:
        self._seqs.release()
        super().post_stop()

    def handle(self, message: Any) -> Any:
        if not isinstance(message, _READS_ONLY):
            self._context = None  # it may change the user: the next GetState reads again
        match message:
            case Start():
                return self._start(message)
            case GetState():
                return state_from_context(self._current_context())
            case SetPreferences(preferences=preferences):
                self._document()
                state = self._users.set_preferences(self.user_id, preferences)
                self._emit(lambda seq: UserInteraction(
                    user_id=self.user_id, seq=seq, action="preferences",
                    details={"language": preferences.language,
                             "notifications": str(preferences.notifications).lower()},
                    correlation_id=_correlation_id(),
                ))
                return state
            case ShowFragment(fragment_id=fragment_id):
                return self._show(fragment_id)
            case Choose(fragment_id=fragment_id, choice_id=choice_id):
                return self._choose(fragment_id, choice_id)
            case GetWallet(limit=limit):
                document = self._document()
                entries = self._services.stores.documents.ledger.entries(self.user_id, limit)
                return Wallet(balance=document.besitos, entries=tuple(entries))
            case GetShop():
                document = self._document()
                items = self._services.shop.catalogue()
                return Shop(items=tuple(item.in_(document.language) for item in items),
                            balance=document.besitos, inventory=document.inventory)
            case BuyItem():
                return self._buy(message)
            case Transact():
                return self._transact(message)
            case React():
                return self._react(message)
            case GetSubscription():
                return self._subscription()
            case ChangeSubscription():
                return self._change_subscription(message)
            case GiftItem():
                return self._gift(message)
            case Gifted(sku=sku, from_user_id=giver):
                self._emit(lambda seq: UserInteraction(
                    user_id=self.user_id, seq=seq, action="gift-received",
                    details={"sku": sku, "from_user_id": str(giver)},
                    correlation_id=_correlation_id(),
                ))
                return None
            case Credited():
                self._emit(lambda seq: BesitosTransferred(
                    user_id=self.user_id, seq=seq, amount=message.amount,
                    balance_after=message.balance_after, ledger_key=message.ledger_key,
                    reason=message.reason, correlation_id=_correlation_id(),
                ))
                return None
            case RecordUpdate():
                self._record_update(message)
                return None
            case SeenUpdate(update_id=update_id):
                return self._handled.seen(update_id)
            case Relinquish():
                # Another process owns the user now: its seqs are not ours to give back.
                self._seqs = EventSeqs(self.user_id, self._progress)
                self._handled = HandledUpdates(self.user_id, self._progress,
                                               self._services.handled_updates_window)
                self._profile_checked = False
                return None
        return super().handle(message)

    def _record_update(self, message: RecordUpdate) -> None:
        """The bot handled one update of this user (told, never asked; never fails)."""
        self._handled.record(message.update_id)
        self._emit(lambda seq: UpdateReceived(
            user_id=self.user_id, seq=seq, update_id=message.update_id,
            update_kind=message.update_kind, correlation_id=_correlation_id(),
        ))
        if message.action is not None:
            action = message.action
            self._emit(lambda seq: UserInteraction(
                user_id=self.user_id, seq=seq, action=action, details=dict(message.details),
                correlation_id=_correlation_id(),
            ))

    # -- asks ---------------------------------------------------------------------------------

    def _start(self, message: Start) -> Welcome:
        created = self._users.create_user(message.identity)
        self._profile_checked = True
        self._emit(lambda seq: UserInteraction(
            user_id=self.user_id, seq=seq, action="start",
            details={"created": str(created).lower()},
            correlation_id=_correlation_id(),
        ))
        return Welcome(state=self._users.get_user_context(self.user_id), created=created)

    def _show(self, fragment_id: str | None) -> FragmentView:
        narrative = self._services.narrative
        document = self._document()
        if fragment_id is None:
            if document.current_fragment is None:
                document = narrative.begin(document)
                self._reached(narrative.start_fragment, None)
            fragment_id = narrative.current_of(document)
        fragment = narrative.get_fragment(fragment_id)
        is_vip = self._vip_check()
        if fragment.vip_only:
            narrative.validate_vip_access(fragment, is_vip())
        return narrative.render(fragment, document, is_vip)

    def _choose(self, fragment_id: str, choice_id: str) -> FragmentView:
        narrative = self._services.narrative
        is_vip = self._vip_check()
        outcome = narrative.process_choice(self._document(), fragment_id, choice_id, is_vip)
        if outcome.cost is not None and outcome.cost_key is not None:
            self._besitos_event(-outcome.choice.cost_besitos, outcome.cost.balance,
                                outcome.cost_key, CHOICE_COST)
        self._reached(outcome.fragment.fragment_id, choice_id)
        if outcome.reward is not None and outcome.reward.applied and outcome.reward_key:
            self._besitos_event(outcome.choice.reward_besitos, outcome.reward.balance,
                                outcome.reward_key, CHOICE_REWARD)
        return narrative.render(outcome.fragment, outcome.document, is_vip, outcome.balance)

    def _buy(self, message: BuyItem) -> Purchase:
        document = self._document()
        outcome = self._services.shop.buy(document, message.sku, message.idempotency_key,
                                          self._vip_check())
        after = outcome.document
        balance = outcome.charge.balance if outcome.charge is not None else after.besitos
        if outcome.charge is not None and outcome.ledger_key is not None:
            self._besitos_event(-outcome.item.price_besitos, outcome.charge.balance,
                                outcome.ledger_key, PURCHASE)
        if outcome.applied:
            self._emit(lambda seq: UserInteraction(
                user_id=self.user_id, seq=seq, action="purchase",
                details={"sku": outcome.item.sku}, correlation_id=_correlation_id(),
            ))
        return Purchase(item=outcome.item.in_(after.language), applied=outcome.applied,
                        balance=balance, inventory=after.inventory)

    def _gift(self, message: GiftItem) -> Gift:
        document = self._document()
        outcome = self._services.coordination.process_user_interaction(ProcessUserInteraction(
            user_id=self.user_id, action="gift", to_user_id=message.to_user_id,
            sku=message.sku, idempotency_key=message.idempotency_key,
        ))
        if outcome.charged and outcome.ledger_key is not None:
            self._besitos_event(-outcome.charged, outcome.balance, outcome.ledger_key, GIFT)
        if outcome.applied:
            self._emit(lambda seq: UserInteraction(
                user_id=self.user_id, seq=seq, action="gift",
                details={"sku": message.sku, "to_user_id": str(message.to_user_id)},
                correlation_id=_correlation_id(),
            ))
            self._tell(message.to_user_id, Gifted(sku=message.sku, from_user_id=self.user_id))
        return Gift(item=outcome.item.in_(document.language), to_user_id=message.to_user_id,
                    applied=outcome.applied, balance=outcome.balance)

    def _tell(self, user_id: int, message: Message) -> None:
        """Tell another user's session; the change stands even if this fails."""
        try:
            self._services.notify(user_id, message)
        except Exception:
            log.exception("another user's session not told", to_user_id=user_id)
            event_counters.incr("lost")

    def _transact(self, message: Transact) -> TransactionResult:
        self._document()
        request = ProcessTransaction(
            user_id=self.user_id, kind=message.kind, amount=message.amount,
            idempotency_key=message.idempotency_key, to_user_id=message.to_user_id,
            reason=message.reason,
        )
        if message.kind == "transfer":
            outcome = self._services.coordination.process_transaction(request)
        else:
            outcome = self._services.own_wallet.process_transaction(request)
        if outcome.applied:
            self._transaction_events(outcome)
        return TransactionResult(key=message.idempotency_key, kind=message.kind,
                                 amount=message.amount, applied=outcome.applied,
                                 balance=outcome.balance)

    def _transaction_events(self, outcome: TransactionOutcome) -> None:
        signed = outcome.amount if outcome.kind == "earn" else -outcome.amount
        self._besitos_event(signed, outcome.balance, outcome.ledger_key, outcome.kind)
        if (outcome.to_user_id is not None and outcome.credit_key is not None
                and outcome.recipient_balance is not None):
            self._tell(outcome.to_user_id, Credited(
                amount=outcome.amount, balance_after=outcome.recipient_balance,
                ledger_key=outcome.credit_key, reason="transfer",
            ))

    def _react(self, message: React) -> ReactionReward:
        outcome = self._services.reactions.react(self.user_id, message.chat_id,
                                                 message.message_id)
        self._emit(lambda seq: ReactionDetected(
            user_id=self.user_id, seq=seq, chat_id=message.chat_id,
            message_id=message.message_id, reaction=message.reaction,
            correlation_id=_correlation_id(),
        ))
        if outcome.awarded:
            self._besitos_event(outcome.awarded, outcome.balance, outcome.ledger_key, REACTION)
        return ReactionReward(awarded=outcome.awarded, balance=outcome.balance)

    def _subscription(self) -> SubscriptionView:
        self._document()
        subscriptions = self._services.subscriptions
        expired = subscriptions.expire_lapsed(self.user_id)
        if expired is not None:
            self._subscription_event(expired.plan.value, SubscriptionStatus.EXPIRED, expired)
        return subscriptions.check_subscription_status(self.user_id)

    def _change_subscription(self, message: ChangeSubscription) -> SubscriptionView:
        document = self._document()
        self._users.ensure_profile(document)
        view, written = self._services.subscriptions.update_subscription(
            self.user_id, message.plan, message.status, message.ends_at
        )
        if written is not None:
            self._subscription_event(written.plan.value, view.status or written.status,
                                     written)
        return view

    # -- helpers ------------------------------------------------------------------------------

    def _current_context(self) -> UserContext:
        """The context last read, or a new read (one unit of work, repairing the profile)."""
        now = time.monotonic()
        max_age = self._services.state_max_age
        if self._context is None or now - self._context_read_at >= max_age:
            self._context = self._users.read_context(self.user_id)
            self._context_read_at = now
            self._profile_checked = True
        return self._context

    def _document(self) -> UserDocument:
        """The user's document (`UserNotFound`); on an incarnation's first access also the
        repair of a profile a crash left unwritten."""
        document = self._users.document(self.user_id)
        if not self._profile_checked:
            self._users.ensure_profile(document)
            self._profile_checked = True
        return document

    def _vip_check(self) -> Callable[[], bool]:
        """Asks the coordinator at most once per message, and only if called."""
        answers: list[bool] = []

        def is_vip() -> bool:
            if not answers:
                answers.append(
                    self._services.coordination.validate_vip_access(self.user_id).vip
                )
            return answers[0]

        return is_vip

    def _reached(self, fragment_id: str, choice_id: str | None) -> None:
        self._emit(lambda seq: FragmentReached(
            user_id=self.user_id, seq=seq, fragment_id=fragment_id, choice_id=choice_id,
            correlation_id=_correlation_id(),
        ))

    def _besitos_event(self, amount: int, balance: int, ledger_key: str, reason: str) -> None:
        self._emit(lambda seq: BesitosTransferred(
            user_id=self.user_id, seq=seq, amount=amount, balance_after=balance,
            ledger_key=ledger_key, reason=reason, correlation_id=_correlation_id(),
        ))

    def _subscription_event(self, plan: str, status: SubscriptionStatus,
                            subscription: Subscription) -> None:
        self._emit(lambda seq: SubscriptionChanged(
            user_id=self.user_id, seq=seq, plan=plan, status=status.value,
            expires_at=subscription.ends_at, correlation_id=_correlation_id(),
        ))

    def _emit(self, build: Callable[[int], BaseEvent]) -> None:
        """Publish the event ``build(seq)`` with this user's next ``seq``; never raises."""
        try:
            event = build(self._seqs.peek())
            self._publish(event)
        except Exception:
            log.exception("event not published", user_id=self.user_id)
            event_counters.incr("lost")
            return
        self._seqs.advance()


def _correlation_id() -> str | None:
    value = structlog.contextvars.get_contextvars().get("correlation_id")
    return value[:128] if isinstance(value, str) else None
