"""Every ask of `yabot.sessions.messages`, answered by a session on real stores, and the
events each state change publishes (``seq`` gap-free)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from tests.sessions.support import Sessions, start
from tests.support.faults import Failing, InjectedFault, inject_relational
from tests.support.settings import SettingsFactory
from tests.support.users import start_user
from tests.support.waiting import ASK
from yabot.domain.subscriptions import Plan
from yabot.domain.users import TelegramIdentity, utcnow
from yabot.errors import (
    IdempotencyConflict,
    InvalidInput,
    ItemNotFound,
    TimedOut,
    UserNotFound,
)
from yabot.events.models import (
    BesitosTransferred,
    FragmentReached,
    ReactionDetected,
    SubscriptionChanged,
    UserInteraction,
)
from yabot.runtime import Runtime
from yabot.sessions.messages import (
    BuyItem,
    ChangeSubscription,
    Choose,
    GetShop,
    GetState,
    GetSubscription,
    GetWallet,
    GiftItem,
    Preferences,
    React,
    SetPreferences,
    ShowFragment,
    Start,
    Transact,
)


def test_an_unknown_user_is_not_found_by_every_ask(sessions: Sessions) -> None:
    for message in (GetState(), ShowFragment(), GetWallet(), GetShop(), GetSubscription(),
                    SetPreferences(preferences=Preferences(language="es")),
                    Transact(kind="earn", amount=1, idempotency_key="k"),
                    React(chat_id=1, message_id=1, reaction="👍"),
                    BuyItem(sku="rose", idempotency_key="k"),
                    ChangeSubscription(plan=Plan.VIP, ends_at=utcnow() + timedelta(days=1))):
        with pytest.raises(UserNotFound):
            sessions.ask(5, message)
    assert sessions.events == []


def test_start_then_state_and_preferences(sessions: Sessions) -> None:
    welcome = sessions.ask(1, Start(identity=TelegramIdentity(user_id=1, language_code="es")))
    assert welcome.created is True
    assert welcome.state.preferences == Preferences(language="es", notifications=True)
    again = sessions.ask(1, Start(identity=TelegramIdentity(user_id=1)))
    assert again.created is False
    state = sessions.ask(1, SetPreferences(preferences=Preferences(language="en",
                                                                   notifications=False)))
    assert state.preferences == Preferences(language="en", notifications=False)
    assert sessions.ask(1, GetState()).document.notifications is False
    actions = [event.action for event in sessions.of(1) if isinstance(event, UserInteraction)]
    assert actions == ["start", "start", "preferences"]


def test_shop_lists_items_in_the_users_language(sessions: Sessions) -> None:
    start(sessions, 1, language="es")
    shop = sessions.ask(1, GetShop())
    assert [(item.sku, item.name) for item in shop.items] == [
        ("lantern", "Farolillo"), ("rose", "Rosa roja"), ("velvet_mask", "Máscara de terciopelo")]
    assert (shop.balance, shop.inventory) == (0, ())
    with pytest.raises(ItemNotFound):
        sessions.ask(1, BuyItem(sku="unicorn", idempotency_key="x"))


def test_a_purchase_is_idempotent_and_its_key_is_bound_to_the_item(sessions: Sessions) -> None:
    start(sessions, 1)
    sessions.ask(1, Transact(kind="earn", amount=10, idempotency_key="gift"))
    bought = sessions.ask(1, BuyItem(sku="rose", idempotency_key="p1"))
    replay = sessions.ask(1, BuyItem(sku="rose", idempotency_key="p1"))
    assert (bought.applied, bought.balance, bought.inventory) == (True, 8, ("rose",))
    assert (replay.applied, replay.balance, replay.inventory) == (False, 8, ("rose",))
    with pytest.raises(IdempotencyConflict):
        sessions.ask(1, BuyItem(sku="lantern", idempotency_key="p1"))
    wallet = sessions.ask(1, GetWallet())
    assert [entry.amount for entry in wallet.entries] == [-2, 10]


def test_transactions_earn_spend_and_replay(sessions: Sessions) -> None:
    start(sessions, 1)
    earned = sessions.ask(1, Transact(kind="earn", amount=5, idempotency_key="e"))
    spent = sessions.ask(1, Transact(kind="spend", amount=2, idempotency_key="s"))
    replay = sessions.ask(1, Transact(kind="spend", amount=2, idempotency_key="s"))
    assert [(r.applied, r.balance) for r in (earned, spent, replay)] == [
        (True, 5), (True, 3), (False, 3)]
    with pytest.raises(IdempotencyConflict):
        sessions.ask(1, Transact(kind="spend", amount=3, idempotency_key="s"))
    with pytest.raises(InvalidInput):
        sessions.ask(1, Transact(kind="earn", amount=1, idempotency_key="x", to_user_id=2))
    with pytest.raises(InvalidInput):
        sessions.ask(1, Transact(kind="transfer", amount=1, idempotency_key="y"))
    changes = [(e.amount, e.balance_after) for e in sessions.of(1)
               if isinstance(e, BesitosTransferred)]
    assert changes == [(5, 5), (-2, 3)]


def test_a_transfer_credits_the_recipient_and_both_sessions_publish(sessions: Sessions) -> None:
    start(sessions, 1)
    start(sessions, 2)
    sessions.ask(1, Transact(kind="earn", amount=10, idempotency_key="e"))
    sent = sessions.ask(1, Transact(kind="transfer", amount=4, idempotency_key="t",
                                    to_user_id=2))
    assert (sent.applied, sent.balance) == (True, 6)
    assert sessions.ask(2, GetWallet()).balance == 4
    with pytest.raises(UserNotFound):
        sessions.ask(1, Transact(kind="transfer", amount=1, idempotency_key="t2",
                                 to_user_id=77))
    received = [e for e in sessions.of(2) if isinstance(e, BesitosTransferred)]
    assert [(e.amount, e.balance_after) for e in received] == [(4, 4)]


def test_reactions_pay_once_per_message_up_to_the_daily_cap(sessions: Sessions) -> None:
    start(sessions, 1)
    awards = [sessions.ask(1, React(chat_id=1, message_id=n % 12, reaction="❤")).awarded
              for n in range(14)]
    assert awards == [1] * 10 + [0] * 4  # default: 1 besito each, 10 a day
    assert sessions.ask(1, GetWallet()).balance == 10
    assert sum(isinstance(e, ReactionDetected) for e in sessions.of(1)) == 14


def test_reaction_reward_and_daily_cap_reach_the_session_from_settings(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings(BESITOS_REACTION_REWARD="3", BESITOS_REACTION_DAILY_CAP="7")
    with Runtime(settings) as runtime:  # the application's wiring builds the ReactionService
        start_user(runtime, 1)
        awards = [runtime.sessions.ask(1, React(chat_id=1, message_id=n, reaction="❤"),
                                       timeout=ASK).awarded for n in range(4)]
        balance = runtime.sessions.ask(1, GetWallet(), timeout=ASK).balance
    assert awards == [3, 3, 1, 0]  # 3 each until the cap of 7 leaves 1, then nothing
    assert balance == 7


def test_story_steps_publish_fragment_and_besitos_events(sessions: Sessions) -> None:
    start(sessions, 1)
    view = sessions.ask(1, ShowFragment())
    view = sessions.ask(1, Choose(fragment_id=view.fragment_id, choice_id="accept"))
    sessions.ask(1, Choose(fragment_id=view.fragment_id, choice_id="pay_toll"))
    kinds = [(type(e).__name__, getattr(e, "fragment_id", getattr(e, "amount", None)))
             for e in sessions.of(1)][1:]
    assert kinds == [
        ("FragmentReached", "start"), ("FragmentReached", "gate"), ("BesitosTransferred", 5),
        ("BesitosTransferred", -3), ("FragmentReached", "hall"),
    ]
    reached = [e for e in sessions.of(1) if isinstance(e, FragmentReached)]
    assert [e.choice_id for e in reached] == [None, "accept", "pay_toll"]


def test_subscription_changes_publish_and_read_back(sessions: Sessions) -> None:
    start(sessions, 1)
    assert sessions.ask(1, GetSubscription()).plan == Plan.FREE
    ends = utcnow() + timedelta(days=7)
    view = sessions.ask(1, ChangeSubscription(plan=Plan.VIP, ends_at=ends))
    assert (view.plan, view.status, view.vip) == (Plan.VIP, "active", True)
    with pytest.raises(InvalidInput):
        sessions.ask(1, ChangeSubscription(plan=Plan.VIP, ends_at=utcnow() - timedelta(1)))
    cancelled = sessions.ask(1, ChangeSubscription(plan=Plan.VIP, status="cancelled"))
    assert (cancelled.status, cancelled.vip) == ("cancelled", False)
    assert sessions.ask(1, GetSubscription()) == cancelled
    changes = [(e.plan, e.status) for e in sessions.of(1) if isinstance(e, SubscriptionChanged)]
    assert changes == [("vip", "active"), ("vip", "cancelled")]


def test_every_users_seq_counts_from_one_without_gaps(sessions: Sessions) -> None:
    start(sessions, 1)
    start(sessions, 2)
    sessions.ask(1, Transact(kind="earn", amount=9, idempotency_key="e"))
    sessions.ask(1, Transact(kind="transfer", amount=3, idempotency_key="t", to_user_id=2))
    sessions.ask(2, ShowFragment())
    sessions.ask(1, React(chat_id=1, message_id=1, reaction="👍"))
    sessions.ask(2, GetState())  # a read publishes nothing
    for user_id in (1, 2):
        seqs = [event.seq for event in sessions.of(user_id)]
        assert seqs == list(range(1, len(seqs) + 1))
    assert (len(sessions.of(1)), len(sessions.of(2))) == (5, 3)


def test_a_session_repairs_a_user_half_created_by_a_crash(sessions: Sessions) -> None:
    stores = sessions.stores
    profiles = stores.relational.profiles
    inject_relational(stores, profiles=Failing(profiles, "create_if_absent", times=1))
    with pytest.raises(InjectedFault):
        start(sessions, 9)
    assert profiles.get(9) is None

    state = sessions.ask(9, GetState())

    assert state.profile is not None
    assert profiles.get(9) is not None


def test_a_gift_publishes_on_both_sides(sessions: Sessions) -> None:
    start(sessions, 1)
    start(sessions, 2, language="es")
    sessions.ask(1, Transact(kind="earn", amount=5, idempotency_key="e"))
    given = sessions.ask(1, GiftItem(sku="rose", to_user_id=2, idempotency_key="g"))
    assert (given.applied, given.balance, given.item.name) == (True, 3, "Red rose")
    assert sessions.ask(2, GetShop()).inventory == ("rose",)
    assert [e.action for e in sessions.of(2) if isinstance(e, UserInteraction)] == [
        "start", "gift-received"]
    spent = [(e.amount, e.reason) for e in sessions.of(1) if isinstance(e, BesitosTransferred)]
    assert spent == [(5, "earn"), (-2, "gift")]


def test_a_start_taken_after_its_asker_gave_up_does_nothing(sessions: Sessions) -> None:
    identity = TelegramIdentity(user_id=77, first_name="Late", language_code="en")
    with pytest.raises(TimedOut):
        sessions.ask(77, Start(identity=identity, expires_at=time.time() - 0.001))
    with pytest.raises(UserNotFound):  # nothing was created
        sessions.ask(77, GetState())
    assert not sessions.of(77)  # and nothing published
    welcome = sessions.ask(77, Start(identity=identity, expires_at=time.time() + 60))
    assert welcome.created
