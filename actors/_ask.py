"""`ask`, `ask_async` and `tell`: every request has a timeout and fails with a typed error.

Rule: an actor never asks itself (`SelfAsk` is raised at once), and two actors never ask each
other synchronously — A waiting on B while B waits on A blocks both threads until the asks
time out. Workflows that span actors use `tell` with a reply-to ref, or run in the asker's
thread against thread-safe collaborators.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, TypeVar

import pykka

from actors._actor import Deliver, current_actor_urn, envelope
from actors._errors import ActorDead, AskTimeout, SelfAsk
from actors._message import Ask, Message
from actors._metrics import metrics

R = TypeVar("R")


def ask(ref: pykka.ActorRef[Any], message: Ask[R], *, timeout: float) -> R:
    """Send ``message`` and block until the reply, at most ``timeout`` seconds.

    Raises `AskTimeout`, `ActorDead`, `SelfAsk`, or whatever the actor raised while answering.
    """
    return await_reply(post_ask(ref, message), ref, message, timeout, time.perf_counter())


def post_ask(ref: pykka.ActorRef[Any], message: Ask[R]) -> pykka.Future[R]:
    """Put an ask in ``ref``'s inbox; the first half of `ask`, for callers that hold a lock."""
    if current_actor_urn() == ref.actor_urn:
        raise SelfAsk(f"{ref} asked itself {type(message).__name__}")
    try:
        return ref.ask(envelope(message), block=False)
    except pykka.ActorDeadError as exc:
        raise ActorDead(f"{ref.actor_class.__name__} is not running") from exc


def await_reply(
    future: pykka.Future[R],
    ref: pykka.ActorRef[Any],
    message: Ask[R],
    timeout: float,
    started: float,
) -> R:
    """Wait for the reply to a posted ask; the second half of `ask`."""
    try:
        return future.get(timeout=timeout)
    except pykka.ActorDeadError as exc:
        raise ActorDead(f"{ref.actor_class.__name__} stopped before answering") from exc
    except pykka.Timeout as exc:
        raise AskTimeout(
            f"{ref.actor_class.__name__} did not answer {type(message).__name__} in {timeout}s"
        ) from exc
    finally:
        metrics.observe_ask(ref.actor_class.__name__, time.perf_counter() - started)


async def ask_async(ref: pykka.ActorRef[Any], message: Ask[R], *, timeout: float) -> R:
    """`ask` for asyncio code: awaits the reply without blocking the event loop.

    The actor hands its answer to the loop with ``call_soon_threadsafe``; no thread waits.
    If the actor stops before handling the message, this raises `AskTimeout` after
    ``timeout`` (there is no reply future for pykka to fail).
    """
    started = time.perf_counter()
    reply = post_ask_async(ref, message)
    return await await_reply_async(reply, ref, message, timeout, started)


def post_ask_async(ref: pykka.ActorRef[Any], message: Ask[R]) -> asyncio.Future[R]:
    """Put an ask in ``ref``'s inbox whose reply resolves a future of the running loop."""
    reply, deliver = reply_on_loop(asyncio.get_running_loop())
    try:
        ref.tell(envelope(message, deliver))
    except pykka.ActorDeadError as exc:
        raise ActorDead(f"{ref.actor_class.__name__} is not running") from exc
    return reply


def reply_on_loop(loop: asyncio.AbstractEventLoop) -> tuple[asyncio.Future[Any], Deliver]:
    """A future of ``loop`` and the function an actor's thread calls with the reply
    (``deliver(value, error)``) to resolve it there, with ``call_soon_threadsafe``."""
    reply: asyncio.Future[Any] = loop.create_future()

    def resolve(value: Any, error: BaseException | None) -> None:
        if reply.done():  # the asker gave up already
            return
        if error is not None:
            reply.set_exception(error)
        else:
            reply.set_result(value)

    def deliver(value: Any, error: BaseException | None) -> None:
        # RuntimeError: the loop closed while the actor was working; nobody waits any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(resolve, value, error)

    return reply, deliver


async def await_reply_async(
    reply: asyncio.Future[R],
    ref: pykka.ActorRef[Any],
    message: Ask[R],
    timeout: float,
    started: float,
) -> R:
    """Await the reply to `post_ask_async`, at most ``timeout`` seconds."""
    try:
        return await asyncio.wait_for(reply, timeout)
    except TimeoutError as exc:
        raise AskTimeout(
            f"{ref.actor_class.__name__} did not answer {type(message).__name__} in {timeout}s"
        ) from exc
    finally:
        metrics.observe_ask(ref.actor_class.__name__, time.perf_counter() - started)


def tell(ref: pykka.ActorRef[Any], message: Message) -> None:
    """Send ``message`` without waiting. Raises `ActorDead` if the actor is not running."""
    try:
        ref.tell(envelope(message))
    except pykka.ActorDeadError as exc:
        raise ActorDead(f"{ref.actor_class.__name__} is not running") from exc
