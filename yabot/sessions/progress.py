"""What a session keeps of its user's progress across incarnations and processes: the event
``seq`` (reserved from the store in blocks) and the window of handled update ids."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import structlog

from yabot.stores.repositories import UserProgress

log = structlog.get_logger("yabot.sessions")

#: Seqs a session reserves at a time. A clean stop gives the unused ones back; a crash (or a
#: lost partition) leaves at most this many unused, a gap the event consumers' ordering
#: buffer skips after its gap timeout.
SEQ_BLOCK = 64


class EventSeqs:
    """The user's next event seqs: strictly increasing for the user across incarnations,
    restarts and owners (the store hands each block out once), gap-free within an
    incarnation and across clean stops."""

    def __init__(self, user_id: int, progress: Callable[[], UserProgress],
                 block: int = SEQ_BLOCK) -> None:
        self._user_id = user_id
        self._progress = progress
        self._block = block
        self._used = 0  # the last seq handed out
        self._reserved = 0  # the highest seq reserved; 0: none yet

    def peek(self) -> int:
        """The next seq (reserving a block when the current one is used up); raises
        `StoreUnavailable` when the store cannot reserve."""
        if self._used >= self._reserved:
            high = self._progress().reserve_seq(self._user_id, self._block)
            self._used, self._reserved = high - self._block, high
        return self._used + 1

    def advance(self) -> None:
        """The seq `peek` returned is used."""
        self._used += 1

    def release(self) -> None:
        """Give back the unused rest of the block (at the session's stop). Never raises."""
        if self._reserved <= self._used:
            return
        try:
            self._progress().release_seq(self._user_id, self._reserved, self._used)
        except Exception:
            log.warning("unused event seqs not given back (a gap for consumers to skip)",
                        user_id=self._user_id, exc_info=True)
        self._reserved = self._used


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
