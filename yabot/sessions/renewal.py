"""Keeping idle sessions' state snapshots fresh by checking them against the stores in bulk.

A session answers `GetState` from the context it read last, for at most
``ACTORS_SESSION_STATE_MAX_AGE`` seconds: the bound on how long a change made behind its back
(another process on the same database, an operator's edit) can go unseen. Without renewal
every context is read again through its session once it is that old. Those re-reads cost the
server about eight times an answer from the snapshot (a trip through the session's worker
and a request thread on top of the read, each thread waiting for the GIL the event loop
holds), and they come in bursts: contexts read together (after a deploy, a sweep) expire
together.

`ContextRenewal` runs every quarter of the max age on a thread of its own. It takes the
snapshots that expire before its next pass but one (`KeyedActors.expiring`), reads their
users' contexts again a few hundred at a time (`read_user_contexts`: one statement on the
SQL stores; with MongoDB one query and two statements), and renews each whose context still
reads the same, until its check plus the max age (`KeyedActors.renew`). So a change behind a
session's back is still seen within the max age of being made; a context that differs is
left to expire and be read again by its session. Only idle sessions' latest snapshots are
renewed, and renewing is not a use: a session nobody reads still passivates.
"""

from __future__ import annotations

import structlog

from actors import KeyedActors
from yabot.errors import StoreUnavailable
from yabot.periodic import PeriodicThread
from yabot.sessions.session import UserSession
from yabot.stores.context import UserContext, read_user_contexts
from yabot.stores.handles import Stores

log = structlog.get_logger("yabot.sessions.renewal")

#: Users whose contexts one statement reads (each id is a bound parameter).
BATCH = 500


class ContextRenewal:
    """Renews the sessions' snapshots whose contexts the stores still hold unchanged."""

    def __init__(self, sessions: KeyedActors[int, UserSession], stores: Stores,
                 max_age: float) -> None:
        self._sessions = sessions
        self._stores = stores
        self._max_age = max_age
        self._interval = max_age / 4
        self._thread: PeriodicThread | None = None

    def start(self) -> None:
        """Run a pass every quarter of the max age (none with no max age: nothing is kept)."""
        if self._max_age > 0 and self._thread is None:
            self._thread = PeriodicThread("context-renewal", self._interval, self.renew)
            self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.stop()

    def renew(self) -> tuple[int, int]:
        """One pass: (snapshots checked, snapshots renewed). A store that fails ends the pass
        (logged): those snapshots expire and their sessions read again, as without renewal.
        """
        # Anything expiring before the pass after next: each is checked at least once while
        # it is still fresh, even when a pass runs late.
        expiring = self._sessions.expiring(2 * self._interval)
        checked = renewed = 0
        for start in range(0, len(expiring), BATCH):
            batch = expiring[start:start + BATCH]
            checked_at = self._sessions.now()  # before the read: a change after it is unseen
            try:
                stored = read_user_contexts(self._stores, [user_id for user_id, _ in batch])
            except StoreUnavailable as exc:
                log.warning("context renewal stopped: a store is unavailable", error=str(exc))
                break
            checked += len(batch)
            for user_id, snapshot in batch:
                held = snapshot.basis
                if (isinstance(held, UserContext) and stored.get(user_id) == held
                        and self._sessions.renew(user_id, snapshot, checked_at, self._max_age)):
                    renewed += 1
        if expiring:
            log.debug("contexts renewed", checked=checked, renewed=renewed)
        return checked, renewed
