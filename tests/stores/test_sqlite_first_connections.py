"""Many first connections at once to a new SQLite file all get a WAL connection.

SQLite refuses a concurrent switch to WAL with "database is locked" without waiting for its
busy timeout; `yabot.stores.engine` retries the switch. Before, CI saw one of eight
concurrent starts on a fresh file fail so (tests/stores/test_migration_safety.py).
"""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import Engine, text

from tests.support.waiting import scaled
from yabot.stores.engine import make_engine

ROUNDS = 40
CONNECTIONS = 8


def test_concurrent_first_connections_to_a_new_file_all_run_in_wal(tmp_path: Path) -> None:
    failures: list[BaseException] = []
    modes: list[str] = []
    for round_ in range(ROUNDS):
        url = f"sqlite:///{tmp_path / f'fresh-{round_}.sqlite3'}"
        engines = [make_engine(url) for _ in range(CONNECTIONS)]
        barrier = threading.Barrier(CONNECTIONS)

        def connect(engine: Engine, barrier: threading.Barrier = barrier) -> None:
            try:
                barrier.wait()
                with engine.connect() as conn:
                    modes.append(str(conn.execute(text("PRAGMA journal_mode")).scalar_one()))
            except BaseException as exc:  # collected: asserted below with every thread's
                failures.append(exc)

        threads = [threading.Thread(target=connect, args=(engine,)) for engine in engines]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(scaled(60))
        for engine in engines:
            engine.dispose()
    assert failures == []
    assert modes == ["wal"] * (ROUNDS * CONNECTIONS)
