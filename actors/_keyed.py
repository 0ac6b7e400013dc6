"""KeyedActors: one actor per key (e.g. per Telegram user), started on demand, passivated
when idle, capped in number."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import pykka
import structlog

from actors._actor import DEFAULT_START_TIMEOUT, Actor, ActorExit, prepare
from actors._ask import await_reply, await_reply_async, post_ask, post_ask_async, tell
from actors._errors import ActorDead, Overloaded, RestartIntensityExceeded
from actors._futex import use_global_futex_hash
from actors._message import Ask, Message
from actors._metrics import metrics
from actors._supervisor import ChildSpec, Restart

log = structlog.get_logger("actors.keyed")

K = TypeVar("K", bound=Hashable)
A = TypeVar("A", bound=Actor)
R = TypeVar("R")
T = TypeVar("T")

Clock = Callable[[], float]


@dataclass
class _Progress:
    """Written only by the key's actor thread, read under the registry lock: no lock needed
    on the actor's side, so handling a message never contends with senders."""

    handled: int = 0
    last_handled: float = float("-inf")


@dataclass
class _Live:
    ref: pykka.ActorRef[Any]
    last_sent: float  # the registry is ordered by this: least recently used first
    progress: _Progress
    sent: int = 0

    @property
    def pending(self) -> int:
        """Messages enqueued and not yet handled."""
        return self.sent - self.progress.handled

    @property
    def last_active(self) -> float:
        """Last send or last message handled, for the idle timeout."""
        return max(self.last_sent, self.progress.last_handled)


@dataclass
class _Stopping:
    urn: str
    stopped: threading.Event = field(default_factory=threading.Event)


class KeyedActors(Generic[K, A]):
    """One actor per key, started by ``factory(key)`` on the first message for that key.

    Ordering: a message for a key is put into that key's single inbox under the registry
    lock, so one key's messages are handled in the order `ask` / `tell` were called.
    Passivation keeps that promise: a key's actor is stopped only when it has no message
    pending, its mapping is removed *before* it is stopped, and the next incarnation's
    `pre_start` waits until the previous one has finished `post_stop`. So state written in
    `post_stop` (or on every message) is what the next incarnation loads; nothing is lost
    or reordered.

    - ``idle_timeout``: a key's actor with no message for this many seconds is stopped
      (passivated) by a background ticker; None keeps actors until `stop_all`.
    - ``max_live``: a cap on live actors (including ones still stopping). At the cap, a new
      key evicts the least recently used idle actor; when none is idle the caller waits up
      to ``start_timeout`` and then gets `Overloaded`.
    - Failures: a key's actor that dies (an exception in a tell) is dropped; the next message
      starts a fresh incarnation, like a transient child. More than ``max_failures`` deaths
      within ``period`` seconds is reported to ``on_intensity_exceeded`` (the keeper actor
      then fails and its supervisor decides), as OTP's restart intensity.
    - Other keys are never affected by one key's slowness or crash: each has its own thread.
    - Thousands of idle actors block on their inboxes; on Linux the first registry switches
      the process to the kernel's global futex hash (`use_global_futex_hash`), without which
      10,000 idle threads made every lock hand-off in the process ~16 times slower.

    Thread-safe: any thread may call any method.
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
    ) -> None:
        if max_live is not None and max_live < 1:
            raise ValueError("max_live must be at least 1")
        use_global_futex_hash()
        self.name = name
        self._factory = factory
        self._idle_timeout = idle_timeout
        self._max_live = max_live
        self._start_timeout = start_timeout
        self._max_failures = max_failures
        self._period = period
        self._clock = clock
        self._cond = threading.Condition()
        self._live: OrderedDict[K, _Live] = OrderedDict()  # least recently active first
        self._stopping: dict[K, _Stopping] = {}
        self._failures: deque[float] = deque()
        self._room_waiters = 0  # callers waiting for a live actor to go
        self._closed = False
        self._ticker: threading.Thread | None = None
        self._ticker_stop = threading.Event()
        metrics.watch(self)
        self.on_intensity_exceeded: Callable[[RestartIntensityExceeded], None] | None = None

    def __len__(self) -> int:
        """Live actors, including those still stopping."""
        with self._cond:
            return len(self._live) + len(self._stopping)

    def live_refs(self) -> list[pykka.ActorRef[Any]]:
        """Refs of the live actors (for `metrics`; keyed actors are not in pykka's registry)."""
        with self._cond:
            return [live.ref for live in self._live.values()]

    def live_keys(self) -> list[K]:
        """Keys with a running actor, least recently used (sent to) first."""
        with self._cond:
            return list(self._live)

    # -- sending ---------------------------------------------------------------------------

    def ask(self, key: K, message: Ask[R], *, timeout: float) -> R:
        """Ask the actor for ``key`` (started if needed); see `actors.ask`."""
        started = time.perf_counter()
        ref, future = self._send(key, lambda ref: post_ask(ref, message))
        return await_reply(future, ref, message, timeout, started)

    async def ask_async(self, key: K, message: Ask[R], *, timeout: float) -> R:
        """Ask from asyncio without blocking the loop; see `actors.ask_async`."""
        started = time.perf_counter()
        ref, reply = self._send(key, lambda ref: post_ask_async(ref, message))
        return await await_reply_async(reply, ref, message, timeout, started)

    def tell(self, key: K, message: Message) -> None:
        """Send to the actor for ``key`` without waiting."""
        self._send(key, lambda ref: tell(ref, message))

    def _send(
        self, key: K, post: Callable[[pykka.ActorRef[Any]], T]
    ) -> tuple[pykka.ActorRef[Any], T]:
        start: Callable[[], Any] | None = None
        try:
            with self._cond:
                live, start = self._live_for(key)
                posted = post(live.ref)
                live.sent += 1
                live.last_sent = self._clock()
                self._live.move_to_end(key)
        finally:
            if start is not None:
                # Outside the lock: starting a thread waits until it runs, which under load
                # can take a GIL switch interval or more; its messages are already queued.
                start()
        return live.ref, posted

    # -- lifecycle -----------------------------------------------------------------------------

    def passivate_idle(self) -> int:
        """Stop every actor idle for ``idle_timeout``; the ticker calls this. Returns how many."""
        if self._idle_timeout is None:
            return 0
        cutoff = self._clock() - self._idle_timeout
        with self._cond:
            idle = []
            for key, live in self._live.items():
                if live.last_sent > cutoff:
                    break  # ordered by last send: the rest were used more recently
                if live.pending == 0 and live.last_active <= cutoff:
                    idle.append(key)
            for key in idle:
                self._passivate(key)
        return len(idle)

    def stop_all(self, timeout: float = DEFAULT_START_TIMEOUT) -> None:
        """Stop every key's actor and refuse new messages until `reopen`."""
        self._ticker_stop.set()
        with self._cond:
            self._closed = True
            for key in list(self._live):
                self._passivate(key)
            stopping = list(self._stopping.values())
            ticker, self._ticker = self._ticker, None
        for entry in stopping:
            if not entry.stopped.wait(timeout):
                log.error("keyed actor did not stop in time", registry=self.name, urn=entry.urn)
        if ticker is not None:
            ticker.join(timeout)

    def reopen(self) -> None:
        with self._cond:
            self._closed = False
            self._failures.clear()
            self._ticker_stop.clear()

    def child_spec(self, name: str | None = None) -> ChildSpec:
        """A supervisor child that owns this registry's lifecycle: stopping it stops all keys."""
        return ChildSpec(name or self.name, lambda: KeyedActorsKeeper(self), Restart.PERMANENT)

    # -- internals (call with the lock held unless said otherwise) ------------------------------

    def _live_for(self, key: K) -> tuple[_Live, Callable[[], Any] | None]:
        """The key's live actor, and the function starting its thread if it is new."""
        deadline = time.monotonic() + self._start_timeout
        while True:
            if self._closed:
                raise ActorDead(f"{self.name} is stopped")
            live = self._live.get(key)
            if live is not None:
                if live.ref.is_alive():
                    return live, None
                self._passivate(key)  # died; its exit has not been processed yet
            if self._max_live is None or len(self._live) + len(self._stopping) < self._max_live:
                return self._spawn(key)
            self._wait_for_room(deadline)

    def _wait_for_room(self, deadline: float) -> None:
        if not self._stopping:  # else an actor is on its way out already: wait for it
            lru_idle = next((key for key, live in self._live.items() if live.pending == 0), None)
            if lru_idle is not None:
                self._passivate(lru_idle)
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

    def _spawn(self, key: K) -> tuple[_Live, Callable[[], Any]]:
        previous = self._stopping.get(key)
        progress = _Progress()

        def after_message() -> None:
            progress.handled += 1
            progress.last_handled = self._clock()
            if self._room_waiters:
                with self._cond:
                    self._cond.notify_all()  # an idle actor can now be evicted

        def build() -> A:
            actor = self._factory(key)
            actor._after_message = after_message
            return actor

        ref, start = prepare(
            build,
            on_exit=lambda exit_: self._exited(key, exit_),
            start_timeout=self._start_timeout,
            after=previous.stopped if previous is not None else None,
            register=False,  # this registry tracks its actors (and `metrics` reads them here)
        )
        live = _Live(ref, self._clock(), progress)
        self._live[key] = live
        self._start_ticker()
        return live, start

    def _passivate(self, key: K) -> None:
        live = self._live.pop(key)
        self._stopping[key] = _Stopping(live.ref.actor_urn)
        live.ref.stop(block=False)

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

    def _exited(self, key: K, exit_: ActorExit) -> None:
        """An incarnation ended (on its own thread, takes the lock)."""
        exceeded: RestartIntensityExceeded | None = None
        with self._cond:
            live = self._live.get(key)
            if live is not None and live.ref.actor_urn == exit_.urn:
                del self._live[key]
            stopping = self._stopping.get(key)
            if stopping is not None and stopping.urn == exit_.urn:
                del self._stopping[key]
                stopping.stopped.set()
            self._cond.notify_all()
            if exit_.failed:
                exceeded = self._count_failure()
        if exit_.failed:
            log.warning("keyed actor failed", registry=self.name, key=key, error=repr(exit_.error))
        if exceeded is not None and self.on_intensity_exceeded is not None:
            self.on_intensity_exceeded(exceeded)

    def _count_failure(self) -> RestartIntensityExceeded | None:
        now = time.monotonic()
        self._failures.append(now)
        while self._failures and now - self._failures[0] > self._period:
            self._failures.popleft()
        if len(self._failures) <= self._max_failures:
            return None
        return RestartIntensityExceeded(
            f"{self.name}: more than {self._max_failures} actor failures in {self._period}s"
        )


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
