"""Waiting in tests: for a signal, never for a deadline tuned to a quiet machine.

Every deadline in the suite is a *ceiling* for a signal that normally arrives much sooner
(a readiness line, a socket, a row), and every ceiling goes through :func:`scaled`, so one
setting stretches them all on a slow or busy machine:

    YABOT_TEST_TIME_SCALE=4 make test

A test never asserts that something happened *fast*; speed belongs in `make bench`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

TIME_SCALE = float(os.environ.get("YABOT_TEST_TIME_SCALE", "1") or "1")

#: The ceiling for "this will happen soon" when a test has no better figure.
DEFAULT_CEILING = 60.0


def scaled(seconds: float) -> float:
    """``seconds`` stretched by ``YABOT_TEST_TIME_SCALE`` (default 1)."""
    return seconds * TIME_SCALE


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
