"""Per-actor-class counters and an ask-latency histogram, readable as a dict or Prometheus text.

Counters are updated from many actor threads; a single lock keeps them exact. The cost is one
uncontended lock acquisition per message, which is small next to a queue hand-off.
"""

from __future__ import annotations

import bisect
import queue
import threading
import weakref
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Protocol

import pykka

# Upper bounds in seconds: from a fast in-process ask (~50 µs) to a slow store round trip.
ASK_LATENCY_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
)


@dataclass
class _ClassStats:
    handled: int = 0
    failures: int = 0
    restarts: int = 0
    started: int = 0
    stopped: int = 0
    parked: int = 0
    snapshot_replies: int = 0
    ask_count: int = 0
    ask_sum: float = 0.0
    ask_buckets: list[int] = field(default_factory=lambda: [0] * len(ASK_LATENCY_BUCKETS))


class ActorSource(Protocol):
    """Something that runs actors pykka's registry does not list (`KeyedActors`)."""

    def gauges(self) -> dict[str, dict[str, int]]:
        """``{actor_class: {"mailbox_depth": n, "quarantined": n}}`` sampled now."""
        ...


class Metrics:
    """Runtime metrics keyed by actor class name.

    ``mailbox_depth`` is sampled on read from the inboxes of the actors in pykka's registry
    (every actor `spawn` starts) and from the sources `watch` names (keyed actors, which have
    no pykka inbox), so sending a message costs nothing extra; so is ``quarantined`` (keys
    refused after failing too often). ``parked`` counts messages set aside as poison.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stats: dict[str, _ClassStats] = defaultdict(_ClassStats)
        self._sources: weakref.WeakSet[ActorSource] = weakref.WeakSet()

    def watch(self, source: ActorSource) -> None:
        """Include ``source``'s actors in ``mailbox_depth`` for as long as it exists."""
        with self._lock:
            self._sources.add(source)

    def handled(self, actor_class: str) -> None:
        with self._lock:
            self._stats[actor_class].handled += 1

    def failed(self, actor_class: str) -> None:
        with self._lock:
            self._stats[actor_class].failures += 1

    def restarted(self, actor_class: str) -> None:
        with self._lock:
            self._stats[actor_class].restarts += 1

    def parked(self, actor_class: str) -> None:
        with self._lock:
            self._stats[actor_class].parked += 1

    def started(self, actor_class: str) -> None:
        with self._lock:
            self._stats[actor_class].started += 1

    def stopped(self, actor_class: str, count: int = 1) -> None:
        with self._lock:
            self._stats[actor_class].stopped += count

    def observe_ask(self, actor_class: str, seconds: float, from_snapshot: bool = False) -> None:
        """One ask answered in ``seconds``; ``from_snapshot``: by a keyed actor's `Snapshot`,
        without reaching its mailbox."""
        index = bisect.bisect_left(ASK_LATENCY_BUCKETS, seconds)
        with self._lock:
            stats = self._stats[actor_class]
            stats.snapshot_replies += from_snapshot
            stats.ask_count += 1
            stats.ask_sum += seconds
            if index < len(ASK_LATENCY_BUCKETS):
                stats.ask_buckets[index] += 1

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """A consistent copy: ``{actor_class: {"handled": n, ..., "ask_latency": {...}}}``."""
        with self._lock:
            stats = {name: _copy(s) for name, s in self._stats.items()}
        result: dict[str, dict[str, Any]] = {}
        for name, s in stats.items():
            cumulative, running = [], 0
            for count in s.ask_buckets:
                running += count
                cumulative.append(running)
            result[name] = {
                "handled": s.handled,
                "failures": s.failures,
                "restarts": s.restarts,
                "parked": s.parked,
                "snapshot_replies": s.snapshot_replies,
                "live": s.started - s.stopped,
                "mailbox_depth": 0,
                "quarantined": 0,
                "ask_latency": {
                    "count": s.ask_count,
                    "sum": s.ask_sum,
                    "buckets": dict(zip(ASK_LATENCY_BUCKETS, cumulative, strict=True)),
                },
            }
        with self._lock:
            sources = list(self._sources)
        for source in sources:
            for name, gauges in source.gauges().items():
                entry = result.setdefault(name, _empty())
                for gauge, value in gauges.items():
                    entry[gauge] += value
        for ref in pykka.ActorRegistry.get_all():
            inbox = ref.actor_inbox  # a queue.Queue for ThreadingActor; typed as a Protocol
            depth = inbox.qsize() if isinstance(inbox, queue.Queue) else 0
            if depth:
                name = ref.actor_class.__name__
                result.setdefault(name, _empty())["mailbox_depth"] += depth
        return result

    def prometheus_text(self, prefix: str = "actors") -> str:
        """The snapshot in Prometheus text exposition format (version 0.0.4)."""
        snap = self.snapshot()
        lines: list[str] = []
        for metric, kind, help_text in (
            ("handled", "counter", "Messages handled"),
            ("failures", "counter", "Actor failures (an actor died of an exception)"),
            ("restarts", "counter", "Restarts performed by supervisors"),
            ("parked", "counter", "Poison messages set aside instead of handled"),
            ("snapshot_replies", "counter",
             "Asks answered from a keyed actor's snapshot, without its mailbox"),
            ("live", "gauge", "Live actors"),
            ("mailbox_depth", "gauge", "Messages waiting in mailboxes"),
            ("quarantined", "gauge", "Keys refused for failing too often"),
        ):
            name = f"{prefix}_{metric}" + ("_total" if kind == "counter" else "")
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
            lines += [
                f'{name}{{actor_class="{cls}"}} {v[metric]}' for cls, v in sorted(snap.items())
            ]
        hist = f"{prefix}_ask_latency_seconds"
        lines += [f"# HELP {hist} Ask round-trip latency", f"# TYPE {hist} histogram"]
        for cls, v in sorted(snap.items()):
            latency = v["ask_latency"]
            for bound, count in latency["buckets"].items():
                lines.append(f'{hist}_bucket{{actor_class="{cls}",le="{bound}"}} {count}')
            lines.append(f'{hist}_bucket{{actor_class="{cls}",le="+Inf"}} {latency["count"]}')
            lines.append(f'{hist}_sum{{actor_class="{cls}"}} {latency["sum"]}')
            lines.append(f'{hist}_count{{actor_class="{cls}"}} {latency["count"]}')
        return "\n".join(lines) + "\n"


def _copy(s: _ClassStats) -> _ClassStats:
    return _ClassStats(
        s.handled, s.failures, s.restarts, s.started, s.stopped, s.parked, s.snapshot_replies,
        s.ask_count, s.ask_sum, list(s.ask_buckets),
    )


def _empty() -> dict[str, Any]:
    return {
        "handled": 0, "failures": 0, "restarts": 0, "parked": 0, "snapshot_replies": 0, "live": 0,
        "mailbox_depth": 0,
        "quarantined": 0, "ask_latency": {"count": 0, "sum": 0.0, "buckets": {}},
    }


metrics = Metrics()
"""The process-wide registry every actor reports into."""
