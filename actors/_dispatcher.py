"""A bounded pool of worker threads that runs keyed actors' mailboxes (`KeyedActors`).

Why threads and not an asyncio loop: a keyed actor's handler is ordinary blocking code (a
store round trip through pymongo or SQLAlchemy), so on a loop every handler would have to be
handed to a thread pool anyway — the loop would only add a hop. Measured on this 2-core
machine (``python -m bench.dispatch``): with handlers that do no I/O, a worker pool ran ~1.7x
as many messages per second as a loop that hands each to an executor and as a loop running
handlers inline; with a 2 ms blocking call per message, 32 workers ran ~14,000 messages/s
while a loop running handlers inline ran ~480/s (every blocking call stops every key).

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
