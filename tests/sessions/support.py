"""Sessions of several users on one set of real stores, without the tree."""

from __future__ import annotations

from typing import Any

import pykka

from actors import ask
from actors.testkit import ActorTestKit
from tests.support.waiting import ASK
from yabot.domain.users import TelegramIdentity
from yabot.events.models import BaseEvent, parse_event
from yabot.events.outbox import SqlOutbox
from yabot.sessions.messages import Start
from yabot.sessions.session import SessionServices, UserSession
from yabot.stores.handles import Stores


def stored_events(stores: Stores) -> list[BaseEvent]:
    """Every event in the outbox (nothing relays it in these tests), in stored order."""
    return [parse_event(entry.body)
            for entry in SqlOutbox(lambda: stores.relational.engine).oldest(1_000_000)]


class Sessions:
    """Sessions of several users on one set of stores; ``events`` reads every event they
    stored (the outbox, which nothing relays here)."""

    def __init__(self, kit: ActorTestKit, stores: Stores, *, state_max_age: float = 0.0
                 ) -> None:
        self.kit = kit
        self.stores = stores
        self.refs: dict[int, pykka.ActorRef[Any]] = {}
        self.services = SessionServices.build(stores, notify=self._tell,
                                              state_max_age=state_max_age)

    @property
    def events(self) -> list[BaseEvent]:
        return stored_events(self.stores)

    def _tell(self, user_id: int, message: Any) -> None:
        self.ref(user_id).tell(message)

    def ref(self, user_id: int) -> pykka.ActorRef[Any]:
        if user_id not in self.refs:
            self.refs[user_id] = self.kit.spawn(lambda: UserSession(user_id, self.services))
        return self.refs[user_id]

    def ask(self, user_id: int, message: Any) -> Any:
        return ask(self.ref(user_id), message, timeout=ASK)

    def of(self, user_id: int) -> list[BaseEvent]:
        return [event for event in self.events if event.user_id == user_id]


def start(sessions: Sessions, user_id: int, language: str = "en") -> None:
    sessions.ask(user_id, Start(identity=TelegramIdentity(
        user_id=user_id, first_name="Ana", language_code=language)))


def new_incarnation(sessions: Sessions, user_id: int) -> None:
    """Stop the user's session (as passivation, a lost partition or a crash does); the next
    message starts another, which knows only what the stores kept."""
    sessions.refs.pop(user_id).stop(block=True, timeout=ASK)
