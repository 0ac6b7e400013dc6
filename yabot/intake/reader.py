"""IntakeReader: reads the partitions this process owns and hands each entry on, in order.

One thread reads (resume what a partition left pending, then new entries), another
acknowledges what the consumer reports handled, in batches. The reader never hands out more
than ``max_in_flight`` entries not yet acknowledged: the backlog waits in the durable log,
not in memory.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence

import structlog

from yabot.intake.entries import Delivery, Intake
from yabot.stores.retry import RetryPolicy, retry_call

log = structlog.get_logger("yabot.intake")

ACK_BATCH = 500
#: Acknowledging a batch: six calls at most (the first and five retries), then it is left to
#: be handed out again after a restart.
ACK_POLICY = RetryPolicy(attempts=6, base_delay=0.05, max_delay=2.0)
STOP_TIMEOUT = 10.0


class IntakeReader:
    """Hands ``intake``'s entries of the partitions ``owned()`` names to ``deliver``.

    Guarantees: entries of one partition reach ``deliver`` in log order, and a partition's
    pending entries (left by a crash or by its previous owner) before its new ones. The
    consumer calls `done` once it has handled an entry; only then is it acknowledged, so an
    entry handed out but not handled is handed out again after a crash or takeover
    (at least once: consumers skip what they handled already).

    ``deliver`` runs on the reader's thread and must not block (hand the entry to a queue).
    """

    def __init__(
        self,
        intake: Intake,
        owned: Callable[[], Sequence[int]],
        deliver: Callable[[Delivery], None],
        *,
        read_count: int = 100,
        read_block: float = 0.2,
        max_in_flight: int = 1024,
        stale_after: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._intake = intake
        self._owned = owned
        self._deliver = deliver
        self._read_count = read_count
        self._read_block = read_block
        self._max_in_flight = max_in_flight
        self._stale_after = stale_after
        self._clock = clock
        self._next_sweep = clock() + stale_after
        self._in_flight = 0
        self._room = threading.Condition()
        self._acks: queue.SimpleQueue[Delivery | None] = queue.SimpleQueue()
        self._stopping = threading.Event()
        #: Partitions resumed since they were last taken, and how often each was lost
        #: (`forget`), under one lock: the ownership thread forgets while this one resumes.
        self._resumed: set[int] = set()
        self._losses: dict[int, int] = {}
        self._resumed_lock = threading.Lock()
        #: The partitions of the read in progress (see `reading`).
        self._reading: frozenset[int] = frozenset()
        self._backoff = RetryPolicy(base_delay=0.05, max_delay=2.0)
        self._threads = [
            threading.Thread(target=self._read_loop, name="intake-reader", daemon=True),
            threading.Thread(target=self._ack_loop, name="intake-acker", daemon=True),
        ]
        #: Counters for /metrics.
        self.delivered = 0
        self.acknowledged = 0

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop_reading(self) -> None:
        """Hand out nothing more (entries not read stay in the log); returns once the
        reading thread ended."""
        self._stopping.set()
        with self._room:
            self._room.notify_all()
        if self._threads[0].is_alive():
            self._threads[0].join(STOP_TIMEOUT)

    def stop(self) -> None:
        """Stop reading; acknowledge what was reported done; leave the rest pending."""
        self.stop_reading()
        self._acks.put(None)
        if self._threads[1].is_alive():
            self._threads[1].join(STOP_TIMEOUT)

    def done(self, delivery: Delivery) -> None:
        """``delivery`` is handled: acknowledge it (soon, in a batch). Any thread."""
        self._acks.put(delivery)

    def abandon(self, delivery: Delivery) -> None:
        """``delivery`` will not be handled here (its partition moved): it stays pending for
        the partition's next owner. Any thread."""
        with self._room:
            self._in_flight -= 1
            self._room.notify_all()

    def forget(self, partitions: Sequence[int]) -> None:
        """These partitions were lost: take them over afresh (resume) if they come back."""
        with self._resumed_lock:
            self._resumed.difference_update(partitions)
            for partition in partitions:
                self._losses[partition] = self._losses.get(partition, 0) + 1

    def reading(self, partition: int) -> bool:
        """Whether a pass over ``partition`` (resume, stale sweep, read) is in progress:
        entries it returns are handed out (and, if the partition left meanwhile, abandoned:
        pending in this reader's name).
        A partition given back must not be released before such a read ended, or its next
        owner could claim the pending entries before these join them, and meet these only
        at its stale sweep — after entries appended later (out of order)."""
        return partition in self._reading

    @property
    def in_flight(self) -> int:
        return self._in_flight

    # -- the threads -----------------------------------------------------------------------

    def _read_loop(self) -> None:
        # Not `retry_call`: a loop that never gives up (it waits out any outage until stopped),
        # with `RetryPolicy`'s delays.
        failures = 0
        while not self._stopping.is_set():
            try:
                self._read_once()
                failures = 0
            except Exception as exc:
                failures += 1
                delay = self._backoff.delay(failures)
                log.warning("intake read failed; retrying", error=type(exc).__name__,
                            detail=str(exc)[:200], retry_in=round(delay, 2))
                self._stopping.wait(delay)

    def _read_once(self) -> None:
        with self._room:
            while self._in_flight >= self._max_in_flight and not self._stopping.is_set():
                self._room.wait(self._read_block)
        if self._stopping.is_set():
            return
        # Announce the pass, then look again at what is owned: a partition given back after
        # that look is seen as being read (`reading`) until the pass ends, one given back
        # before it is not touched. The whole pass — resume, stale sweep, read — is covered:
        # a resume or a sweep run for a partition already given back would claim its pending
        # entries after the next owner resumed them, and leave them to its stale sweep.
        self._reading = frozenset(self._owned())
        try:
            owned = [p for p in self._owned() if p in self._reading]
            if not owned:
                self._stopping.wait(self._read_block)
                return
            self._resume(owned)
            self._sweep(owned)
            room = self._max_in_flight - self._in_flight
            if room > 0:
                found = self._intake.read(owned, min(room, self._read_count),
                                          self._read_block)
                self._hand_out(found)
        finally:
            self._reading = frozenset()

    def _resume(self, owned: Sequence[int]) -> None:
        """Hand out what each newly owned partition left pending, before anything new."""
        for partition in owned:
            with self._resumed_lock:
                if partition in self._resumed:
                    continue
                losses = self._losses.get(partition, 0)
            pending = self._intake.resume(partition)
            if pending:
                log.info("resuming pending intake entries", partition=partition,
                         entries=len(pending))
            self._hand_out(pending)
            with self._resumed_lock:
                # Lost (`forget`) during the resume: it must be resumed afresh if it comes
                # back, or what its interim owner left pending waits for the stale sweep.
                if self._losses.get(partition, 0) == losses:
                    self._resumed.add(partition)

    def _sweep(self, owned: Sequence[int]) -> None:
        if self._clock() < self._next_sweep:
            return
        self._next_sweep = self._clock() + self._stale_after
        for partition in owned:
            stale = self._intake.claim_stale(partition, self._stale_after)
            if stale:
                # A reader that lost the partition read these after its owner took it
                # over; whatever of them was handled already is skipped downstream.
                log.warning("claimed stale intake entries", partition=partition,
                            entries=len(stale))
                self._hand_out(stale)

    def _hand_out(self, deliveries: Sequence[Delivery]) -> None:
        for delivery in deliveries:
            with self._room:
                self._in_flight += 1
            self.delivered += 1
            self._deliver(delivery)

    def _ack_loop(self) -> None:
        stop = False
        while not stop:
            first = self._acks.get()
            batch: list[Delivery] = []
            if first is None:
                stop = True
            else:
                batch.append(first)
            while len(batch) < ACK_BATCH:
                try:
                    more = self._acks.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                else:
                    batch.append(more)
            if batch:
                self._ack(batch)

    def _ack(self, batch: list[Delivery]) -> None:
        try:
            retry_call(lambda: self._intake.ack(batch), is_transient=lambda _error: True,
                       policy=ACK_POLICY, sleep=self._stopping.wait, what="intake ack")
        except Exception as exc:
            # Unacknowledged entries are handed out again after a restart; the consumer
            # skips what it handled already. Nothing is lost.
            log.error("intake entries not acknowledged", entries=len(batch),
                      error=type(exc).__name__)
        self.acknowledged += len(batch)
        with self._room:
            self._in_flight -= len(batch)
            self._room.notify_all()
