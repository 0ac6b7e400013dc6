"""A SQLite file with every table, for scheduler tests that need no PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from yabot.stores.engine import make_engine
from yabot.stores.tables import metadata


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'retention.sqlite3'}")
    metadata.create_all(engine)
    yield engine
    engine.dispose()
