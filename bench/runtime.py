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
    for measurement, checks in (
        live_sessions(keys=10_000 if quick else 100_000),
        sessions_with_context(users=500 if quick else 2_000),
        dispatch_choice(messages=2_000 if quick else 10_000),
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
        Check("keyed ask median / raw pykka ask median", round(ratio, 3), "<= 1.2", ratio <= 1.2)
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


# -- live sessions: memory, threads, stopping -----------------------------------------------------


def live_sessions(keys: int) -> tuple[Measurement, list[Check]]:
    """``keys`` real `UserSession`s made live (each handled one told `Credited`, which
    touches no store) and left idle: RSS per session, threads, and the time `stop_all` takes."""
    from yabot.sessions.messages import Credited
    from yabot.sessions.session import SessionServices, UserSession
    from yabot.stores.handles import Stores

    published: list[int] = []

    def relay() -> None:  # every handled message that may store wakes the relay
        published.append(1)

    services = SessionServices.build(Stores(), relay=relay)

    sessions: KeyedActors[int, UserSession] = KeyedActors(
        "live-sessions", lambda key: UserSession(key, services),
        idle_timeout=3600, max_live=keys, workers=32)
    update = Credited(amount=1, balance_after=1, ledger_key="k", reason="bench")
    threads_before = threading.active_count()
    sessions.tell(0, update)
    _wait_for(lambda: len(published) == 1)
    gc.collect()
    rss_before = rss_kib()
    started = time.perf_counter()
    for key in range(1, keys + 1):
        sessions.tell(key, update)
    _wait_for(lambda: len(published) == keys + 1)
    activate_s = time.perf_counter() - started
    gc.collect()
    rss_after = rss_kib()
    threads = threading.active_count()
    live = len(sessions)
    started = time.perf_counter()
    sessions.stop_all(timeout=60)
    stop_s = time.perf_counter() - started
    per_session_kib = (rss_after - rss_before) / keys
    projected_100k_mib = per_session_kib * 100_000 / 1024 + rss_before / 1024
    measurement = Measurement(
        f"{keys:,} live idle UserSessions", per_second=keys / activate_s,
        extra={"rss_kib_per_session": round(per_session_kib, 2),
               "rss_mib_total": round(rss_after / 1024, 1),
               "threads before / with all live": f"{threads_before} / {threads}",
               "stop_all_seconds": round(stop_s, 3), "live": live},
    )
    return measurement, [
        Check("RSS per live idle session (KiB)", round(per_session_kib, 2), "<= 5",
              per_session_kib <= 5),
        Check("process RSS with 100,000 live sessions (MiB, projected from the run)",
              round(projected_100k_mib, 1), "<= 1024", projected_100k_mib <= 1024),
        Check(f"stopping {keys:,} live sessions (s)", round(stop_s, 3), "<= 1", stop_s <= 1),
        Check("threads added with every session live (pool + ticker)",
              threads - threads_before, "<= 33", threads - threads_before <= 33),
    ]


def sessions_with_context(users: int) -> tuple[Measurement, list[Check]]:
    """Python memory (tracemalloc) a live session holds once it has answered `GetState` and
    keeps that context (the real runtime on a temporary SQLite store)."""
    import os
    import tempfile
    import tracemalloc

    from yabot.domain.users import TelegramIdentity
    from yabot.runtime import Runtime
    from yabot.sessions.messages import GetState, Start
    from yabot.settings import load_settings

    saved = os.environ.copy()
    os.environ.update({"YABOT_ENV": "test", "YABOT_DATA_DIR": tempfile.mkdtemp(),
                       "JWT_SECRET": "bench-" + "x" * 40})
    try:
        settings = load_settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    with Runtime(settings) as runtime:
        sessions = runtime.sessions
        for user in range(1, users + 1):
            identity = TelegramIdentity(user_id=user, first_name=f"user {user}")
            sessions.ask(user, Start(identity=identity), timeout=30)
        for _ in range(2):  # the second round reads through warm store caches
            sessions.stop_all()
            sessions.reopen()
            for user in range(1, users + 1):
                sessions.ask(user, GetState(), timeout=30)
        sessions.stop_all()
        sessions.reopen()
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for user in range(1, users + 1):
                sessions.ask(user, GetState(), timeout=30)
            gc.collect()
            live = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
    per_session_kib = (live - before) / users / 1024
    measurement = Measurement(f"{users:,} live sessions holding their state (tracemalloc)",
                              extra={"kib_per_session": round(per_session_kib, 2)})
    return measurement, [Check("memory per live session with its state (KiB)",
                               round(per_session_kib, 2), "<= 5", per_session_kib <= 5)]


def _wait_for(condition: Any, ceiling: float = 300) -> None:
    deadline = time.monotonic() + ceiling
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError("benchmark condition not reached")
        time.sleep(0.005)


# -- thread pool or asyncio loop (the dispatcher decision) -----------------------------------------


class Work(Ask[int]):
    pass


class Worker(Actor):
    def __init__(self, blocking: float) -> None:
        super().__init__()
        self._blocking = blocking

    def handle(self, message: Any) -> Any:
        if self._blocking:
            time.sleep(self._blocking)  # a store round trip
        return 1


def dispatch_choice(messages: int) -> tuple[Measurement, list[Check]]:
    """Messages per second over 1,000 keys: the worker pool against an asyncio loop that runs
    handlers inline and one that hands each to an executor, without and with 2 ms of blocking
    I/O per message (what a store call does to a handler)."""
    rates: dict[str, float] = {}
    for blocking in (0.0, 0.002):
        count = messages if not blocking else messages // 5
        label = "2 ms I/O" if blocking else "no I/O"
        rates[f"pool, {label}"] = _pool_rate(count, blocking)
        rates[f"loop inline, {label}"] = asyncio.run(_loop_rate(count, blocking, executor=False))
        rates[f"loop + executor, {label}"] = asyncio.run(_loop_rate(count, blocking, executor=True))
    ratio = rates["pool, 2 ms I/O"] / rates["loop inline, 2 ms I/O"]
    measurement = Measurement(
        "dispatcher: worker pool vs asyncio loop (msgs/s)",
        extra={name: round(rate, 1) for name, rate in rates.items()},
    )
    return measurement, [Check("pool / loop inline, with 2 ms I/O", round(ratio, 1), ">= 4",
                               ratio >= 4)]


def _pool_rate(count: int, blocking: float) -> float:
    keyed: KeyedActors[int, Worker] = KeyedActors("choice", lambda _key: Worker(blocking),
                                                  workers=32)
    done: list[int] = []

    def ask_many(thread: int) -> None:
        for n in range(thread, count, 32):
            done.append(keyed.ask(n % 1000, Work(), timeout=60))

    started = time.perf_counter()
    senders = [threading.Thread(target=ask_many, args=(t,)) for t in range(32)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    elapsed = time.perf_counter() - started
    keyed.stop_all()
    assert len(done) == count
    return count / elapsed


async def _loop_rate(count: int, blocking: float, *, executor: bool) -> float:
    from concurrent.futures import ThreadPoolExecutor

    loop = asyncio.get_running_loop()
    actors = [Worker(blocking) for _ in range(1000)]
    work = Work()
    started = time.perf_counter()
    if executor:
        with ThreadPoolExecutor(32) as pool:
            await asyncio.gather(*(loop.run_in_executor(pool, actors[n % 1000].handle, work)
                                   for n in range(count)))
    else:
        futures: list[asyncio.Future[Any]] = []

        def run_inline(future: asyncio.Future[Any], actor: Worker) -> None:
            future.set_result(actor.handle(work))

        for n in range(count):
            future: asyncio.Future[Any] = loop.create_future()
            loop.call_soon(run_inline, future, actors[n % 1000])
            futures.append(future)
        await asyncio.gather(*futures)
    return count / (time.perf_counter() - started)


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
