"""The Falcon app in-process over a real runtime (SQLite file), through falcon's TestClient."""

from __future__ import annotations

import time
from collections.abc import Iterator

import falcon.testing
import jwt
import pytest

from tests.support.settings import TEST_JWT_SECRET
from tests.support.waiting import ASK
from yabot.api.app import create_app
from yabot.api.auth import mint_token
from yabot.api.bridge import ApiBridge
from yabot.domain.users import TelegramIdentity
from yabot.runtime import Runtime
from yabot.sessions.messages import Start
from yabot.settings import Settings


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    runtime = Runtime(settings)
    runtime.start()
    yield runtime
    runtime.stop()


@pytest.fixture
def client(settings: Settings, runtime: Runtime) -> falcon.testing.TestClient:
    bridge = ApiBridge(runtime.sessions, settings.actors.ask_timeout)
    return falcon.testing.TestClient(create_app(settings, bridge))


def auth(settings: Settings, **claims: object) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(settings, 'tests', ['users:read'])}"}


def test_healthz_needs_no_token(client: falcon.testing.TestClient) -> None:
    result = client.simulate_get("/healthz")
    assert result.status_code == 200
    assert result.json == {"status": "pass"}


def test_unknown_user_is_404_problem(client: falcon.testing.TestClient, settings: Settings) -> None:
    result = client.simulate_get("/user/42/state", headers=auth(settings))
    assert result.status_code == 404
    assert result.headers["content-type"] == "application/problem+json"
    assert result.json["status"] == 404
    assert result.json["type"] == "/problems/user-not-found"


def test_known_user_state(
    client: falcon.testing.TestClient, settings: Settings, runtime: Runtime
) -> None:
    identity = TelegramIdentity(user_id=42, first_name="Ana", language_code="es-ES")
    runtime.sessions.ask(42, Start(identity=identity), timeout=ASK)
    result = client.simulate_get("/user/42/state", headers=auth(settings))
    assert result.status_code == 200
    assert result.json["document"]["user_id"] == 42
    assert result.json["document"]["language"] == "es"
    assert result.json["profile"]["first_name"] == "Ana"


@pytest.mark.parametrize("user_id", ["abc", "0", "-5", "9" * 30])
def test_bad_user_id_is_400(
    client: falcon.testing.TestClient, settings: Settings, user_id: str
) -> None:
    result = client.simulate_get(f"/user/{user_id}/state", headers=auth(settings))
    assert result.status_code == 400
    assert result.json["type"] == "/problems/invalid-input"


def _token(secret: str = TEST_JWT_SECRET, **overrides: object) -> str:
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": "yabot", "aud": "yabot-api", "sub": "tests", "iat": now, "exp": now + 60,
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, secret, algorithm="HS256")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer not-a-jwt"},
        {"Authorization": "Bearer " + _token(exp=int(time.time()) - 3600)},
        {"Authorization": "Bearer " + _token(exp=None)},
        {"Authorization": "Bearer " + _token(secret="another-secret-" + "y" * 40)},
        {"Authorization": "Bearer " + _token(aud="someone-else")},
    ],
    ids=["none", "empty", "basic", "garbage", "expired", "no-exp", "wrong-key", "wrong-aud"],
)
def test_bad_tokens_are_401_and_change_nothing(
    client: falcon.testing.TestClient, runtime: Runtime, headers: dict[str, str]
) -> None:
    result = client.simulate_get("/user/42/state", headers=headers)
    assert result.status_code == 401
    assert result.headers["content-type"] == "application/problem+json"
    assert "Traceback" not in result.text
    assert len(runtime.sessions) == 0  # no session actor was even started
