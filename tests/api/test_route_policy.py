"""Route policy: declared per resource, checked when the app is built, failing closed."""

from __future__ import annotations

from typing import Any

import falcon
import falcon.testing
import pytest

from tests.support.api import FailingBridge, make_token
from tests.support.settings import SettingsFactory
from yabot.api.app import create_app
from yabot.api.auth import RequireToken, TokenVerifier
from yabot.api.policy import PUBLIC, RoutePolicy, requires
from yabot.api.problems import handle_error
from yabot.errors import ConfigError, UserNotFound
from yabot.settings import Settings


class Undeclared:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"secret": True}


class ScopedGetAndDelete:
    def __init__(self, policy: RoutePolicy) -> None:
        self.policy = policy

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"read": True}

    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"deleted": True}


@pytest.fixture
def settings(make_settings: SettingsFactory) -> Settings:
    return make_settings(JWT_KEY_ID="k2")


def build(settings: Settings, resource: object) -> falcon.App[Any, Any]:
    return create_app(settings, FailingBridge(UserNotFound(1)), {"/extra": resource})


@pytest.mark.parametrize(("resource", "message"), [
    (Undeclared(), "declares no route policy"),
    (ScopedGetAndDelete(requires(GET="users:read")), "no scope declared for DELETE"),
    (ScopedGetAndDelete(requires(GET="users:read", DELETE="users:delete")),
     "unknown scopes users:delete"),
    (ScopedGetAndDelete(requires(GET="users:read", DELETE="users:write", PUT="users:write")),
     "methods it does not answer: PUT"),
    (ScopedGetAndDelete(RoutePolicy(public=True, scopes={"GET": "users:read"})),
     "a public route needs no scopes"),
])
def test_the_app_refuses_to_start_with_a_route_whose_policy_does_not_hold(
    settings: Settings, resource: object, message: str,
) -> None:
    with pytest.raises(ConfigError, match=message):
        build(settings, resource)


def test_each_method_needs_its_own_scope(settings: Settings) -> None:
    app = build(settings, ScopedGetAndDelete(requires(GET="users:read", DELETE="users:write")))
    client = falcon.testing.TestClient(app)
    reader = {"Authorization": f"Bearer {make_token(['users:read'])}"}
    assert client.simulate_get("/extra", headers=reader).status_code == 200
    assert client.simulate_delete("/extra", headers=reader).status_code == 403
    writer = {"Authorization": f"Bearer {make_token(['users:write'])}"}
    assert client.simulate_delete("/extra", headers=writer).status_code == 200
    assert client.simulate_get("/extra").status_code == 401
    # A method the resource does not answer is falcon's 405 (after the token), not a guess.
    assert client.simulate_put("/extra", headers=reader).status_code == 405
    assert client.simulate_put("/extra").status_code == 401


def test_a_public_route_needs_no_token(settings: Settings) -> None:
    app = build(settings, ScopedGetAndDelete(PUBLIC))
    assert falcon.testing.TestClient(app).simulate_delete("/extra").status_code == 200


def test_a_route_added_around_the_check_is_refused_not_served(settings: Settings) -> None:
    """The middleware is the second line: a resource without a policy that reached a router
    some other way is 403 even for a token with every scope."""
    app: falcon.App[Any, Any] = falcon.App(middleware=[RequireToken(TokenVerifier(settings))])
    app.add_error_handler(Exception, handle_error)
    app.add_route("/undeclared", Undeclared())
    result = falcon.testing.TestClient(app).simulate_get(
        "/undeclared", headers={"Authorization": f"Bearer {make_token()}"})
    assert result.status_code == 403
    assert "secret" not in result.text
