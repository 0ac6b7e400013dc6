"""The webhook through every real layer: gunicorn, Falcon, the aiogram Dispatcher's loop, the
user's session actor, SQLite, and replies through aiogram's client to the fake Bot API.

Where a test holds a handler (the fake Bot API keeps its reply waiting), the same layers run
in-process instead, the API app in falcon.testing, so the test knows what is in flight."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from tests.bot import updates
from tests.support.bot import (
    BOT_TOKEN,
    WEBHOOK_SECRET,
    WEBHOOK_URL,
    WebhookClient,
    webhook_env,
)
from tests.support.fake_telegram import FakeTelegram
from tests.support.http import Response, bearer, request
from tests.support.processes import Gunicorn
from tests.support.settings import TEST_JWT_SECRET, SettingsFactory
from tests.support.waiting import ASK, eventually
from yabot.api.auth import mint_token
from yabot.bot.webhook import TelegramWebhook
from yabot.errors import UserNotFound
from yabot.runtime import Runtime
from yabot.sessions.messages import GetState
from yabot.settings import JwtSettings, load_settings

MAX_BODY = 4096


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeTelegram]:
    fake = FakeTelegram().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, fake: FakeTelegram) -> Iterator[Gunicorn]:
    tmp_path: Path = tmp_path_factory.mktemp("webhook")
    gunicorn = Gunicorn(
        {
            "YABOT_ENV": "test", "YABOT_DATA_DIR": str(tmp_path / "var"),
            "JWT_SECRET": TEST_JWT_SECRET, "TELEGRAM_BOT_TOKEN": BOT_TOKEN,
            "TELEGRAM_API_URL": fake.url, "BOT_WEBHOOK_URL": WEBHOOK_URL,
            "BOT_WEBHOOK_SECRET": WEBHOOK_SECRET, "BOT_WEBHOOK_MAX_BODY": str(MAX_BODY),
            "API_THREADS": "16",
        },
        cwd=tmp_path,
    )
    try:
        gunicorn.wait_ready("/readyz")  # ready once the bot, started on a thread, runs
        yield gunicorn
    finally:
        exit_code = gunicorn.terminate()
    assert exit_code == 0, gunicorn.log()
    log = gunicorn.log()
    assert_in_order(log, ["telegram stopped", "actor tree stopped"])  # the reverse of start
    assert BOT_TOKEN not in log
    assert WEBHOOK_SECRET not in log


def assert_in_order(log: str, lines: list[str]) -> None:
    """Each of ``lines`` is in ``log``, first seen in this order."""
    missing = [line for line in lines if line not in log]
    assert not missing, log
    seen = sorted(lines, key=log.index)
    assert seen == lines, log


def post(server: Gunicorn, body: bytes, headers: dict[str, str | None] | None = None
         ) -> Response:
    """POST to the webhook with the right secret, unless ``headers`` say otherwise (None:
    leave that header out)."""
    merged: dict[str, str | None] = {
        "Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET,
        **(headers or {}),
    }
    sent = {name: value for name, value in merged.items() if value is not None}
    return request("POST", f"{server.base_url}/telegram/webhook", body=body, headers=sent)


def post_update(server: Gunicorn, update: dict[str, Any]) -> Response:
    return post(server, json.dumps(update).encode())


def state_status(server: Gunicorn, user_id: int) -> int:
    settings = load_settings(jwt=JwtSettings(secret=SecretStr(TEST_JWT_SECRET)))
    token = mint_token(settings, "tests", ["users:read"])
    return request("GET", f"{server.base_url}/user/{user_id}/state", headers=bearer(token)).status


def test_start_registers_the_webhook_with_its_secret_and_the_reaction_updates(
    server: Gunicorn, fake: FakeTelegram
) -> None:
    assert fake.wait_for(lambda: bool(fake.calls_of("setWebhook"))), server.log()
    params = fake.calls_of("setWebhook")[0].params
    assert params["url"] == WEBHOOK_URL
    assert params["secret_token"] == WEBHOOK_SECRET
    assert "message_reaction" in params["allowed_updates"]
    assert "callback_query" in params["allowed_updates"]
    assert not fake.calls_of("deleteWebhook")


def test_start_order_is_stores_bus_coordinator_sessions_then_http_with_the_bot_beside(
    server: Gunicorn,
) -> None:
    log = server.log()
    assert_in_order(log, [
        "sql store started", "document store started",  # the stores supervisor's children
        "event bus started",
        "seed story loaded",  # the coordinator loads the seed story as it starts
        "actor tree started",  # the root's last child, the sessions registry, is up
        "worker ready",  # the API app, webhook route included, is bound: HTTP is served
    ])
    # The bot is imported and started on a thread of its own once the tree runs; /healthz
    # does not wait for it, /readyz does (the server fixture waited for /readyz).
    assert_in_order(log, ["actor tree started", "telegram starting"])


def test_the_served_openapi_document_describes_the_webhook(server: Gunicorn) -> None:
    response = request("GET", f"{server.base_url}/openapi.json")
    assert response.status == 200
    operations = response.json()["paths"]["/telegram/webhook"]
    assert operations == TelegramWebhook.openapi
    assert operations["post"]["security"] == []  # the secret header authenticates it


def test_a_valid_update_is_answered_at_once_and_replied_to_through_the_bot_api(
    server: Gunicorn, fake: FakeTelegram
) -> None:
    response = post_update(server, updates.message(501, "/start", language="es", update_id=1))
    assert response.status == 200
    assert fake.wait_for(lambda: bool(fake.sent(chat_id=501))), server.log()
    assert "Bienvenido" in fake.sent(chat_id=501)[0].params["text"]
    assert state_status(server, 501) == 200


@pytest.mark.parametrize(
    ("case", "body", "headers", "status"),
    [
        ("wrong secret", None, {"X-Telegram-Bot-Api-Secret-Token": "not-the-secret"}, 401),
        ("no secret", None, {"X-Telegram-Bot-Api-Secret-Token": None}, 401),
        ("empty secret", None, {"X-Telegram-Bot-Api-Secret-Token": ""}, 401),
        ("secret differing in the last character", None,
         {"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET[:-1] + "X"}, 401),
        ("invalid JSON", b'{"update_id": 7, "message": {', None, 400),
        ("not UTF-8", b"\xff\xfe\x00{", None, 400),
        ("JSON that is not an object", b"[1, 2, 3]", None, 400),
        ("no integer update_id", json.dumps(updates.load("invalid_update")).encode(),
         None, 400),
        ("an update aiogram's models refuse (retrying cannot help)",
         json.dumps(updates.load("message_missing_required_date")).encode(), None, 200),
        ("JSON nested deeper than the decoder goes", b"[" * 2000 + b"]" * 2000, None, 400),
        ("deep nesting inside an update of an unknown kind",
         b'{"update_id": 9, "future_kind": ' + b"[" * 900 + b"]" * 900 + b"}", None, 200),
        ("oversize body", b'{"update_id": 8, "pad": "' + b"x" * MAX_BODY + b'"}', None, 413),
        ("an update kind the bot does not know", json.dumps(updates.load("unknown_kind")).encode(),
         None, 200),
    ],
)
def test_bad_webhook_input_gets_its_status_and_changes_nothing(
    server: Gunicorn, fake: FakeTelegram, case: str, body: bytes | None,
    headers: dict[str, str | None] | None, status: int,
) -> None:
    user_id = updates.FIXTURE_USER
    valid = json.dumps(updates.load("message")).encode()  # /start from the fixture's user
    calls_before = len(fake.calls)
    response = post(server, body if body is not None else valid, headers)
    assert response.status == status, (case, response.body)
    if status >= 400:
        assert response.headers["content-type"] == "application/problem+json"
    assert state_status(server, user_id) == 404  # nothing stored
    # Nothing was sent either; and the server still serves a valid update afterwards.
    probe = 600 + status
    assert post_update(server, updates.message(probe, "/start", update_id=probe)).status == 200
    assert fake.wait_for(lambda: bool(fake.sent(chat_id=probe)))
    assert not [c for c in fake.calls[calls_before:] if c.params.get("chat_id") in
                (user_id, str(user_id))]
    assert "Traceback" not in server.log()


def test_updates_that_cannot_be_modelled_are_counted_in_metrics(server: Gunicorn) -> None:
    update = updates.load("poll_answer_older_fields")
    assert post_update(server, update).status == 200
    metrics = request("GET", f"{server.base_url}/metrics").body.decode()
    assert 'yabot_telegram_updates_total{outcome="unparseable"}' in metrics
    assert f"update_id={update['update_id']}" in server.log()  # the warning names it


def test_a_chunked_body_without_length_is_refused(server: Gunicorn) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=ASK)
    try:
        connection.putrequest("POST", "/telegram/webhook")
        connection.putheader("X-Telegram-Bot-Api-Secret-Token", WEBHOOK_SECRET)
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Transfer-Encoding", "chunked")
        connection.endheaders()
        body = json.dumps(updates.load("message")).encode()
        connection.send(f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n")
        response = connection.getresponse()
        assert response.status == 411
    finally:
        connection.close()
    assert state_status(server, updates.FIXTURE_USER) == 404


def test_one_users_replies_come_in_the_order_sent_among_many_concurrent_users(
    server: Gunicorn, fake: FakeTelegram
) -> None:
    user, others = 777, range(10_000, 11_000)
    assert post_update(server, updates.message(user, "/start", update_id=2)).status == 200
    assert fake.wait_for(lambda: bool(fake.sent(chat_id=user)))
    mine = [updates.message(user, f"note {i}", update_id=100 + i, message_id=50_000 + i)
            for i in range(100)]
    theirs = [updates.message(uid, f"hello {uid}", update_id=1000 + n)
              for n, uid in enumerate(others)]
    statuses: list[int] = []
    lock = threading.Lock()

    def send_mine() -> None:
        for update in mine:  # one user sends in order: each after the previous was taken
            status = post_update(server, update).status
            with lock:
                statuses.append(status)

    def send_theirs(update: dict[str, Any]) -> None:
        status = post_update(server, update).status
        with lock:
            statuses.append(status)

    with ThreadPoolExecutor(max_workers=16) as pool:
        mine_done = pool.submit(send_mine)
        list(pool.map(send_theirs, theirs))
        mine_done.result()
    assert statuses == [200] * 1100
    assert fake.wait_for(lambda: len(fake.sent(chat_id=user)) == 101), server.log()
    answered = [c.params["reply_parameters"]["message_id"] for c in fake.sent(chat_id=user)[1:]]
    assert answered == [50_000 + i for i in range(100)]
    assert fake.wait_for(lambda: all(fake.sent(chat_id=uid) for uid in others))


def test_realistic_updates_of_every_kind_are_taken_and_handled(
    server: Gunicorn, fake: FakeTelegram
) -> None:
    user = 901
    kinds = ["message", "edited_message", "callback_query", "message_reaction",
             "my_chat_member"]
    for n, kind in enumerate(kinds):
        update = updates.for_user(updates.load(kind), user, language="es")
        update["update_id"] = 5_000 + n
        assert post_update(server, update).status == 200, kind
    # /start (message), nothing for the edit, the wallet (callback m:wallet), a reward for the
    # reaction, nothing for "kicked": in the order sent.
    assert fake.wait_for(lambda: len(fake.sent(chat_id=user)) == 3), server.log()
    texts = [c.params["text"] for c in fake.sent(chat_id=user)]
    assert texts[0].startswith("¡Bienvenido")
    assert texts[1].startswith("💰 Saldo: 0 besitos")
    assert texts[2].startswith("¡Gracias por reaccionar! +")
    answered = [c for c in fake.calls_of("answerCallbackQuery")
                if c.params.get("callback_query_id") == "4382bfdwdsb323b2d9"]
    assert len(answered) == 1
    assert "update handling failed" not in server.log()


@pytest.fixture
def one_at_a_time(make_settings: SettingsFactory, fake_telegram: FakeTelegram
                  ) -> Iterator[Runtime]:
    """The application in-process in webhook mode, taking one pending update at most."""
    settings = make_settings(**webhook_env(fake_telegram, BOT_MAX_PENDING_UPDATES="1"))
    with Runtime(settings) as runtime:
        yield runtime


def test_the_webhook_answers_while_the_updates_handler_is_still_running(
    one_at_a_time: Runtime, fake_telegram: FakeTelegram
) -> None:
    webhook = WebhookClient(one_at_a_time)
    release = fake_telegram.hold("sendMessage")  # the handler's reply waits for the test
    try:
        accepted = webhook.post(updates.message(31, "/start", update_id=1))
        assert accepted.status_code == 200
        assert fake_telegram.wait_for(lambda: fake_telegram.in_progress == 1)
        assert not fake_telegram.sent(chat_id=31)  # the handler is still blocked
    finally:
        release.set()
    assert fake_telegram.wait_for(lambda: bool(fake_telegram.sent(chat_id=31)))
    assert "Welcome" in fake_telegram.sent(chat_id=31)[0].params["text"]


def test_too_many_pending_updates_are_refused_with_503_and_taken_when_retried(
    one_at_a_time: Runtime, fake_telegram: FakeTelegram
) -> None:
    webhook = WebhookClient(one_at_a_time)
    refused = updates.message(33, "/start", update_id=2)
    release = fake_telegram.hold("sendMessage")
    try:
        assert webhook.post(updates.message(32, "/start", update_id=1)).status_code == 200
        assert fake_telegram.wait_for(lambda: fake_telegram.in_progress == 1)  # 1 pending of 1
        busy = webhook.post(refused)
        assert busy.status_code == 503
        assert busy.headers["Retry-After"] == "1"
        assert busy.json["type"] == "/problems/unavailable"
    finally:
        release.set()
    assert fake_telegram.wait_for(lambda: bool(fake_telegram.sent(chat_id=32)))
    with pytest.raises(UserNotFound):  # the refused update never reached a session
        one_at_a_time.sessions.ask(33, GetState(), timeout=ASK)
    # Telegram sends it again later; once the first update is done it is taken.
    eventually(lambda: webhook.post(refused).status_code == 200, "the retry is taken")
    assert fake_telegram.wait_for(lambda: bool(fake_telegram.sent(chat_id=33)))
    assert "Welcome" in fake_telegram.sent(chat_id=33)[0].params["text"]
