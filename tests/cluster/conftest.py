"""Cluster tests: real processes on PostgreSQL + Redis (fixtures in tests/conftest.py and
tests/support/cluster.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cluster import Cluster


@pytest.fixture
def cluster(tmp_path: Path, fresh_postgres_url: str, local_redis: tuple[str, str]
            ) -> Iterator[Cluster]:
    # A schema of its own: the processes migrate it themselves, from empty.
    cluster = Cluster(tmp_path, fresh_postgres_url, *local_redis)
    try:
        yield cluster
    finally:
        cluster.stop()
