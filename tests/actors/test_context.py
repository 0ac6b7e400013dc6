"""The sender's context variables (e.g. a request's correlation id) are visible in the actor."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

from actors import Actor, Ask, KeyedActors, ask, ask_async, spawn
from tests.support.waiting import ASK

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")


class WhoAsks(Ask[str]):
    pass


class Reader(Actor):
    def handle(self, message: Any) -> Any:
        return request_id.get()


def test_ask_carries_the_senders_context_into_the_actor() -> None:
    ref = spawn(Reader)
    try:
        request_id.set("req-1")
        assert ask(ref, WhoAsks(), timeout=ASK) == "req-1"
        request_id.set("req-2")
        assert ask(ref, WhoAsks(), timeout=ASK) == "req-2"
    finally:
        request_id.set("none")
        ref.stop(block=True)


def test_ask_async_and_keyed_asks_carry_the_context_too() -> None:
    keyed: KeyedActors[int, Reader] = KeyedActors("readers", lambda _key: Reader())

    async def scenario() -> str:
        request_id.set("from-the-loop")
        return await keyed.ask_async(1, WhoAsks(), timeout=ASK)

    try:
        assert asyncio.run(scenario()) == "from-the-loop"
        ref = spawn(Reader)
        try:
            async def direct() -> str:
                request_id.set("direct")
                return await ask_async(ref, WhoAsks(), timeout=ASK)

            assert asyncio.run(direct()) == "direct"
        finally:
            ref.stop(block=True)
    finally:
        keyed.stop_all()
