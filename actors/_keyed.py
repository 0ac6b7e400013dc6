"""KeyedActors: one virtual actor per key (e.g. per Telegram user) — a mailbox and a state
object, run by a bounded pool of worker threads — activated on demand, passivated when idle,
capped in number, and contained when it keeps failing.

No key has a thread. A key is a *cell*: its mailbox (a deque) and, while active, its state
object (an `Actor` built by the registry's factory, without pykka's inbox and thread: see
`actors._actor.build_keyed`). A cell with messages is put on the registry's `Dispatcher` run
queue once; a worker handles up to ``batch`` of its messages and puts it back at the end of
the queue when more are waiting. So per key messages are handled one at a time in send order,
keys take turns, and the process's thread count is the pool size plus a constant whatever the
number of keys (measured: 100,000 live keys, 10 messages each from 8 threads, no extra thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, TypeVar

import structlog

from actors._actor import DEFAULT_START_TIMEOUT, Actor, build_keyed
from actors._ask import reply_on_loop, tell
from actors._dispatcher import Dispatcher
from actors._errors import (
    ActorDead,
    ActorError,
    AskTimeout,
    Overloaded,
    Parked,
    Quarantined,
    RestartIntensityExceeded,
    SelfAsk,
    StartFailed,
)
from actors._futex import use_global_futex_hash
from actors._message import Ask, Message
from actors._metrics import metrics
from actors._snapshot import Snapshot
from actors._supervisor import ChildSpec, Restart

log = structlog.get_logger("actors.keyed")

K = TypeVar("K", bound=Hashable)
A = TypeVar("A", bound=Actor)
R = TypeVar("R")

Clock = Callable[[], float]
#: Receives an ask's reply: ``reply(value, None)`` or ``reply(None, error)``.
Reply = Callable[[Any, BaseException | None], None]
_Letter = tuple[Message, contextvars.Context, Reply | None]

#: Worker threads of a registry's dispatcher unless said otherwise. Size it for the stores'
#: latency (Little's law): busy workers = messages per second x seconds a message blocks.
DEFAULT_WORKERS = 32
#: Messages of one key handled before the worker moves on to the next key waiting.
DEFAULT_BATCH = 16

_STOP = object()  # in a mailbox: passivate the cell's actor here
_NO_SNAPSHOT = object()  # `_from_snapshot`: the ask must go through the mailbox
_POISON_MEMORY = 16  # failed messages remembered per key
_TROUBLED_MEMORY = 10_000  # released keys whose failures are remembered for their next cell


def _never(error: BaseException) -> bool:
    return False


class _SyncReply:
    """An ask's reply slot for a blocking asker: one lock, released when the answer is in."""

    __slots__ = ("_done", "error", "value")

    def __init__(self) -> None:
        self._done = threading.Lock()
        self._done.acquire()
        self.value: Any = None
        self.error: BaseException | None = None

    def set(self, value: Any, error: BaseException | None) -> None:
        self.value, self.error = value, error
        self._done.release()

    def wait(self, timeout: float) -> bool:
        return self._done.acquire(timeout=max(timeout, 0.0))


class _Cell:
    """One key: its mailbox and, while active, its actor. ``scheduled`` (written under the
    registry lock) is true while the cell is on the run queue or being run, so no two
    workers ever run it; the mailbox itself is a deque, safe to append and pop across threads.
    """

    __slots__ = ("actor", "failures", "fresh_until", "key", "last_handled", "last_sent",
                 "mailbox", "poison", "renewable_until", "restarting", "scheduled", "snapshot",
                 "stopping")

    def __init__(self, key: Any, now: float) -> None:
        self.key = key
        self.mailbox: deque[_Letter | object] = deque()
        self.actor: Actor | None = None
        self.scheduled = False
        self.stopping = False  # in the registry's ``_stopping``: passivation queued
        self.last_sent = now
        self.last_handled = float("-inf")
        self.failures: deque[float] | None = None  # this key's recent failures
        self.poison: dict[str, tuple[int, float]] | None = None  # message -> times, last
        self.restarting = False  # the last incarnation failed: the next one is a restart
        self.snapshot: Snapshot | None = None  # what the actor published after its last message
        self.fresh_until = float("-inf")  # registry clock
        self.renewable_until = float("-inf")  # registry clock: `renew` stops here


@dataclass(frozen=True)
class ParkedMessage:
    """A message set aside as poison: which key, what type, when (registry clock)."""

    key: Hashable
    message_type: str
    at: float


@dataclass(frozen=True)
class KeyedStatus:
    """What a health check reports about a registry (see `KeyedActors.status`)."""

    live: int
    mailbox_depth: int
    quarantined: int
    parked: int
    workers: int


# Which registry and key the current worker thread is running, to refuse a self-ask.
_running = threading.local()


class KeyedActors(Generic[K, A]):
    """One actor per key, built by ``factory(key)`` for the first message of that key.

    Ordering: a message for a key is appended to that key's one mailbox under the registry
    lock, and a worker handles a key's messages one at a time in that order; passivation and
    failures keep the mailbox, so nothing is lost or reordered across incarnations.

    - ``idle_timeout``: a key with no message for this many seconds is passivated (its
      actor's `post_stop` runs, then the actor is dropped) by a background ticker; None keeps
      actors until `stop_all`. The next message builds a new incarnation (`pre_start`).
    - ``max_live``: a cap on live keys (including ones passivating). At the cap a new key
      evicts the least recently used idle key; when none is idle the caller waits up to
      ``start_timeout`` and then gets `Overloaded` (`ask_async` waits off the event loop).
    - ``workers``: the dispatcher's thread count. A handler blocked on a slow call holds one
      worker; other keys run on the rest. A keyed actor must never wait for another keyed
      actor of the same registry (all workers could end up waiting).
    - Failures: an exception while handling a tell, in the factory or in `pre_start` — or
      while answering an ask when ``is_failure(error)`` says so (asks' errors are otherwise
      just replies) — ends the key's incarnation (`post_stop` runs); the key's next message
      starts a fresh one, like a transient child.
    - Containment: a key failing more than ``key_max_failures`` times within ``key_period``
      seconds is quarantined for ``quarantine`` seconds: its pending asks and every new
      message get `Quarantined`, other keys are untouched. A message equal to one that already
      failed its key ``poison_after`` times is parked (`Parked` to the asker, counted in
      metrics, listed by `parked`) instead of handled again.
    - Snapshots: an actor may publish the replies it would give to some asks (`Snapshot`,
      from `Actor.snapshot`, taken after each message before its reply is released). An
      equal ask for a live key that is idle — empty mailbox, no message being handled — and
      whose snapshot is fresh is answered from it in the asker's thread; any other ask takes
      the mailbox as usual. So an ask still sees every message sent before it, and every
      reply released before it; passivation, failure and stop drop the snapshot. A
      snapshot with a ``basis`` may be renewed from outside (`expiring`, `renew`) by whoever
      can check that basis against its source, without a message to the actor.
    - Systemic failure: more than ``max_failures`` *distinct keys* failing within ``period``
      seconds is reported to ``on_intensity_exceeded`` (the keeper actor then fails and its
      supervisor decides), as OTP's restart intensity. One key failing in a loop counts once,
      so it cannot restart the registry or reach the root's limit.

    Thread-safe: any thread may call any method. `ask_async` never blocks the event loop:
    sending is a short critical section and activation happens on a worker.
    """

    def __init__(
        self,
        name: str,
        factory: Callable[[K], A],
        *,
        idle_timeout: float | None = None,
        max_live: int | None = None,
        start_timeout: float = DEFAULT_START_TIMEOUT,
        max_failures: int = 10,
        period: float = 10.0,
        clock: Clock = time.monotonic,
        workers: int = DEFAULT_WORKERS,
        batch: int = DEFAULT_BATCH,
        key_max_failures: int = 5,
        key_period: float = 10.0,
        quarantine: float = 60.0,
        poison_after: int = 3,
        is_failure: Callable[[BaseException], bool] = _never,
    ) -> None:
        if max_live is not None and max_live < 1:
            raise ValueError("max_live must be at least 1")
        if batch < 1:
            raise ValueError("batch must be at least 1")
        use_global_futex_hash()  # the process may still hold many threads (gunicorn, pools)
        self.name = name
        self._factory = factory
        self._idle_timeout = idle_timeout
        self._max_live = max_live
        self._start_timeout = start_timeout
        self._max_failures = max_failures
        self._period = period
        self._clock = clock
        self._batch = batch
        self._key_max_failures = key_max_failures
        self._key_period = key_period
        self._quarantine = quarantine
        self._poison_after = poison_after
        self._is_failure = is_failure
        self._dispatcher: Dispatcher[_Cell] = Dispatcher(name, self._run, workers)
        # Held directly (``with self._lock``): `Condition.__enter__` is a Python call on every
        # ask and snapshot read; waits and notifications go through ``_cond``.
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._cells: OrderedDict[K, _Cell] = OrderedDict()  # least recently sent to first
        self._stopping: dict[K, _Cell] = {}
        self._quarantined: dict[K, float] = {}  # key -> refused until (registry clock)
        self._failing_keys: OrderedDict[K, float] = OrderedDict()  # key -> last failure
        #: A released key's failures, poison list, and whether its next start is a restart.
        self._troubled: OrderedDict[
            K, tuple[deque[float] | None, dict[str, tuple[int, float]] | None, bool]
        ] = OrderedDict()
        self._parked: deque[ParkedMessage] = deque(maxlen=100)
        self._parked_total = 0
        self._room_waiters = 0  # callers waiting for a live key to go
        self._draining = False  # `stop_all` waits for the passivations to finish
        self._closed = False
        self._class_name: str | None = None  # the actors' class, once one was built
        self._ticker: threading.Thread | None = None
        self._ticker_stop = threading.Event()
        metrics.watch(self)
        self.on_intensity_exceeded: Callable[[RestartIntensityExceeded], None] | None = None

    def __len__(self) -> int:
        """Live keys, including those still passivating."""
        with self._lock:
            return len(self._cells) + len(self._stopping)

    def live_keys(self) -> list[K]:
        """Keys with a live cell, least recently used (sent to) first."""
        with self._lock:
            return list(self._cells)

    def live_refs(self) -> list[object]:
        """Opaque handles of the live keys (not pykka refs: a keyed actor has no thread)."""
        with self._lock:
            return list(self._cells.values())

    @property
    def workers(self) -> int:
        """Worker threads running now (at most ``workers``)."""
        return self._dispatcher.threads

    # -- sending ---------------------------------------------------------------------------

    def ask(self, key: K, message: Ask[R], *, timeout: float) -> R:
        """Send ``message`` to ``key``'s actor and block until the reply, at most ``timeout``.

        Raises `AskTimeout` (the message may still be handled later), `ActorDead` (the
        registry is stopped), `Overloaded`, `Quarantined`, `Parked`, `StartFailed`, `SelfAsk`,
        or whatever the actor raised while answering.
        """
        started = time.perf_counter()
        self._refuse_self_ask(key, message)
        published = self._from_snapshot(key, message)
        if published is not _NO_SNAPSHOT:
            metrics.observe_ask(self._class_name or self.name, time.perf_counter() - started,
                                from_snapshot=True)
            return published  # type: ignore[no-any-return]  # the actor's reply to `message`
        reply = _SyncReply()
        try:
            self._post(key, message, reply.set, contextvars.copy_context(), wait=True)
            if not reply.wait(timeout):
                raise AskTimeout(f"{self.name}[{key!r}] did not answer "
                                 f"{type(message).__name__} in {timeout}s")
        finally:
            metrics.observe_ask(self._class_name or self.name, time.perf_counter() - started)
        if reply.error is not None:
            raise reply.error
        result: R = reply.value
        return result

    async def ask_async(self, key: K, message: Ask[R], *, timeout: float) -> R:
        """`ask` from asyncio: awaits the reply and never blocks the event loop (only a wait
        for room at the cap, which is rare, runs on the loop's default executor)."""
        started = time.perf_counter()
        self._refuse_self_ask(key, message)
        published = self._from_snapshot(key, message)
        if published is not _NO_SNAPSHOT:
            metrics.observe_ask(self._class_name or self.name, time.perf_counter() - started,
                                from_snapshot=True)
            return published  # type: ignore[no-any-return]  # the actor's reply to `message`
        loop = asyncio.get_running_loop()
        reply, deliver = reply_on_loop(loop)
        context = contextvars.copy_context()
        try:
            if not self._post(key, message, deliver, context, wait=False):
                await loop.run_in_executor(
                    None, partial(self._post, key, message, deliver, context, wait=True))
            remaining = timeout - (time.perf_counter() - started)
            try:
                result: R = await asyncio.wait_for(reply, max(remaining, 0.0))
            except TimeoutError as exc:
                raise AskTimeout(f"{self.name}[{key!r}] did not answer "
                                 f"{type(message).__name__} in {timeout}s") from exc
            return result
        finally:
            metrics.observe_ask(self._class_name or self.name, time.perf_counter() - started)

    def published(self, key: K, message: Ask[R]) -> R | None:
        """The reply ``key``'s actor published for ``message`` when `ask` would take it from
        the snapshot now (key live and idle, snapshot fresh), else None; never blocks, never
        starts an actor. Counts as an ask answered (and as use of the key), exactly like
        `ask`'s own snapshot path. For asks whose reply is never None."""
        started = time.perf_counter()
        reply = self._from_snapshot(key, message)
        if reply is _NO_SNAPSHOT:
            return None
        metrics.observe_ask(self._class_name or self.name, time.perf_counter() - started,
                            from_snapshot=True)
        result: R = reply
        return result

    def now(self) -> float:
        """The registry's clock (what `renew`'s ``checked_at`` is measured on)."""
        return self._clock()

    def expiring(self, within: float) -> list[tuple[K, Snapshot]]:
        """The live keys whose snapshot has a `Snapshot.basis` and stops being fresh within
        ``within`` seconds (or already has, unreplaced), with that snapshot: what a renewer
        should check against the snapshots' source. Keys being handled are left out (their
        actor publishes again when it is done). Advisory: `renew` checks again under the
        lock, so the cells are looked at outside it (a registry of 100,000 keys is held only
        for the copy of its table)."""
        with self._lock:
            cells = list(self._cells.items())
        until = self._clock() + within
        found = []
        for key, cell in cells:
            snapshot = cell.snapshot
            if (snapshot is not None and snapshot.basis is not None and not cell.scheduled
                    and cell.fresh_until <= until):
                found.append((key, snapshot))
        return found

    def renew(self, key: K, snapshot: Snapshot, checked_at: float, fresh_for: float) -> bool:
        """Keep ``snapshot`` fresh until ``checked_at + fresh_for`` (registry clock; never past
        its `Snapshot.renewable_for`), for a caller that found its basis still true at
        ``checked_at``: only while it is still the key's latest publication (a message
        handled since has replaced it) and the key is idle. Not a use of the key: a renewed
        key still passivates when nothing else uses it. True if renewed."""
        with self._lock:
            cell = self._cells.get(key)
            if cell is None or cell.snapshot is not snapshot or cell.scheduled:
                return False
            cell.fresh_until = max(cell.fresh_until,
                                   min(checked_at + fresh_for, cell.renewable_until))
            return True

    def tell(self, key: K, message: Message) -> None:
        """Send to ``key``'s actor without waiting. Raises `ActorDead` when the registry is
        stopped, `Quarantined` when the key is, `Overloaded` at the cap."""
        self._post(key, message, None, contextvars.copy_context(), wait=True)

    def _refuse_self_ask(self, key: K, message: Message) -> None:
        if getattr(_running, "registry", None) is self and _running.key == key:
            raise SelfAsk(f"{self.name}[{key!r}] asked itself {type(message).__name__}")

    def _from_snapshot(self, key: K, message: Message) -> Any:
        """The reply ``key``'s actor published for ``message``, if the key is idle and its
        snapshot fresh; else `_NO_SNAPSHOT`. Under the lock that `_post` takes, so the answer
        is the actor's state either before or after any message sent concurrently, and the
        read counts as use (it keeps the key from passivation and eviction, as an ask would).
        """
        with self._lock:
            cell = self._cells.get(key)
            # ``scheduled`` is set with the first message in the mailbox and cleared only
            # once the mailbox is empty and no worker runs the cell: not scheduled = idle.
            if cell is None or cell.scheduled or cell.snapshot is None or self._closed:
                return _NO_SNAPSHOT
            now = self._clock()
            if now >= cell.fresh_until:
                return _NO_SNAPSHOT
            reply = cell.snapshot.replies.get(message, _NO_SNAPSHOT)
            if reply is not _NO_SNAPSHOT:
                cell.last_sent = now
                self._cells.move_to_end(key)
            return reply

    def _post(self, key: K, message: Message, reply: Reply | None,
              context: contextvars.Context, *, wait: bool) -> bool:
        """Append to the key's mailbox and schedule it. False when ``wait`` is off and the
        registry is at its cap (nothing was sent)."""
        with self._lock:
            cell = self._cell_for(key, wait)
            if cell is None:
                return False
            cell.mailbox.append((message, context, reply))
            cell.last_sent = self._clock()
            self._cells.move_to_end(key)
            if not cell.scheduled:
                cell.scheduled = True
                self._dispatcher.submit(cell)
        return True

    # -- lifecycle -----------------------------------------------------------------------------

    def passivate_idle(self) -> int:
        """Passivate every key idle for ``idle_timeout``; the ticker calls this. Also forgets
        expired quarantines. Returns how many keys were passivated."""
        if self._idle_timeout is None:
            return 0
        now = self._clock()
        cutoff = now - self._idle_timeout
        with self._lock:
            idle = []
            for key, cell in self._cells.items():
                if cell.last_sent > cutoff:
                    break  # ordered by last send: the rest were used more recently
                if not cell.scheduled and cell.last_handled <= cutoff:
                    idle.append(key)
            for key in idle:
                self._passivate(key)
            for key in [k for k, until in self._quarantined.items() if until <= now]:
                del self._quarantined[key]
        return len(idle)

    def passivate(self, key: K) -> bool:
        """Stop ``key``'s actor once the messages already in its mailbox are handled (callable
        from that actor's own handler); a later message starts a new one. False if ``key`` had
        no live actor."""
        with self._lock:
            if key not in self._cells:
                return False
            self._passivate(key)
            return True

    def stop_all(self, timeout: float = DEFAULT_START_TIMEOUT) -> None:
        """Passivate every key (each finishes the messages sent before), refuse new messages
        until `reopen`, and stop the worker threads."""
        self._ticker_stop.set()
        deadline = time.monotonic() + timeout
        dropped: dict[str, int] = {}
        with self._lock:
            self._closed = True
            cells, self._cells = self._cells, OrderedDict()
            for key, cell in cells.items():
                if not cell.scheduled and _nothing_to_stop(cell.actor):
                    name = self._drop(cell, count_stop=False)  # counted below, in one go
                    if name is not None:
                        dropped[name] = dropped.get(name, 0) + 1
                else:
                    self._cells[key] = cell
                    self._passivate(key)
            ticker, self._ticker = self._ticker, None
            self._draining = True
            try:
                while self._stopping:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        log.error("keyed actors did not stop in time", registry=self.name,
                                  keys=len(self._stopping))
                        break
                    self._cond.wait(remaining)
            finally:
                self._draining = False
        for name, count in dropped.items():
            metrics.stopped(name, count)
        self._dispatcher.stop(max(deadline - time.monotonic(), 0.1))
        if ticker is not None:
            ticker.join(timeout)

    def reopen(self) -> None:
        with self._lock:
            self._closed = False
            self._failing_keys.clear()
            self._ticker_stop.clear()

    def child_spec(self, name: str | None = None) -> ChildSpec:
        """A supervisor child that owns this registry's lifecycle: stopping it stops all keys."""
        return ChildSpec(name or self.name, lambda: KeyedActorsKeeper(self), Restart.PERMANENT)

    # -- what it reports -------------------------------------------------------------------------

    def quarantined(self) -> dict[K, float]:
        """Keys refused now, with the seconds until each is accepted again."""
        now = self._clock()
        with self._lock:
            return {key: until - now for key, until in self._quarantined.items() if until > now}

    def parked(self) -> list[ParkedMessage]:
        """The most recent poison messages set aside (at most 100), oldest first."""
        with self._lock:
            return list(self._parked)

    def status(self) -> KeyedStatus:
        """Counts for a health check; takes the lock once and walks the live keys."""
        with self._lock:
            depth = self._depth()
            parked = self._parked_total
            live = len(self._cells) + len(self._stopping)
        return KeyedStatus(live=live, mailbox_depth=depth, quarantined=len(self.quarantined()),
                           parked=parked, workers=self._dispatcher.threads)

    def gauges(self) -> dict[str, dict[str, int]]:
        """For `actors.metrics`: mailbox depth and quarantined keys, under the actors' class."""
        with self._lock:
            depth = self._depth()
        return {self._class_name or self.name: {"mailbox_depth": depth,
                                                "quarantined": len(self.quarantined())}}

    def _depth(self) -> int:
        cells = list(self._cells.values()) + list(self._stopping.values())
        return sum(len(cell.mailbox) for cell in cells if cell.mailbox)

    # -- internals (call with the lock held unless said otherwise) ------------------------------

    def _cell_for(self, key: K, wait: bool) -> _Cell | None:
        deadline = time.monotonic() + self._start_timeout
        while True:
            if self._closed:
                raise ActorDead(f"{self.name} is stopped")
            until = self._quarantined.get(key)
            if until is not None:
                left = until - self._clock()
                if left > 0:
                    raise Quarantined(f"{self.name}[{key!r}] failed too often; refused for "
                                      f"{left:.0f} s more", retry_after=left)
                del self._quarantined[key]
            cell = self._cells.get(key)
            if cell is not None:
                return cell
            cell = self._stopping.pop(key, None)
            if cell is not None:  # passivating: the new message queues behind its `_STOP`
                cell.stopping = False
                self._cells[key] = cell
                return cell
            if self._max_live is None or len(self._cells) + len(self._stopping) < self._max_live:
                cell = _Cell(key, self._clock())
                history = self._troubled.pop(key, None)
                if history is not None:
                    cell.failures, cell.poison, cell.restarting = history
                self._cells[key] = cell
                self._start_ticker()
                return cell
            if not wait:
                return None
            self._wait_for_room(deadline)

    def _wait_for_room(self, deadline: float) -> None:
        if not self._stopping:  # else a key is on its way out already: wait for it
            lru_idle = next((key for key, cell in self._cells.items() if not cell.scheduled),
                            None)
            if lru_idle is not None:
                self._passivate(lru_idle)
                if len(self._cells) + len(self._stopping) < (self._max_live or 0):
                    return  # dropped in place: room now
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Overloaded(
                f"{self.name}: {self._max_live} live actors, none idle for {self._start_timeout}s"
            )
        self._room_waiters += 1
        try:
            self._cond.wait(remaining)
        finally:
            self._room_waiters -= 1

    def _passivate(self, key: K) -> None:
        cell = self._cells.pop(key)
        if not cell.scheduled and _nothing_to_stop(cell.actor):
            # Idle (an unscheduled cell has an empty mailbox) and no `post_stop` to run:
            # dropped here, without a trip through the run queue.
            self._drop(cell)
            return
        cell.stopping = True
        self._stopping[key] = cell
        cell.mailbox.append(_STOP)
        if not cell.scheduled:
            cell.scheduled = True
            self._dispatcher.submit(cell)

    def _drop(self, cell: _Cell, count_stop: bool = True) -> str | None:
        """Forget an idle cell whose actor has nothing to run on stop; the actor's class."""
        actor, cell.actor = cell.actor, None
        cell.snapshot = None
        if cell.failures or cell.poison:
            self._remember(cell)
        if actor is None:
            return None
        if count_stop:
            metrics.stopped(actor._class_name)
        return actor._class_name

    def _start_ticker(self) -> None:
        if self._idle_timeout is None or self._ticker is not None:
            return
        interval = min(max(self._idle_timeout / 4, 0.01), 1.0)

        def tick() -> None:
            while not self._ticker_stop.wait(interval):
                try:
                    self.passivate_idle()
                except Exception:
                    log.exception("passivation failed", registry=self.name)

        self._ticker = threading.Thread(target=tick, name=f"{self.name}-passivation", daemon=True)
        self._ticker.start()

    # -- on a worker (no lock held on entry) -------------------------------------------------------

    def _run(self, cell: _Cell) -> None:
        """Handle up to ``batch`` of the cell's messages, then reschedule or release it."""
        _running.registry, _running.key = self, cell.key
        try:
            for _ in range(self._batch):
                try:
                    letter = cell.mailbox.popleft()
                except IndexError:
                    break
                if letter is _STOP:
                    self._deactivate(cell, None)
                elif not self._handle(cell, letter):  # type: ignore[arg-type]
                    return  # quarantined: the cell is out of the registry
        finally:
            _running.registry = None
        with self._lock:
            if cell.mailbox:
                self._dispatcher.submit(cell)  # to the back of the queue: other keys first
                return
            cell.scheduled = False
            if cell.actor is None:  # passivated or failed, and nothing waiting: release it
                if cell.stopping:
                    del self._stopping[cell.key]
                    if self._draining and not self._stopping:
                        self._cond.notify_all()
                elif self._cells.get(cell.key) is cell:
                    del self._cells[cell.key]
                if cell.failures or cell.poison:
                    self._remember(cell)
            if self._room_waiters:
                self._cond.notify_all()  # a key went idle or away: room for a new one

    def _handle(self, cell: _Cell, letter: _Letter) -> bool:
        """One message; False when it got the key quarantined."""
        message, context, reply = letter
        actor = cell.actor
        if actor is None:
            try:
                actor = self._activate(cell)
            except Exception as exc:
                error = StartFailed(f"{self.name}[{cell.key!r}] failed to start")
                error.__cause__ = exc
                if reply is not None:
                    reply(None, error)
                return self._failed(cell, exc, message)
        if cell.poison and self._is_poison(cell, message):
            return self._park(cell, message, reply)
        try:
            result = context.run(actor.handle, message)
        except BaseException as exc:  # SystemExit from a handler too: on a worker it would
            # end the worker and strand the key; here it is the key's failure like any other
            self._publish(cell, actor)
            if reply is not None:
                reply(None, exc if isinstance(exc, Exception)
                      else ActorError(f"{self.name}[{cell.key!r}] raised {exc!r}"))
            if reply is None or not isinstance(exc, Exception) or self._is_failure(exc):
                self._deactivate(cell, exc)
                return self._failed(cell, exc, message)
            return True
        finally:
            cell.last_handled = self._clock()
            metrics.handled(actor._class_name)
        self._publish(cell, actor)
        if reply is not None:
            reply(result, None)
        return True

    def _publish(self, cell: _Cell, actor: Actor) -> None:
        """Take the actor's snapshot after a message, before the message's reply is released
        (so an ask sent after the reply reads this snapshot or a later one)."""
        try:
            snapshot = actor.snapshot()
        except Exception:
            log.exception("keyed actor's snapshot failed", registry=self.name, key=cell.key)
            snapshot = None
        if snapshot is not None:
            now = self._clock()
            cell.fresh_until = now + snapshot.fresh_for
            cell.renewable_until = now + snapshot.renewable_for
        cell.snapshot = snapshot

    def _activate(self, cell: _Cell) -> Actor:
        key = cell.key
        actor = build_keyed(lambda: self._factory(key))
        name = actor._class_name
        self._class_name = name
        metrics.started(name)
        if cell.restarting:
            metrics.restarted(name)
            cell.restarting = False
        try:
            actor.pre_start()
        except BaseException:
            metrics.stopped(name)
            raise
        cell.actor = actor
        return actor

    def _deactivate(self, cell: _Cell, failure: BaseException | None) -> None:
        actor, cell.actor = cell.actor, None
        cell.snapshot = None
        if actor is None:
            return
        name = actor._class_name
        if failure is not None:
            metrics.failed(name)
            cell.restarting = True
        try:
            actor.post_stop()
        except Exception:
            log.exception("keyed actor's post_stop failed", registry=self.name, key=cell.key)
        finally:
            metrics.stopped(name)

    def _failed(self, cell: _Cell, error: BaseException | None, message: Message) -> bool:
        """Count a failure of the cell's key (``error`` None: a poison message was parked);
        quarantine the key past its intensity. False if so."""
        now = self._clock()
        failures = cell.failures if cell.failures is not None else deque()
        cell.failures = failures
        while failures and now - failures[0] > self._key_period:
            failures.popleft()
        if error is not None:
            # The traceback once per burst (a key's first failure in its period), then a line.
            log.warning("keyed actor failed", registry=self.name, key=cell.key,
                        message=type(message).__name__, error=repr(error),
                        exc_info=error if not failures else None)
            poison = cell.poison if cell.poison is not None else {}
            cell.poison = poison
            fingerprint = _fingerprint(message)
            times, _last = poison.pop(fingerprint, (0, now))  # re-inserted: most recent last
            poison[fingerprint] = (times + 1, now)
            if len(poison) > _POISON_MEMORY:
                del poison[next(iter(poison))]
        failures.append(now)
        quarantine = len(failures) > self._key_max_failures
        pending: list[object] = []
        with self._lock:
            exceeded = self._count_failing_key(cell.key, now)
            if quarantine:
                pending = list(cell.mailbox)
                cell.mailbox.clear()
                cell.scheduled = False
                self._quarantined[cell.key] = now + self._quarantine
                cell.failures = None  # a fresh count after the quarantine; poison is kept
                self._remember(cell)
                if self._cells.get(cell.key) is cell:
                    del self._cells[cell.key]
                if self._stopping.get(cell.key) is cell:
                    del self._stopping[cell.key]
                    if self._draining and not self._stopping:
                        self._cond.notify_all()
                if self._room_waiters:
                    self._cond.notify_all()
        if quarantine:
            self._reject(cell, pending, now)
        if exceeded is not None and self.on_intensity_exceeded is not None:
            self.on_intensity_exceeded(exceeded)
        return not quarantine

    def _reject(self, cell: _Cell, pending: list[object], now: float) -> None:
        """Stop a quarantined key's actor and answer what was waiting for it."""
        self._deactivate(cell, None)
        told = 0
        error = Quarantined(f"{self.name}[{cell.key!r}] failed too often; refused for "
                            f"{self._quarantine:.0f} s", retry_after=self._quarantine)
        for letter in pending:
            if letter is _STOP:
                continue
            reply: Reply | None = letter[2]  # type: ignore[index]  # a _Letter here
            if reply is None:
                told += 1
            else:
                reply(None, error)
        log.error("keyed actor quarantined: it failed too often", registry=self.name,
                  key=cell.key, failures=self._key_max_failures + 1, period=self._key_period,
                  seconds=self._quarantine, asks_refused=len(pending) - told,
                  tells_dropped=told)

    def _remember(self, cell: _Cell) -> None:
        """Keep a released key's failures and poison list for its next cell, and whether
        that cell's first start is a restart (the last incarnation failed) (lock held)."""
        self._troubled[cell.key] = (cell.failures, cell.poison, cell.restarting)
        self._troubled.move_to_end(cell.key)
        while len(self._troubled) > _TROUBLED_MEMORY:
            del self._troubled[next(iter(self._troubled))]

    def _count_failing_key(self, key: K, now: float) -> RestartIntensityExceeded | None:
        failing = self._failing_keys
        failing[key] = now
        failing.move_to_end(key)
        while failing:
            oldest = next(iter(failing))
            if now - failing[oldest] <= self._period:
                break
            del failing[oldest]
        if len(failing) <= self._max_failures:
            return None
        return RestartIntensityExceeded(
            f"{self.name}: more than {self._max_failures} keys failed within {self._period}s"
        )

    def _is_poison(self, cell: _Cell, message: Message) -> bool:
        """Failed ``poison_after`` times, the last less than ``quarantine`` seconds ago (so a
        repaired record or a fixed dependency is tried again after a while)."""
        assert cell.poison is not None
        fingerprint = _fingerprint(message)
        times, last = cell.poison.get(fingerprint, (0, 0.0))
        if times and self._clock() - last > self._quarantine:
            del cell.poison[fingerprint]
            return False
        return times >= self._poison_after

    def _park(self, cell: _Cell, message: Message, reply: Reply | None) -> bool:
        """Answer a poison message without handling it. It counts towards the key's failure
        intensity (a key that keeps getting messages it cannot handle is failing), so this
        returns False when it got the key quarantined."""
        name = self._class_name or self.name
        metrics.parked(name)
        with self._lock:
            self._parked.append(ParkedMessage(cell.key, type(message).__name__, self._clock()))
            self._parked_total += 1
        log.error("poison message parked", registry=self.name, key=cell.key,
                  message=type(message).__name__, after_failures=self._poison_after)
        if reply is not None:
            reply(None, Parked(f"{self.name}[{cell.key!r}]: {type(message).__name__} failed "
                               f"{self._poison_after} times; not handled again"))
        return self._failed(cell, None, message)


def _nothing_to_stop(actor: Actor | None) -> bool:
    """True when passivating ``actor`` would run no code: none built, or no `post_stop`."""
    return actor is None or (type(actor).post_stop is Actor.post_stop
                             and "post_stop" not in vars(actor))


def _fingerprint(message: Message) -> str:
    """Equal messages, equal fingerprints (a redelivered update is an equal message)."""
    try:
        return f"{type(message).__qualname__}:{message.model_dump_json()}"
    except Exception:  # a message with a field pydantic cannot serialise
        return f"{type(message).__qualname__}:{message!r}"


class _IntensityExceeded(Message):
    reason: str


class KeyedActorsKeeper(Actor):
    """The supervised face of a `KeyedActors` registry: opens it on start, stops it on stop,
    and fails (so its supervisor restarts or escalates) when keys fail too often."""

    def __init__(self, registry: KeyedActors[Any, Any]) -> None:
        super().__init__()
        self._registry = registry

    def pre_start(self) -> None:
        me = self.actor_ref

        def report(error: RestartIntensityExceeded) -> None:
            with contextlib.suppress(ActorDead):  # already stopping: nothing to escalate
                tell(me, _IntensityExceeded(reason=str(error)))

        self._registry.on_intensity_exceeded = report
        self._registry.reopen()

    def post_stop(self) -> None:
        self._registry.on_intensity_exceeded = None
        self._registry.stop_all()

    def handle(self, message: Any) -> Any:
        if isinstance(message, _IntensityExceeded):
            raise RestartIntensityExceeded(message.reason)
        return super().handle(message)
