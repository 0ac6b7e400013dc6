"""Counts of what happened to notifications (queued, sent, off, blocked, skipped …)."""

from __future__ import annotations

import threading


class NotificationCounters:
    """Thread-safe named counters; `prometheus_text` for ``/metrics``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def incr(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + amount

    def get(self, name: str) -> int:
        with self._lock:
            return self._counts.get(name, 0)

    def prometheus_text(self) -> str:
        with self._lock:
            counts = sorted(self._counts.items())
        lines = ["# TYPE yabot_notifications_total counter"]
        lines += [f'yabot_notifications_total{{outcome="{name}"}} {value}'
                  for name, value in counts]
        return "\n".join(lines) + "\n"


#: The process's counters.
notification_counters = NotificationCounters()
