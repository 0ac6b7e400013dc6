"""The notifications consumer group: who is told what, decided once per cause.

Each handler runs in the group's transaction (`yabot.events.groups.handle_once`): the
notification row (keyed by the causing event's id) commits with the group's
``processed_events`` mark, so an event delivered twice queues one message. Sending happens
later, outside any transaction, on the `Notifier`'s thread.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import Connection, delete, select

from yabot.domain.users import UserDocument
from yabot.events.groups import ConsumerGroup, Handlers
from yabot.events.models import SubscriptionChanged, UserInteraction
from yabot.notifications.counters import NotificationCounters, notification_counters
from yabot.notifications.texts import notification_text
from yabot.stores.sql import insert_if_absent
from yabot.stores.tables import blocked_chats, notifications

log = structlog.get_logger("yabot.notifications")

#: Reads a user's document (language, ``notifications`` preference); None: no such user.
Profile = Callable[[int], UserDocument | None]

#: UserInteraction actions that notify, and the catalogue key of their text.
NOTIFYING_ACTIONS = {"gift-received": "gift", "stars-paid": "payment", "stars-refunded": "refund"}


class NotificationRules:
    """The group's handlers; ``wake`` tells the sender there may be something to send."""

    def __init__(self, profile: Profile, wake: Callable[[], None] = lambda: None,
                 counters: NotificationCounters = notification_counters) -> None:
        self._profile = profile
        self._wake = wake
        self._counters = counters

    def on_interaction(self, event: Any, conn: Connection) -> None:
        assert isinstance(event, UserInteraction)
        if event.action == "blocked":
            insert_if_absent(conn, blocked_chats, {"user_id": event.user_id,
                                                   "blocked_at": event.occurred_at})
        elif event.action == "unblocked":
            conn.execute(delete(blocked_chats).where(blocked_chats.c.user_id == event.user_id))
        elif event.action in NOTIFYING_ACTIONS:
            key = NOTIFYING_ACTIONS[event.action]
            self._notify(event, conn, key, sku=event.details.get("sku", "?"),
                         stars=event.details.get("stars", "?"))

    def on_subscription(self, event: Any, conn: Connection) -> None:
        assert isinstance(event, SubscriptionChanged)
        if event.status == "expired":
            self._notify(event, conn, "vip_lapsed")

    def _notify(self, event: UserInteraction | SubscriptionChanged, conn: Connection,
                key: str, **values: object) -> None:
        self.queue(conn, str(event.event_id), event.user_id, key, **values)

    def queue(self, conn: Connection, cause: str, user_id: int, key: str,
              **values: object) -> bool:
        """Queue text ``key`` for ``user_id`` on ``conn``, once per ``cause`` (at most 36
        characters: an event id, or a `uuid.uuid5` of what caused it) — unless the user
        blocked the bot, is unknown, or turned notifications off. True when queued now."""
        blocked = conn.execute(select(blocked_chats.c.user_id)
                               .where(blocked_chats.c.user_id == user_id)).first()
        if blocked is not None:
            self._counters.incr("blocked")
            return False
        document = self._profile(user_id)
        if document is None:
            self._counters.incr("unknown_user")
            return False
        if not document.notifications:
            self._counters.incr("off")
            return False
        queued = insert_if_absent(conn, notifications, {
            "cause": cause, "user_id": user_id, "kind": key,
            "text": notification_text(key, document.language, **values),
            "created_at": datetime.now(UTC),
        })
        if queued:
            self._counters.incr("queued")
            self._wake()
        return queued


def notifications_group(name: str, rules: NotificationRules) -> ConsumerGroup:
    """The consumer group ``name`` that queues notifications by ``rules``."""
    handlers = Handlers()
    handlers.on(UserInteraction, rules.on_interaction)
    handlers.on(SubscriptionChanged, rules.on_subscription)
    return ConsumerGroup(name, handlers)
