"""What became of the updates Telegram sent, for `/metrics`.

No aiogram here: the metrics route imports this whether or not a bot runs.
"""

from __future__ import annotations

import threading
from collections import Counter


class UpdateCounters:
    """Updates by outcome (``unparseable``, ``unknown_kind``, ``not_handled``); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def incr(self, outcome: str) -> None:
        with self._lock:
            self._counts[outcome] += 1

    def get(self, outcome: str) -> int:
        with self._lock:
            return self._counts[outcome]

    def prometheus_text(self) -> str:
        """``yabot_telegram_updates_total{outcome="…"} N`` lines (Prometheus text format)."""
        with self._lock:
            counts = sorted(self._counts.items())
        lines = [
            "# HELP yabot_telegram_updates_total Telegram updates skipped, by why.",
            "# TYPE yabot_telegram_updates_total counter",
        ]
        lines += [f'yabot_telegram_updates_total{{outcome="{k}"}} {v}' for k, v in counts]
        return "\n".join(lines) + "\n"


#: The process's counters (webhook and polling both count here).
telegram_counters = UpdateCounters()
