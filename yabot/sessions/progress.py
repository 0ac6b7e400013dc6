"""What a session keeps of its user's progress across incarnations and processes: the window
of handled update ids. (The user's event ``seq`` is allocated by the store, with each change:
`yabot.stores.outbox`.)"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import structlog

from yabot.stores.repositories import UserProgress

log = structlog.get_logger("yabot.sessions")

class HandledUpdates:
    """The user's newest handled update ids, read from the store once per incarnation."""

    def __init__(self, user_id: int, progress: Callable[[], UserProgress], window: int) -> None:
        self._user_id = user_id
        self._progress = progress
        self._window = window
        self._ids: deque[int] | None = None

    def _loaded(self) -> deque[int]:
        if self._ids is None:
            self._ids = deque(self._progress().handled_updates(self._user_id),
                              maxlen=self._window)
        return self._ids

    def seen(self, update_id: int) -> bool:
        """Whether ``update_id`` was recorded; False when the store cannot say."""
        try:
            return update_id in self._loaded()
        except Exception:
            log.warning("handled updates unreadable; handling the update", exc_info=True,
                        user_id=self._user_id, update_id=update_id)
            return False

    def record(self, update_id: int) -> None:
        """Remember ``update_id`` (in the store, then here). Never raises."""
        try:
            self._progress().record_update(self._user_id, update_id, self._window)
        except Exception:
            log.warning("handled update not recorded", exc_info=True, user_id=self._user_id,
                        update_id=update_id)
            return
        if self._ids is not None and update_id not in self._ids:
            self._ids.append(update_id)
