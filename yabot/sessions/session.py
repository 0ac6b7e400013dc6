"""UserSession: the one actor through which all of one user's interactions pass, in order."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from actors import Actor
from yabot.events.counters import event_counters
from yabot.events.models import BaseEvent, UpdateReceived, UserInteraction
from yabot.services.users import UserService
from yabot.sessions.messages import GetState, RecordUpdate, Start, Welcome

log = structlog.get_logger("yabot.sessions")

#: Where a session hands its events; `yabot.events.bus.Events.publish` in the runtime.
Publish = Callable[[BaseEvent], object]


def publish_nowhere(event: BaseEvent) -> None:
    """The default for sessions built without an event bus (tests, tools)."""


class UserSession(Actor):
    """Handles every message for one user, one at a time, in arrival order.

    It holds no state a restart could lose: everything lives in the stores, read on demand.
    The one exception is ``seq``, the number of the user's next event: it counts from 1 in
    each incarnation, gap-free, and the ordering buffer reads a ``seq`` of 1 as "the session
    started again". Publishing never fails a request: an error is logged and counted.
    """

    def __init__(self, user_id: int, users: UserService, publish: Publish = publish_nowhere
                 ) -> None:
        super().__init__()
        self.user_id = user_id
        self._users = users
        self._publish = publish
        self._seq = 0

    def handle(self, message: Any) -> Any:
        match message:
            case Start(identity=identity):
                created = self._users.create_user(identity)
                self._emit(lambda seq: UserInteraction(
                    user_id=self.user_id, seq=seq, action="start",
                    details={"created": str(created).lower()},
                    correlation_id=_correlation_id(),
                ))
                return Welcome(state=self._users.get_user_context(self.user_id), created=created)
            case GetState():
                return self._users.get_user_context(self.user_id)
            case RecordUpdate():
                self._record_update(message)
                return None
        return super().handle(message)

    def _record_update(self, message: RecordUpdate) -> None:
        self._emit(lambda seq: UpdateReceived(
            user_id=self.user_id, seq=seq, update_id=message.update_id,
            update_kind=message.update_kind, correlation_id=_correlation_id(),
        ))
        if message.action is not None:
            action = message.action
            self._emit(lambda seq: UserInteraction(
                user_id=self.user_id, seq=seq, action=action, details=dict(message.details),
                correlation_id=_correlation_id(),
            ))

    def _emit(self, build: Callable[[int], BaseEvent]) -> None:
        """Publish the event ``build(seq)`` with this user's next ``seq``; never raises."""
        try:
            event = build(self._seq + 1)
            self._publish(event)
        except Exception:
            log.exception("event not published", user_id=self.user_id)
            event_counters.incr("lost")
            return
        self._seq += 1


def _correlation_id() -> str | None:
    value = structlog.contextvars.get_contextvars().get("correlation_id")
    return value[:128] if isinstance(value, str) else None
