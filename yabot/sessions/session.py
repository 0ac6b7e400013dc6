"""UserSession: the one actor through which all of one user's interactions pass, in order."""

from __future__ import annotations

from typing import Any

from actors import Actor
from yabot.services.users import UserService
from yabot.sessions.messages import GetState, Start, Welcome


class UserSession(Actor):
    """Handles every message for one user, one at a time, in arrival order.

    It holds no state a restart could lose: everything lives in the stores, read on demand.
    """

    def __init__(self, user_id: int, users: UserService) -> None:
        super().__init__()
        self.user_id = user_id
        self._users = users

    def handle(self, message: Any) -> Any:
        match message:
            case Start(identity=identity):
                created = self._users.create_user(identity)
                return Welcome(state=self._users.get_user_context(self.user_id), created=created)
            case GetState():
                return self._users.get_user_context(self.user_id)
        return super().handle(message)
