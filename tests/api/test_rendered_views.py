"""The state route renders each published `UserState` once (`RenderedViews`), and a change
to the user is in the very next answer."""

from __future__ import annotations

import gc

import falcon.testing
import pytest

from tests.support.waiting import ASK
from yabot.api.app import create_app
from yabot.api.auth import mint_token
from yabot.api.bridge import ApiBridge
from yabot.api.resources import RenderedViews
from yabot.domain.users import TelegramIdentity
from yabot.runtime import Runtime
from yabot.sessions.messages import Start
from yabot.settings import Settings


class View:
    """Any object a session may answer with (weakly referenceable, compared by identity)."""


def test_a_body_is_kept_for_its_view_only_and_only_while_the_view_lives() -> None:
    rendered = RenderedViews()
    first, second = View(), View()
    rendered.put(first, b'{"n": 1}')
    assert rendered.get(first) == b'{"n": 1}'
    assert rendered.get(second) is None
    del first
    gc.collect()
    assert len(rendered) == 0
    assert rendered.get(View()) is None  # a new object, perhaps at the old address


@pytest.fixture
def client(settings: Settings, runtime: Runtime) -> falcon.testing.TestClient:
    runtime.sessions.ask(42, Start(identity=TelegramIdentity(user_id=42, first_name="Ana")),
                         timeout=ASK)
    bridge = ApiBridge(runtime.sessions, settings.actors.ask_timeout)
    return falcon.testing.TestClient(create_app(settings, bridge))


def test_repeated_reads_share_one_body_and_a_change_shows_at_once(
    client: falcon.testing.TestClient, settings: Settings,
) -> None:
    read = {"Authorization": f"Bearer {mint_token(settings, 't', ['users:read'])}"}
    write = {"Authorization": f"Bearer {mint_token(settings, 't', ['users:write'])}"}
    first = client.simulate_get("/user/42/state", headers=read)
    again = client.simulate_get("/user/42/state", headers=read)
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.content == first.content
    assert again.headers["content-type"] == first.headers["content-type"]
    assert first.json["preferences"]["language"] == "en"

    changed = client.simulate_put("/user/42/preferences", headers=write,
                                  json={"language": "es", "notifications": False})
    assert changed.status_code == 200
    after = client.simulate_get("/user/42/state", headers=read)
    assert after.json["preferences"] == {"language": "es", "notifications": False}
