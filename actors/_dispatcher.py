"""A bounded pool of worker threads that runs keyed actors' mailboxes (`KeyedActors`).

Why threads and not an asyncio loop: a keyed actor's handler is ordinary blocking code (a
store round trip through pymongo or SQLAlchemy). Measured on this 2-core machine in two runs
(`bench.runtime.dispatch_choice`, 1,000 keys, messages per second): with 2 ms of blocking
I/O per message — what a store call does — a loop running handlers inline did 360-450 (every
blocking call stops every key), the pool 5,500-13,000, and a loop handing each message to a
32-thread executor 5,600-7,100 (the same threads plus a hop through the loop, and no per-key
order of its own). Without I/O the loop inline did 34,000-71,000 against the pool's
13,600-17,600 (asked from 32 threads, so with two thread hand-offs per message), but no
handler here is free of I/O. Only a fully async store stack would make the loop win, and
this project's stores are synchronous: so, a pool of threads.

Scheduling: the pool takes *items* (a keyed actor's cell) from one FIFO run queue; the owner
submits an item when it gets its first pending message, and the item's runner handles a
bounded batch of messages before putting it back at the end of the queue, so a key with a
long mailbox yields to the others (fairness) and one item is never run by two workers at once
(the owner's ``scheduled`` flag). Workers start on demand, up to ``workers``, and stay until
`stop`; a blocked handler occupies one worker, not the pool.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

import structlog

log = structlog.get_logger("actors.dispatcher")

T = TypeVar("T")

_STOP_WORKER = object()


class Dispatcher(Generic[T]):
    """Runs ``run(item)`` for each submitted item on one of at most ``workers`` threads.

    Guarantees: items run in submission order as workers free up; at most ``workers``
    threads exist (daemon threads, named ``{name}-worker-N``); an exception escaping ``run``
    is logged and the worker goes on. Thread-safe.
    """

    def __init__(self, name: str, run: Callable[[T], None], workers: int) -> None:
        if workers < 1:
            raise ValueError("a dispatcher needs at least one worker")
        self.name = name
        self.max_workers = workers
        self._run = run
        self._ready: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._idle = 0  # workers waiting on the run queue; written under the lock
        self._spawned = 0

    def submit(self, item: T) -> None:
        """Queue ``item`` to run once; starts a worker when none is idle and there is room."""
        self._ready.put(item)
        if self._idle == 0 and len(self._threads) < self.max_workers:
            # Read without the lock on purpose: a stale read only starts a worker early or
            # late by one submit; the check below under the lock keeps the bound exact.
            with self._lock:
                if self._idle == 0 and len(self._threads) < self.max_workers:
                    self._spawned += 1
                    thread = threading.Thread(target=self._work, daemon=True,
                                              name=f"{self.name}-worker-{self._spawned}")
                    self._threads.append(thread)
                    thread.start()

    @property
    def threads(self) -> int:
        """Worker threads running now."""
        return len(self._threads)

    def queued(self) -> int:
        """Items waiting for a worker (approximate, for metrics)."""
        return self._ready.qsize()

    def stop(self, timeout: float) -> None:
        """Let every worker finish its current item and exit; the pool may be used again."""
        with self._lock:
            threads = list(self._threads)
        for _ in threads:
            self._ready.put(_STOP_WORKER)
        for thread in threads:
            thread.join(timeout)
            if thread.is_alive():
                log.error("dispatcher worker did not stop in time", worker=thread.name)

    def _work(self) -> None:
        ready, run, lock = self._ready, self._run, self._lock
        while True:
            with lock:
                self._idle += 1
            item = ready.get()
            with lock:
                self._idle -= 1
            if item is _STOP_WORKER:
                with lock:  # a worker that outlived `stop`'s timeout leaves when it is done
                    self._threads.remove(threading.current_thread())
                return
            try:
                run(item)  # type: ignore[arg-type]  # everything else in the queue is a T
            except Exception:
                log.exception("dispatcher item failed", dispatcher=self.name)
