"""Users as the bot creates them, for tests on the running application."""

from __future__ import annotations

from tests.support.waiting import ASK
from yabot.domain.users import TelegramIdentity
from yabot.runtime import Runtime
from yabot.sessions.messages import Start


def start_user(runtime: Runtime, user_id: int, language: str = "en") -> None:
    """``/start`` for ``user_id`` through its session, as the bot sends it."""
    identity = TelegramIdentity(user_id=user_id, first_name=f"user{user_id}",
                                language_code=language)
    runtime.sessions.ask(user_id, Start(identity=identity), timeout=ASK)
