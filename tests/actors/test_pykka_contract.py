"""The one private pykka method this runtime calls, pinned: a pykka release that renames it or
changes what `pykka.Actor.start` does around it fails here, loudly, before anything subtler.

`actors._actor.prepare` starts an actor instance built by a factory (pykka's public `start`
only builds one from a class and its arguments), so it repeats `start`'s steps after
construction: register the ref, then `_start_actor_loop()`.
"""

from __future__ import annotations

import inspect
import threading
from typing import Any

import pykka

from actors import Actor, Ask, ask, spawn
from tests.support.waiting import ASK


class WhichThread(Ask[str]):
    pass


class Named(Actor):
    def handle(self, message: Any) -> Any:
        return threading.current_thread().name


def test_pykka_start_is_still_construct_register_then_start_actor_loop() -> None:
    source = inspect.getsource(pykka.Actor.start)
    steps = ["cls(*args, **kwargs)", "ActorRegistry.register(obj.actor_ref)",
             "obj._start_actor_loop()"]
    positions = [source.find(step) for step in steps]
    assert -1 not in positions, (
        f"pykka.Actor.start changed; re-check actors._actor.prepare:\n{source}")
    assert positions == sorted(positions), "pykka.Actor.start reordered its steps"
    signature = inspect.signature(pykka.ThreadingActor._start_actor_loop)
    assert list(signature.parameters) == ["self"]


def test_an_actor_started_through_start_actor_loop_runs_on_its_own_thread() -> None:
    ref = spawn(Named)
    try:
        assert ref in pykka.ActorRegistry.get_all()
        assert ask(ref, WhichThread(), timeout=ASK).startswith("Named-")
    finally:
        ref.stop()
