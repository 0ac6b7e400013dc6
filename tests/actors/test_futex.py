"""The futex hash: a process with keyed actors uses the kernel's global one on Linux."""

from __future__ import annotations

import threading

import pytest

from actors import Actor, KeyedActors
from actors._futex import private_futex_hash_slots, use_global_futex_hash


def test_a_keyed_registry_moves_the_process_to_the_global_futex_hash() -> None:
    # Threads first, as in a gunicorn worker: the kernel gives the process a private hash.
    idle = threading.Event()
    thread = threading.Thread(target=idle.wait, daemon=True)
    thread.start()
    try:
        if private_futex_hash_slots() is None:
            pytest.skip("this kernel has no private futex hash (Linux before 6.16, or not "
                        "Linux): nothing to switch")
        KeyedActors[int, Actor]("futex", lambda key: Actor()).stop_all()
        assert private_futex_hash_slots() == 0
        assert use_global_futex_hash()
    finally:
        idle.set()
        thread.join()
