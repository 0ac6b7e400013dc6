"""Per-user ordering of events by ``seq``: hold what arrives early, skip gaps that stay open."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import structlog

from yabot.events.counters import EventCounters, event_counters

log = structlog.get_logger("yabot.events.ordering")

T = TypeVar("T")


@dataclass
class _Line(Generic[T]):
    """One user's position: the next ``seq`` to release and what arrived ahead of it."""

    expected: int
    last_seen: float
    #: The latest producer time of any item offered on this line.
    latest_at: float
    held: dict[int, list[T]] = field(default_factory=dict)
    gap_since: float | None = None


class OrderingBuffer(Generic[T]):
    """Releases each user's items in ``seq`` order. Pure: no I/O, no threads; time is injected.

    Rules, per user:
    - The first item seen for a user sets where its line starts (a process that starts or
      restarts has no memory of earlier seqs).
    - ``seq == expected`` is released at once, with every held item that now follows on.
    - ``seq > expected`` is held. If the line then makes no progress for ``gap_timeout``
      seconds (timed from when it last moved), `expire` reports the gap (log +
      ``ordering_gaps`` counter), moves on to the lowest held seq and releases what follows.
    - ``seq == 1`` below ``expected``, produced *after* everything the line has seen (``at``,
      the producer's timestamp, is later), means the user's session started counting again
      (its actor restarted): held items are released, then this one, and the line restarts.
      A ``seq == 1`` produced earlier than something already seen is not a restart but the
      user's first event arriving late (its line started at the second): it is released
      as late and the line keeps its place, so nothing after it waits on a gap that does
      not exist.
    - Any other ``seq < expected`` is late (its gap was skipped, or it is a redelivery) and
      is released at once; consumers deduplicate by event id. Counted as ``ordering_late``.

    A user with nothing held and no item for ``idle_ttl`` seconds is forgotten. Not
    thread-safe: one consumer thread owns a buffer.
    """

    def __init__(
        self,
        gap_timeout: float,
        clock: Callable[[], float],
        *,
        idle_ttl: float = 600.0,
        counters: EventCounters = event_counters,
    ) -> None:
        self._gap_timeout = gap_timeout
        self._clock = clock
        self._idle_ttl = idle_ttl
        self._counters = counters
        self._lines: dict[int, _Line[T]] = {}

    @property
    def held(self) -> int:
        return sum(len(items) for line in self._lines.values() for items in line.held.values())

    def offer(self, user_id: int, seq: int, item: T, at: float) -> list[T]:
        """Take ``item``, produced at ``at`` (the producer's clock, e.g. the event's
        ``occurred_at`` as a timestamp); return the items released now, in handling order."""
        now = self._clock()
        line = self._lines.get(user_id)
        if line is None:
            line = self._lines[user_id] = _Line(expected=seq, last_seen=now, latest_at=at)
        line.last_seen = now
        produced_after_all_seen = at > line.latest_at
        line.latest_at = max(line.latest_at, at)
        if seq == line.expected:
            released = [item]
            line.expected += 1
            released += self._follow_on(line, now)
            return released
        if seq > line.expected:
            # The same seq twice is a redelivery: both are released together, dedup decides.
            line.held.setdefault(seq, []).append(item)
            if line.gap_since is None:
                line.gap_since = now
            return []
        if seq == 1 and produced_after_all_seen:
            log.info("sequence restarted", user_id=user_id, after=line.expected - 1)
            self._counters.incr("ordering_restarts")
            released = [held for s in sorted(line.held) for held in line.held[s]]
            released.append(item)
            line.held.clear()
            line.expected = 2
            line.gap_since = None
            return released
        self._counters.incr("ordering_late")
        return [item]

    def expire(self) -> list[T]:
        """Skip gaps open longer than the timeout; forget idle users; return what is released."""
        now = self._clock()
        released: list[T] = []
        for user_id, line in list(self._lines.items()):
            if line.gap_since is not None and now - line.gap_since >= self._gap_timeout:
                resume = min(line.held)
                log.warning(
                    "ordering gap skipped", user_id=user_id, missing_from=line.expected,
                    missing_to=resume - 1, waited_s=round(now - line.gap_since, 3),
                )
                self._counters.incr("ordering_gaps")
                self._counters.incr("ordering_skipped_seqs", resume - line.expected)
                line.expected = resume
                released += self._follow_on(line, now)
            elif not line.held and now - line.last_seen >= self._idle_ttl:
                del self._lines[user_id]
        return released

    def _follow_on(self, line: _Line[T], now: float) -> list[T]:
        released = []
        while line.expected in line.held:
            released += line.held.pop(line.expected)
            line.expected += 1
        # A gap that remains is a new one (an earlier one was filled or skipped): time it anew.
        line.gap_since = now if line.held else None
        return released
