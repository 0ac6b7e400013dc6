"""Test kit: test one actor in isolation, with probes standing in for its collaborators.

::

    with ActorTestKit() as kit:
        bus = kit.probe(replies={Publish: None})          # a collaborator, recorded
        session = kit.spawn(lambda: UserSession(bus=bus.ref))
        ask(session, Start(user_id=1), timeout=1)
        published = bus.expect_message(Publish)           # what the actor sent it

Everything the kit started is stopped when the ``with`` block ends, so no actor thread
outlives a test. Nothing here imports a test framework: failures raise `AssertionError`.

Every wait here is a ceiling for a message or an exit that normally comes in milliseconds.
The default (`DEFAULT_EXPECT_TIMEOUT`) suits a quiet machine; a suite that runs on busy ones
passes its own, e.g. ``ActorTestKit(expect_timeout=30)``, which every probe and the exit
watch of that kit then use.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, TypeVar

import pykka

from actors._actor import Actor, ActorExit, spawn
from actors._ask import tell
from actors._message import Message

A = TypeVar("A", bound=Actor)
M = TypeVar("M")

DEFAULT_EXPECT_TIMEOUT = 3.0

Reply = Any  # a value, an exception instance (raised to the asker), or a callable(message)


class InjectedCrash(RuntimeError):
    """Raised by an actor built with `crash_on` when it receives the chosen message."""


class Probe(Actor):
    """Records every message it receives, in order; answers asks from ``replies``.

    ``replies`` maps a message class to the reply: a value, an exception instance (raised,
    so the asker receives it), or a callable taking the message. Unlisted messages get None.
    """

    def __init__(self, inbox: queue.Queue[Any], replies: Mapping[type, Reply]) -> None:
        super().__init__()
        self._inbox = inbox
        self._replies = replies

    def handle(self, message: Any) -> Any:
        self._inbox.put(message)
        for message_type, reply in self._replies.items():
            if isinstance(message, message_type):
                if isinstance(reply, BaseException):
                    raise reply
                return reply(message) if callable(reply) else reply
        return None


class ProbeHandle:
    """The test's side of a `Probe`: its ``ref`` to hand out, and expectations."""

    def __init__(self, ref: pykka.ActorRef[Probe], inbox: queue.Queue[Any],
                 expect_timeout: float = DEFAULT_EXPECT_TIMEOUT) -> None:
        self.ref = ref
        self._inbox = inbox
        self._expect_timeout = expect_timeout

    def expect_message(self, message_type: type[M], timeout: float | None = None) -> M:
        """The next message, which must be a ``message_type``, within ``timeout`` seconds
        (default: the kit's ``expect_timeout``)."""
        timeout = self._expect_timeout if timeout is None else timeout
        try:
            message = self._inbox.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(
                f"no message within {timeout}s; expected {message_type.__name__}"
            ) from None
        if not isinstance(message, message_type):
            raise AssertionError(f"expected {message_type.__name__}, got {message!r}")
        return message

    def expect_no_message(self, within: float = 0.1) -> None:
        """Fail if any message arrives within ``within`` seconds."""
        try:
            message = self._inbox.get(timeout=within)
        except queue.Empty:
            return
        raise AssertionError(f"expected no message, got {message!r}")

    def receive_n(self, count: int, timeout: float | None = None) -> list[Any]:
        """The next ``count`` messages, whatever their types."""
        timeout = self._expect_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        messages = []
        for _ in range(count):
            try:
                messages.append(self._inbox.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError(
                    f"got {len(messages)} of {count} messages within {timeout}s: {messages!r}"
                ) from None
        return messages


def crash_on(message_type: type[Message], factory: Callable[[], A]) -> Callable[[], A]:
    """A factory whose actor raises `InjectedCrash` on a ``message_type`` message.

    Told, the message kills the actor (a failure its supervisor sees); asked, the error goes
    to the asker and the actor lives on — the runtime's two failure rules.
    """

    def build() -> A:
        actor = factory()
        original = actor.handle

        def handle(message: Any) -> Any:
            if isinstance(message, message_type):
                raise InjectedCrash(f"{type(actor).__name__} crashed on {message_type.__name__}")
            return original(message)

        actor.handle = handle  # type: ignore[method-assign]  # the point of this helper
        return actor

    return build


class Poison(Message):
    """A message no actor's protocol includes: told, `Actor.handle`'s default raises on it."""


def crash(ref: pykka.ActorRef[Any]) -> None:
    """Fail a running actor from outside, as an exception in a told message would."""
    tell(ref, Poison())


class ExitWatch:
    """Collects the exits of the actors the kit spawned; `expect_exit` waits for one."""

    def __init__(self, expect_timeout: float = DEFAULT_EXPECT_TIMEOUT) -> None:
        self._exits: queue.Queue[ActorExit] = queue.Queue()
        self._expect_timeout = expect_timeout

    def __call__(self, exit_: ActorExit) -> None:
        self._exits.put(exit_)

    def expect_exit(self, timeout: float | None = None) -> ActorExit:
        timeout = self._expect_timeout if timeout is None else timeout
        try:
            return self._exits.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no actor exited within {timeout}s") from None


class ActorTestKit(AbstractContextManager["ActorTestKit"]):
    """Starts actors and probes for one test and stops them all, newest first, at the end."""

    def __init__(self, expect_timeout: float = DEFAULT_EXPECT_TIMEOUT) -> None:
        """``expect_timeout``: the ceiling of every wait of this kit's probes, its exit
        watch and `stop_all`."""
        self._refs: list[pykka.ActorRef[Any]] = []
        self._lock = threading.Lock()
        self.expect_timeout = expect_timeout
        self.exits = ExitWatch(expect_timeout)

    def probe(self, replies: Mapping[type, Reply] | None = None) -> ProbeHandle:
        inbox: queue.Queue[Any] = queue.Queue()
        ref = self.spawn(lambda: Probe(inbox, replies or {}))
        return ProbeHandle(ref, inbox, self.expect_timeout)

    def spawn(self, factory: Callable[[], A]) -> pykka.ActorRef[A]:
        """Start an actor (waiting for its `pre_start`); its exit is recorded in ``exits``."""
        ref = spawn(factory, on_exit=self.exits)
        with self._lock:
            self._refs.append(ref)
        return ref

    def stop_all(self) -> None:
        with self._lock:
            refs, self._refs = self._refs, []
        for ref in reversed(refs):
            ref.stop(block=True, timeout=self.expect_timeout)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()


def eventually(
    condition: Callable[[], bool], what: str = "", timeout: float = DEFAULT_EXPECT_TIMEOUT
) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds saying ``what``.

    The arguments come in the order of the test suite's own ``eventually(predicate, what,
    ceiling)`` (tests/support/waiting.py), which the suite uses instead: its ceilings scale
    with the machine."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s: {what or condition!r}")
        time.sleep(0.005)

