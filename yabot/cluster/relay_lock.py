"""One outbox relay at a time across processes: a lock in Redis around each drain.

Every process runs an `yabot.events.relay.OutboxRelay` on the same ``event_outbox`` table.
Without coordination, relays woken at once read the same oldest rows and XADD them each
(consumers deduplicate by ``event_id``, so nothing breaks, but every copy is waste, and a
batch relayed twice can interleave with the next). With this lock a relay drains only while
it holds ``{stream}:relay-lock``: taken at the start of a drain (``SET NX PX``, the same
acquire script and growing fencing token as the partition leases), renewed before each batch
(it stops at once if another process holds it), given back at the end.

Why per drain and not a standing lease: the relay is woken by its own process's commits. A
standing lease would leave the rows other processes commit to the holder's next periodic
drain (``EVENTS_REPLAY_INTERVAL``). A relay that finds the lock taken retries it every
``retry`` seconds for one replay interval, so rows committed while another relay was
finishing are relayed at once rather than at the next interval.

A holder that dies mid-drain keeps the lock until its TTL (``LEASE_TTL``) runs out; then any
relay takes it (takeover on death). A holder paused past the TTL may send one more batch after
it resumes (the renewal before each batch catches it at the next one): duplicates stay
possible in that case only, and consumers still drop them by ``event_id``.
"""

from __future__ import annotations

from typing import Any

import redis

from yabot.cluster.ownership import _ACQUIRE, _RELEASE, _RENEW


class RelayLock:
    """The relay lock for one holder (``name``, unique per process) on ``client``."""

    def __init__(self, client: redis.Redis, key: str, name: str, ttl: float) -> None:
        self._client = client
        self._key = key
        self._fence = f"{key}:fence"
        self._name = name
        self._ttl_ms = int(ttl * 1000)
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._value: str | None = None
        #: Drains this process began holding the lock (for tests and logs).
        self.acquired = 0

    def acquire(self) -> bool:
        """Take the lock if nobody holds it; True when this process holds it now."""
        token = int(self._acquire(keys=[self._key, self._fence],
                                  args=[self._name, self._ttl_ms]))
        if not token:
            return False
        self._value = f"{self._name}|{token}"
        self.acquired += 1
        return True

    def renew(self) -> bool:
        """Extend the lock; False when it is no longer this process's (it expired)."""
        if self._value is None:
            return False
        renewed: Any = self._renew(keys=[self._key], args=[self._ttl_ms, self._value])
        if not int(renewed[0]):
            self._value = None
            return False
        return True

    def release(self) -> None:
        """Give the lock back (only if it is still this process's)."""
        value, self._value = self._value, None
        if value is not None:
            self._release(keys=[self._key], args=[value])
