"""What a handler gets for the user behind an update: their session handle and language."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, TypeVar

from actors import Ask, KeyedActors
from yabot.domain.users import Language, TelegramIdentity
from yabot.errors import UserNotFound
from yabot.sessions.messages import GetState, Start, UserState, Welcome

R = TypeVar("R")

LANGUAGE_CACHE_SIZE = 100_000
#: Seconds a `Start` the session began before its deadline is still waited for.
START_COMPLETION_GRACE = 30.0


class LanguageCache:
    """Users' languages as their preferences last said, for ``ttl`` seconds.

    Replies such as a fragment or a wallet carry texts in the user's language but not the
    language itself; remembering it saves one session ask per update for the bot's own
    words. A preference changed through the API is seen within ``ttl``. Used from the bot's
    event loop thread only (no lock).
    """

    def __init__(self, ttl: float, max_size: int = LANGUAGE_CACHE_SIZE) -> None:
        self._ttl = ttl
        self._max_size = max_size
        self._entries: OrderedDict[int, tuple[Language, float]] = OrderedDict()

    def get(self, user_id: int) -> Language | None:
        entry = self._entries.get(user_id)
        if entry is None:
            return None
        language, stored = entry
        if time.monotonic() - stored > self._ttl:
            del self._entries[user_id]
            return None
        return language

    def put(self, user_id: int, language: Language) -> None:
        self._entries[user_id] = (language, time.monotonic())
        self._entries.move_to_end(user_id)
        while len(self._entries) > self._max_size:
            self._entries.popitem(last=False)


@dataclass
class UpdateNote:
    """Filled in while an update is handled; the middleware records it with the session."""

    action: str | None = None
    details: dict[str, str] = field(default_factory=dict)


class UserHandle:
    """The user's session as a handler sees it: `ask` it, and learn the user's language.

    Every ask goes to the user's one `UserSession` actor, so this user's updates, API calls
    and events are handled one at a time in arrival order.
    """

    def __init__(
        self, sessions: KeyedActors[int, Any], identity: TelegramIdentity, timeout: float,
        languages: LanguageCache,
    ) -> None:
        self.identity = identity
        self.user_id = identity.user_id
        self._sessions = sessions
        self._timeout = timeout
        self._languages = languages

    async def ask(self, message: Ask[R]) -> R:
        """The session's reply to ``message`` within the handle's timeout."""
        reply = await self._sessions.ask_async(self.user_id, message, timeout=self._timeout)
        self._learn(reply)
        return reply

    async def start(self) -> Welcome:
        """`Start` for this user, never left half-done by a timeout: the session does nothing
        once the ask's ``expires_at`` has passed (raising `TimedOut`), and a start it began in
        time is waited for up to `START_COMPLETION_GRACE` more, so that it completes and is
        answered (the stores' own retries give up well within it)."""
        message = Start(identity=self.identity, expires_at=time.time() + self._timeout)
        reply = await self._sessions.ask_async(
            self.user_id, message, timeout=self._timeout + START_COMPLETION_GRACE)
        self._learn(reply)
        return reply

    def _learn(self, reply: object) -> None:
        state = getattr(reply, "state", reply)
        if isinstance(state, UserState):
            self.remember(state.preferences.language)

    def other(self, user_id: int) -> UserHandle:
        """A handle on another user's session (an operator acting for a user)."""
        return UserHandle(self._sessions, TelegramIdentity(user_id=user_id), self._timeout,
                          self._languages)

    def remember(self, language: Language) -> None:
        self._languages.put(self.user_id, language)

    def known_language(self) -> Language:
        """The language without asking anyone: remembered, else Telegram's language_code."""
        return self._languages.get(self.user_id) or self.identity.language

    async def language(self) -> Language:
        """The user's preferred language (asking the session when not remembered); Telegram's
        ``language_code`` for a user the session does not know."""
        known = self._languages.get(self.user_id)
        if known is not None:
            return known
        try:
            state = await self.ask(GetState())
        except UserNotFound:
            return self.identity.language
        return state.preferences.language
