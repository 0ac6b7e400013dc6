"""Counters of what the event system did, for logs, health and `/metrics`.

Every place that logs a loss, a fallback or a skip also counts it here, so an operator can
alert on a number instead of grepping logs.
"""

from __future__ import annotations

import threading
from collections import Counter


class EventCounters:
    """Named monotonically increasing counters; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def incr(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[name] += amount

    def get(self, name: str) -> int:
        with self._lock:
            return self._counts[name]

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def prometheus_text(self) -> str:
        """``yabot_events_total{what="…"} N`` lines, in the Prometheus text format."""
        lines = [
            "# HELP yabot_events_total What the event bus and processor did, by kind.",
            "# TYPE yabot_events_total counter",
        ]
        for name, value in sorted(self.snapshot().items()):
            lines.append(f'yabot_events_total{{what="{name}"}} {value}')
        return "\n".join(lines) + "\n"


#: The process's counters; components take an `EventCounters` argument defaulting to this.
event_counters = EventCounters()
