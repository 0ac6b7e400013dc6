"""UserSession: the one actor through which all of one user's interactions pass, in order."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from actors import Actor, Message, Snapshot
from yabot.coordinator.client import Coordination, InlineCoordination
from yabot.coordinator.messages import ProcessTransaction, ProcessUserInteraction
from yabot.domain.payments import StarOffer
from yabot.domain.subscriptions import Subscription, SubscriptionStatus, next_change
from yabot.domain.users import Language, UserDocument, utcnow
from yabot.errors import StaleChoice, TimedOut, UserNotFound
from yabot.events import drafts as draft
from yabot.events.counters import event_counters
from yabot.events.drafts import Builder, Drafts, Handling
from yabot.events.models import SubscriptionChanged, UpdateReceived
from yabot.services.narrative import NarrativeService
from yabot.services.payments import PaymentService, offer_texts
from yabot.services.reactions import ReactionService
from yabot.services.shop import ShopService
from yabot.services.subscriptions import SubscriptionService
from yabot.services.users import UserService, state_from_context
from yabot.sessions.messages import (
    GET_STATE,
    BuyItem,
    ChangeSubscription,
    CheckoutVerdict,
    CheckStarCheckout,
    Choose,
    Credited,
    FragmentView,
    GetLedger,
    GetShop,
    GetState,
    GetSubscription,
    GetVipOffers,
    GetWallet,
    Gift,
    Gifted,
    GiftItem,
    Invoice,
    OpenInvoice,
    Purchase,
    React,
    ReactionReward,
    RecordStarRefund,
    RecordUpdate,
    Relinquish,
    RestartStory,
    SeenUpdate,
    SetPreferences,
    SettleStarPayment,
    Shop,
    ShowFragment,
    StarOfferView,
    StarPaymentResult,
    Start,
    SubscriptionView,
    Transact,
    TransactionResult,
    VipOffers,
    Wallet,
    Welcome,
)
from yabot.sessions.progress import HandledUpdates
from yabot.stores.context import UserContext
from yabot.stores.handles import Stores
from yabot.stores.outbox import EventDrafts
from yabot.stores.repositories import UserProgress

log = structlog.get_logger("yabot.sessions")

#: How a session tells another user's session something (`KeyedActors.tell` in the runtime).
Notify = Callable[[int, Message], None]


def notify_nobody(user_id: int, message: Message) -> None:
    """The default for sessions built without the registry of sessions."""


def relay_later() -> None:
    """The default for sessions built without a relay: the outbox keeps the events."""


def forget_nobody(user_id: int) -> object:
    """The default for sessions built without the registry of sessions."""
    return None


@dataclass
class SessionServices:
    """Everything a session calls; one set is shared by every session (all thread-safe)."""

    stores: Stores
    users: UserService
    narrative: NarrativeService
    shop: ShopService
    reactions: ReactionService
    subscriptions: SubscriptionService
    #: VIP with Telegram Stars (offers from yabot/narrative/vip.toml).
    payments: PaymentService
    #: The coordinator's workflows (transfers, the VIP gate): asked through the tree in the
    #: runtime, inline in tests.
    coordination: Coordination
    #: Builds the events each change stores with it (the transactional outbox).
    drafts: Drafts = field(default_factory=Drafts)
    #: One user's own earn/spend run in the session's thread: the store's conditional update
    #: makes them atomic, and no single actor becomes a queue for every user's wallet.
    own_wallet: InlineCoordination = field(init=False)
    notify: Notify = notify_nobody
    #: Wakes the outbox relay after a message stored events (`Events.wake` in the runtime),
    #: so they are published now rather than at the relay's next interval.
    relay: Callable[[], None] = relay_later
    #: Stops a user's session once its current message is done (`KeyedActors.passivate`):
    #: a session whose user does not exist stops at once instead of holding its place
    #: until the idle timeout (any token holder could otherwise fill the cap with made-up ids).
    forget: Callable[[int], object] = forget_nobody
    #: How long a session may answer `GetState` from the context it last read (seconds; 0
    #: reads every time). It bounds how stale a change made behind the session's back (by
    #: another process on the same database) can look; the session's own changes, and the
    #: ones other sessions tell it of, are never served stale.
    state_max_age: float = 0.0
    #: How many handled update ids each user remembers (`SeenUpdate`).
    handled_updates_window: int = 256
    #: What the context's age is measured on: the session registry's clock.
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self.own_wallet = InlineCoordination(self.stores, self.drafts)

    @classmethod
    def build(cls, stores: Stores, *, start_fragment: str = "start", reaction_reward: int = 1,
              reaction_daily_cap: int = 10, coordination: Coordination | None = None,
              notify: Notify = notify_nobody, relay: Callable[[], None] = relay_later,
              forget: Callable[[int], object] = forget_nobody,
              drafts: Drafts | None = None, state_max_age: float = 0.0,
              offers: dict[str, StarOffer] | None = None,
              handled_updates_window: int = 256,
              clock: Callable[[], float] = time.monotonic) -> SessionServices:
        drafts = drafts or Drafts(window=handled_updates_window)
        return cls(
            stores=stores, users=UserService(stores),
            narrative=NarrativeService(stores, start_fragment, drafts),
            shop=ShopService(stores, drafts),
            reactions=ReactionService(stores, reaction_reward, reaction_daily_cap, drafts),
            subscriptions=SubscriptionService(stores),
            payments=PaymentService(stores, offers or {}),
            coordination=coordination or InlineCoordination(stores, drafts), drafts=drafts,
            notify=notify, relay=relay, forget=forget, state_max_age=state_max_age,
            handled_updates_window=handled_updates_window, clock=clock,
        )


#: Messages that only read the user's state: handling them keeps the context `GetState` serves.
_READS_ONLY = (GetState, GetWallet, GetLedger, GetShop, RecordUpdate, SeenUpdate)
# (`Relinquish` is not one of them: it drops the cached context too.)
#: Messages that store nothing, so they leave the outbox relay alone.
_STORE_NOTHING = (GetState, GetWallet, GetLedger, GetShop, SeenUpdate, Relinquish)


class UserSession(Actor):
    """Handles every message for one user, one at a time, in arrival order.

    It holds no state a restart could lose: everything lives in the stores, read on demand.
    Every change is stored with its events (the transactional outbox, `yabot.stores.outbox`),
    whose ``seq`` the store takes from the user's record; the session then wakes the relay
    that publishes them. A change is never stored without its events, and a request that
    fails stored neither. Events of no change of their own (an update received) are recorded
    on their own; recording them never fails a message (an error is logged and counted).
    The ids of the user's handled Telegram updates are kept in the user's stored progress
    (`SeenUpdate`, `RecordUpdate`), so a redelivered update is skipped in any process; an
    update that changed the user is stored as handled in the change's own write (its drafts
    carry it: `yabot.events.drafts.handling_update`), so it is never applied twice.

    `GetState`, the hottest read, is answered from the context the previous `GetState` read
    as long as the session has handled nothing but reads since and the context is younger
    than ``state_max_age``: every change to a user passes through this session (or is told to
    it, like `Credited`), so the context cannot have changed behind it within the process.

    The first message of an incarnation also repairs a user left half-created by a crash (a
    document without its profile). The session asks the coordinator (never the other way
    round) and only tells other sessions (`Credited`, `Gifted`).
    """

    def __init__(self, user_id: int, services: SessionServices) -> None:
        super().__init__()
        self.user_id = user_id
        self._services = services
        self._users = services.users
        self._handled = HandledUpdates(user_id, self._progress,
                                       services.handled_updates_window)
        self._profile_checked = False
        self._context: UserContext | None = None
        self._context_read_at = 0.0
        self._replies: tuple[UserContext, dict[Message, Any]] | None = None  # see `snapshot`

    def _progress(self) -> UserProgress:
        return self._services.stores.documents.progress

    def snapshot(self) -> Snapshot | None:
        """`GetState`'s reply, for as long as this session would serve it from the context it
        holds (see above): then the registry answers readers of an idle session without a
        trip through its mailbox (`actors.Snapshot`). Anything that drops the context (a
        change, `Relinquish`, the read growing old, the subscription starting or ending)
        ends it: the next `GetState` is handled here again."""
        context = self._context
        if context is None:
            return None
        fresh_for = self._context_read_at + self._services.state_max_age - self._services.clock()
        renewable_for = float("inf")
        now = utcnow()
        change = next_change(context.subscription, now)
        if change is not None:
            renewable_for = (change - now).total_seconds()
            fresh_for = min(fresh_for, renewable_for)
        if fresh_for <= 0:
            return None
        if self._replies is None or self._replies[0] is not context:
            self._replies = (context, {GET_STATE: state_from_context(context)})
        # The context is the basis: while the stores still read as it, the reply holds, so
        # `yabot.sessions.renewal` may keep it fresh without a message (up to the
        # subscription's next start or end, which changes the reply by itself).
        return Snapshot(self._replies[1], fresh_for, basis=context,
                        renewable_for=renewable_for)

    def handle(self, message: Any) -> Any:
        if not isinstance(message, _READS_ONLY):
            self._context = None  # it may change the user: the next GetState reads again
        try:
            return self._handle(message)
        except UserNotFound as exc:
            if exc.user_id == self.user_id:
                self._services.forget(self.user_id)
            raise
        finally:
            if not isinstance(message, _STORE_NOTHING):
                self._services.relay()

    def _handle(self, message: Any) -> Any:
        match message:
            case Start():
                return self._start(message)
            case GetState():
                return state_from_context(self._current_context())
            case SetPreferences(preferences=preferences):
                self._document()
                return self._users.set_preferences(
                    self.user_id, preferences,
                    events=self._drafts(draft.interaction(
                        self.user_id, "preferences", language=preferences.language,
                        notifications=str(preferences.notifications).lower(),
                    )),
                )
            case ShowFragment(fragment_id=fragment_id):
                return self._show(fragment_id)
            case Choose(fragment_id=fragment_id, choice_id=choice_id):
                return self._choose(fragment_id, choice_id)
            case RestartStory(fragment_id=fragment_id):
                return self._restart(fragment_id)
            case GetWallet(limit=limit):
                document = self._document()
                entries = self._services.stores.documents.ledger.entries(self.user_id, limit)
                return Wallet(balance=document.besitos, entries=tuple(entries))
            case GetLedger(limit=limit, cursor=cursor):
                page = self._services.stores.documents.ledger.page(self.user_id, limit, cursor)
                if not page.entries:
                    self._document()  # no entries may mean no user: `UserNotFound`
                return page
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
                outcome = self._services.reactions.react(
                    self.user_id, message.chat_id, message.message_id, message.reaction)
                return ReactionReward(awarded=outcome.awarded, balance=outcome.balance)
            case GetSubscription():
                return self._subscription()
            case ChangeSubscription():
                return self._change_subscription(message)
            case GiftItem():
                return self._gift(message)
            case Credited() | Gifted():
                return None  # stored (with its event) by the workflow; our context is stale
            case RecordUpdate():
                self._record_update(message)
                return None
            case SeenUpdate(update_id=update_id):
                return self._handled.seen(update_id)
            case Relinquish():
                # Another process owns the user now: forget what this incarnation read.
                self._handled = HandledUpdates(self.user_id, self._progress,
                                               self._services.handled_updates_window)
                self._profile_checked = False
                return None
            case GetVipOffers() | OpenInvoice() | CheckStarCheckout():
                return self._vip_offers(message)
            case SettleStarPayment():
                return self._settle_stars(message)
            case RecordStarRefund():
                return self._refund_stars(message)
        return super().handle(message)

    # -- VIP with Telegram Stars --------------------------------------------------------------

    def _vip_offers(self, message: GetVipOffers | OpenInvoice | CheckStarCheckout
                    ) -> VipOffers | Invoice | CheckoutVerdict:
        document = self._document()
        payments = self._services.payments
        if isinstance(message, CheckStarCheckout):
            return CheckoutVerdict(reason=payments.why_not(
                self.user_id, message.payload, message.currency, message.total))
        if isinstance(message, OpenInvoice):
            offer = payments.offer(message.offer_id)
            return Invoice(offer=_offer_view(offer, document.language),
                           payload=payments.payload(offer, self.user_id))
        return VipOffers(subscription=self._subscription(), offers=tuple(
            _offer_view(offer, document.language) for offer in payments.offers.values()))

    def _settle_stars(self, message: SettleStarPayment) -> StarPaymentResult:
        document = self._document()
        self._users.ensure_profile(document)
        offer, subscription, applied = self._services.payments.settle(
            self.user_id, message.charge_id, message.payload, message.currency, message.total)
        if applied:
            self._record(draft.interaction(
                self.user_id, "stars-paid", charge_id=message.charge_id[:128],
                offer=offer.offer_id, stars=str(message.total)))
            self._subscription_event(subscription.plan.value, subscription.status, subscription)
        return StarPaymentResult(charge_id=message.charge_id, applied=applied,
                                 subscription=self._services.subscriptions
                                 .check_subscription_status(self.user_id))

    def _refund_stars(self, message: RecordStarRefund) -> StarPaymentResult:
        self._document()
        payment, applied = self._services.payments.refund(self.user_id, message.charge_id)
        view = self._services.subscriptions.check_subscription_status(self.user_id)
        if applied:
            self._record(
                draft.interaction(self.user_id, "stars-refunded",
                                  charge_id=message.charge_id[:128], offer=payment.offer_id,
                                  stars=str(payment.stars)),
                draft.event(SubscriptionChanged, self.user_id, plan=view.plan.value,
                            status=(view.status or SubscriptionStatus.CANCELLED).value,
                            expires_at=view.ends_at),
            )
        return StarPaymentResult(charge_id=message.charge_id, applied=applied,
                                 subscription=view)

    # -- asks ---------------------------------------------------------------------------------

    def _start(self, message: Start) -> Welcome:
        if message.expires_at is not None and time.time() > message.expires_at:
            log.info("a start taken after its asker gave up; not applied", user_id=self.user_id)
            raise TimedOut("the start waited too long to be handled; nothing was done")
        created = self._users.create_user(message.identity)
        self._profile_checked = True
        self._record(draft.interaction(self.user_id, "start", created=str(created).lower()))
        return Welcome(state=self._users.get_user_context(self.user_id), created=created)

    def _show(self, fragment_id: str | None) -> FragmentView:
        narrative = self._services.narrative
        document = self._document()
        if fragment_id is None:
            if document.current_fragment is None:
                document = narrative.begin(document)
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
        return narrative.render(outcome.fragment, outcome.document, is_vip, outcome.balance)

    def _restart(self, ending_id: str) -> FragmentView:
        """Back to the start from an ending; besitos, items and the ledger stay."""
        narrative = self._services.narrative
        document = self._document()
        current = narrative.current_of(document)
        if current != ending_id or not narrative.get_fragment(current).ending:
            raise StaleChoice(f"the user is not at the ending {ending_id}")
        narrative.begin(document)  # stored with its FragmentReached event
        self._record(draft.interaction(self.user_id, "restart", **{"from": ending_id}))
        return self._show(None)

    def _buy(self, message: BuyItem) -> Purchase:
        document = self._document()
        outcome = self._services.shop.buy(document, message.sku, message.idempotency_key,
                                          self._vip_check())
        after = outcome.document
        balance = outcome.charge.balance if outcome.charge is not None else after.besitos
        return Purchase(item=outcome.item.in_(after.language), applied=outcome.applied,
                        balance=balance, inventory=after.inventory)

    def _gift(self, message: GiftItem) -> Gift:
        document = self._document()
        outcome = self._services.coordination.process_user_interaction(ProcessUserInteraction(
            user_id=self.user_id, action="gift", to_user_id=message.to_user_id,
            sku=message.sku, idempotency_key=message.idempotency_key,
        ))
        if outcome.applied:
            self._tell(message.to_user_id, Gifted(sku=message.sku, from_user_id=self.user_id))
        return Gift(item=outcome.item.in_(document.language), to_user_id=message.to_user_id,
                    applied=outcome.applied, balance=outcome.balance)

    def _tell(self, user_id: int, message: Message) -> None:
        """Tell another user's session its context changed; the change stands (with its
        events) even if this fails."""
        try:
            self._services.notify(user_id, message)
        except Exception:
            log.exception("another user's session not told", to_user_id=user_id)

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
        if (outcome.applied and outcome.to_user_id is not None
                and outcome.credit_key is not None and outcome.recipient_balance is not None):
            self._tell(outcome.to_user_id, Credited(
                amount=outcome.amount, balance_after=outcome.recipient_balance,
                ledger_key=outcome.credit_key, reason="transfer",
            ))
        return TransactionResult(key=message.idempotency_key, kind=message.kind,
                                 amount=message.amount, applied=outcome.applied,
                                 balance=outcome.balance)

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
        now = self._services.clock()
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

    def _drafts(self, *builders: Builder | None) -> EventDrafts:
        return self._services.drafts.of(*builders)

    def _subscription_event(self, plan: str, status: SubscriptionStatus,
                            subscription: Subscription) -> None:
        # Subscriptions are relational rows and the user's event counter lives with the
        # documents (possibly in MongoDB): the event is recorded right after the change, not
        # with it (README, "Events": the one change outside the transactional outbox).
        self._record(draft.event(SubscriptionChanged, self.user_id, plan=plan,
                                 status=status.value, expires_at=subscription.ends_at))

    def _record_update(self, message: RecordUpdate) -> None:
        """The update's events and its id in the window of handled updates, in one write
        (with the changes it made, its id is stored already; this stores it again, harmlessly).
        Never raises."""
        handled = Handling(self.user_id, message.update_id)
        drafts = self._services.drafts.of(
            draft.event(UpdateReceived, self.user_id, update_id=message.update_id,
                        update_kind=message.update_kind),
            None if message.action is None else draft.interaction(
                self.user_id, message.action, **message.details),
            handling=handled,
        )
        try:
            self._users.record_events(self.user_id, drafts)
        except UserNotFound:
            # Someone who never pressed /start: no record to hang the events on; their
            # update is still remembered, so a redelivery gets no second reply either.
            event_counters.incr("unrecorded_unknown_user")
            self._handled.record(message.update_id)
        except Exception:
            log.exception("events not recorded", user_id=self.user_id)
            event_counters.incr("lost")
            self._handled.record(message.update_id)
        else:
            self._handled.remember(message.update_id)

    def _record(self, *builders: Builder | None) -> None:
        """Record events of no stored change of their own; never raises."""
        try:
            self._users.record_events(self.user_id, self._drafts(*builders))
        except UserNotFound:
            # Updates of someone who never pressed /start: nothing to hang them on.
            event_counters.incr("unrecorded_unknown_user")
        except Exception:
            log.exception("events not recorded", user_id=self.user_id)
            event_counters.incr("lost")


def _offer_view(offer: StarOffer, language: Language) -> StarOfferView:
    title, description = offer_texts(offer, language)
    return StarOfferView(offer_id=offer.offer_id, title=title, description=description,
                         stars=offer.stars, days=offer.days)
