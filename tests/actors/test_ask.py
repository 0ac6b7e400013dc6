from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from actors import (
    Actor,
    ActorDead,
    Ask,
    AskTimeout,
    SelfAsk,
    ask,
    ask_async,
    spawn,
)
from tests.support.waiting import ASK, DEFAULT_CEILING, scaled


class Wait(Ask[str]):
    """Blocks the actor until the test releases it."""


class Fail(Ask[str]):
    pass


class AskMyself(Ask[str]):
    pass


class Double(Ask[int]):
    value: int


class Worker(Actor):
    def __init__(self, release: threading.Event | None = None) -> None:
        super().__init__()
        self._release = release or threading.Event()

    def handle(self, message: Any) -> Any:
        match message:
            case Wait():
                self._release.wait(scaled(DEFAULT_CEILING))
                return "released"
            case Fail():
                raise KeyError("no such thing")
            case AskMyself():
                return ask(self.actor_ref, Double(value=1), timeout=ASK)
            case Double(value=value):
                return value * 2
        return super().handle(message)


def test_ask_times_out_with_a_typed_error() -> None:
    release = threading.Event()
    ref = spawn(lambda: Worker(release))
    try:
        with pytest.raises(AskTimeout, match="Wait"):
            ask(ref, Wait(), timeout=0.05)
    finally:
        release.set()
        ref.stop(block=True)


def test_ask_to_a_stopped_actor_raises_actor_dead() -> None:
    ref = spawn(Worker)
    ref.stop(block=True)
    with pytest.raises(ActorDead):
        ask(ref, Double(value=2), timeout=ASK)


def test_error_while_answering_goes_to_the_asker_and_the_actor_lives() -> None:
    ref = spawn(Worker)
    try:
        with pytest.raises(KeyError, match="no such thing"):
            ask(ref, Fail(), timeout=ASK)
        assert ask(ref, Double(value=21), timeout=ASK) == 42
    finally:
        ref.stop(block=True)


def test_an_actor_asking_itself_fails_at_once() -> None:
    ref = spawn(Worker)
    try:
        with pytest.raises(SelfAsk):
            ask(ref, AskMyself(), timeout=ASK)
    finally:
        ref.stop(block=True)


def test_ask_async_does_not_block_the_event_loop() -> None:
    release = threading.Event()
    ref = spawn(lambda: Worker(release))

    async def scenario() -> tuple[str, int]:
        waiting = asyncio.ensure_future(ask_async(ref, Wait(), timeout=ASK))
        ticks = 0
        while not waiting.done():  # the loop keeps running while the actor is busy
            ticks += 1
            if ticks == 5:
                release.set()
            await asyncio.sleep(0.01)
        return await waiting, ticks

    try:
        reply, ticks = asyncio.run(scenario())
    finally:
        release.set()
        ref.stop(block=True)
    assert reply == "released"
    assert ticks >= 5


def test_ask_async_times_out_and_returns_errors() -> None:
    release = threading.Event()
    ref = spawn(lambda: Worker(release))

    async def scenario() -> None:
        with pytest.raises(KeyError):
            await ask_async(ref, Fail(), timeout=ASK)
        with pytest.raises(AskTimeout):
            await ask_async(ref, Wait(), timeout=0.05)

    try:
        asyncio.run(scenario())
    finally:
        release.set()
        ref.stop(block=True)
