"""Metrics: counts after a known sequence of messages, crashes and restarts."""

from __future__ import annotations

import threading
from typing import Any

from actors import Actor, Ask, ChildSpec, Message, Supervisor, ask, metrics, tell
from actors.testkit import crash_on
from tests.support.actors import actor_kit
from tests.support.waiting import ASK, DEFAULT_CEILING, eventually, scaled


class Work(Ask[int]):
    pass


class Hold(Message):
    pass


class Crash(Message):
    pass


class MeteredWorker(Actor):
    """A class name no other test module uses; tests compare counters before and after."""

    def __init__(self, release: threading.Event) -> None:
        super().__init__()
        self._release = release

    def handle(self, message: Any) -> Any:
        match message:
            case Work():
                return 1
            case Hold():
                self._release.wait(scaled(DEFAULT_CEILING))
                return None
        return super().handle(message)


def stats() -> dict[str, Any]:
    return dict(metrics.snapshot().get("MeteredWorker", {}))


def test_counts_follow_a_known_sequence_of_messages_and_crashes() -> None:
    release = threading.Event()
    before = stats() or {"handled": 0, "failures": 0, "restarts": 0,
                         "ask_latency": {"count": 0}}
    with actor_kit() as kit:
        crashing_worker = crash_on(Crash, lambda: MeteredWorker(release))
        sup = Supervisor("metered", [ChildSpec("w", crashing_worker)])
        kit.spawn(lambda: sup)
        worker = sup.child("w")
        assert worker is not None
        for _ in range(5):
            ask(worker, Work(), timeout=ASK)

        tell(worker, Hold())  # keeps the worker busy while three more messages queue up
        for message in (Hold(), Hold(), Crash()):
            tell(worker, message)
        eventually(lambda: stats()["mailbox_depth"] == 3, "three messages waiting")
        release.set()

        eventually(lambda: stats()["restarts"] == before["restarts"] + 1, "restarted")
        after = stats()
        assert after["handled"] - before["handled"] == 5 + 1 + 2 + 1  # asks, holds, the crash
        assert after["failures"] - before["failures"] == 1
        assert after["live"] == 1
        assert after["mailbox_depth"] == 0
        assert after["ask_latency"]["count"] - before["ask_latency"]["count"] == 5
        assert max(after["ask_latency"]["buckets"].values()) == after["ask_latency"]["count"]

    assert stats()["live"] == 0


def test_prometheus_text_exposes_every_metric_per_actor_class() -> None:
    with actor_kit() as kit:
        ref = kit.spawn(lambda: MeteredWorker(threading.Event()))
        ask(ref, Work(), timeout=ASK)
        text = metrics.prometheus_text()

    lines = text.splitlines()
    for name, kind in (
        ("actors_handled_total", "counter"),
        ("actors_failures_total", "counter"),
        ("actors_restarts_total", "counter"),
        ("actors_live", "gauge"),
        ("actors_mailbox_depth", "gauge"),
        ("actors_ask_latency_seconds", "histogram"),
    ):
        assert f"# TYPE {name} {kind}" in lines
    assert any(
        line.startswith('actors_ask_latency_seconds_bucket{actor_class="MeteredWorker",le="+Inf"}')
        for line in lines
    )
    assert 'actors_live{actor_class="MeteredWorker"} 1' in lines
