"""Helpers for event tests: a recording handler, a consumer on a thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    select,
)

from tests.support.waiting import DEFAULT_CEILING, scaled
from yabot.events.processor import StreamConsumer

# The effect a test handler writes, in the same transaction that marks the event processed.
test_metadata = MetaData()
effects = Table(
    "test_effects",
    test_metadata,
    Column("position", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("user_id", BigInteger, nullable=False),
    Column("seq", Integer, nullable=False),
)


def record_effect(event: Any, conn: Connection) -> None:
    conn.execute(effects.insert().values(
        event_id=str(event.event_id), user_id=event.user_id, seq=event.seq
    ))


def recorded(engine: Engine) -> list[tuple[int, int]]:
    """(user_id, seq) of every effect, in the order the handler ran."""
    with engine.connect() as conn:
        rows = conn.execute(select(effects.c.user_id, effects.c.seq).order_by(effects.c.position))
        return [(int(user), int(seq)) for user, seq in rows]


@contextmanager
def consuming(consumer: StreamConsumer) -> Iterator[threading.Thread]:
    """Run ``consumer`` on a thread for the ``with`` block; stop and join it afterwards."""
    stopping = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stopping,), daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        stopping.set()
        thread.join(scaled(DEFAULT_CEILING))
    assert not thread.is_alive(), "the consumer did not stop"
