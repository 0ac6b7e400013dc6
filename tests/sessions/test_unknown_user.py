"""A session for a user who does not exist stops right after its `UserNotFound`, instead of
holding a place under the live-session cap until the idle timeout."""

from __future__ import annotations

import pytest

from tests.support.waiting import ASK, eventually
from yabot.errors import UserNotFound
from yabot.runtime import Runtime
from yabot.sessions.messages import GetState


def test_an_unknown_users_session_stops_after_user_not_found(runtime: Runtime) -> None:
    unknown = [900 + n for n in range(20)]
    for user_id in unknown:
        with pytest.raises(UserNotFound):
            runtime.sessions.ask(user_id, GetState(), timeout=ASK)

    eventually(lambda: not set(unknown) & set(runtime.sessions.live_keys()),
               "the unknown users' sessions stopped")
    with pytest.raises(UserNotFound):  # a later message starts (and stops) a new one
        runtime.sessions.ask(unknown[0], GetState(), timeout=ASK)
