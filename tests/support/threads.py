"""Many threads at once, for race tests: start together, every error surfaced."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from tests.support.waiting import TEST_CEILING, joined

T = TypeVar("T")


def race(threads: int, work: Callable[[int], T]) -> list[T]:
    """Run ``work(0)`` … ``work(threads - 1)``, each on its own thread, released together by
    a barrier so they contend from the first call; return their results in index order.

    An exception in any thread fails the caller with every thread's error listed (a race
    that only shows as a lost result would otherwise pass). The joins wait up to the test's
    own hang catcher: a race under load is slow, not stuck.
    """
    barrier = threading.Barrier(threads)
    results: dict[int, T] = {}
    errors: dict[int, BaseException] = {}
    lock = threading.Lock()

    def run(index: int) -> None:
        barrier.wait()
        try:
            result = work(index)
        except BaseException as exc:  # surfaced below, with its thread's index
            with lock:
                errors[index] = exc
            return
        with lock:
            results[index] = result

    started = [threading.Thread(target=run, args=(i,), name=f"race-{i}") for i in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        joined(thread, f"{thread.name} finished", ceiling=TEST_CEILING)
    if errors:
        listed = "; ".join(f"thread {i}: {type(error).__name__}: {error}"
                           for i, error in sorted(errors.items()))
        raise AssertionError(f"{len(errors)} of {threads} threads failed: {listed}") from next(
            iter(errors.values()))
    return [results[i] for i in range(threads)]
