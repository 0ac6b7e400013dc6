"""Waiting in tests: for a signal, never for a deadline tuned to a quiet machine.

Every deadline in the suite is a *ceiling* for a signal that normally arrives much sooner
(a readiness line, a socket, a row), and every ceiling goes through :func:`scaled`, so one
setting stretches them all on a slow or busy machine:

    YABOT_TEST_TIME_SCALE=4 make test

The ceilings are generous on purpose: a test passing on a quiet machine in milliseconds
still passes on a 2-core machine running two CPU hogs (`make test-stressed`), because it
only ever waits *up to* a ceiling for what it is waiting for. A test never asserts that
something happened *fast*; speed belongs in `make bench`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable

TIME_SCALE = float(os.environ.get("YABOT_TEST_TIME_SCALE", "1") or "1")

# The figures: a 2-core machine running two CPU hogs, the suite's two workers and other work
# (load average 18) took 100 s to boot gunicorn and 280 s for a `yabot chat` test that takes
# 5 s when quiet; so every ceiling is several times the slowest start seen there.

#: The ceiling for "this will happen soon" when a test has no better figure.
DEFAULT_CEILING = 120.0


def scaled(seconds: float) -> float:
    """``seconds`` stretched by ``YABOT_TEST_TIME_SCALE`` (default 1)."""
    return seconds * TIME_SCALE


#: How long a test waits for an actor's reply (`ask(..., timeout=ASK)`) before failing. The
#: reply normally takes milliseconds; a generous ceiling only costs time when a test fails.
ASK = scaled(60.0)

#: The ceiling for a subprocess server (gunicorn, `yabot run`, redis-server) to answer its
#: readiness probe, and for one to exit after it was told to.
START_CEILING = 600.0
STOP_CEILING = 180.0

#: The ceiling for a one-shot command (`yabot chat`, `yabot migrate`) to finish.
COMMAND_CEILING = 600.0

#: The per-test hang catcher (pytest-timeout), far above every ceiling a test waits on; the
#: suite's conftest applies ``scaled(TEST_CEILING)`` to every test without its own marker.
TEST_CEILING = 1800.0


def eventually(
    predicate: Callable[[], bool], what: str, ceiling: float = DEFAULT_CEILING
) -> None:
    """Poll ``predicate`` until it holds; fail naming ``what`` after ``scaled(ceiling)`` s."""
    limit = scaled(ceiling)
    end = time.monotonic() + limit
    pause = 0.002
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"not within {limit:.0f}s: {what}")
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def wait_for_event(
    event: threading.Event, what: str, ceiling: float = DEFAULT_CEILING
) -> None:
    """Block until ``event`` is set; fail naming ``what`` after ``scaled(ceiling)`` s."""
    limit = scaled(ceiling)
    if not event.wait(limit):
        raise AssertionError(f"not within {limit:.0f}s: {what}")


def joined(thread: threading.Thread, what: str, ceiling: float = DEFAULT_CEILING) -> None:
    """Join ``thread``; fail naming ``what`` if it is still alive after ``scaled(ceiling)`` s."""
    limit = scaled(ceiling)
    thread.join(limit)
    if thread.is_alive():
        raise AssertionError(f"not within {limit:.0f}s: {what}")


def exited(process: subprocess.Popen[bytes] | subprocess.Popen[str],
           ceiling: float = STOP_CEILING, output: Callable[[], str] | None = None) -> int:
    """``process``'s exit code, waiting up to ``scaled(ceiling)`` s; a process still running
    then never outlives its test. Without ``output`` it is killed and
    `subprocess.TimeoutExpired` raised. With it (a Python process started with
    `processes.clean_env`, whose fault handler is on) it is aborted, writing every thread's
    stack, and the test fails showing the end of ``output()``: a hang seen once under load is
    then a stack to read, not a guess."""
    try:
        return process.wait(scaled(ceiling))
    except subprocess.TimeoutExpired:
        if output is None:
            process.kill()
            process.wait()
            raise
        process.send_signal(signal.SIGABRT)
        process.wait()
        raise AssertionError(f"{process.args!r} did not exit within {scaled(ceiling):.0f} s; "
                             f"its stacks:\n{output()[-8000:]}") from None
