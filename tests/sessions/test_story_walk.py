"""The seed story, walked from its start to each ending through the session actor."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.support.users import start_user
from tests.support.waiting import ASK
from yabot.domain.subscriptions import Plan
from yabot.domain.users import utcnow
from yabot.errors import InsufficientBesitos, ItemRequired, StaleChoice, VipRequired
from yabot.runtime import Runtime
from yabot.sessions.messages import (
    BuyItem,
    ChangeSubscription,
    Choose,
    FragmentView,
    GetState,
    React,
    RestartStory,
    ShowFragment,
)


def walk(runtime: Runtime, user_id: int, steps: list[str]) -> FragmentView:
    """Take each choice in turn from the user's current fragment; the last view."""
    view = runtime.sessions.ask(user_id, ShowFragment(), timeout=ASK)
    for choice_id in steps:
        view = runtime.sessions.ask(
            user_id, Choose(fragment_id=view.fragment_id, choice_id=choice_id), timeout=ASK
        )
    return view


def test_the_free_path_pays_its_way_to_the_dawn_ending(runtime: Runtime) -> None:
    start_user(runtime, 1)
    first = runtime.sessions.ask(1, ShowFragment(), timeout=ASK)
    assert (first.fragment_id, first.title, first.balance) == ("start", "The invitation", 0)

    view = walk(runtime, 1, ["accept", "pay_toll", "library", "read", "kiss"])
    assert (view.fragment_id, view.balance) == ("balcony", 0)  # +5 -3 +2 -4
    end = walk(runtime, 1, ["stay"])
    assert end.fragment_id == "ending_dawn"
    assert (end.ending, end.choices) == (True, ())


def test_the_item_path_buys_a_lantern_and_ends_in_the_fog(runtime: Runtime) -> None:
    start_user(runtime, 2, language="es")
    view = walk(runtime, 2, ["wander", "market", "thank", "climb"])
    assert (view.fragment_id, view.title, view.balance) == ("garden", "El jardín oscuro", 3)
    light = next(choice for choice in view.choices if choice.choice_id == "light")
    assert (light.available, light.why_not) == (False, "item-required")
    with pytest.raises(ItemRequired):
        runtime.sessions.ask(2, Choose(fragment_id="garden", choice_id="light"), timeout=ASK)

    with pytest.raises(InsufficientBesitos):  # the lantern costs 4
        runtime.sessions.ask(2, BuyItem(sku="lantern", idempotency_key="l1"), timeout=ASK)
    assert runtime.sessions.ask(2, React(chat_id=2, message_id=7, reaction="❤"),
                                timeout=ASK).awarded == 1
    bought = runtime.sessions.ask(2, BuyItem(sku="lantern", idempotency_key="l1"), timeout=ASK)
    assert (bought.applied, bought.balance, bought.inventory) == (True, 0, ("lantern",))
    assert bought.item.name == "Farolillo"

    end = walk(runtime, 2, ["light", "take_key", "dance", "leave"])
    assert (end.fragment_id, end.ending, end.balance) == ("ending_fog", True, 5)


def test_the_vip_path_needs_an_active_subscription(runtime: Runtime) -> None:
    start_user(runtime, 3)
    hall = walk(runtime, 3, ["accept", "pay_toll"])
    door = next(choice for choice in hall.choices if choice.choice_id == "velvet_door")
    assert (door.requires_vip, door.available, door.why_not) == (True, False, "vip-required")
    with pytest.raises(VipRequired):
        runtime.sessions.ask(3, Choose(fragment_id="hall", choice_id="velvet_door"),
                             timeout=ASK)
    with pytest.raises(VipRequired):
        runtime.sessions.ask(3, ShowFragment(fragment_id="vip_salon"), timeout=ASK)

    runtime.sessions.ask(3, ChangeSubscription(plan=Plan.VIP,
                                               ends_at=utcnow() + timedelta(days=30)),
                         timeout=ASK)
    end = walk(runtime, 3, ["velvet_door", "listen", "dawn"])
    assert end.fragment_id == "ending_dawn"


def test_an_old_button_is_a_stale_choice(runtime: Runtime) -> None:
    start_user(runtime, 4)
    walk(runtime, 4, ["accept"])
    with pytest.raises(StaleChoice):
        runtime.sessions.ask(4, Choose(fragment_id="start", choice_id="accept"), timeout=ASK)


def test_after_an_ending_the_story_starts_again_keeping_besitos_and_items(
    runtime: Runtime,
) -> None:
    start_user(runtime, 6)
    for message_id in (1, 2, 3):
        runtime.sessions.ask(6, React(chat_id=6, message_id=message_id, reaction="❤"),
                             timeout=ASK)
    runtime.sessions.ask(6, BuyItem(sku="rose", idempotency_key="r6"), timeout=ASK)
    with pytest.raises(StaleChoice):  # not at an ending: nothing to start again from
        runtime.sessions.ask(6, RestartStory(fragment_id="ending_dawn"), timeout=ASK)
    end = walk(runtime, 6, ["accept", "pay_toll", "library", "read", "kiss", "stay"])
    assert (end.fragment_id, end.balance) == ("ending_dawn", 1)

    again = runtime.sessions.ask(6, RestartStory(fragment_id="ending_dawn"), timeout=ASK)
    assert (again.fragment_id, again.ending, again.balance) == ("start", False, 1)
    state = runtime.sessions.ask(6, GetState(), timeout=ASK)
    assert (state.document.besitos, state.document.inventory) == (1, ("rose",))
    with pytest.raises(StaleChoice):  # the same button pressed twice
        runtime.sessions.ask(6, RestartStory(fragment_id="ending_dawn"), timeout=ASK)
