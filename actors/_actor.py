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

log = structlog.get_logger("actors")

A = TypeVar("A", bound="Actor")

# The actor whose thread is running, so `ask` can refuse an actor asking itself.
_current = threading.local()

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
    - Exit listeners are told exactly once when a started actor ends, from the actor's own
      thread, with ``failed`` saying whether an exception ended it.

    Subclasses implement `handle` and may override `pre_start` / `post_stop`; they must not
    override pykka's `on_start`, `on_stop`, `on_failure` or `on_receive`.
    """

    def __init__(self) -> None:
        super().__init__()
        self._exit_listeners: list[ExitListener] = []
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._class_name = type(self).__name__

    # -- hooks for subclasses -------------------------------------------------------------

    def pre_start(self) -> None:
        """Run on the actor's thread before the first message. Keep it short: starts wait."""

    def post_stop(self) -> None:
        """Run on the actor's thread after the last message, whether it stopped or failed."""

    def handle(self, message: Any) -> Any:
        """Handle one message; the return value is the reply to an ask."""
        raise UnhandledMessage(f"{self._class_name} does not handle {type(message).__name__}")

    # -- pykka hooks (final) --------------------------------------------------------------

    def on_start(self) -> None:
        _current.urn = self.actor_urn
        try:
            self.pre_start()
        except BaseException as exc:
            self._start_error = exc
            self._started.set()
            raise
        metrics.started(self._class_name)
        self._started.set()

    def on_receive(self, message: Any) -> Any:
        if not isinstance(message, _Envelope):  # sent with plain pykka
            result = self.handle(message)
            metrics.handled(self._class_name)
            return result
        if message.deliver is None:
            result = message.context.run(self.handle, message.message)
            metrics.handled(self._class_name)
            return result
        try:
            result = message.context.run(self.handle, message.message)
        except Exception as exc:  # returned to the asker, like pykka's own ask
            metrics.handled(self._class_name)
            message.deliver(None, exc)
            return None
        metrics.handled(self._class_name)
        message.deliver(result, None)
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
) -> pykka.ActorRef[A]:
    """Create an actor with ``factory``, start it, and wait until `pre_start` has finished.

    ``on_exit`` is attached before the actor starts, so no exit can be missed. Raises
    `StartFailed` when `pre_start` raises or takes longer than ``start_timeout``; the
    listener is not called for a failed start (pykka runs no hook then, and the caller
    already knows from the exception).
    """
    actor = factory()
    if on_exit is not None:
        actor._exit_listeners.append(on_exit)
    ref = actor.actor_ref
    pykka.ActorRegistry.register(ref)
    actor._start_actor_loop()
    if not actor._started.wait(start_timeout):
        ref.stop(block=False)
        raise StartFailed(f"{type(actor).__name__} did not start within {start_timeout}s")
    if actor._start_error is not None:
        raise StartFailed(f"{type(actor).__name__} failed to start") from actor._start_error
    return ref


def current_actor_urn() -> str | None:
    """The URN of the actor whose thread calls this, or None outside actors."""
    return getattr(_current, "urn", None)
