"""Intake fixtures: one contract suite on every implementation (SQLite, PostgreSQL, Redis)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete

from yabot.intake.entries import Intake
from yabot.intake.redis import RedisIntake
from yabot.intake.sql import SqlIntake
from yabot.stores.engine import make_engine
from yabot.stores.tables import intake_entries, metadata

PARTITIONS = 4

#: A fresh intake on the same log each call: a second process, or this one after a crash.
IntakeFactory = Callable[[], Intake]


@pytest.fixture(params=["sqlite", "postgresql", "redis"])
def intakes(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IntakeFactory]:
    made: list[Intake] = []
    engine: Engine | None = None
    if request.param == "redis":
        url, prefix = request.getfixturevalue("local_redis")

        def build() -> Intake:
            made.append(RedisIntake(url, prefix.rstrip(":"), f"c-{uuid.uuid4().hex[:6]}",
                                    PARTITIONS))
            return made[-1]
    else:
        url = (f"sqlite:///{tmp_path / 'intake.sqlite3'}" if request.param == "sqlite"
               else request.getfixturevalue("postgres_url"))
        engine = make_engine(url)
        metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(delete(intake_entries))
        the_engine = engine

        def build() -> Intake:
            made.append(SqlIntake(lambda: the_engine))
            return made[-1]

    yield build
    for intake in made:
        intake.close()
    if engine is not None:
        # The PostgreSQL schema is shared by this worker's tests: leave no tables behind.
        metadata.drop_all(engine)
        engine.dispose()
