"""Actor runtime: ask round trip of raw pykka vs `actors.ask` vs a `KeyedActors` ask."""

from __future__ import annotations

from typing import Any

import pykka

from actors import Actor, Ask, KeyedActors, ask, spawn
from bench.report import Check, Report, interleaved, summarise


class Ping(Ask[int]):
    pass


class Echo(Actor):
    def handle(self, message: Any) -> Any:
        return 1


class RawEcho(pykka.ThreadingActor):
    def on_receive(self, message: Any) -> Any:
        return 1


def run(quick: bool = False) -> Report:
    rounds, per_round = (5, 500) if quick else (20, 2000)
    raw = RawEcho.start()
    typed = spawn(Echo)
    keyed: KeyedActors[int, Echo] = KeyedActors("bench", lambda _key: Echo())
    ping = Ping()
    try:
        samples = interleaved(
            {
                "raw pykka ask": lambda: raw.ask(ping, timeout=5),
                "actors.ask": lambda: ask(typed, ping, timeout=5),
                "KeyedActors.ask": lambda: keyed.ask(1, ping, timeout=5),
            },
            rounds, per_round,
        )
    finally:
        raw.stop()
        typed.stop()
        keyed.stop_all()
    report = Report("runtime")
    report.measurements = [summarise(name, s) for name, s in samples.items()]
    by_name = {m.name: m for m in report.measurements}
    baseline = by_name["raw pykka ask"].median_us
    keyed_median = by_name["KeyedActors.ask"].median_us
    assert baseline is not None
    assert keyed_median is not None
    ratio = keyed_median / baseline
    report.checks.append(
        Check("keyed ask median / raw pykka ask median", round(ratio, 3), "<= 1.5", ratio <= 1.5)
    )
    return report
