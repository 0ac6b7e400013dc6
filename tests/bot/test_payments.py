"""VIP with Telegram Stars against the fake Bot API, with updates shaped as the Bot API
documents them (tests/fixtures/telegram/payments/): /vip → invoice (XTR) → pre-checkout
answered → successful_payment → VIP until the period ends, visible through the HTTP API;
a payment delivered twice grants once; refunds by an operator and by Telegram's report."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import falcon.testing
import pytest

from tests.bot import updates
from tests.bot.conversation import Conversation
from tests.support.bot import bot_env
from tests.support.events import RecordingSink
from tests.support.fake_telegram import Call, FakeTelegram
from tests.support.settings import SettingsFactory
from tests.support.waiting import ASK, eventually
from yabot.api.app import create_app
from yabot.api.auth import mint_token
from yabot.api.bridge import ApiBridge
from yabot.domain.users import utcnow
from yabot.events.models import BaseEvent, SubscriptionChanged, UserInteraction
from yabot.runtime import Runtime
from yabot.sessions.messages import GetSubscription

BUYER = 987654321  # the user in the payment fixtures
OPERATOR = 555
CHARGE = "stxAbCdEfGhIjKlMnOpQrStUvWxYz0123456789"


def fixture(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(
        (updates.FIXTURES / "payments" / f"{name}.json").read_text())
    loaded.pop("update_id")  # the fake numbers them
    return loaded


@pytest.fixture
def published() -> list[BaseEvent]:
    return []


@pytest.fixture
def runtime(make_settings: SettingsFactory, fake_telegram: FakeTelegram,
            published: list[BaseEvent]) -> Iterator[Runtime]:
    runtime = Runtime(make_settings(**bot_env(fake_telegram, BOT_OPERATORS=str(OPERATOR))))
    runtime.events.sink = RecordingSink(published.append)
    with runtime:
        yield runtime


def api_state(runtime: Runtime, user_id: int) -> dict[str, Any]:
    """``GET /user/{id}/state`` through the HTTP API app."""
    app = create_app(runtime.settings, ApiBridge(runtime.sessions, ASK))
    token = mint_token(runtime.settings, "tests", ["users:read"])
    result = falcon.testing.TestClient(app).simulate_get(
        f"/user/{user_id}/state", headers={"Authorization": f"Bearer {token}"})
    assert result.status_code == 200, result.text
    body: dict[str, Any] = result.json
    return body


def answered_checkout(fake: FakeTelegram, query_id: str) -> Call:
    assert fake.wait_for(lambda: any(c.params.get("pre_checkout_query_id") == query_id
                                     for c in fake.calls_of("answerPreCheckoutQuery")))
    return next(c for c in fake.calls_of("answerPreCheckoutQuery")
                if c.params.get("pre_checkout_query_id") == query_id)


def pay(fake: FakeTelegram, conversation: Conversation) -> Call:
    """Telegram's successful_payment for the buyer; the bot's next message."""
    before = len(conversation.to_me())
    fake.push_update(fixture("successful_payment"))
    assert fake.wait_for(lambda: len(conversation.to_me()) > before)
    return conversation.to_me()[before]


def test_vip_bought_with_stars_from_invoice_to_payment_is_visible_through_the_api(
    runtime: Runtime, fake_telegram: FakeTelegram, published: list[BaseEvent],
) -> None:
    lucia = Conversation(fake_telegram, BUYER, language="es")
    lucia.send("/start")
    vip = lucia.send("/vip")
    assert "Estás en el plan gratuito" in vip.params["text"]
    assert [label for label, _ in vip.buttons()] == ["⭐ VIP 30 días — 250 Stars",
                                                    "⭐ VIP un año — 2000 Stars"]
    lucia.press(vip, "30 días", answer_only=True)  # the invoice is not a chat message
    assert fake_telegram.wait_for(lambda: bool(fake_telegram.calls_of("sendInvoice")))
    invoice = fake_telegram.calls_of("sendInvoice")[0].params
    assert invoice["currency"] == "XTR"
    assert invoice["prices"] == [{"label": "VIP 30 días", "amount": 250}]
    assert invoice["payload"] == "vip:month:987654321"
    assert "provider_token" not in invoice  # Stars need none

    fake_telegram.push_update(fixture("pre_checkout_query"))
    assert answered_checkout(fake_telegram, "4382bfdwdsb323b2d9-pcq").params["ok"] in (
        True, "true")

    thanks = pay(fake_telegram, lucia)
    assert thanks.params["text"].startswith("⭐ ¡Gracias! Eres VIP hasta el ")
    state = api_state(runtime, BUYER)
    assert state["subscription"]["vip"] is True
    ends_at = datetime.fromisoformat(state["subscription"]["ends_at"])
    assert timedelta(days=29, hours=23) < ends_at - utcnow() <= timedelta(days=30)
    kinds = [(type(e).__name__, getattr(e, "action", getattr(e, "status", None)))
             for e in published if e.user_id == BUYER]
    assert ("UserInteraction", "stars-paid") in kinds
    assert ("SubscriptionChanged", "active") in kinds


def test_a_payment_telegram_delivers_twice_grants_once(
    runtime: Runtime, fake_telegram: FakeTelegram, published: list[BaseEvent],
) -> None:
    lucia = Conversation(fake_telegram, BUYER, language="es")
    lucia.send("/start")
    pay(fake_telegram, lucia)
    first = runtime.sessions.ask(BUYER, GetSubscription(), timeout=ASK)
    again = fake_telegram.push_update(fixture("successful_payment"))
    eventually(lambda: fake_telegram.confirmed(again), what="the repeat taken")
    eventually(lambda: runtime.bot is not None and runtime.bot.pending == 0,
               what="the repeat handled")
    assert runtime.sessions.ask(BUYER, GetSubscription(), timeout=ASK).ends_at == first.ends_at
    assert len([c for c in lucia.to_me() if "Gracias" in c.params["text"]]) == 1
    paid = [e for e in published if isinstance(e, UserInteraction) and e.action == "stars-paid"]
    assert len(paid) == 1


def test_a_checkout_for_another_amount_or_user_is_declined(
    runtime: Runtime, fake_telegram: FakeTelegram,
) -> None:
    Conversation(fake_telegram, BUYER, language="es").send("/start")
    cheaper = fixture("pre_checkout_query")
    cheaper["pre_checkout_query"].update(id="pcq-cheap", total_amount=1)
    someone_elses = fixture("pre_checkout_query")
    someone_elses["pre_checkout_query"].update(id="pcq-other",
                                               invoice_payload="vip:month:111")
    for update in (cheaper, someone_elses):
        fake_telegram.push_update(update)
    for query_id in ("pcq-cheap", "pcq-other"):
        answer = answered_checkout(fake_telegram, query_id).params
        assert answer["ok"] in (False, "false")
        assert answer["error_message"].startswith("Esta factura ya no es válida")


def test_an_operator_refunds_with_refund_star_payment_once(
    runtime: Runtime, fake_telegram: FakeTelegram, published: list[BaseEvent],
) -> None:
    lucia = Conversation(fake_telegram, BUYER, language="es")
    lucia.send("/start")
    pay(fake_telegram, lucia)
    operator = Conversation(fake_telegram, OPERATOR)
    operator.send("/start")
    done = operator.send(f"/refund {BUYER} {CHARGE}")
    assert done.params["text"].startswith(f"Refunded {CHARGE} of user {BUYER}.")
    [refund] = fake_telegram.calls_of("refundStarPayment")
    assert refund.params == {"user_id": str(BUYER), "telegram_payment_charge_id": CHARGE} or (
        refund.params == {"user_id": BUYER, "telegram_payment_charge_id": CHARGE})
    assert api_state(runtime, BUYER)["subscription"]["vip"] is False
    # Again: Telegram says it was refunded already; recorded once, VIP still off.
    operator.send(f"/refund {BUYER} {CHARGE}")
    refunds = [e for e in published
               if isinstance(e, UserInteraction) and e.action == "stars-refunded"]
    assert len(refunds) == 1
    assert any(isinstance(e, SubscriptionChanged) and e.status == "cancelled" for e in published)


def test_refund_is_for_operators_only_and_telegrams_refund_report_is_recorded(
    runtime: Runtime, fake_telegram: FakeTelegram,
) -> None:
    lucia = Conversation(fake_telegram, BUYER, language="es")
    lucia.send("/start")
    pay(fake_telegram, lucia)
    assert "No te he entendido" in lucia.send(f"/refund {BUYER} {CHARGE}").params["text"]
    assert not fake_telegram.calls_of("refundStarPayment")
    before = len(lucia.to_me())
    fake_telegram.push_update(fixture("refunded_payment"))
    assert fake_telegram.wait_for(lambda: len(lucia.to_me()) > before)
    assert lucia.to_me()[before].params["text"].startswith("Tu pago con Stars fue reembolsado.")
    assert runtime.sessions.ask(BUYER, GetSubscription(), timeout=ASK).vip is False
