from __future__ import annotations

import threading
from typing import Any

import pytest

from actors import Actor, Ask, ChildSpec, Message, Supervisor, ask, spawn, tell


class Ping(Ask[str]):
    pass


class Crash(Message):
    pass


class Echo(Actor):
    def handle(self, message: Any) -> Any:
        match message:
            case Ping():
                return "pong"
            case Crash():
                raise RuntimeError("crash on purpose")
        return super().handle(message)


def wait_for_new_child(sup: Supervisor, name: str, old: Any, timeout: float = 5.0) -> Any:
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        ref = sup.child(name)
        if ref is not None and ref is not old and ref.is_alive():
            return ref
        done.wait(0.01)
    raise AssertionError(f"child {name} was not restarted")


def test_crashed_child_is_restarted_and_answers_again() -> None:
    sup = Supervisor("root", [ChildSpec("echo", Echo)])
    ref = spawn(lambda: sup)
    try:
        first = sup.child("echo")
        assert first is not None
        assert ask(first, Ping(), timeout=2) == "pong"

        tell(first, Crash())

        second = wait_for_new_child(sup, "echo", first)
        assert second.actor_urn != first.actor_urn
        assert not first.is_alive()
        assert ask(second, Ping(), timeout=2) == "pong"
    finally:
        ref.stop(block=True)
    assert sup.child("echo") is None


def test_stopping_the_supervisor_stops_its_children() -> None:
    sup = Supervisor("root", [ChildSpec("a", Echo), ChildSpec("b", Echo)])
    ref = spawn(lambda: sup)
    children = [sup.child("a"), sup.child("b")]
    ref.stop(block=True)
    assert all(child is not None and not child.is_alive() for child in children)


def test_duplicate_child_names_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        Supervisor("root", [ChildSpec("a", Echo), ChildSpec("a", Echo)])
