"""ApiBridge: the HTTP side's only way into the actor system."""

from __future__ import annotations

from typing import Any

from actors import KeyedActors
from yabot.sessions.messages import GetState, UserState


class ApiBridge:
    """Turns API calls into asks on the user's session actor, with the configured timeout.

    Going through the session keeps API changes and bot interactions of one user in one order.
    """

    def __init__(self, sessions: KeyedActors[int, Any], ask_timeout: float) -> None:
        self._sessions = sessions
        self._timeout = ask_timeout

    def user_state(self, user_id: int) -> UserState:
        return self._sessions.ask(user_id, GetState(), timeout=self._timeout)
