"""Per-user lanes on the bot's event loop: one user's updates run one after another.

aiogram runs each update as its own task, and a task can suspend before it reaches the
user's session (sync filters run in a worker thread, for one), so two updates of one user
could overtake each other. A lane starts an update only when the user's previous update is
done; updates of different users run concurrently.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import structlog

log = structlog.get_logger("yabot.bot")

T = TypeVar("T")


class Lanes(Generic[T]):
    """Runs ``run(item)`` for submitted items: serially per key, concurrently across keys (at
    most ``concurrency`` at a time).

    `submit` must be called on the loop's thread, in arrival order (``call_soon_threadsafe``
    callbacks run in the order they were scheduled, so hand-offs from other threads keep it).
    """

    def __init__(self, run: Callable[[T], Awaitable[object]], concurrency: int) -> None:
        self._run = run
        # At most this many items run at once: thousands of users arriving together would
        # otherwise all contend for the stores at the same moment and each wait longer.
        self._slots = asyncio.Semaphore(concurrency)
        self._tails: dict[int | None, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        """Items submitted and not yet done."""
        return len(self._tasks)

    def submit(self, key: int | None, item: T) -> None:
        """Queue ``item`` behind the previous item of ``key`` (None: no lane, runs at once)."""
        previous = self._tails.get(key) if key is not None else None
        task = asyncio.get_running_loop().create_task(self._after(previous, item))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if key is not None:
            self._tails[key] = task
            task.add_done_callback(lambda done: self._release(key, done))

    async def _after(self, previous: asyncio.Task[None] | None, item: T) -> None:
        if previous is not None:
            await asyncio.wait({previous})  # never raises: only its end matters
        async with self._slots:
            try:
                await self._run(item)
            except Exception:
                log.exception("update task failed")

    def _release(self, key: int, task: asyncio.Task[None]) -> None:
        if self._tails.get(key) is task:
            del self._tails[key]

    async def drain(self, timeout: float) -> bool:
        """Wait for every submitted item; False if some were still running at ``timeout``."""
        if not self._tasks:
            return True
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
        return not pending
