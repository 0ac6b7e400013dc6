"""Repeated warnings cost one log line per interval, with a count of what was held back."""

from __future__ import annotations

from typing import Any

from tests.support.clock import ManualClock
from yabot.logs import LogThrottle


class Lines:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def warning(self, event: str, **fields: Any) -> None:
        self.lines.append((event, fields))


def test_a_repeated_message_is_logged_once_per_interval_with_a_count() -> None:
    clock = ManualClock(100.0)
    throttle = LogThrottle(interval=10.0, clock=clock)
    log = Lines()

    logged = [throttle(log, "redis failed", attempt=n) for n in range(5)]
    clock.now += 10.0
    logged.append(throttle(log, "redis failed", attempt=5))
    throttle(log, "another message")

    assert logged == [True, False, False, False, False, True]
    assert log.lines == [
        ("redis failed", {"attempt": 0}),
        ("redis failed", {"attempt": 5, "repeated": 4}),
        ("another message", {}),
    ]
