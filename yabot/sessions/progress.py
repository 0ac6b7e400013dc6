"""What a session keeps of its user's progress across incarnations and processes: the window
of handled update ids. (The user's event ``seq`` is allocated by the store, with each change:
`yabot.stores.outbox`.)

An update that changed the user is in the stored window from the change's own write on (the
change's drafts carry it: `yabot.events.drafts.handling_update`); the session then records
it with the update's own events (`RecordUpdate`), and only an update of someone with no
user record, or one recorded while the store fails, goes through `HandledUpdates.record`."""

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
        """Remember ``update_id`` in the store on its own, then here. Never raises."""
        try:
            self._progress().record_update(self._user_id, update_id, self._window)
        except Exception:
            log.warning("handled update not recorded", exc_info=True, user_id=self._user_id,
                        update_id=update_id)
        self.remember(update_id)

    def remember(self, update_id: int) -> None:
        """Remember here that ``update_id`` was handled (the store has it, or could not take
        it: this incarnation handled it either way, and skips it if it comes again)."""
        if self._ids is not None:
            if update_id in self._ids:
                self._ids.remove(update_id)
            self._ids.append(update_id)
