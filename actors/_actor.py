"""The typed actor base class and `spawn`, which starts an actor and watches its exit."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

import pykka
import structlog

from actors._errors import StartFailed
from actors._message import Message
from actors._metrics import metrics
from actors._snapshot import Snapshot

log = structlog.get_logger("actors")

A = TypeVar("A", bound="Actor")

# The actor whose thread is running, so `ask` can refuse an actor asking itself.
_current = threading.local()

# Set while `KeyedActors` builds a keyed actor: `Actor.__init__` then skips pykka's own
# (an inbox queue, an event, a URN and a ref: ~3 KiB that a keyed actor, run by a dispatcher
# and never by a pykka thread, does not use).
_building_keyed = threading.local()


def build_keyed(factory: Callable[[], A]) -> A:
    """Call ``factory`` so that the `Actor` it builds is a keyed actor's state object: no pykka
    inbox, thread or ref (``actor_ref`` and ``actor_urn`` are absent); `KeyedActors` runs its
    `pre_start`, `handle` and `post_stop` on its dispatcher."""
    _building_keyed.active = True
    try:
        return factory()
    finally:
        _building_keyed.active = False

DEFAULT_START_TIMEOUT = 10.0


@dataclass(frozen=True)
class ActorExit:
    """How an actor ended: normally (stopped) or by failure (an exception killed it)."""

    urn: str
    actor_class: str
    failed: bool
    error: BaseException | None = None


ExitListener = Callable[[ActorExit], None]


class UnhandledMessage(TypeError):
    """An actor received a message its protocol does not include."""


Deliver = Callable[[Any, BaseException | None], None]


@dataclass(frozen=True, slots=True)
class _Envelope:
    """A message with the sender's context variables (log correlation ids and the like).

    ``deliver``, when set, receives the reply instead of a pykka future (asks from asyncio).
    """

    message: Message
    context: contextvars.Context
    deliver: Deliver | None = None


def envelope(message: Message, deliver: Deliver | None = None) -> _Envelope:
    """Wrap ``message`` with a copy of the calling thread's context variables."""
    return _Envelope(message, contextvars.copy_context(), deliver)


class Actor(pykka.ThreadingActor):
    """Base class of every actor in this runtime.

    Guarantees:
    - One thread per actor; `handle` runs on it for one message at a time, in arrival order.
    - An exception while answering an ask is returned to the asker and the actor lives on.
      An exception while handling a tell kills the actor (a *failure*); so does an exception
      in `pre_start`, which `spawn` reports by raising `StartFailed`.
    - Exit listeners are told exactly once when an actor ends, from the actor's own thread,
      with ``failed`` saying whether an exception ended it (in `pre_start` included).
    - A `BaseException` that is not an `Exception` (KeyboardInterrupt, SystemExit) in a
      handler makes pykka stop every actor in the process: never raise one on purpose.

    Subclasses implement `handle` and may override `pre_start` / `post_stop`; they must not
    override pykka's `on_start`, `on_stop`, `on_failure` or `on_receive`.

    The same class can be a *keyed* actor (built by a `KeyedActors` factory): then it has no
    thread, inbox or ``actor_ref``; its registry runs `pre_start`, `handle` and `post_stop`
    on a worker of its pool, one message at a time, with the failure rules above per key.
    """

    def __init__(self) -> None:
        self._class_name = type(self).__name__
        if getattr(_building_keyed, "active", False):
            _building_keyed.active = False  # only the outermost actor the factory builds
            return  # a keyed actor: see `build_keyed`
        super().__init__()
        self._exit_listeners: list[ExitListener] = []
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._start_after: threading.Event | None = None
        self._start_timeout = DEFAULT_START_TIMEOUT

    # -- hooks for subclasses -------------------------------------------------------------

    def pre_start(self) -> None:
        """Run on the actor's thread before the first message. Keep it short: starts wait."""

    def post_stop(self) -> None:
        """Run on the actor's thread after the last message, whether it stopped or failed."""

    def snapshot(self) -> Snapshot | None:
        """Keyed actors only: the replies this actor would give now to some asks, which its
        registry may hand to readers while the key is idle (see `Snapshot`). Called on the
        worker after every message, so keep it cheap; None (the default) publishes nothing.
        """
        return None

    def handle(self, message: Any) -> Any:
        """Handle one message; the return value is the reply to an ask."""
        raise UnhandledMessage(f"{self._class_name} does not handle {type(message).__name__}")

    # -- pykka hooks (final) --------------------------------------------------------------

    def on_start(self) -> None:
        _current.urn = self.actor_urn
        metrics.started(self._class_name)
        try:
            if self._start_after is not None and not self._start_after.wait(self._start_timeout):
                raise StartFailed(
                    f"{self._class_name}: the previous incarnation did not stop within "
                    f"{self._start_timeout}s"
                )
            self.pre_start()
        except BaseException as exc:
            self._start_error = exc
            self._started.set()
            self._exit(ActorExit(self.actor_urn, self._class_name, True, exc))
            raise
        self._started.set()

    def on_receive(self, message: Any) -> Any:
        if not isinstance(message, _Envelope) or message.deliver is None:
            try:
                if isinstance(message, _Envelope):
                    return message.context.run(self.handle, message.message)
                return self.handle(message)  # sent with plain pykka
            finally:
                metrics.handled(self._class_name)
        error: Exception | None = None
        result: Any = None
        try:
            result = message.context.run(self.handle, message.message)
        except Exception as exc:  # returned to the asker, like pykka's own ask
            error = exc
        finally:
            metrics.handled(self._class_name)
        message.deliver(result, error)
        return None

    def on_stop(self) -> None:
        try:
            self.post_stop()
        finally:
            self._exit(ActorExit(self.actor_urn, self._class_name, failed=False))

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        metrics.failed(self._class_name)
        try:
            self.post_stop()
        except Exception:
            log.exception("post_stop failed after a failure", actor=self._class_name)
        self._exit(ActorExit(self.actor_urn, self._class_name, True, exception_value))

    def _exit(self, exit_: ActorExit) -> None:
        metrics.stopped(self._class_name)
        for listener in self._exit_listeners:
            try:
                listener(exit_)
            except Exception:
                log.exception("exit listener failed", actor=self._class_name)


def spawn(
    factory: Callable[[], A],
    *,
    on_exit: ExitListener | None = None,
    start_timeout: float = DEFAULT_START_TIMEOUT,
    wait: bool = True,
    after: threading.Event | None = None,
) -> pykka.ActorRef[A]:
    """Create an actor with ``factory`` and start it.

    ``on_exit`` is attached before the actor starts, so no exit can be missed; it is also
    told of a failed start (``failed=True``).

    With ``wait`` (the default) this returns once `pre_start` has finished and raises
    `StartFailed` when it raised or took longer than ``start_timeout``. Without ``wait`` it
    returns at once: messages sent meanwhile queue and are handled after `pre_start`, or fail
    with `ActorDead` if the start fails.

    ``after``: the actor's thread waits (at most ``start_timeout``) for this event before
    `pre_start` — a new incarnation waits until the previous one has stopped.
    """
    ref, start = prepare(factory, on_exit=on_exit, start_timeout=start_timeout, after=after)
    actor = start()
    if not wait:
        return ref
    if not actor._started.wait(start_timeout):
        ref.stop(block=False)
        raise StartFailed(f"{type(actor).__name__} did not start within {start_timeout}s")
    if actor._start_error is not None:
        raise StartFailed(f"{type(actor).__name__} failed to start") from actor._start_error
    return ref


def prepare(
    factory: Callable[[], A],
    *,
    on_exit: ExitListener | None = None,
    start_timeout: float = DEFAULT_START_TIMEOUT,
    after: threading.Event | None = None,
    register: bool = True,
) -> tuple[pykka.ActorRef[A], Callable[[], A]]:
    """The first half of `spawn(wait=False)`: a ref that already accepts messages (they queue
    until the actor runs) and the function that starts its thread.

    ``register=False`` keeps the actor out of pykka's `ActorRegistry`, for a caller that
    tracks its actors itself: the registry's unregister scans a list.

    Why a private pykka method: pykka's public `Actor.start(*args)` constructs the actor
    itself, while this runtime builds actors with factories (closures over their
    collaborators, wrapped by `testkit.crash_on`) and must attach exit listeners and the
    start barrier *before* the thread runs. So this registers the ref and calls
    `_start_actor_loop`, the one step of `start` after construction — exactly what
    `pykka.Actor.start` does after ``cls(*args)``. `tests/actors/test_pykka_contract.py`
    fails loudly if a pykka release renames it or changes what `start` does around it; the
    version range in ``setup.cfg`` keeps pykka below the next major release.
    """
    actor = factory()
    if on_exit is not None:
        actor._exit_listeners.append(on_exit)
    actor._start_after = after
    actor._start_timeout = start_timeout
    ref = actor.actor_ref
    if register:
        pykka.ActorRegistry.register(ref)

    def start() -> A:
        actor._start_actor_loop()
        return actor

    return ref, start


def current_actor_urn() -> str | None:
    """The URN of the actor whose thread calls this, or None outside actors."""
    return getattr(_current, "urn", None)
