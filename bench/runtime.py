"""Actor runtime: ask round trips, passivation memory, per-key ordering under load, and what
a thread per actor costs."""

from __future__ import annotations

import asyncio
import gc
import resource
import threading
import time
from typing import Any

import pykka

from actors import Actor, Ask, KeyedActors, Message, ask, spawn
from bench.report import Check, Measurement, Report, interleaved, summarise


class Ping(Ask[int]):
    pass


class Echo(Actor):
    def handle(self, message: Any) -> Any:
        return 1


class RawEcho(pykka.ThreadingActor):
    def on_receive(self, message: Any) -> Any:
        return 1


def run(quick: bool = False) -> Report:
    report = Report("runtime")
    report.measurements, report.checks = ask_round_trips(quick)
    for measurement, checks in (
        passivation(keys=10_000 if quick else 100_000, cap=1_000, idle=0.05),
        ordering(keys=2_000 if quick else 10_000, per_key=10, threads=8, cap=10_000),
        ordering_vs_raw(keys=1_000 if quick else 2_000, per_key=10, threads=8),
    ):
        report.measurements.append(measurement)
        report.checks += checks
    report.measurements += thread_costs(1_000 if quick else 5_000)
    return report


def ask_round_trips(quick: bool) -> tuple[list[Measurement], list[Check]]:
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
    measurements = [summarise(name, s) for name, s in samples.items()]
    by_name = {m.name: m for m in measurements}
    baseline = by_name["raw pykka ask"].median_us
    keyed_median = by_name["KeyedActors.ask"].median_us
    assert baseline is not None
    assert keyed_median is not None
    ratio = keyed_median / baseline
    return measurements, [
        Check("keyed ask median / raw pykka ask median", round(ratio, 3), "<= 1.5", ratio <= 1.5)
    ]


# -- passivation and the cap ---------------------------------------------------------------


def rss_kib() -> int:
    """Resident set size of this process now (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def passivation(keys: int, cap: int, idle: float) -> tuple[Measurement, list[Check]]:
    """Touch ``keys`` distinct keys once each; RSS after 1,000 keys vs the peak afterwards."""
    keyed: KeyedActors[int, Echo] = KeyedActors(
        "passivation", lambda _key: Echo(), idle_timeout=idle, max_live=cap
    )
    ping = Ping()
    peak_live = 0
    samples: list[float] = []
    try:
        for key in range(1000):
            keyed.ask(key, ping, timeout=10)
        gc.collect()
        rss_1k = peak_rss = rss_kib()
        started = time.perf_counter()
        for key in range(1000, keys):
            t0 = time.perf_counter()
            keyed.ask(key, ping, timeout=10)
            samples.append((time.perf_counter() - t0) * 1e6)
            if key % 250 == 0:
                peak_rss = max(peak_rss, rss_kib())
                peak_live = max(peak_live, len(keyed))
        elapsed = time.perf_counter() - started
    finally:
        keyed.stop_all()
    ratio = peak_rss / rss_1k
    measurement = summarise(
        f"touch {keys:,} keys (cap {cap:,}, idle {idle}s)", samples,
        rss_after_1k_keys_kib=rss_1k, peak_rss_kib=peak_rss, peak_live_actors=peak_live,
    )
    measurement = Measurement(
        measurement.name, measurement.median_us, measurement.p99_us,
        per_second=(keys - 1000) / elapsed, extra=measurement.extra,
    )
    return measurement, [
        Check("peak RSS / RSS after 1,000 keys", round(ratio, 3), "<= 1.2", ratio <= 1.2),
        Check("peak live actors (sampled)", peak_live, f"<= {cap}", peak_live <= cap),
    ]


# -- per-key ordering under load ----------------------------------------------------------------


class Numbered(Message):
    number: int


class OrderChecker(Actor):
    """Counts messages that do not follow the previous one of its key."""

    def __init__(self, key: int, last: dict[int, int], violations: list[int]) -> None:
        super().__init__()
        self._key = key
        self._last = last  # survives passivation, like a store would
        self._violations = violations

    def handle(self, message: Any) -> Any:
        if isinstance(message, Numbered):
            if message.number != self._last.get(self._key, -1) + 1:
                self._violations.append(self._key)
            self._last[self._key] = message.number
            return None
        return super().handle(message)


def ordering(keys: int, per_key: int, threads: int, cap: int) -> tuple[Measurement, list[Check]]:
    last: dict[int, int] = {}
    violations: list[int] = []
    keyed: KeyedActors[int, OrderChecker] = KeyedActors(
        "ordering", lambda key: OrderChecker(key, last, violations), idle_timeout=1.0,
        max_live=cap,
    )

    def send(thread: int) -> None:
        mine = range(thread, keys, threads)
        for number in range(per_key):
            for key in mine:
                keyed.tell(key, Numbered(number=number))

    started = time.perf_counter()
    workers = [threading.Thread(target=send, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    deadline = time.monotonic() + 120
    while sum(last.values()) != keys * (per_key - 1) and time.monotonic() < deadline:
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    keyed.stop_all()
    handled = sum(n + 1 for n in last.values())
    total = keys * per_key
    measurement = Measurement(
        f"{keys:,} keys x {per_key} msgs, {threads} threads (cap {cap:,})",
        per_second=handled / elapsed,
        extra={"handled": handled, "order_violations": len(violations)},
    )
    return measurement, [
        Check("order violations", len(violations), "== 0", not violations),
        Check("messages handled / sent", handled / total, "== 1", handled == total),
    ]


class RawOrderChecker(pykka.ThreadingActor):
    def __init__(self, key: int, last: dict[int, int], violations: list[int]) -> None:
        super().__init__()
        self._key, self._last, self._violations = key, last, violations

    def on_receive(self, message: Any) -> Any:
        if message != self._last.get(self._key, -1) + 1:
            self._violations.append(self._key)
        self._last[self._key] = message


def ordering_vs_raw(keys: int, per_key: int, threads: int) -> tuple[Measurement, list[Check]]:
    """The same load on pre-started raw pykka actors (no registry, no passivation): baseline."""
    last: dict[int, int] = {}
    violations: list[int] = []
    started = time.perf_counter()
    refs = [RawOrderChecker.start(key, last, violations) for key in range(keys)]

    def send(thread: int) -> None:
        for number in range(per_key):
            for key in range(thread, keys, threads):
                refs[key].tell(number)

    workers = [threading.Thread(target=send, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    while sum(last.values()) != keys * (per_key - 1):
        time.sleep(0.01)
    raw_rate = keys * per_key / (time.perf_counter() - started)
    for ref in refs:
        ref.stop()
    keyed, _ = ordering(keys, per_key, threads, cap=keys)
    assert keyed.per_second is not None
    ratio = keyed.per_second / raw_rate
    measurement = Measurement(
        f"same load on {keys:,} raw pykka actors (baseline)", per_second=raw_rate,
        extra={"keyed_per_second": round(keyed.per_second, 1),
               "keyed / raw (no target in the issue; reported)": round(ratio, 3)},
    )
    return measurement, []


# -- what a thread per actor costs (the scale decision) -----------------------------------------


def thread_costs(count: int) -> list[Measurement]:
    """Start/stop time, RSS per idle actor, context switches per ask; an asyncio task per key as
    the reference a coroutine-based design would cost."""
    gc.collect()
    rss_before = rss_kib()
    rss_tasks = asyncio.run(_tasks_rss(count)) - rss_before  # first: nothing freed to reuse yet
    gc.collect()
    rss_before = rss_kib()
    start_us: list[float] = []
    refs = []
    for _ in range(count):
        t0 = time.perf_counter()
        refs.append(spawn(Echo))
        start_us.append((time.perf_counter() - t0) * 1e6)
    rss_threads = rss_kib() - rss_before
    switches_before = _context_switches()
    ping = Ping()
    for ref in refs[:1000]:
        ask(ref, ping, timeout=5)
    switches_per_ask = (_context_switches() - switches_before) / 1000
    stop_us: list[float] = []
    for ref in refs:
        t0 = time.perf_counter()
        ref.stop(block=True)
        stop_us.append((time.perf_counter() - t0) * 1e6)
    return [
        summarise("start one actor (spawn, waits for pre_start)", start_us),
        summarise("stop one actor (blocking)", stop_us),
        Measurement(
            f"{count:,} idle actors (one OS thread each)",
            extra={"rss_kib_per_actor": round(rss_threads / count, 1),
                   "context_switches_per_ask": round(switches_per_ask, 2)},
        ),
        Measurement(
            f"{count:,} asyncio tasks + queues (reference)",
            extra={"rss_kib_per_task": round(rss_tasks / count, 1)},
        ),
    ]


def _context_switches() -> int:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_nvcsw + usage.ru_nivcsw


async def _tasks_rss(count: int) -> int:
    queues: list[asyncio.Queue[int]] = [asyncio.Queue() for _ in range(count)]
    tasks = [asyncio.create_task(q.get()) for q in queues]
    await asyncio.sleep(0)
    rss = rss_kib()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return rss
