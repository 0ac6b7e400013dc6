"""Rendering session replies as Telegram messages (pure, no I/O)."""

from __future__ import annotations

from yabot.bot import render
from yabot.bot.keyboards import StoryRestart
from yabot.bot.texts import besitos, reason
from yabot.sessions.messages import FragmentView


def test_an_ending_offers_to_start_again_from_it() -> None:
    view = FragmentView(fragment_id="ending_dawn", title="Dawn", text="…", vip_only=False,
                        choices=(), ending=True, balance=3)
    reply = render.fragment(view, "en")
    assert "You keep your besitos and items" in reply.text
    assert reply.keyboard is not None
    [[button]] = reply.keyboard.inline_keyboard
    assert button.text == "🔁 Start again"
    assert button.callback_data == StoryRestart(fragment="ending_dawn").pack()


def test_besitos_take_the_singular_for_exactly_one() -> None:
    assert [besitos(n, "es") for n in (0, 1, 2, -1)] == [
        "0 besitos", "1 besito", "2 besitos", "-1 besito"]


def test_ledger_reasons_read_in_the_users_language_and_notes_stay_as_written() -> None:
    assert reason("reaction", "es") == "reacción"
    assert reason("story reward", "en") == "story reward"
    assert reason("earn: welcome bonus", "es") == "ganados: welcome bonus"
    assert reason("something new", "es") == "something new"
