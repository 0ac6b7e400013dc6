"""Partition ownership: every partition has at most one owning process at a time.

With Redis (`RedisOwnership`): each process announces itself with a heartbeat in
``{prefix}:members`` (a sorted set scored by expiry, on Redis's clock) and holds the leases
``{prefix}:lease:{p}`` of its fair share of the partitions. A lease is a key with a TTL whose
value names the owner and its fencing token; the token comes from ``{prefix}:fence:{p}``,
incremented at every acquisition, so it grows at each takeover.

Every ``LEASE_RENEW_INTERVAL`` a process renews its heartbeat and leases, computes its share
from the live members (sorted by name: the first ``P mod N`` get one more), gives back what
exceeds it (after what it is handling of those partitions finishes) and takes free leases up
to it. A process that joins gets its share within two renewals; one that dies loses its
leases when their TTL runs out, and the others take them at their next renewal, so a
partition is owned again within ``LEASE_TTL + LEASE_RENEW_INTERVAL``.

Fencing in time: a process counts a lease valid only until ``t0 + LEASE_TTL -
LEASE_SAFETY_MARGIN``, where ``t0`` is when it *sent* the renewal that Redis granted. Redis
expires the key no sooner than ``LEASE_TTL`` after it *received* that renewal, so a process
that cannot renew (paused, cut off) stops handling the partition before the lease can be
granted to anyone else. `owns` checks the clock at each call, so a process resumed after a
pause sees at once that it owns nothing.

Without Redis (`LocalOwnership`) the one process owns every partition.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import redis
import structlog

log = structlog.get_logger("yabot.cluster")

_HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""

_ACQUIRE = """
local held = redis.call('GET', KEYS[1])
if held then
  return 0
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. token, 'PX', ARGV[2])
return token
"""

# KEYS: the leases; ARGV[1]: ttl ms, ARGV[2..]: the values they must hold. 1 renewed, 0 lost.
_RENEW = """
local renewed = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[i + 1] then
    redis.call('PEXPIRE', key, ARGV[1])
    renewed[i] = 1
  else
    renewed[i] = 0
  end
end
return renewed
"""

# KEYS[1]: a lease. The address its holder advertises, or nil.
_OWNER_ADDRESS = """
local held = redis.call('GET', KEYS[1])
if not held then
  return nil
end
local owner = string.match(held, '^(.*)|%d+$')
return redis.call('GET', ARGV[1] .. owner)
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Ownership(Protocol):
    """Which partitions this process handles now."""

    def owned(self) -> list[int]:
        """The partitions whose users this process handles at this instant."""

    def owns(self, partition: int) -> bool:
        """Whether this process may handle ``partition``'s users at this instant."""

    def tokens(self) -> dict[int, int]:
        """The fencing token of every partition held (owned or being given back)."""

    def start(self) -> None: ...

    def stop(self) -> None:
        """Give every lease back (call after the work in flight finished)."""


class LocalOwnership:
    """One process, no Redis: every partition, always."""

    def __init__(self, partitions: int) -> None:
        self._all = list(range(partitions))

    def owned(self) -> list[int]:
        return list(self._all)

    def owns(self, partition: int) -> bool:
        return True

    def tokens(self) -> dict[int, int]:
        return dict.fromkeys(self._all, 0)

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


@dataclass
class _Lease:
    token: int
    valid_until: float  # monotonic
    draining: bool = False  # being given back: renewed, not handled

    def value(self, name: str) -> str:
        return f"{name}|{self.token}"


def fair_share(partitions: int, members: Sequence[str], name: str) -> int:
    """How many partitions ``name`` should own among ``members`` (sorted): ``P // N``, one
    more for the first ``P mod N``."""
    if name not in members:
        return 0
    index, count = sorted(members).index(name), len(members)
    return partitions // count + (1 if index < partitions % count else 0)


class RedisOwnership:
    """Leases, heartbeats and fair shares in Redis (see the module docstring).

    ``lost(partitions)`` is called (on the renewal thread) when partitions stop being owned,
    so the caller drops those users' sessions and cached state; ``busy(partition)`` says how
    many of the partition's entries are being handled, so a lease given back on rebalancing
    is released only once they finished.
    """

    def __init__(
        self,
        client: redis.Redis,
        name: str,
        *,
        partitions: int,
        prefix: str,
        ttl: float,
        renew_interval: float,
        safety_margin: float,
        lost: Callable[[list[int]], None] = lambda partitions: None,
        busy: Callable[[int], int] = lambda partition: 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._client = client
        self._partitions = partitions
        self._prefix = prefix
        self._ttl = ttl
        self._ttl_ms = int(ttl * 1000)
        self._interval = renew_interval
        self._margin = safety_margin
        self._lost = lost
        self._busy = busy
        self._clock = clock
        self._leases: dict[int, _Lease] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="partition-leases", daemon=True)
        self._heartbeat = client.register_script(_HEARTBEAT)
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._owner_address = client.register_script(_OWNER_ADDRESS)
        #: Where this process serves forwarded asks (advertised with each heartbeat).
        self.address: str | None = None
        #: Counters for /metrics.
        self.takeovers = 0
        self.members: list[str] = []

    # -- what the rest of the process asks --------------------------------------------------

    def owned(self) -> list[int]:
        now = self._clock()
        with self._lock:
            return sorted(p for p, lease in self._leases.items()
                          if not lease.draining and now < lease.valid_until)

    def owns(self, partition: int) -> bool:
        lease = self._leases.get(partition)
        return lease is not None and not lease.draining and self._clock() < lease.valid_until

    def tokens(self) -> dict[int, int]:
        with self._lock:
            return {p: lease.token for p, lease in self._leases.items()}

    def owner_address(self, partition: int) -> str | None:
        """Where the process holding ``partition``'s lease serves forwarded asks; None while
        nobody holds it (it is moving)."""
        found: Any = self._owner_address(keys=[self._lease_key(partition)],
                                         args=[f"{self._prefix}:node:"])
        return None if found is None else _text(found)

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Join, and take a first share before returning (best effort: Redis may be down)."""
        try:
            self.tick()
        except redis.exceptions.RedisError as exc:
            log.warning("partition leases: Redis unreachable at start", error=type(exc).__name__)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(self._interval + self._ttl)
        with self._lock:
            leases, self._leases = dict(self._leases), {}
        try:
            for partition, lease in leases.items():
                self._release(keys=[self._lease_key(partition)], args=[lease.value(self.name)])
            self._client.zrem(self._members_key, self.name)
        except redis.exceptions.RedisError as exc:
            log.warning("partition leases not given back; they expire", error=type(exc).__name__)
        if leases:
            log.info("partition leases given back", partitions=sorted(leases))

    # -- the renewal thread -----------------------------------------------------------------

    @property
    def _members_key(self) -> str:
        return f"{self._prefix}:members"

    def _lease_key(self, partition: int) -> str:
        return f"{self._prefix}:lease:{partition}"

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            try:
                self.tick()
            except Exception as exc:
                log.warning("partition leases not renewed", error=type(exc).__name__,
                            detail=str(exc)[:200])
                self._expire_overdue()

    def _expire_overdue(self) -> None:
        """Forget leases whose validity ran out (Redis did not answer in time)."""
        now = self._clock()
        with self._lock:
            gone = [p for p, lease in self._leases.items() if now >= lease.valid_until]
            for partition in gone:
                del self._leases[partition]
        if gone:
            log.warning("partitions lost: leases not renewed in time", partitions=gone)
            self._lost(gone)

    def tick(self) -> None:
        """One round: heartbeat, renew, give back the excess, take up to the fair share."""
        sent = self._clock()
        members = [_text(m) for m in self._heartbeat(keys=[self._members_key],
                                                      args=[self.name, self._ttl_ms])]
        if self.address is not None:
            self._client.set(f"{self._prefix}:node:{self.name}", self.address, px=self._ttl_ms)
        self.members = members
        self._renew_held(sent)
        target = fair_share(self._partitions, members, self.name)
        with self._lock:
            held = sorted(self._leases)
        if len(held) > target:
            self._give_back(held, len(held) - target)
        elif len(held) < target:
            self._take(target - len(held), sent)
        self._finish_draining()

    def _renew_held(self, sent: float) -> None:
        with self._lock:
            held = dict(self._leases)
        if not held:
            return
        partitions = sorted(held)
        renewed: Any = self._renew(keys=[self._lease_key(p) for p in partitions],
                                   args=[self._ttl_ms, *(held[p].value(self.name)
                                                         for p in partitions)])
        lost: list[int] = []
        with self._lock:
            for partition, ok in zip(partitions, renewed, strict=True):
                lease = self._leases.get(partition)
                if lease is None:
                    continue
                if int(ok):
                    lease.valid_until = sent + self._ttl - self._margin
                else:
                    del self._leases[partition]
                    lost.append(partition)
        if lost:
            log.warning("partitions lost: leases held by another process", partitions=lost)
            self._lost(lost)
        self._expire_overdue()

    def _give_back(self, held: list[int], excess: int) -> None:
        with self._lock:
            draining = [p for p in reversed(held) if not self._leases[p].draining][:excess]
            for partition in draining:
                self._leases[partition].draining = True
        if draining:
            log.info("partitions given back for balance", partitions=sorted(draining))
            self._lost(draining)

    def _finish_draining(self) -> None:
        with self._lock:
            done = [(p, lease) for p, lease in self._leases.items()
                    if lease.draining and self._busy(p) == 0]
        for partition, lease in done:
            self._release(keys=[self._lease_key(partition)], args=[lease.value(self.name)])
            with self._lock:
                self._leases.pop(partition, None)

    def _take(self, wanted: int, sent: float) -> None:
        keys = [self._lease_key(p) for p in range(self._partitions)]
        values = self._client.mget(keys)
        taken: list[int] = []
        for partition, value in enumerate(values):
            if len(taken) >= wanted:
                break
            if value is not None or partition in self._leases:
                continue
            token = int(self._acquire(keys=[keys[partition], f"{self._prefix}:fence:{partition}"],
                                      args=[self.name, self._ttl_ms]))
            if token:
                with self._lock:
                    self._leases[partition] = _Lease(token, sent + self._ttl - self._margin)
                taken.append(partition)
                self.takeovers += 1
        if taken:
            log.info("partitions taken", partitions=taken,
                     tokens=[self._leases[p].token for p in taken])


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
