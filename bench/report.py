"""Measuring helpers and the report every benchmark returns."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Measurement:
    """One measured case: latency percentiles in microseconds and/or a rate."""

    name: str
    median_us: float | None = None
    p99_us: float | None = None
    per_second: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Check:
    """A target from an issue, evaluated on ratios measured in the same run."""

    name: str
    value: float
    target: str
    passed: bool


@dataclass
class Report:
    benchmark: str
    measurements: list[Measurement] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def latencies_us(operation: Callable[[], object], count: int, warmup: int = 200) -> list[float]:
    """Run ``operation`` ``count`` times (after ``warmup``) and return each duration in µs."""
    for _ in range(warmup):
        operation()
    samples = []
    clock = time.perf_counter
    for _ in range(count):
        started = clock()
        operation()
        samples.append((clock() - started) * 1e6)
    return samples


def summarise(name: str, samples_us: list[float], **extra: Any) -> Measurement:
    ordered = sorted(samples_us)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return Measurement(name, statistics.median(ordered), p99, extra=extra)


def interleaved(cases: dict[str, Callable[[], object]], rounds: int, per_round: int) -> dict[
    str, list[float]
]:
    """Alternate the cases in rounds so machine noise hits them all alike."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, operation in cases.items():
            samples[name] += latencies_us(operation, per_round, warmup=20)
    return samples


# ---- CPU time of processes, from /proc (Linux) ----------------------------------------------

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_cpu_seconds(path: str) -> float:
    """utime + stime of a /proc ``stat`` file, in seconds (0 when it is gone)."""
    try:
        with open(path) as stat:
            # The command name (field 2) may hold spaces: split after its closing paren.
            fields = stat.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS  # fields 14 and 15 of proc(5)


def cpu_seconds(pid: int) -> float:
    """CPU seconds ``pid`` has used so far, every thread of it (user + system)."""
    return _stat_cpu_seconds(f"/proc/{pid}/stat")


def thread_cpu_seconds(pid: int) -> dict[int, float]:
    """CPU seconds each thread of ``pid`` has used so far, by thread id."""
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except FileNotFoundError:
        return {}
    return {tid: _stat_cpu_seconds(f"/proc/{pid}/task/{tid}/stat") for tid in tids}


def children_of(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (gunicorn's workers, of its master)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
        if parent == pid:
            found.append(int(entry))
    return sorted(found)
