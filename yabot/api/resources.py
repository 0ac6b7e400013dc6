"""HTTP resources: each turns a request into one ask and the reply into JSON."""

from __future__ import annotations

import falcon

from yabot.api.bridge import ApiBridge
from yabot.errors import InvalidInput


def parse_user_id(raw: str) -> int:
    """A Telegram user id from a path segment, or `InvalidInput`."""
    if not raw.isdigit() or not 0 < int(raw) < 2**53:
        raise InvalidInput(f"user id must be a positive integer, got {raw[:32]!r}")
    return int(raw)


class Liveness:
    """``GET /healthz``: the process answers. Says nothing about dependencies."""

    public = True

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "pass"}


class UserStateResource:
    """``GET /user/{user_id}/state``: the user's merged state."""

    def __init__(self, bridge: ApiBridge) -> None:
        self._bridge = bridge

    def on_get(self, req: falcon.Request, resp: falcon.Response, user_id: str) -> None:
        state = self._bridge.user_state(parse_user_id(user_id))
        resp.media = state.model_dump(mode="json")
