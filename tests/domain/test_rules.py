"""The domain's rules, without I/O: VIP access, choice validity, balances, expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from yabot.domain.besitos import (
    MAX_KEY_LENGTH,
    day_start,
    ensure_affordable,
    positive,
    reaction_award,
    request_fingerprint,
    system_key,
    user_key,
)
from yabot.domain.choices import Reader, ensure_may_read, select_choice, why_not
from yabot.domain.narrative import Choice, Fragment
from yabot.domain.subscriptions import (
    Plan,
    Subscription,
    SubscriptionStatus,
    is_vip_at,
    status_at,
)
from yabot.domain.texts import Localized
from yabot.errors import (
    InsufficientBesitos,
    InvalidChoice,
    InvalidInput,
    ItemRequired,
    StaleChoice,
    VipRequired,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DOOR = Choice(choice_id="door", label="Open", next_fragment="hall", cost_besitos=3)
KEYHOLE = Choice(choice_id="keyhole", label="Unlock", next_fragment="vault",
                 requires_item="key")
VELVET = Choice(choice_id="velvet", label="VIP", next_fragment="salon", requires_vip=True,
                requires_item="key", cost_besitos=100)
GATE = Fragment(fragment_id="gate", text=Localized(es="La verja", en="The gate"),
                choices=(DOOR, KEYHOLE, VELVET))
SALON = Fragment(fragment_id="salon", text="Salon", vip_only=True)


def reader(besitos: int = 0, items: tuple[str, ...] = (), vip: bool = False) -> Reader:
    return Reader(besitos, frozenset(items), vip)


def vip(status: SubscriptionStatus = SubscriptionStatus.ACTIVE, days: int = 30) -> Subscription:
    return Subscription(user_id=1, plan=Plan.VIP, status=status, starts_at=T0,
                        ends_at=T0 + timedelta(days=days))


# -- VIP access and expiry ----------------------------------------------------------------------

def test_vip_access_holds_only_inside_an_active_vip_period() -> None:
    assert is_vip_at(None, T0) is False
    assert is_vip_at(vip(), T0 - timedelta(seconds=1)) is False  # not begun
    assert is_vip_at(vip(), T0) is True
    assert is_vip_at(vip(), T0 + timedelta(days=30) - timedelta(milliseconds=1)) is True
    assert is_vip_at(vip(), T0 + timedelta(days=30)) is False  # ended
    assert is_vip_at(vip(SubscriptionStatus.CANCELLED), T0 + timedelta(days=1)) is False
    free = vip().model_copy(update={"plan": Plan.FREE})
    assert is_vip_at(free, T0 + timedelta(days=1)) is False


def test_an_active_subscription_past_its_end_reads_expired() -> None:
    assert status_at(vip(days=1), T0) is SubscriptionStatus.ACTIVE
    assert status_at(vip(days=1), T0 + timedelta(days=1)) is SubscriptionStatus.EXPIRED
    cancelled = vip(SubscriptionStatus.CANCELLED, days=1)
    assert status_at(cancelled, T0 + timedelta(days=2)) is SubscriptionStatus.CANCELLED


def test_a_vip_fragment_is_refused_to_a_free_reader() -> None:
    with pytest.raises(VipRequired):
        ensure_may_read(SALON, vip=False)
    ensure_may_read(SALON, vip=True)
    ensure_may_read(GATE, vip=False)


# -- choices --------------------------------------------------------------------------------------

def test_why_not_names_vip_then_item_then_besitos() -> None:
    assert isinstance(why_not(VELVET, reader()), VipRequired)
    assert isinstance(why_not(VELVET, reader(vip=True)), ItemRequired)
    assert isinstance(why_not(VELVET, reader(vip=True, items=("key",))), InsufficientBesitos)
    assert why_not(VELVET, reader(100, ("key",), vip=True)) is None
    assert isinstance(why_not(KEYHOLE, reader(50)), ItemRequired)
    assert why_not(KEYHOLE, reader(items=("key",))) is None
    assert isinstance(why_not(DOOR, reader(2)), InsufficientBesitos)
    assert why_not(DOOR, reader(3)) is None


def test_a_choice_is_taken_only_from_the_fragment_the_reader_is_at() -> None:
    assert select_choice(GATE, "gate", "door", reader(3)) == DOOR
    with pytest.raises(StaleChoice):
        select_choice(GATE, "hall", "door", reader(3))
    with pytest.raises(InvalidChoice):
        select_choice(GATE, "gate", "window", reader(3))
    with pytest.raises(InsufficientBesitos):
        select_choice(GATE, "gate", "door", reader(2))


def test_a_choice_either_costs_or_pays() -> None:
    with pytest.raises(ValueError, match="costs besitos or pays"):
        Choice(choice_id="x", label="x", next_fragment="y", cost_besitos=1, reward_besitos=1)


def test_texts_are_read_in_the_readers_language() -> None:
    assert (GATE.text.in_("es"), GATE.text.in_("en")) == ("La verja", "The gate")
    assert SALON.text == Localized(es="Salon", en="Salon")
    assert (GATE.ending, SALON.ending) == (False, True)


# -- balances ------------------------------------------------------------------------------------

def test_amounts_are_positive_and_affordability_is_exact() -> None:
    assert positive(1) == 1
    for bad in (0, -1, 2**53):
        with pytest.raises(InvalidInput):
            positive(bad)
    ensure_affordable(5, 5)
    with pytest.raises(InsufficientBesitos):
        ensure_affordable(4, 5)


def test_reactions_pay_up_to_the_daily_cap() -> None:
    assert reaction_award(1, 10, 0) == 1
    assert reaction_award(3, 10, 8) == 2  # what is left under the cap
    assert reaction_award(3, 10, 10) == 0
    assert reaction_award(1, 0, 0) == 0
    assert day_start(datetime(2026, 5, 4, 23, 59, tzinfo=UTC)) == datetime(2026, 5, 4,
                                                                           tzinfo=UTC)


def test_ledger_keys_are_per_user_and_fit_the_store() -> None:
    assert user_key(7, "buy-1") == "u7:buy-1"
    assert user_key(8, "buy-1") != user_key(7, "buy-1")
    long = user_key(2**52, "k" * 128, ":refund")
    assert len(long) <= MAX_KEY_LENGTH
    assert long.endswith(":refund")
    assert long == user_key(2**52, "k" * 128, ":refund")


def test_a_request_fingerprint_tells_requests_apart() -> None:
    assert request_fingerprint("spend", 3) == request_fingerprint("spend", 3)
    assert request_fingerprint("spend", 3) != request_fingerprint("spend", 4)
    assert request_fingerprint("transfer", 3, 1) != request_fingerprint("transfer", 3, 2)
    assert len(request_fingerprint("buy", 0, None, "x" * 200)) <= 64


def test_a_request_fingerprint_tells_reasons_apart_short_or_hashed() -> None:
    assert request_fingerprint("earn", 5, None, "bonus") != request_fingerprint("earn", 5)
    assert request_fingerprint("earn", 5, None, "bonus") != request_fingerprint(
        "earn", 5, None, "bonus!")
    long = "r" * 255
    assert request_fingerprint("earn", 5, None, long + "a") != request_fingerprint(
        "earn", 5, None, long + "b")
    assert request_fingerprint("earn", 5, None, long) == request_fingerprint(
        "earn", 5, None, long)


def test_the_applications_keys_cannot_be_taken_by_a_caller() -> None:
    assert system_key(7, "reaction:1:2") != user_key(7, "reaction:1:2")
    assert len(system_key(7, "r" * 300)) <= MAX_KEY_LENGTH
