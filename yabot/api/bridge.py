"""ApiBridge: the HTTP side's only way into the actor system."""

from __future__ import annotations

from typing import Any, TypeVar

from actors import Ask, KeyedActors
from yabot.cluster.routing import AskRouter
from yabot.sessions.messages import GET_STATE, UserState

R = TypeVar("R")


class ApiBridge:
    """Turns API calls into asks on the user's session actor, with the configured timeout.

    Going through the session keeps API changes and bot interactions of one user in one order.
    Errors come back as raised by the session (`yabot.errors`), or `AskTimeout`, `ActorDead`,
    `Overloaded` from the runtime; `yabot.api.problems` maps them all to HTTP.

    With several processes (``router`` given), an ask for a user whose partition another
    process owns is forwarded there and answered from there — same timeout, same problem
    JSON, same correlation id — so a write through any process is read back at once through
    any other (`yabot.cluster.forwarding`).
    """

    def __init__(self, sessions: KeyedActors[int, Any], ask_timeout: float,
                 router: AskRouter | None = None) -> None:
        self._sessions = sessions
        self._timeout = ask_timeout
        self._router = router

    def ask(self, user_id: int, message: Ask[R]) -> R:
        """One ask on ``user_id``'s session, wherever it lives."""
        router = self._router
        if router is not None and not router.owns(user_id):
            return router.forward(user_id, message, self._timeout)
        return self._sessions.ask(user_id, message, timeout=self._timeout)

    def user_state(self, user_id: int) -> UserState:
        return self.ask(user_id, GET_STATE)
