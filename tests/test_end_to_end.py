"""The walking skeleton through every real layer: gunicorn, Falcon, JWT, actors, SQLite,
aiogram's HTTP client against a fake Bot API server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fake_telegram import FakeTelegram
from tests.support.http import bearer, request
from tests.support.processes import Gunicorn, free_port
from tests.support.settings import TEST_JWT_SECRET
from tests.support.waiting import eventually
from yabot.api.auth import mint_token
from yabot.settings import load_settings

BOT_TOKEN = "123456:TEST-token-for-the-fake-bot-api"


def test_the_api_keeps_serving_while_telegram_is_unreachable(tmp_path: Path) -> None:
    closed = free_port()  # nothing listens there: every Bot API call is refused
    gunicorn = Gunicorn(
        {"YABOT_ENV": "test", "YABOT_DATA_DIR": str(tmp_path / "var"),
         "JWT_SECRET": TEST_JWT_SECRET, "TELEGRAM_BOT_TOKEN": BOT_TOKEN,
         "TELEGRAM_API_URL": f"http://127.0.0.1:{closed}",
         "BOT_RETRY_INITIAL_DELAY": "0.05", "BOT_RETRY_MAX_DELAY": "0.2"},
        cwd=tmp_path,
    )
    try:
        gunicorn.wait_ready("/readyz")  # the bot starts on a thread after HTTP
        eventually(lambda: gunicorn.log().count("telegram unreachable; retrying") >= 3,
                   "three retries logged")
        assert request("GET", f"{gunicorn.base_url}/healthz").status == 200
        assert gunicorn.process.poll() is None
    finally:
        exit_code = gunicorn.terminate()
    assert exit_code == 0, gunicorn.log()
    assert BOT_TOKEN not in gunicorn.log()


# The tests below share `server` (last in the module, so that it stops as soon as they end).


@pytest.fixture(scope="module")
def fake_telegram() -> Iterator[FakeTelegram]:
    """The module's fake Bot API, shared like `server` (each test talks to users of its own)."""
    fake = FakeTelegram().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, fake_telegram: FakeTelegram
           ) -> Iterator[Gunicorn]:
    """One gunicorn for the tests that only talk to it (one start instead of one per test);
    its clean exit is checked once, after all of them."""
    tmp_path = tmp_path_factory.mktemp("e2e")
    gunicorn = Gunicorn(
        {
            "YABOT_ENV": "test",
            "YABOT_DATA_DIR": str(tmp_path / "var"),
            "JWT_SECRET": TEST_JWT_SECRET,
            "TELEGRAM_BOT_TOKEN": BOT_TOKEN,
            "TELEGRAM_API_URL": fake_telegram.url,
        },
        cwd=tmp_path,
    )
    try:
        gunicorn.wait_ready("/readyz")  # the bot starts on a thread after HTTP
        yield gunicorn
    finally:
        exit_code = gunicorn.terminate()
    assert exit_code == 0, gunicorn.log()
    assert "actor tree stopped" in gunicorn.log()


def test_start_from_telegram_creates_the_user_seen_by_the_api(
    server: Gunicorn, fake_telegram: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JWT_SECRET", TEST_JWT_SECRET)
    token = mint_token(load_settings(), "e2e", ["users:read"])
    state_url = f"{server.base_url}/user/42/state"

    before = request("GET", state_url, headers=bearer(token))
    assert before.status == 404
    assert before.headers["content-type"] == "application/problem+json"

    fake_telegram.push_message(42, "/start", language_code="es")
    assert fake_telegram.wait_for(lambda: bool(fake_telegram.sent(chat_id=42))), server.log()
    assert "Bienvenido" in fake_telegram.sent(chat_id=42)[0].params["text"]

    after = request("GET", state_url, headers=bearer(token))
    assert after.status == 200
    body = after.json()
    assert body["user_id"] == 42
    assert body["preferences"]["language"] == "es"
    assert body["telegram"]["first_name"] == "User42"
    assert "x-request-id" in after.headers


def test_token_secret_never_reaches_the_logs(server: Gunicorn, fake_telegram: FakeTelegram) -> None:
    fake_telegram.push_message(7, "/start")
    assert fake_telegram.wait_for(lambda: bool(fake_telegram.sent(chat_id=7)))
    log = server.log()
    assert BOT_TOKEN not in log
    assert TEST_JWT_SECRET not in log
