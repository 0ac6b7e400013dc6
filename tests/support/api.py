"""The API served by real gunicorn (`config/gunicorn.conf.py`) on a loopback port, over a
SQLite file prepared with users before the server starts; tokens and problem checks."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest

from actors import Ask
from tests.support.http import Response, request
from tests.support.processes import REPO, Gunicorn, clean_env
from tests.support.settings import TEST_JWT_SECRET
from tests.support.waiting import ASK
from yabot.api.bridge import ApiBridge
from yabot.api.policy import SCOPES
from yabot.domain.users import TelegramIdentity
from yabot.runtime import Runtime
from yabot.sessions.messages import Start
from yabot.settings import Settings, load_settings

GUNICORN_CONF = REPO / "config" / "gunicorn.conf.py"


def problem(response: Response, status: int, code: str) -> dict[str, Any]:
    """The problem JSON of ``response``, checked: status, content type, code, no traceback."""
    assert response.status == status, response.body
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"] == f"/problems/{code}"
    assert body["status"] == status
    assert "Traceback" not in response.body.decode()
    return body

CURRENT_KID = "k2"
PREVIOUS_KID = "k1"
PREVIOUS_SECRET = "previous-secret-" + "p" * 40
#: Every scope a route may require (so a fuzzed route is reached, not refused at the door).
ALL_SCOPES = tuple(SCOPES)
#: Users that exist in every served API (created through `Start`, as the bot would).
USERS = (101, 102, 103)


def api_env(data_dir: Path, **extra: str) -> dict[str, str]:
    return {
        "YABOT_ENV": "test",
        "YABOT_DATA_DIR": str(data_dir),
        "JWT_SECRET": TEST_JWT_SECRET,
        "JWT_KEY_ID": CURRENT_KID,
        "JWT_PREVIOUS_KEY_ID": PREVIOUS_KID,
        "JWT_PREVIOUS_SECRET": PREVIOUS_SECRET,
        "RATE_LIMIT_PER_SUBJECT": "100000/minute",
        **extra,
    }


def make_token(
    scopes: Iterable[str] = ALL_SCOPES, *, secret: str = TEST_JWT_SECRET,
    kid: str | None = CURRENT_KID, algorithm: str = "HS256", **claims: Any,
) -> str:
    """A token like `yabot token` mints; ``claims`` override (None removes a claim)."""
    now = int(time.time())
    body: dict[str, Any] = {
        "iss": "yabot", "aud": "yabot-api", "sub": "tests", "iat": now, "exp": now + 300,
        "scope": " ".join(scopes),
    }
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(body, secret, algorithm=algorithm, headers=headers)


@contextmanager
def environment(env: Mapping[str, str], cwd: Path) -> Iterator[Settings]:
    """Settings read from exactly ``env``, with the process environment restored after."""
    wanted = clean_env(env)
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            patch.delenv(name)
        for name, value in wanted.items():
            patch.setenv(name, value)
        patch.chdir(cwd)
        yield load_settings()


def prepare_users(settings: Settings, users: Iterable[int]) -> None:
    """Create ``users`` in the stores the way `/start` does, with the runtime stopped after."""
    runtime = Runtime(settings)
    runtime.start()
    try:
        for user_id in users:
            identity = TelegramIdentity(user_id=user_id, first_name=f"User {user_id}",
                                        language_code="es")
            runtime.sessions.ask(user_id, Start(identity=identity), timeout=ASK)
    finally:
        runtime.stop()


class FailingBridge(ApiBridge):
    """Raises ``error`` on every ask, as the runtime would."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def ask(self, user_id: int, message: Ask[Any]) -> Any:
        raise self.error


@dataclass
class ServedApi:
    gunicorn: Gunicorn
    env: dict[str, str]

    @property
    def base_url(self) -> str:
        return self.gunicorn.base_url

    def call(
        self, method: str, path: str, *, token: str | None = None, json_body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        if json_body is not None:
            all_headers.setdefault("Content-Type", "application/json")
        return request(method, self.base_url + path, headers=all_headers, body=json_body)


@contextmanager
def served_api(directory: Path, users: Iterable[int] = USERS, config: Path = GUNICORN_CONF,
               **extra: str) -> Iterator[ServedApi]:
    env = api_env(directory / "var", **extra)
    users = tuple(users)
    if users:
        with environment(env, directory) as settings:
            prepare_users(settings, users)
    gunicorn = Gunicorn(env, cwd=directory, config=config)
    try:
        gunicorn.wait_ready()
        yield ServedApi(gunicorn, env)
    finally:
        exit_code = gunicorn.terminate()
    assert exit_code == 0, gunicorn.log()
