"""Walking the seed story from Telegram: the real Dispatcher, the user's session actor,
SQLite, aiogram's client against the fake Bot API (polling)."""

from __future__ import annotations

from tests.bot.conversation import Conversation
from tests.support.fake_telegram import FakeTelegram
from yabot.runtime import Runtime
from yabot.sessions.messages import GetState


def test_start_menu_story_vip_gate_purchase_and_wallet(
    bot_runtime: Runtime, fake_telegram: FakeTelegram
) -> None:
    ana = Conversation(fake_telegram, 41)
    menu = ana.send("/start")
    assert "Welcome" in menu.params["text"]

    story, _ = ana.press(menu, "Story")
    assert story is not None
    assert story.params["text"].startswith("The invitation")
    assert [label for label, _ in story.buttons()] == [
        "Accept the invitation", "Stroll through town first"]

    gate, _ = ana.press(story, "Accept")  # +5 besitos
    assert gate is not None
    assert gate.method == "editMessageText"  # the same message becomes the next fragment
    assert gate.message_id == story.message_id
    assert gate.params["text"].startswith("The gate")
    assert "💋 5" in gate.params["text"]

    hall, _ = ana.press(gate, "Pay the toll")  # -3
    assert hall is not None
    assert hall.params["text"].startswith("The great hall")
    locked = [label for label, _ in hall.buttons() if label.startswith("🔒")]
    assert locked == ["🔒 Go through the velvet door"]

    vip_gate, answer = ana.press(hall, "velvet door")  # a free user at the VIP gate
    assert vip_gate is not None
    assert vip_gate.params["text"].startswith("⭐ This part of the story is for VIP members")
    assert "text" not in answer  # the callback is answered silently; the gate is a message

    shop = ana.send("/shop")
    assert "you have 2 besitos" in shop.params["text"]
    # The price is in the list; the buttons do not say it again.
    assert [label for label, _ in shop.buttons()] == ["Buy Lantern", "Buy Red rose",
                                                      "Buy Velvet mask"]
    bought, _ = ana.press(shop, "Buy Red rose")
    assert bought is not None
    assert bought.params["text"] == "You bought Red rose. Balance: 0 besitos."

    wallet = ana.send("/wallet")
    lines = wallet.params["text"].splitlines()
    assert lines[0] == "💰 Balance: 0 besitos"
    assert lines[2] == "-2 → 0  purchase"  # the purchase, newest first
    assert lines[3] == "-3 → 2  story choice"
    assert lines[4] == "+5 → 5  story reward"


def test_an_old_story_button_answers_with_a_notice_and_changes_nothing(
    bot_runtime: Runtime, fake_telegram: FakeTelegram
) -> None:
    ben = Conversation(fake_telegram, 42, language="es")
    ben.send("/start")
    story = ben.send("/story")
    assert story.params["text"].startswith("La invitación")
    gate, _ = ben.press(story, "Aceptar")
    assert gate is not None
    # The first fragment's button, pressed again: only a notice, no message.
    _, answer = ben.press(story, "Pasear", answer_only=True)
    assert answer["text"] == "Esa opción es de una parte anterior de la historia."
    # The story did not move (and no message came before this answer: it would be returned).
    assert ben.send("/story").params["text"].startswith("La verja")


def test_a_choice_that_costs_more_than_the_balance_is_refused_with_an_alert(
    bot_runtime: Runtime, fake_telegram: FakeTelegram
) -> None:
    cy = Conversation(fake_telegram, 43)
    cy.send("/start")
    street, _ = cy.press(cy.send("/story"), "Stroll")
    assert street is not None
    gate, _ = cy.press(street, "Climb the hill")  # no reward on this path: 0 besitos
    assert gate is not None
    _, answer = cy.press(gate, "Pay the toll", answer_only=True)
    assert answer["text"] == "You don't have enough besitos for that."
    assert answer["show_alert"] in (True, "true")
    # Nothing was charged, and no message came before this answer (it would be returned).
    assert cy.send("/wallet").params["text"].splitlines()[0] == "💰 Balance: 0 besitos"


def test_reacting_to_a_bot_message_earns_besitos_once(
    bot_runtime: Runtime, fake_telegram: FakeTelegram
) -> None:
    dee = Conversation(fake_telegram, 44, language="es")
    menu = dee.send("/start")
    thanks = dee.react(menu, "🔥")
    assert thanks.params["text"].startswith("¡Gracias por reaccionar! +")
    dee.push_reaction(menu, "👍")  # the same message pays once: nothing to say
    wallet = dee.send("/wallet")  # handled after the reaction (one user, one lane)
    assert dee.to_me()[-2] is thanks
    lines = wallet.params["text"].splitlines()
    assert lines[2].startswith("+")
    assert len(lines) == 3  # one movement


def test_settings_change_the_language_and_notifications_in_place(
    bot_runtime: Runtime, fake_telegram: FakeTelegram
) -> None:
    eve = Conversation(fake_telegram, 45)
    eve.send("/start")
    screen = eve.send("/settings")
    assert screen.params["text"] == "⚙️ Settings\nLanguage: English\nNotifications: on"
    assert [label for label, _ in screen.buttons()] == [
        "✓ English", "Español", "✓ 🔔 Notifications on", "🔕 Notifications off"]
    edited, _ = eve.press(screen, "Español")
    assert edited is not None
    assert edited.method == "editMessageText"
    assert edited.params["text"] == "⚙️ Ajustes\nIdioma: Español\nAvisos: activados"
    muted, _ = eve.press(edited, "Desactivar avisos")
    assert muted is not None
    assert muted.params["text"].endswith("Avisos: desactivados")
    state = bot_runtime.sessions.ask(45, GetState(), timeout=5)
    assert (state.preferences.language, state.preferences.notifications) == ("es", False)
    assert "Te cuento una historia" in eve.send("/help").params["text"]


def test_wallet_amounts_say_besito_for_one(
    bot_runtime: Runtime, fake_telegram: FakeTelegram
) -> None:
    fay = Conversation(fake_telegram, 46, language="es")
    menu = fay.send("/start")
    assert "Tienes 0 besitos." in menu.params["text"]
    assert "+1 besito (saldo 1)" in fay.react(menu).params["text"]
    assert fay.send("/wallet").params["text"].startswith("💰 Saldo: 1 besito\n")
