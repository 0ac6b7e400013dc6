"""KeyedActors: one actor per key (e.g. per Telegram user), started on demand."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

import pykka
import structlog

from actors._actor import Actor, ActorExit, spawn
from actors._ask import await_reply, await_reply_async, post_ask, post_ask_async, tell
from actors._errors import ActorDead
from actors._message import Ask, Message
from actors._supervisor import ChildSpec, Restart

log = structlog.get_logger("actors.keyed")

K = TypeVar("K", bound=Hashable)
A = TypeVar("A", bound=Actor)
R = TypeVar("R")


class KeyedActors(Generic[K, A]):
    """One actor per key, started by ``factory(key)`` on the first message for that key.

    Ordering guarantee: every message for a key is put into that key's single actor inbox
    while holding the registry lock, so messages for one key are handled in the order the
    calls to `ask` / `tell` returned from enqueueing. Keys do not share threads: a slow key
    does not delay another.

    A key's actor that dies (a failed tell) is dropped from the registry; the next message
    for that key starts a fresh one. Other keys are unaffected. Messages already queued to
    the dead actor fail with `ActorDead` (asks) or are dropped (tells), as in pykka.

    Thread-safe: any thread may call any method.
    """

    def __init__(self, name: str, factory: Callable[[K], A]) -> None:
        self.name = name
        self._factory = factory
        self._lock = threading.Lock()
        self._refs: dict[K, pykka.ActorRef[A]] = {}
        self._closed = False

    def __len__(self) -> int:
        return len(self._refs)

    def ask(self, key: K, message: Ask[R], *, timeout: float) -> R:
        """Ask the actor for ``key`` (started if needed); see `actors.ask`."""
        started = time.perf_counter()
        with self._lock:
            ref = self._ref(key)
            future = post_ask(ref, message)
        return await_reply(future, ref, message, timeout, started)

    async def ask_async(self, key: K, message: Ask[R], *, timeout: float) -> R:
        """Ask from asyncio without blocking the loop; see `actors.ask_async`."""
        started = time.perf_counter()
        with self._lock:
            ref = self._ref(key)
            reply = post_ask_async(ref, message)
        return await await_reply_async(reply, ref, message, timeout, started)

    def tell(self, key: K, message: Message) -> None:
        """Send to the actor for ``key`` without waiting."""
        with self._lock:
            tell(self._ref(key), message)

    def stop_all(self) -> None:
        """Stop every key's actor and refuse new messages until `reopen`."""
        with self._lock:
            self._closed = True
            refs = list(self._refs.values())
            self._refs.clear()
        for ref in refs:
            ref.stop(block=True)

    def reopen(self) -> None:
        with self._lock:
            self._closed = False

    def child_spec(self, name: str | None = None) -> ChildSpec:
        """A supervisor child that owns this registry's lifecycle: stopping it stops all keys."""
        return ChildSpec(name or self.name, lambda: KeyedActorsKeeper(self), Restart.PERMANENT)

    def _ref(self, key: K) -> pykka.ActorRef[A]:
        """The live actor for ``key``; call with the lock held."""
        if self._closed:
            raise ActorDead(f"{self.name} is stopped")
        ref = self._refs.get(key)
        if ref is None or not ref.is_alive():
            ref = spawn(lambda: self._factory(key), on_exit=lambda e: self._exited(key, e))
            self._refs[key] = ref
        return ref

    def _exited(self, key: K, exit_: ActorExit) -> None:
        with self._lock:
            ref = self._refs.get(key)
            if ref is not None and ref.actor_urn == exit_.urn:
                del self._refs[key]
        if exit_.failed:
            log.warning("keyed actor failed", registry=self.name, key=key, error=repr(exit_.error))


class KeyedActorsKeeper(Actor):
    """The supervised face of a `KeyedActors` registry: opens it on start, stops it on stop."""

    def __init__(self, registry: KeyedActors[Any, Any]) -> None:
        super().__init__()
        self._registry = registry

    def pre_start(self) -> None:
        self._registry.reopen()

    def post_stop(self) -> None:
        self._registry.stop_all()
