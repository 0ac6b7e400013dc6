"""The bot in-process: the real Dispatcher and actors, aiogram's client polling the fake
Bot API on loopback."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.bot import updates
from tests.bot.conversation import Conversation
from tests.bot.logs import captured_logs
from tests.support.bot import WebhookClient, bot_env, webhook_env
from tests.support.events import FailingSink, RecordingSink
from tests.support.fake_telegram import FakeTelegram
from tests.support.settings import SettingsFactory
from tests.support.waiting import ASK, eventually
from yabot.bot import screens
from yabot.errors import UserNotFound
from yabot.events.models import BaseEvent, UpdateReceived, UserInteraction
from yabot.runtime import Runtime
from yabot.sessions.messages import GetState, GetWallet, Preferences, SetPreferences


def test_replies_in_the_language_telegram_reports(
    bot_runtime: Runtime, fake_telegram: FakeTelegram
) -> None:
    lucia = Conversation(fake_telegram, 11, language="es-ES")
    john = Conversation(fake_telegram, 12, language="en")
    welcome = lucia.send("/start")
    assert "Bienvenido" in welcome.params["text"]
    assert "Historia" in welcome.buttons()[0][0]
    assert "Te cuento una historia" in lucia.send("/help").params["text"]
    assert "Welcome" in john.send("/start").params["text"]
    assert "I tell you a story" in john.send("/help").params["text"]
    assert "No te he entendido" in lucia.send("¿qué tal?").params["text"]


def test_a_user_who_never_started_is_told_so_and_logged_at_info_without_a_traceback(
    bot_runtime: Runtime, fake_telegram: FakeTelegram
) -> None:
    stranger = Conversation(fake_telegram, 13, language="es")
    with captured_logs() as logs:
        reply = stranger.send("/menu")  # unknown user: the session raises UserNotFound
    assert reply.params["text"] == "Aún no te conozco: envía /start primero."
    refusals = [e for e in logs if e["event"] == "update refused"]
    assert len(refusals) == 1
    assert refusals[0]["log_level"] == "info"
    assert refusals[0]["error_type"] == "UserNotFound"
    assert "exc_info" not in refusals[0]
    assert isinstance(refusals[0]["update_id"], int)
    assert len(refusals[0]["correlation_id"]) == 32
    assert not [e for e in logs if e["log_level"] in ("error", "critical")]


def test_an_unexpected_failure_answers_kindly_and_is_an_error_with_the_ids(
    make_settings: SettingsFactory, fake_telegram: FakeTelegram,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(user: object) -> object:
        raise RuntimeError("a bug")

    monkeypatch.setattr(screens, "help_", broken)  # the routers are built after this
    with Runtime(make_settings(**bot_env(fake_telegram))), captured_logs() as logs:
        reply = Conversation(fake_telegram, 25, language="es").send("/help")
    assert reply.params["text"].startswith("Algo salió mal de nuestro lado")
    failures = [e for e in logs if e["event"] == "update handling failed"]
    assert len(failures) == 1
    assert failures[0]["log_level"] == "error"
    assert failures[0]["error_type"] == "RuntimeError"
    assert failures[0]["exc_info"] is True
    assert isinstance(failures[0]["update_id"], int)


def test_the_session_records_each_update_with_gap_free_seqs(
    make_settings: SettingsFactory, fake_telegram: FakeTelegram
) -> None:
    published: list[BaseEvent] = []
    runtime = Runtime(make_settings(**bot_env(fake_telegram)))
    runtime.events.sink = RecordingSink(published.append)
    runtime.start()
    try:
        user = Conversation(fake_telegram, 14)
        user.send("/start")
        user.send("/help")
        user.send("/menu")
        eventually(lambda: len(published) >= 6, "six events published")
    finally:
        runtime.stop()
    mine = [e for e in published if e.user_id == 14]
    assert [e.seq for e in mine] == list(range(1, len(mine) + 1))
    summary = [(type(e).__name__, getattr(e, "action", getattr(e, "update_kind", None)))
               for e in mine]
    assert summary == [
        ("UserInteraction", "start"), ("UpdateReceived", "message"),
        ("UpdateReceived", "message"), ("UserInteraction", "help"),
        ("UpdateReceived", "message"), ("UserInteraction", "menu"),
    ]
    update_ids = [e.update_id for e in mine if isinstance(e, UpdateReceived)]
    assert update_ids == sorted(update_ids)
    interactions = [e for e in mine if isinstance(e, UserInteraction)]
    assert all(e.correlation_id for e in interactions)


def test_a_failing_event_bus_never_breaks_the_reply(
    make_settings: SettingsFactory, fake_telegram: FakeTelegram
) -> None:
    runtime = Runtime(make_settings(**bot_env(fake_telegram)))
    runtime.events.sink = FailingSink()
    runtime.start()
    try:
        user = Conversation(fake_telegram, 15)
        assert "Welcome" in user.send("/start").params["text"]
        assert "I tell you a story" in user.send("/help").params["text"]
    finally:
        runtime.stop()


def test_flood_control_waits_retry_after_and_sends_again(
    bot_runtime: Runtime, fake_telegram: FakeTelegram
) -> None:
    fake_telegram.flood("sendMessage", retry_after=1, times=1)
    user = Conversation(fake_telegram, 16)
    with captured_logs() as logs:
        assert "Welcome" in user.send("/start").params["text"]
    assert fake_telegram.refused == 1
    assert len(fake_telegram.sent(chat_id=16)) == 1
    waits = [e for e in logs if e["event"] == "telegram flood control: waiting"]
    assert [w["retry_after"] for w in waits] == [1]


def test_a_user_who_blocked_the_bot_is_not_answered_and_nothing_breaks(
    bot_runtime: Runtime, fake_telegram: FakeTelegram
) -> None:
    fake_telegram.block(17)
    with captured_logs() as logs:
        fake_telegram.push_message(17, "/start")
        assert fake_telegram.wait_for(lambda: fake_telegram.refused == 1)
        assert "Welcome" in Conversation(fake_telegram, 18).send("/start").params["text"]
    assert any(e["event"] == "reply not delivered: the bot is blocked by the user"
               for e in logs)
    assert not any(e["event"] == "update handling failed" for e in logs)


def reply_to_start(runtime: Runtime, fake: FakeTelegram, user_id: int) -> str:
    """Send /start as ``user_id`` the way the bot takes updates (the webhook route or
    getUpdates); the text of the bot's reply."""
    assert runtime.bot is not None
    if not runtime.bot.webhook:
        return str(Conversation(fake, user_id).send("/start").params["text"])
    accepted = WebhookClient(runtime).post(updates.message(user_id, "/start", update_id=1))
    assert accepted.status_code == 200
    assert fake.wait_for(lambda: bool(fake.sent(chat_id=user_id)))
    return str(fake.sent(chat_id=user_id)[0].params["text"])


@pytest.mark.parametrize(
    ("mode", "call"),
    [pytest.param(bot_env, "deleteWebhook", id="polling"),
     pytest.param(webhook_env, "setWebhook", id="webhook")],
)
def test_when_telegram_is_unreachable_the_bot_retries_with_backoff_until_it_returns(
    make_settings: SettingsFactory, fake_telegram: FakeTelegram,
    mode: Callable[[FakeTelegram], dict[str, str]], call: str,
) -> None:
    fake_telegram.outage()
    runtime = Runtime(make_settings(**mode(fake_telegram)))
    with captured_logs() as logs:
        runtime.start()  # returns although Telegram is down
        try:
            assert runtime.running
            assert fake_telegram.wait_for(lambda: fake_telegram.refused >= 4)
            assert runtime.bot is not None
            assert not runtime.bot.connected.is_set()
            fake_telegram.recover()
            assert runtime.bot.connected.wait(ASK)
            assert len(fake_telegram.calls_of(call)) == 1  # the one answered after the outage
            assert "Welcome" in reply_to_start(runtime, fake_telegram, 19)
        finally:
            runtime.stop()
    retries = [e for e in logs if e["event"] == "telegram unreachable; retrying"]
    assert len(retries) >= 3
    assert [r["attempt"] for r in retries[:3]] == [1, 2, 3]  # one line per backoff step
    assert all(r["call"] == call for r in retries)
    assert all(0 < r["retry_in"] <= 0.4 for r in retries)


def test_my_chat_member_kicked_is_recorded_and_not_answered(
    make_settings: SettingsFactory, fake_telegram: FakeTelegram
) -> None:
    published: list[BaseEvent] = []
    runtime = Runtime(make_settings(**bot_env(fake_telegram)))
    runtime.events.sink = RecordingSink(published.append)
    runtime.start()
    try:
        # A known user: events are numbered by the user's record, so a user who never
        # pressed /start has no events (counted as ``unrecorded_unknown_user``).
        Conversation(fake_telegram, 20).send("/start")
        eventually(lambda: len(published) >= 2, "the /start events published")
        answered = len(fake_telegram.sent(chat_id=20))
        del published[:]
        fake_telegram.push_update(updates.for_user(
            {k: v for k, v in updates.load("my_chat_member").items() if k != "update_id"}, 20))
        eventually(lambda: len(published) >= 2, "two events published")
    finally:
        runtime.stop()
    assert [(type(e).__name__, getattr(e, "action", None)) for e in published] == [
        ("UpdateReceived", None), ("UserInteraction", "blocked")]
    assert len(fake_telegram.sent(chat_id=20)) == answered


def test_an_edited_message_is_recorded_without_an_answer_or_an_error(
    make_settings: SettingsFactory, fake_telegram: FakeTelegram
) -> None:
    published: list[BaseEvent] = []
    runtime = Runtime(make_settings(**bot_env(fake_telegram)))
    runtime.events.sink = RecordingSink(published.append)
    with captured_logs() as logs:
        runtime.start()
        try:
            Conversation(fake_telegram, 21).send("/start")
            eventually(lambda: len(published) >= 2, "the /start events published")
            answered = len(fake_telegram.sent(chat_id=21))
            del published[:]
            fake_telegram.push_update(updates.for_user(
                {k: v for k, v in updates.load("edited_message").items() if k != "update_id"},
                21))
            eventually(lambda: len(published) >= 1, "the edit recorded")
        finally:
            runtime.stop()
    assert [(type(e).__name__, getattr(e, "update_kind", None)) for e in published] == [
        ("UpdateReceived", "edited_message")]
    assert len(fake_telegram.sent(chat_id=21)) == answered
    assert not [e for e in logs if e.get("log_level") in ("error", "critical")]


def test_the_users_language_preference_wins_over_telegrams(
    make_settings: SettingsFactory, fake_telegram: FakeTelegram
) -> None:
    runtime = Runtime(make_settings(**bot_env(fake_telegram, BOT_LANGUAGE_TTL="0")))
    runtime.start()
    try:
        user = Conversation(fake_telegram, 23, language="en")
        assert "Welcome" in user.send("/start").params["text"]
        runtime.sessions.ask(23, SetPreferences(preferences=Preferences(language="es")),
                             timeout=ASK)
        assert "Te cuento una historia" in user.send("/help").params["text"]
        assert user.send("/story").params["text"].startswith("La invitación")
    finally:
        runtime.stop()


def test_stopping_waits_for_the_updates_in_flight(
    make_settings: SettingsFactory, fake_telegram: FakeTelegram
) -> None:
    runtime = Runtime(make_settings(**bot_env(fake_telegram)))
    runtime.start()
    try:
        fake_telegram.delay("sendMessage", 1.0)
        fake_telegram.push_message(24, "/help")
        assert fake_telegram.wait_for(lambda: fake_telegram.in_progress == 1)
    finally:
        runtime.stop()  # the reply is on its way: stop waits for it, then closes the session
    assert len(fake_telegram.sent(chat_id=24)) == 1
    assert fake_telegram.in_progress == 0


def test_a_webhook_update_arriving_after_the_bot_stopped_is_refused_for_a_retry(
    make_settings: SettingsFactory, fake_telegram: FakeTelegram
) -> None:
    """Telegram retries a non-2xx update later: a stopping worker must say 503, not drop it."""
    with Runtime(make_settings(**webhook_env(fake_telegram))) as runtime:
        client = WebhookClient(runtime)

    result = client.post(updates.message(7, "/help", update_id=1))

    assert result.status_code == 503
    assert result.headers["Retry-After"] == "1"
    assert result.json["type"] == "/problems/unavailable"


def test_polling_takes_no_more_updates_while_the_pending_limit_is_reached(
    make_settings: SettingsFactory, fake_telegram: FakeTelegram
) -> None:
    settings = make_settings(**bot_env(fake_telegram, BOT_MAX_PENDING_UPDATES="1"))
    with Runtime(settings) as runtime:
        assert runtime.bot is not None
        release = fake_telegram.hold("sendMessage")
        try:
            first = fake_telegram.push_message(41, "/help")
            fake_telegram.push_message(42, "/help")
            assert fake_telegram.wait_for(lambda: fake_telegram.in_progress == 1)
            assert runtime.bot.pending == 1
            # The first update's reply is stuck: the bot has not asked for more (asking
            # getUpdates past it would confirm it), as the webhook would answer 503 now.
            assert not fake_telegram.confirmed(first)
        finally:
            release.set()
        assert fake_telegram.wait_for(lambda: bool(fake_telegram.sent(chat_id=42)))
        assert len(fake_telegram.sent(chat_id=41)) == 1


def test_the_bot_added_to_or_removed_from_a_group_is_not_a_user_blocking_it(
    make_settings: SettingsFactory, fake_telegram: FakeTelegram
) -> None:
    published: list[BaseEvent] = []
    runtime = Runtime(make_settings(**bot_env(fake_telegram)))
    runtime.events.sink = RecordingSink(published.append)
    with runtime, captured_logs() as logs:
        # A known user: events are numbered by the user's record (see above).
        assert "Welcome" in reply_to_start(runtime, fake_telegram, 26)
        eventually(lambda: len(published) >= 2, "the /start events published")
        del published[:]
        for name in ("my_chat_member_added_to_group", "my_chat_member_removed_from_supergroup",
                     "my_chat_member_private_unblocked"):
            fake_telegram.push_update(updates.for_user(updates.load(name), 26))
        eventually(lambda: len(published) >= 2, what="the private unblock recorded")
    # Only the private chat's change is the user's: the group ones are logged, not recorded.
    assert [(type(e).__name__, getattr(e, "action", None)) for e in published] == [
        ("UpdateReceived", None), ("UserInteraction", "unblocked")]
    changes = [e for e in logs if e["event"] == "the bot's membership of a chat changed"]
    assert [(e["chat_type"], e["status"]) for e in changes] == [
        ("group", "member"), ("supergroup", "kicked")]


def test_reactions_in_a_group_earn_nothing_and_in_the_private_chat_they_do(
    bot_runtime: Runtime, fake_telegram: FakeTelegram
) -> None:
    user = Conversation(fake_telegram, 27)
    welcome = user.send("/start")
    in_group = updates.for_user(updates.load("message_reaction_in_group"), 27)
    fake_telegram.push_update(in_group)
    thanks = user.react(welcome)  # pushed after the group's: answered only once handled
    assert "+1 besito (balance 1)" in thanks.params["text"]  # the singular for one
    wallet = bot_runtime.sessions.ask(27, GetWallet(), timeout=5)
    assert wallet.balance == 1
    assert [entry.amount for entry in wallet.entries] == [1]


def test_a_burst_of_first_contacts_each_completes_and_is_welcomed_or_takes_no_effect(
    make_settings: SettingsFactory, fake_telegram: FakeTelegram
) -> None:
    """Asks so impatient that some /starts wait in line past their deadline: whoever is told
    "try again" was not created, whoever was created was welcomed."""
    users = range(700, 760)
    settings = make_settings(**webhook_env(fake_telegram, ACTORS_ASK_TIMEOUT="0.05"))
    with Runtime(settings) as runtime, captured_logs() as logs:
        webhook = WebhookClient(runtime)
        for n, user_id in enumerate(users):
            update = updates.message(user_id, "/start", update_id=n + 1)
            assert webhook.post(update).status_code == 200
        eventually(lambda: all(fake_telegram.sent(chat_id=u) for u in users),
                   "every user answered")
        for user_id in users:
            [reply] = fake_telegram.sent(chat_id=user_id)
            try:
                runtime.sessions.ask(user_id, GetState(), timeout=ASK)
                created = True
            except UserNotFound:
                created = False
            welcomed = reply.params["text"].startswith("Welcome")
            assert welcomed == created, (user_id, reply.params["text"])
            if not welcomed:
                assert reply.params["text"] == (
                    "I can't reach my memory right now. Please try again shortly.")
    assert not [e for e in logs if e["log_level"] in ("error", "critical")]
