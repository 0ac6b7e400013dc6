"""A stoppable periodic thread (the outbox relay, the transfer recovery pass, the scheduler).

Backoff lives in one place, `yabot.stores.retry.RetryPolicy`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

log = structlog.get_logger("yabot.periodic")


class PeriodicThread:
    """Calls ``action`` every ``interval`` seconds on a daemon thread until `stop`.

    An exception from ``action`` is logged and the thread goes on; `stop` waits for the
    current call to finish. Daemon, so a forgotten `stop` cannot keep the process alive —
    but owners stop it in their ``post_stop``. ``immediately``: the first call is at start,
    not one interval later (the scheduler fires what fell due while no process ran).
    """

    def __init__(self, name: str, interval: float, action: Callable[[], object], *,
                 immediately: bool = False) -> None:
        self._interval = interval
        self._action = action
        self._immediately = immediately
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> PeriodicThread:
        self._thread.start()
        return self

    def wake(self) -> None:
        """Run ``action`` now instead of at the end of the current interval."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _run(self) -> None:
        if self._immediately and not self._stopping.is_set():
            self._call()
        while not self._stopping.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._stopping.is_set():
                return
            self._call()

    def _call(self) -> None:
        try:
            self._action()
        except Exception:
            log.exception("periodic action failed", thread=self._thread.name)
